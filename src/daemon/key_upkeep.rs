//! Key upkeep: each API key's age, and `rotate_after`.
//!
//! After a credential set's first login, the agent asks Looker once when its API key
//! was created (`GET /api/4.0/user`, then `GET /api/4.0/users/{id}/credentials_api3`,
//! with the set's own token: no extra login), so `lookerctl status` shows the key's
//! age. A set with `rotate_after` whose key is that old is rotated by the agent
//! itself, with the same [`Rotator`] `lookerctl credential rotate` uses (crash-safe,
//! recorded, never two orphaned keys), then the config is reloaded so new logins use
//! the new key. A failed rotation is shown in status and tried again later: after an
//! hour, doubling up to a day; a day when Looker refuses outright (self-service off).
//! A `lookerctl credential rotate` of the same key running at that moment is no
//! failure: the upkeep looks again soon after ([`BUSY_RETRY`]), and never rotates a
//! key the config no longer names ([`Rotator::rotate_key`]).
//!
//! It runs on events, not polling: a set's login (its first token) is when the age
//! can be learned, and a slow tick notices keys that have aged since.

use crate::broker::slot::CredSlot;
use crate::broker::{Broker, BrokerEvent};
use crate::config::CredentialKind;
use crate::daemon::service::ReloadFn;
use crate::looker::LookerError;
use crate::rotation::{RotateError, Rotator};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast::error::RecvError;

/// How often keys are looked at without an event (ages grow by themselves).
pub(crate) const TICK: Duration = Duration::from_secs(600);

/// The first wait after a failed automatic rotation; it doubles up to [`RETRY_CAP`].
const FIRST_RETRY: Duration = Duration::from_secs(3600);

/// The longest wait between automatic rotation attempts, and the wait after Looker
/// refused (403: nothing changes until an admin does something).
const RETRY_CAP: Duration = Duration::from_secs(86_400);

/// How soon the upkeep looks again after finding another rotation of the same key
/// running (`lookerctl credential rotate`, which takes seconds): not a failure, only a
/// reason to wait until it has ended and the config has been reloaded.
pub(crate) const BUSY_RETRY: Duration = Duration::from_secs(15);

/// Where the upkeep works: the config it edits and the rotation records' folder.
pub(crate) struct KeyUpkeep {
    /// The broker whose slots it looks after.
    pub(crate) broker: Broker,
    /// The config file a rotation edits.
    pub(crate) config_path: PathBuf,
    /// `$XDG_STATE_HOME/looker-agent`, where rotation records live.
    pub(crate) state_dir: PathBuf,
    /// Re-reads the config after a rotation changed it.
    pub(crate) reload: ReloadFn,
}

