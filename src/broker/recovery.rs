//! Crash-safe revocation: tokens an agent journaled and never retired (it was
//! killed) are revoked at the next start.
//!
//! Several agents may share one store (another `--socket`): each entry names its
//! owner, the agent instance that obtained it, and each running agent holds its
//! owner lock ([`crate::store::OwnerLock`]) for its whole life. Only entries whose
//! owner's lock is free are orphans; entries without an owner (older versions)
//! count as orphans too.

use super::{Broker, RevokeSummary};
use crate::config::Profile;
use crate::looker::LookerApi;
use crate::store::{JournalEntry, OwnerLock};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long listing the journal may take at start before the agent serves anyway.
const LIST_TIMEOUT: Duration = Duration::from_secs(3);

impl Broker {
    /// This agent instance's id: the owner named in the journal entries it writes.
    pub fn instance(&self) -> &str {
        &self.inner.shared.instance
    }

    /// Takes this instance's owner lock in the store; keep it until the agent has
    /// exited its shutdown. Take it before the broker logs in anything. `None` (with
    /// a warning) when the store cannot lock: the agent serves anyway.
    pub async fn lock_journal(&self) -> Option<OwnerLock> {
        match tokio::time::timeout(LIST_TIMEOUT, self.inner.store.journal_lock(self.instance())).await {
            Ok(Ok(lock)) => Some(lock),
            Ok(Err(e)) => {
                tracing::warn!(error = %e,
                    "cannot take the token journal's owner lock: another agent starting on this secret store may revoke this agent's tokens");
                None
            }
            Err(_) => {
                tracing::warn!("taking the token journal's owner lock timed out: another agent starting on this secret store may revoke this agent's tokens");
                None
            }
        }
    }

    /// Lists the journal entries whose owner is gone (another agent on the same
    /// store keeps its own). Call it after [`Broker::lock_journal`].
    pub async fn orphaned_tokens(&self) -> Vec<JournalEntry> {
        match tokio::time::timeout(LIST_TIMEOUT, self.orphans()).await {
            Ok(Ok(entries)) => entries,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the token journal; tokens of a crashed run expire on their own");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!(
                    "reading the token journal timed out; tokens of a crashed run expire on their own"
                );
                Vec::new()
            }
        }
    }

    async fn orphans(&self) -> Result<Vec<JournalEntry>, crate::store::StoreError> {
        let store = &self.inner.store;
        let entries = store.journal_list().await?;
        let mut alive: BTreeMap<String, bool> = BTreeMap::new();
        let mut orphans = Vec::new();
        let mut kept = 0usize;
        for e in entries {
            let owner_alive = match e.owner.as_deref() {
                None => false,
                Some(o) if o == self.instance() => true,
                Some(o) => match alive.get(o) {
                    Some(a) => *a,
                    None => {
                        let a = match store.journal_owner_alive(o).await {
                            Ok(a) => a,
                            Err(err) => {
                                // Unsure: leave them; revoking a live agent's token breaks it,
                                // leaving a dead one's costs nothing but its natural expiry.
                                tracing::warn!(error = %err, "cannot tell whether another agent still runs; leaving its tokens alone");
                                true
                            }
                        };
                        alive.insert(o.to_string(), a);
                        a
                    }
                },
            };
            if owner_alive {
                kept += 1;
            } else {
                orphans.push(e);
            }
        }
        if kept > 0 {
            tracing::info!(tokens = kept, "leaving journaled tokens of running agents alone");
        }
        Ok(orphans)
    }

    /// Revokes the tokens in `entries` that may still be live and clears their
    /// entries; expired ones are only cleared. Entries whose logout failed stay
    /// for the next start.
    pub async fn revoke_orphans(self, entries: Vec<JournalEntry>) -> RevokeSummary {
        // Lock files of owners that are gone are of no use to anyone.
        if let Err(e) = self.inner.store.journal_sweep_owners().await {
            tracing::debug!(error = %e, "cannot clean up the owner locks of stopped agents");
        }
        if entries.is_empty() {
            return RevokeSummary::default();
        }
        let now =
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let config = self.config();
        let store = self.inner.store.clone();
        let store = &store;
        let results = futures_util::future::join_all(entries.into_iter().map(|e| {
            let api = self.api_for_base_url(&config, &e.base_url);
            async move {
                let live = e.expires_at_unix > now;
                let outcome = match (&api, live) {
                    (_, false) => Ok(false),
                    (Some(api), true) => {
                        api.logout(&e.token).await.map(|()| true).map_err(|err| err.to_string())
                    }
                    (None, true) => Err(format!("no usable client for {}", e.base_url)),
                };
                if outcome.is_ok() {
                    let _ = store.journal_remove(&e.id).await;
                }
                (e.profile, e.credential, outcome)
            }
        }))
        .await;
        let mut s = RevokeSummary::default();
        for (profile, credential, r) in results {
            match r {
                Ok(true) => s.revoked += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(%profile, %credential, error = %e, "could not revoke a token left by an earlier run");
                    s.failed += 1;
                }
            }
        }
        tracing::info!(revoked = s.revoked, failed = s.failed, "revoked tokens left by an earlier run");
        s
    }

    fn api_for_base_url(&self, config: &crate::config::Config, base_url: &str) -> Option<Arc<dyn LookerApi>> {
        let profile = config
            .profiles
            .values()
            .find(|p| p.base_url == base_url)
            .cloned()
            .unwrap_or_else(|| Profile::new(base_url));
        self.inner.upstream.api_for(&profile).ok()
    }
}
