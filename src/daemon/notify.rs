//! systemd notifications (sd_notify): READY=1, STATUS= kept current, STOPPING=1,
//! EXTEND_TIMEOUT_USEC=; nothing at all outside systemd.

use crate::broker::Broker;

/// The one-line summary shown by `systemctl --user status looker-agent` (STATUS=),
/// e.g. `serving 2 profiles (3 credential sets); 1 token live`.
pub(crate) fn status_line(broker: &Broker) -> String {
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
pub(crate) async fn report_status(broker: Broker) {
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
pub(crate) fn notify(state: &[sd_notify::NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        if let Err(e) = sd_notify::notify(false, state) {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }
}
