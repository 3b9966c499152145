//! Crash-safe revocation: tokens an earlier run journaled and never retired
//! (it was killed) are revoked at the next start.

use super::{Broker, RevokeSummary};
use crate::config::Profile;
use crate::looker::LookerApi;
use crate::store::JournalEntry;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long listing the journal may take at start before the agent serves anyway.
const LIST_TIMEOUT: Duration = Duration::from_secs(3);

impl Broker {
    /// Lists journal entries left by earlier runs. Call it before the broker
    /// logs in anything, so none of this run's own tokens is among them.
    pub async fn orphaned_tokens(&self) -> Vec<JournalEntry> {
        match tokio::time::timeout(LIST_TIMEOUT, self.inner.store.journal_list()).await {
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

    /// Revokes the tokens in `entries` that may still be live and clears their
    /// entries; expired ones are only cleared. Entries whose logout failed stay
    /// for the next start.
    pub async fn revoke_orphans(self, entries: Vec<JournalEntry>) -> RevokeSummary {
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
