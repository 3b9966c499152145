//! Signals and systemd notifications.

use super::service::ReloadFn;
use crate::broker::Broker;
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
pub fn hangup_signal() -> Option<tokio::signal::unix::Signal> {
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with `lookerctl` edits or a restart");
            None
        }
    }
}

/// Reloads the config on every SIGHUP, telling systemd around it.
pub async fn reload_on_sighup(broker: Broker, reload: ReloadFn, mut hup: tokio::signal::unix::Signal) {
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP received: reloading the config");
        // systemd 253+ wants the reload's start time along with RELOADING=1.
        match sd_notify::NotifyState::monotonic_usec_now() {
            Ok(now) => notify(&[sd_notify::NotifyState::Reloading, now]),
            Err(_) => notify(&[sd_notify::NotifyState::Reloading]),
        }
        let _ = reload(&broker);
        let line = status_line(&broker);
        notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(&line)]);
    }
}

/// The one-line summary shown by `systemctl --user status looker-agent` (STATUS=),
/// e.g. `serving 2 profiles (3 credential sets); 1 token live`.
pub fn status_line(broker: &Broker) -> String {
    let report = broker.status();
    let sets: usize = report.profiles.iter().map(|p| p.credentials.len()).sum();
    let live: u64 =
        report.profiles.iter().flat_map(|p| &p.credentials).map(|c| u64::from(c.live_tokens)).sum();
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "serving {} ({}); {} live",
        plural(report.profiles.len() as u64, "profile", "profiles"),
        plural(sets as u64, "credential set", "credential sets"),
        plural(live, "token", "tokens")
    )
}

/// Keeps systemd's STATUS= current: after every login or failure, and once a minute
/// (tokens also expire quietly). Does nothing outside systemd.
pub async fn report_status(broker: Broker) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let mut events = broker.subscribe();
    // READY=1 went out with the first line.
    let mut last = status_line(&broker);
    loop {
        tokio::select! {
            ev = events.recv() => {
                if matches!(ev, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return;
                }
            }
            _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
        }
        let line = status_line(&broker);
        if line != last {
            notify(&[sd_notify::NotifyState::Status(&line)]);
            last = line;
        }
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
