//! Signal handlers, installed early: a SIGTERM that arrives before the agent serves
//! must still end in revocation, not in the default action (death, tokens live).

use tokio::signal::unix::{signal, SignalKind};

/// Completes on the first SIGTERM or SIGINT. The handlers are installed when this
/// is called, not when the future is first polled, so call it before the socket
/// is bound: a signal arriving in between must not kill the agent unrevoked.
pub fn terminate_signal() -> impl std::future::Future<Output = ()> {
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! {
                    _ = t.recv() => tracing::info!("SIGTERM received"),
                    _ = i.recv() => tracing::info!("SIGINT received"),
                }
            }
            _ => {
                // Without signal handlers we can still stop on Ctrl-C.
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

/// Installs the SIGHUP handler now (see [`terminate_signal`] for why early).
pub(crate) fn hangup_signal() -> Option<tokio::signal::unix::Signal> {
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with `lookerctl` edits or a restart");
            None
        }
    }
}
