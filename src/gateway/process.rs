//! A gateway credential minted for a process (`lookerctl exec`) dies with it: the
//! agent holds a pidfd of the process that asked (lookerctl, which then execs the
//! command in place, keeping its pid) and retires the credential when it polls readable.

use super::sessions::Sessions;
use super::Gateway;
use crate::broker::Broker;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Watches the process behind `pidfd`; when it exits, credential `id` and its
/// sessions end (their own tokens are revoked). Must run inside a tokio runtime.
pub(super) fn retire_on_exit(sessions: Arc<Sessions>, broker: Broker, id: u64, pid: i32, pidfd: OwnedFd) {
    tokio::spawn(async move {
        // SAFETY: the AsyncFd owns `pidfd` (an OwnedFd, whose raw fd never changes) for
        // its whole life, so the descriptor stays open and the same while registered.
        let registered = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) };
        match registered {
            // A pidfd polls readable once its process has exited.
            Ok(fd) => {
                let _ = fd.readable().await;
            }
            Err(e) => {
                // Cannot watch it: end it now rather than let it outlive its process.
                tracing::warn!(pid, error = %e, "cannot watch the process of a gateway credential; ending the credential");
            }
        }
        let ended = sessions.retire(id);
        tracing::debug!(target: "looker_agent::audit", pid, sessions = ended.len(),
            "gateway credential ended with its process");
        Gateway::end(&broker, ended);
    });
}
