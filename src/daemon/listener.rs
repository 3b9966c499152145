//! The agent socket: a private folder, a 0600 socket bound under umask 077,
//! and the accept loop that caps connections and learns each peer's uid.

use super::DaemonError;
use rustix::fs::Mode;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;
use tokio::net::UnixListener;

/// Creates (or checks) the socket's folder: a real directory, ours, mode 0700.
///
/// `mkdir` with mode 0700 is atomic, so there is no window where the folder
/// exists with looser permissions; an existing folder is checked (not a symlink,
/// owned by us) and its mode set again explicitly.
pub fn prepare_dir(dir: &Path) -> Result<(), DaemonError> {
    let err = |what: &str, e: io::Error| DaemonError::Socket {
        path: dir.to_path_buf(),
        reason: format!("{what}: {e}"),
    };
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() && !parent.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| err("create parent", e))?;
        }
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err("create", e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| err("inspect", e))?;
    if !meta.file_type().is_dir() {
        return Err(DaemonError::Socket {
            path: dir.to_path_buf(),
            reason: "exists and is not a directory (a symlink is refused too); remove it".into(),
        });
    }
    let me = rustix::process::getuid().as_raw();
    if meta.uid() != me {
        return Err(DaemonError::Socket {
            path: dir.to_path_buf(),
            reason: format!(
                "is owned by uid {}, not by you (uid {me}); remove it or choose another --socket",
                meta.uid()
            ),
        });
    }
    if meta.mode() & 0o777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| err("chmod 0700", e))?;
    }
    Ok(())
}

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
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(sock_err(
                    "exists and is not a socket; remove it or choose another --socket".into(),
                ));
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

/// Who is on the other end of a connection (from SO_PEERCRED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The peer's uid, if the kernel told.
    pub uid: Option<u32>,
    /// The peer's pid, if the kernel told.
    pub pid: Option<i32>,
}

impl Peer {
    /// Reads the peer credentials of a connected stream.
    pub fn of(stream: &tokio::net::UnixStream) -> Peer {
        match stream.peer_cred() {
            Ok(c) => Peer { uid: Some(c.uid()), pid: c.pid() },
            Err(_) => Peer { uid: None, pid: None },
        }
    }

    /// True when the peer runs as `uid`. Unknown credentials are refused.
    pub fn is_uid(&self, uid: u32) -> bool {
        self.uid == Some(uid)
    }

    /// The peer's executable, for logs (`/proc/PID/exe`).
    pub fn exe(&self) -> Option<std::path::PathBuf> {
        self.pid.and_then(|p| std::fs::read_link(format!("/proc/{p}/exe")).ok())
    }
}
