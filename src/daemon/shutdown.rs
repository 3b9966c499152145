//! Signals and systemd notifications.

use super::handler::ReloadFn;
use crate::broker::Broker;
use tokio::signal::unix::{signal, SignalKind};

/// Completes on the first SIGTERM or SIGINT.
pub async fn terminate_signal() {
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
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

/// Reloads the config on every SIGHUP, telling systemd around it.
pub async fn reload_on_sighup(broker: Broker, reload: ReloadFn) {
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload with `lookerctl` edits or a restart");
        return;
    };
    while hup.recv().await.is_some() {
        notify(&[sd_notify::NotifyState::Reloading]);
        let _ = reload(&broker);
        notify(&[sd_notify::NotifyState::Ready]);
    }
}

/// Sends a notification to systemd when NOTIFY_SOCKET is set; otherwise does nothing.
pub fn notify(state: &[sd_notify::NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        if let Err(e) = sd_notify::notify(false, state) {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }
}
