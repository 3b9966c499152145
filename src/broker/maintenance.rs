//! The broker's maintenance task: refreshes tokens ahead of expiry, retries
//! after a backoff step, and revokes superseded tokens once no client can rely
//! on them. It sleeps until the earliest thing due, or until a slot's schedule
//! changes (a login finished, the config was reloaded).
//!
//! Decisions read the broker's suspend-aware [clock](super::clock); the sleeps are
//! tokio timers, which stop while the machine is suspended. So the task never
//! sleeps longer than [`MAX_SLEEP`]: after a resume it re-checks within that.

use super::Broker;
use std::time::Duration;

/// The longest the task sleeps without re-checking. Bounds how late it notices a
/// resume from suspend (tokio's timers do not count the suspended time) and any
/// missed wake-up; a wake with nothing due costs a few lock round trips.
pub const MAX_SLEEP: Duration = Duration::from_secs(15);

/// A gap between the broker's clock and tokio's this large means the machine slept.
const SUSPEND_NOTICE: Duration = Duration::from_secs(2);

impl Broker {
    /// Runs maintenance until the broker is closed. Spawn it once per broker
    /// ([`Broker::spawn_maintenance`] makes it one of the broker's tasks).
    pub async fn run_maintenance(self) {
        let mut last: Option<(super::Stamp, tokio::time::Instant)> = None;
        loop {
            if self.is_closed() {
                return;
            }
            let now = self.now();
            let tokio_now = tokio::time::Instant::now();
            if let Some((stamp, at)) = last {
                let slept = now.saturating_duration_since(stamp);
                let timer = tokio_now.saturating_duration_since(at);
                if slept.saturating_sub(timer) >= SUSPEND_NOTICE {
                    tracing::info!(
                        suspended_secs = slept.saturating_sub(timer).as_secs(),
                        "the machine was suspended; re-checking every token"
                    );
                }
            }
            last = Some((now, tokio_now));
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
                self.revoke_in_background(now, doomed);
            }
            let wake = self.inner.shared.wake.notified();
            tokio::select! {
                _ = tokio::time::sleep(next.saturating_duration_since(now)) => {}
                _ = wake => {}
            }
        }
    }
}
