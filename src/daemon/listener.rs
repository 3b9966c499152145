//! The agent socket: a private folder, a 0600 socket bound under umask 077,
//! and the accept loop that caps connections and learns each peer's uid.

use super::DaemonError;
use crate::files::private_dir;
use crate::files::rules::{Finding, Kind, Owners, Rule};
use rustix::fs::Mode;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::UnixListener;

/// Creates (or checks) the socket's folder: a real directory, ours, mode 0700,
/// on a path nobody else can change ([`private_dir::check_private_dir`]).
///
/// `mkdir` with mode 0700 is atomic, so there is no window where a folder we create
/// exists with looser permissions; one that someone else made first (in /tmp, say)
/// is refused, and an existing folder of ours has its mode set again explicitly.
pub fn prepare_dir(dir: &Path) -> Result<(), DaemonError> {
    let resolved = private_dir::check_private_dir(dir, true)
        .map_err(|e| DaemonError::Socket { path: dir.to_path_buf(), reason: e.to_string() })?;
    let meta = std::fs::symlink_metadata(&resolved)
        .map_err(|e| DaemonError::Socket { path: dir.to_path_buf(), reason: format!("inspect: {e}") })?;
    // Ours: made exactly 0700. Root's (and writable by nobody else) is left as it is.
    private_dir::tighten(&resolved, &meta)
        .map_err(|e| DaemonError::Socket { path: dir.to_path_buf(), reason: format!("chmod 0700: {e}") })?;
    Ok(())
}

/// A socket found where the agent's goes: yours only (whatever its mode, it is replaced).
const OLD_SOCKET: Rule =
    Rule { kind: Kind::Socket, owners: Owners::You, refused: 0, refused_if_root: 0, sticky_ok: false };

/// Binds the agent socket at `path` (folder 0700, socket 0600).
///
/// A socket file left by a dead agent is replaced; one that still answers
/// means another agent runs, which is an error rather than a silent takeover.
pub fn bind(path: &Path) -> Result<UnixListener, DaemonError> {
    let sock_err = |reason: String| DaemonError::Socket { path: path.to_path_buf(), reason };
    let dir = path.parent().ok_or_else(|| sock_err("has no parent folder".into()))?;
    prepare_dir(dir)?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            match OLD_SOCKET.check(&meta) {
                Ok(()) => {}
                Err(Finding::Symlink | Finding::WrongKind { .. }) => {
                    return Err(sock_err(
                        "exists and is not a socket; remove it or choose another --socket".into(),
                    ));
                }
                Err(Finding::Owner { owner, me }) => {
                    return Err(sock_err(format!(
                        "is owned by uid {owner}, not by you (uid {me}): someone else planted it; remove it or choose another --socket"
                    )));
                }
                // Its mode does not matter: it is replaced.
                Err(Finding::Mode { .. }) => {}
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(DaemonError::AlreadyRunning { path: path.to_path_buf() });
            }
            std::fs::remove_file(path).map_err(|e| sock_err(format!("cannot remove stale socket: {e}")))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(sock_err(e.to_string())),
    }
    // umask is process-wide; the daemon runs with 077 anyway (see hardening),
    // this keeps an embedding process (tests) just as safe.
    let old = rustix::process::umask(Mode::from_raw_mode(0o077));
    let bound = std::os::unix::net::UnixListener::bind(path);
    rustix::process::umask(old);
    let listener = bound.map_err(|e| sock_err(format!("cannot bind: {e}")))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| sock_err(format!("chmod 0600: {e}")))?;
    listener.set_nonblocking(true).map_err(|e| sock_err(e.to_string()))?;
    UnixListener::from_std(listener).map_err(|e| sock_err(e.to_string()))
}

/// Who is on the other end of a connection: SO_PEERCRED, and the program that
/// connected, read once when the connection is accepted.
///
/// The executable is bound to the connection, not looked up per request: a process
/// that connects, hands the connection to a child and then execs an allowed program
/// is still judged by what it was when it connected (as far as the agent saw it at
/// accept; see README "allowed_executables" for what this can and cannot promise).
#[derive(Debug, Clone)]
pub struct Peer {
    /// The peer's uid, if the kernel told.
    pub uid: Option<u32>,
    /// The peer's pid (at connect time), if the kernel told.
    pub pid: Option<i32>,
    /// `/proc/PID/exe` of the connecting process, read at accept.
    exe: Option<Arc<Path>>,
    /// A pidfd of the connecting process (SO_PEERPIDFD; else pidfd_open on its pid).
    pidfd: Option<Arc<OwnedFd>>,
}

/// Peers are the same when the kernel told the same about them (the pidfd is a handle, not a fact).
impl PartialEq for Peer {
    fn eq(&self, other: &Peer) -> bool {
        self.uid == other.uid && self.pid == other.pid && self.exe == other.exe
    }
}

