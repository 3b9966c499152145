//! Ending tokens: a client's invalidation, `lookerctl revoke`, and shutdown
//! (close, revoke everything, wait for logins in flight and background work).

use super::logout_all;
use super::slot::CredSlot;
use super::{Broker, BrokerError, LiveToken, RevokeSummary};
use crate::looker::LookerApi;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

impl Broker {
    /// A client saw `access_token` rejected: stop handing it out (the next request
    /// logs in anew) and revoke it in the background. Unknown tokens are ignored.
    pub fn invalidate(&self, profile: Option<&str>, access_token: &str) -> Result<(), BrokerError> {
        let snap = self.snapshot();
        let (_, p) = self.resolve(&snap, profile)?;
        for slot in &p.creds {
            if let Some(t) = slot.invalidate(access_token) {
                tracing::info!(profile = %slot.profile, credential = %slot.name, "token invalidated by a client");
                if let Ok(api) = slot.api() {
                    self.revoke_in_background(self.now(), vec![(api, t)]);
                }
                break;
            }
        }
        Ok(())
    }

    fn select(
        &self,
        profile: Option<&str>,
        credential: Option<&str>,
    ) -> Result<Vec<Arc<CredSlot>>, BrokerError> {
        let snap = self.snapshot();
        let profile = profile.filter(|p| !p.is_empty());
        let credential = credential.filter(|c| !c.is_empty());
        match profile {
            None if credential.is_some() => {
                Err(BrokerError::BadRequest("a credential to revoke needs its profile too".into()))
            }
            None => Ok(snap.profiles.values().flat_map(|p| p.creds.iter().cloned()).collect()),
            Some(name) => {
                let p = snap.profiles.get(name).ok_or_else(|| BrokerError::UnknownProfile {
                    profile: name.to_string(),
                    known: snap.profiles.keys().cloned().collect(),
                })?;
                match credential {
                    None => Ok(p.creds.clone()),
                    Some(c) => {
                        p.creds.iter().find(|s| *s.name == *c).map(|s| vec![s.clone()]).ok_or_else(|| {
                            BrokerError::UnknownCredential {
                                profile: name.to_string(),
                                credential: c.to_string(),
                            }
                        })
                    }
                }
            }
        }
    }

    /// Revokes (DELETE /logout) the live tokens of the selection; returns how many
    /// Looker confirmed gone. The next request logs in anew.
    pub async fn revoke(&self, profile: Option<&str>, credential: Option<&str>) -> Result<u32, BrokerError> {
        let work = take_tokens(&self.select(profile, credential)?);
        Ok(logout_all(self.inner.store.clone(), self.now(), work).await.revoked)
    }

    /// True once [`Broker::close`] ran.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Relaxed)
    }

    /// Every credential slot, in profile then config order.
    pub(crate) fn slots(&self) -> Vec<Arc<CredSlot>> {
        self.snapshot().profiles.values().flat_map(|p| p.creds.iter().cloned()).collect()
    }

    /// Stops handing out tokens: every later [`Broker::token`] fails with
    /// [`BrokerError::ShuttingDown`]. Used at shutdown, before [`Broker::revoke_all`].
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Relaxed);
        // Clients waiting on a login get ShuttingDown (503) now, not an empty reply later.
        self.inner.shared.closing.send_replace(true);
        self.inner.shared.wake.notify_one();
    }

    /// Revokes every token the agent holds, concurrently, giving up after `deadline`.
    /// Logins still in flight are waited for (within the deadline) and their tokens
    /// revoked too, so nothing obtained before shutdown outlives the agent.
    pub async fn revoke_all(&self, deadline: Duration) -> RevokeSummary {
        let until = tokio::time::Instant::now() + deadline;
        let slots = self.slots();
        let mut ended = self.inner.shared.logins.subscribe();
        let mut total = RevokeSummary::default();
        loop {
            // A login ending from here on wakes the wait below; one that ended
            // before left its token in its slot, taken now.
            ended.mark_unchanged();
            let now = self.now();
            let mut work = take_tokens(&slots);
            work.extend(self.inner.variants.take_all());
            let n = work.iter().filter(|(_, t)| t.may_be_live(now)).count() as u32;
            match tokio::time::timeout_at(until, logout_all(self.inner.store.clone(), now, work)).await {
                Ok(s) => {
                    total.revoked += s.revoked;
                    total.failed += s.failed;
                }
                Err(_) => {
                    total.failed += n;
                    return total;
                }
            }
            if !self.has_logins_in_flight() || tokio::time::Instant::now() >= until {
                return total;
            }
            // Woken the moment a login ends (its token is then in its slot), not on a timer.
            match tokio::time::timeout_at(until, ended.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return total,
            }
        }
    }

    /// Waits for the broker's background work (revocations of superseded and
    /// removed tokens, journal clean-up, logins, maintenance) to end, at most
    /// `deadline`, then cuts whatever still runs; returns how many tasks were cut.
    /// Call it after [`Broker::close`] (maintenance only ends then). A revocation
    /// cut short keeps its journal entry, so the next start revokes that token.
    pub async fn finish_tasks(&self, deadline: Duration) -> usize {
        self.inner.shared.tasks.finish(tokio::time::Instant::now() + deadline).await
    }

    /// Starts [`Broker::run_maintenance`] as one of the broker's background tasks.
    pub fn spawn_maintenance(&self) {
        self.inner.shared.tasks.spawn(self.clone().run_maintenance());
    }

    /// Starts [`Broker::revoke_orphans`] as one of the broker's background tasks.
    pub fn spawn_revoke_orphans(&self, entries: Vec<crate::store::JournalEntry>) {
        let broker = self.clone();
        self.inner.shared.tasks.spawn(async move {
            broker.revoke_orphans(entries).await;
        });
    }

    /// True while some login runs (at shutdown: its token is still to come).
    pub fn has_logins_in_flight(&self) -> bool {
        // The counter covers every login: shared tokens' and the gateway's variants'.
        *self.inner.shared.logins.borrow() > 0
    }

    /// The longest a login of any profile may take (its request timeout plus slack).
    pub fn longest_login_wait(&self) -> Duration {
        self.slots().iter().map(|s| s.wait_timeout).max().unwrap_or(Duration::ZERO)
    }
}

/// Takes every token the given slots hold, each with the API that can revoke it.
pub(super) fn take_tokens<'a>(
    slots: impl IntoIterator<Item = &'a Arc<CredSlot>>,
) -> Vec<(Arc<dyn LookerApi>, Arc<LiveToken>)> {
    let mut work = Vec::new();
    for slot in slots {
        if let Ok(api) = slot.api() {
            work.extend(slot.take_tokens().into_iter().map(|t| (api.clone(), t)));
        }
    }
    work
}
