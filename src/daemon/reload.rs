//! Reloading the config: from the file into the broker, on SIGHUP (with systemd
//! told RELOADING=1 … READY=1 around it); `POST /v1/reload` and the file watcher
//! call the same [`reload_from`].

use super::notify::{notify, status_line};
use super::service::ReloadFn;
use crate::broker::Broker;
use crate::config::Config;
use std::path::Path;

/// Re-reads the config file and swaps it into the broker; a broken file keeps the old config.
pub(crate) fn reload_from(path: &Path, broker: &Broker) -> Result<String, String> {
    match Config::load(path) {
        Ok(cfg) => {
            let revoking = broker.reload(cfg);
            let msg = format!(
                "config reloaded from {}; revoking {revoking} token(s) of removed credential sets",
                path.display()
            );
            tracing::info!("{msg}");
            Ok(msg)
        }
        Err(e) => {
            let msg = format!("config not reloaded, keeping the previous one: {e}");
            tracing::error!("{msg}");
            Err(msg)
        }
    }
}

/// Reloads the config on every SIGHUP, telling systemd around it.
pub(crate) async fn reload_on_sighup(broker: Broker, reload: ReloadFn, mut hup: tokio::signal::unix::Signal) {
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