impl KeyUpkeep {
    /// Runs until the broker's event channel closes (the task is aborted at shutdown).
    pub(crate) async fn run(self) {
        let mut events = self.broker.subscribe();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Set when a pass met another rotation running: one more pass soon after.
        let mut again: Option<tokio::time::Instant> = None;
        loop {
            let soon = async {
                match again {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                e = events.recv() => match e {
                    Ok(BrokerEvent::TokenRefreshed { .. }) | Err(RecvError::Lagged(_)) => {}
                    Ok(_) => continue,
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => {}
                () = soon => {}
            }
            again = self.pass().await.then(|| tokio::time::Instant::now() + BUSY_RETRY);
        }
    }

    /// Looks at every API key kept in the store once; true when a rotation was put
    /// off because another one of the same key was running.
    async fn pass(&self) -> bool {
        let mut deferred = false;
        for slot in self.broker.slots() {
            if slot.kind() != CredentialKind::ApiKey || slot.source().is_some() {
                continue;
            }
            if !slot.key_facts().checked {
                learn_age(&slot).await;
            }
            if due(&slot, SystemTime::now()) {
                deferred |= self.rotate(&slot).await == Outcome::Deferred;
            }
        }
        deferred
    }

    async fn rotate(&self, slot: &Arc<CredSlot>) -> Outcome {
        let Ok(api) = slot.api() else { return Outcome::Done };
        let (profile, name) = (slot.profile.to_string(), slot.name.to_string());
        tracing::info!(profile = %profile, credential = %name, "the API key is older than rotate_after: rotating it");
        let rotator = Rotator {
            config_path: &self.config_path,
            state_dir: &self.state_dir,
            store: self.broker.store(),
            api: api.as_ref(),
        };
        match rotator.rotate_key(&profile, Some(&name), Some(&slot.client_id)).await {
            Ok(done) => {
                for w in &done.warnings {
                    tracing::warn!(profile = %profile, credential = %name, "{w}");
                }
                tracing::info!(profile = %profile, credential = %name, old = %done.old_client_id,
                    new = %done.new_client_id, "rotated the API key; the old key is deleted at Looker");
                if let Err(e) = (self.reload)(&self.broker) {
                    tracing::warn!(error = %e, "the rotated config could not be reloaded; the file watcher retries");
                }
                // The new slot's key was created just now.
                if let Some(new) = self.broker.slot(&profile, &name) {
                    new.update_key_facts(|k| {
                        k.created_at = Some(SystemTime::now());
                        k.checked = true;
                    });
                }
            }
            // `lookerctl credential rotate` holds the key right now: its end (a new
            // key, reloaded) or its failure decides what the next pass does.
            Err(RotateError::Busy { .. }) => {
                tracing::info!(profile = %profile, credential = %name, retry_in_secs = BUSY_RETRY.as_secs(),
                    "another rotation of this key is running; looking again after it");
                return Outcome::Deferred;
            }
            // That other run has finished: the reload brings the new key, not due.
            Err(e @ RotateError::Superseded { .. }) => {
                tracing::info!(profile = %profile, credential = %name, "{e}");
            }
            Err(e) => {
                let now = SystemTime::now();
                slot.update_key_facts(|k| {
                    k.failures = k.failures.saturating_add(1);
                    let wait = retry_after(&e, k.failures);
                    k.rotation_error = Some(e.to_string());
                    k.next_attempt = Some(now + wait);
                    tracing::warn!(profile = %profile, credential = %name, error = %e,
                        retry_in_secs = wait.as_secs(), "automatic key rotation failed; the current key keeps working");
                });
            }
        }
        Outcome::Done
    }
}

/// What one automatic rotation attempt leaves for the upkeep to do.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Rotated, failed (recorded in the slot's facts), or nothing to do.
    Done,
    /// Another rotation held the key: look again in [`BUSY_RETRY`].
    Deferred,
}

/// Whether `slot`'s key is due for rotation at `now`.
fn due(slot: &CredSlot, now: SystemTime) -> bool {
    let k = slot.key_facts();
    match (k.rotate_after, k.created_at) {
        (Some(after), Some(created)) => now >= created + after && k.next_attempt.is_none_or(|n| now >= n),
        _ => false,
    }
}

/// How long to wait after the `failures`th failed automatic rotation in a row.
fn retry_after(e: &RotateError, failures: u32) -> Duration {
    if matches!(e, RotateError::Refused { .. }) {
        return RETRY_CAP;
    }
    FIRST_RETRY.saturating_mul(1 << failures.saturating_sub(1).min(5)).min(RETRY_CAP)
}

/// Asks Looker when `slot`'s key was created, with the set's current token (none
/// yet: nothing to do until its first login).
async fn learn_age(slot: &CredSlot) {
    let (Some(token), Ok(api)) = (slot.peek_token(), slot.api()) else { return };
    let found = async {
        let user = api.user(&token.token).await?;
        api.api3_keys(&token.token, &user.id).await
    }
    .await;
    let (created, unknown) = match found {
        Ok(keys) => match keys.iter().find(|k| k.client_id == slot.client_id) {
            Some(k) => match k.created() {
                Some(t) => (Some(t), None),
                None => (None, Some("Looker gave no creation time for the key".to_string())),
            },
            None => (None, Some("Looker does not list this key among its user's API keys".to_string())),
        },
        Err(LookerError::Rejected { status, .. }) => (
            None,
            Some(format!(
                "Looker refused to list the user's API keys (HTTP {status}): self-service API keys are off \
                 and the user is not an admin"
            )),
        ),
        // Looker down or the token just expired: try again at the next login.
        Err(e) => {
            tracing::debug!(profile = %slot.profile, credential = %slot.name, error = %e, "API key age not known yet");
            return;
        }
    };
    slot.update_key_facts(|k| {
        k.checked = true;
        k.created_at = created;
        k.unknown_because = unknown;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_wait_a_day_other_failures_back_off() {
        let refused =
            RotateError::Refused { action: "create an API key for", user_id: "1".into(), status: 403 };
        assert_eq!(retry_after(&refused, 1), RETRY_CAP);
        let other = RotateError::Conflict("x".into());
        assert_eq!(retry_after(&other, 1), Duration::from_secs(3600));
        assert_eq!(retry_after(&other, 2), Duration::from_secs(7200));
        assert_eq!(retry_after(&other, 30), RETRY_CAP);
    }
}
