//! systemd socket activation: adopt the listening agent socket that
//! `looker-agent.socket` passes (`LISTEN_PID`, `LISTEN_FDS`, descriptors from 3 on,
//! see sd_listen_fds(3)).
//!
//! [`take_listener`] must run before any other thread starts: it clears the
//! `LISTEN_*` variables, so that no child process (and no second call) believes
//! the descriptors are meant for it.

use super::DaemonError;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

/// The listening socket systemd handed over.
#[derive(Debug)]
pub(crate) struct PassedSocket {
    /// The listener, in blocking mode as passed ([`Daemon::bind`](super::Daemon::bind) makes it non-blocking).
    pub(crate) listener: UnixListener,
    /// The socket's path in the file system, when it has one.
    pub(crate) path: Option<PathBuf>,
    /// A listening loopback TCP socket passed beside it: the gateway's TCP door
    /// (`ListenStream=127.0.0.1:PORT` in the socket unit).
    pub(crate) gateway: Option<std::net::TcpListener>,
}

/// Takes the agent socket passed by systemd, if this process was socket-activated.
///
/// Returns `Ok(None)` when nothing was passed (or the variables were meant for another
/// process: `LISTEN_PID` differs). Fails when the passed descriptor is not a listening
/// `AF_UNIX` stream socket: a unit mistake (e.g. `ListenDatagram=`) the user must fix.
/// Extra descriptors beyond the first suitable one are closed, with a warning.
pub(crate) fn take_listener() -> Result<Option<PassedSocket>, DaemonError> {
    let fds: Vec<RawFd> = match sd_notify::listen_fds() {
        Ok(fds) => fds.collect(),
        Err(e) => {
            clear_env();
            return Err(DaemonError::Other(format!(
                "systemd socket activation: {e}; check the LISTEN_FDS/LISTEN_PID the service manager passed"
            )));
        }
    };
    // sd_notify cleared LISTEN_PID and LISTEN_FDS; the names go too.
    clear_env();
    if fds.is_empty() {
        return Ok(None);
    }
    let mut chosen: Option<PassedSocket> = None;
    let mut gateway: Option<std::net::TcpListener> = None;
    let mut problems = Vec::new();
    for fd in fds {
        // SAFETY: under the sd_listen_fds(3) protocol, the descriptors from 3 to
        // 3 + LISTEN_FDS - 1 were opened for this very process (LISTEN_PID matched) and
        // nothing else in it owns them; the variables are now cleared, so each one is
        // adopted exactly once, here.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        if gateway.is_none() && check_gateway(&owned).is_ok() {
            gateway = Some(std::net::TcpListener::from(owned));
            continue;
        }
        match check(&owned) {
            Ok(()) if chosen.is_none() => {
                let listener = UnixListener::from(owned);
                let path = listener.local_addr().ok().and_then(|a| a.as_pathname().map(|p| p.to_path_buf()));
                chosen = Some(PassedSocket { listener, path, gateway: None });
            }
            Ok(()) => problems.push(format!("descriptor {fd}: a second agent socket, closed")),
            Err(why) => problems.push(format!("descriptor {fd}: {why}")),
        }
    }
    match chosen {
        Some(mut s) => {
            s.gateway = gateway;
            for p in &problems {
                tracing::warn!("systemd passed more than the agent socket: {p}");
            }
            Ok(Some(s))
        }
        None => Err(DaemonError::Other(format!(
            "systemd socket activation: no usable agent socket was passed ({}); \
             the socket unit needs a single ListenStream= with a path, e.g. ListenStream=%t/looker-agent/agent.sock",
            problems.join("; ")
        ))),
    }
}

/// Why a passed descriptor cannot serve as the agent socket, if it cannot.
fn check(fd: &OwnedFd) -> Result<(), String> {
    use rustix::net::{sockopt, AddressFamily, SocketType};
    let domain = sockopt::socket_domain(fd).map_err(|e| format!("not a socket ({e})"))?;
    if domain != AddressFamily::UNIX {
        return Err("not an AF_UNIX socket".into());
    }
    if sockopt::socket_type(fd).map_err(|e| e.to_string())? != SocketType::STREAM {
        return Err("not a stream socket (use ListenStream=)".into());
    }
    if !sockopt::socket_acceptconn(fd).map_err(|e| e.to_string())? {
        return Err("not listening (Accept=no sockets only)".into());
    }
    Ok(())
}

/// Why a passed descriptor cannot serve as the gateway's TCP door, if it cannot: it
/// must be a listening TCP socket on a loopback address.
fn check_gateway(fd: &OwnedFd) -> Result<(), String> {
    use rustix::net::{sockopt, AddressFamily, SocketType};
    let domain = sockopt::socket_domain(fd).map_err(|e| format!("not a socket ({e})"))?;
    if domain != AddressFamily::INET && domain != AddressFamily::INET6 {
        return Err("not a TCP socket".into());
    }
    if sockopt::socket_type(fd).map_err(|e| e.to_string())? != SocketType::STREAM
        || !sockopt::socket_acceptconn(fd).map_err(|e| e.to_string())?
    {
        return Err("not a listening stream socket".into());
    }
    let dup = fd.try_clone().map_err(|e| e.to_string())?;
    let addr = std::net::TcpListener::from(dup).local_addr().map_err(|e| e.to_string())?;
    if !addr.ip().is_loopback() {
        return Err(format!("{addr} is not a loopback address"));
    }
    Ok(())
}

fn clear_env() {
    // Single-threaded at this point (see the module documentation).
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_reject_what_is_not_a_listening_unix_stream() {
        let dir = tempfile::tempdir().unwrap();
        let l = UnixListener::bind(dir.path().join("s")).unwrap();
        assert!(check(&OwnedFd::from(l)).is_ok());

        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(check(&OwnedFd::from(a)).unwrap_err().contains("not listening"));

        let d = std::os::unix::net::UnixDatagram::unbound().unwrap();
        assert!(check(&OwnedFd::from(d)).unwrap_err().contains("stream"));

        let f = std::fs::File::open("/dev/null").unwrap();
        assert!(check(&OwnedFd::from(f)).unwrap_err().contains("not a socket"));

        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = OwnedFd::from(t);
        assert!(check_gateway(&fd).is_ok());
        assert!(check(&fd).unwrap_err().contains("AF_UNIX"));
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(check_gateway(&OwnedFd::from(a)).is_err());
    }
}