impl Eq for Peer {}

impl Peer {
    /// Reads the peer credentials of a freshly accepted stream, and the executable
    /// of the process that connected.
    pub fn of(stream: &tokio::net::UnixStream) -> Peer {
        match stream.peer_cred() {
            Ok(c) => {
                let pid = c.pid().filter(|p| *p > 0);
                let (exe, pidfd) = match pid {
                    Some(p) => exe_of_connector(stream, p),
                    None => (None, None),
                };
                Peer { uid: Some(c.uid()), pid, exe: exe.map(Arc::from), pidfd: pidfd.map(Arc::new) }
            }
            Err(_) => Peer { uid: None, pid: None, exe: None, pidfd: None },
        }
    }

    /// A peer with exactly these credentials (tests, fuzzing).
    pub fn new(uid: Option<u32>, pid: Option<i32>, exe: Option<PathBuf>) -> Peer {
        Peer { uid, pid, exe: exe.map(Arc::from), pidfd: None }
    }

    /// A pidfd of the process that connected, if the kernel gave one.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_deref().map(|f| f.as_fd())
    }

    /// True when the peer runs as `uid`. Unknown credentials are refused.
    pub fn is_uid(&self, uid: u32) -> bool {
        self.uid == Some(uid)
    }

    /// The connecting process's executable, as read when the connection was accepted;
    /// `None` when it could not be told (the process was already gone, or another user's).
    pub fn exe(&self) -> Option<&Path> {
        self.exe.as_deref()
    }
}

/// SO_PEERPIDFD (Linux 6.5+; asm-generic value, as on x86_64 and aarch64):
/// a pidfd for the process that called connect(2).
const SO_PEERPIDFD: libc::c_int = 77;

/// What asking the kernel for the connector's pidfd gave.
enum PeerPidfd {
    /// A pidfd of the very process that connected.
    Fd(OwnedFd),
    /// The connecting process is gone: its pid may already be someone else's.
    Gone,
    /// This kernel has no SO_PEERPIDFD.
    Unsupported,
}

fn peer_pidfd(stream: &tokio::net::UnixStream) -> PeerPidfd {
    let mut fd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` and `len` are valid for writes of the sizes given, and the socket
    // descriptor is borrowed from a live stream for the duration of the call.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            (&mut fd as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 && fd >= 0 {
        // SAFETY: the kernel just returned this new descriptor to us; nothing else owns it.
        return PeerPidfd::Fd(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::ENOPROTOOPT) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => PeerPidfd::Unsupported,
        _ => PeerPidfd::Gone,
    }
}

/// True once the process behind `pidfd` has exited (the pidfd polls readable then).
fn has_exited(pidfd: BorrowedFd<'_>) -> bool {
    let mut p = libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, a zero timeout.
    let rc = unsafe { libc::poll(&mut p, 1, 0) };
    rc != 0
}

/// `/proc/PID/exe` of the process that connected, checked to still be that process
/// after reading it (so a pid reused in between is not mistaken for it).
///
/// The pidfd comes from SO_PEERPIDFD where the kernel offers it (the connecting
/// process itself, even if its pid was reused since); else from pidfd_open(2) on the
/// SO_PEERCRED pid, which guards the read but not a reuse before it; else (kernels
/// before 5.3) the link is read unguarded.
///
/// Also returns the pidfd, kept for the connection's life (a gateway credential bound
/// to the caller dies when it polls readable).
fn exe_of_connector(stream: &tokio::net::UnixStream, pid: i32) -> (Option<PathBuf>, Option<OwnedFd>) {
    match peer_pidfd(stream) {
        PeerPidfd::Fd(fd) => (exe_of_process(pid, Some(fd.as_fd())), Some(fd)),
        PeerPidfd::Gone => (None, None),
        PeerPidfd::Unsupported => {
            let fd = rustix::process::Pid::from_raw(pid)
                .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
            (exe_of_process(pid, fd.as_ref().map(|f| f.as_fd())), fd)
        }
    }
}

/// `/proc/PID/exe` of process `pid`, `None` if `pidfd` (a pidfd of the very process
/// meant: SO_PEERPIDFD, the bus's ProcessFD) says it has exited by the time the link
/// is read. Without one, a pidfd is opened on `pid` (kernels 5.3+), which guards
/// the read itself but not a reuse of the pid before it.
pub(crate) fn exe_of_process(pid: i32, pidfd: Option<BorrowedFd<'_>>) -> Option<PathBuf> {
    let opened = match pidfd {
        Some(_) => None,
        None => rustix::process::Pid::from_raw(pid)
            .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()),
    };
    let guard = pidfd.or(opened.as_ref().map(|f| f.as_fd()));
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    match guard {
        Some(fd) if has_exited(fd) => None,
        _ => Some(exe),
    }
}
