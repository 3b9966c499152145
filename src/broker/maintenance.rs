//! The broker's maintenance task: refreshes tokens ahead of expiry, retries
//! after a backoff step, and revokes superseded tokens once no client can rely
//! on them. It sleeps until the earliest thing due, or until a slot's schedule
//! changes (a login finished, the config was reloaded).

use super::{logout_all, Broker};
use std::time::Duration;
use tokio::time::Instant;

/// The longest the task sleeps without re-checking (cheap; bounds any missed wake-up).
const MAX_SLEEP: Duration = Duration::from_secs(60);

impl Broker {
    /// Runs maintenance until the broker is closed. Spawn it once per broker.
    pub async fn run_maintenance(self) {
        loop {
            if self.is_closed() {
                return;
            }
            let now = Instant::now();
            let mut next = now + MAX_SLEEP;
            let mut doomed = Vec::new();
            for slot in self.slots() {
                let (due, revoke) = slot.maintain(now);
                if let Some(d) = due {
                    next = next.min(d);
                }
                if !revoke.is_empty() {
                    if let Ok(api) = slot.api() {
                        doomed.extend(revoke.into_iter().map(|t| (api.clone(), t)));
                    }
                }
            }
            if !doomed.is_empty() {
                tracing::debug!(tokens = doomed.len(), "revoking superseded tokens");
                tokio::spawn(logout_all(self.inner.store.clone(), doomed));
            }
            let wake = self.inner.shared.wake.notified();
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = wake => {}
            }
        }
    }
}
