//! The token broker: one cached token per credential set, shared by every client.
//!
//! - a request is served from cache when the token has at least `min_ttl` left;
//!   otherwise exactly one login runs however many clients wait ([`slot`]);
//! - credential sets are tried in config order; a rejected one is skipped;
//! - every token obtained is remembered until revoked or expired, so shutdown
//!   can revoke them all ([`Broker::revoke_all`]);
//! - work in the background (logins, revocations, maintenance) is owned by the
//!   broker, so shutdown waits for it ([`Broker::finish_tasks`]).
//!
//! A cache hit takes two short locks and does no file, keyring or network I/O.

pub mod clock;
pub mod error;
pub mod maintenance;
pub mod recovery;
mod revocation;
pub mod slot;
mod tasks;
pub mod token;
pub mod upstream;
mod variants;

pub use clock::{Clock, SharedClock, Stamp, SystemClock, TestClock};
pub use error::BrokerError;
use revocation::take_tokens;
pub use token::{IssuedToken, LiveToken};
pub use upstream::{RealUpstream, UpstreamFactory};
pub use variants::Variant;

use crate::config::{CaFile, Config, Profile};
use crate::looker::{LookerApi, LookerError};
use crate::protocol::{ProfileStatus, StatusReport};
use crate::store::SharedStore;
use slot::{CredSlot, Shared};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::broadcast;

/// Something the broker tells listeners (the D-Bus signals). Never carries a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerEvent {
    /// A login produced a new token.
    TokenRefreshed {
        /// Profile name.
        profile: String,
        /// Credential set name.
        credential: String,
        /// Unix time the new token expires.
        expires_at_unix: i64,
    },
    /// A login failed.
    CredentialFailed {
        /// Profile name.
        profile: String,
        /// Credential set name.
        credential: String,
        /// What went wrong, in plain words.
        reason: String,
    },
}

/// Tunables; the defaults are what the daemon uses.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// The largest `min_ttl` accepted at all.
    pub max_min_ttl: Duration,
    /// Added to a profile's request timeout for how long a client waits on a login.
    pub wait_slack: Duration,
    /// How long a rejected credential set is left alone before it is tried again.
    pub rejected_retry: Duration,
    /// First backoff step after Looker failed.
    pub backoff_base: Duration,
    /// Longest backoff step.
    pub backoff_cap: Duration,
    /// A token is never refreshed sooner than this after it was obtained
    /// (unless it expires first), so short-lived tokens do not loop.
    pub min_refresh_age: Duration,
    /// Logins of one credential set are spaced at least this far apart.
    pub min_login_interval: Duration,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        BrokerSettings {
            max_min_ttl: Duration::from_secs(24 * 3600),
            wait_slack: Duration::from_secs(2),
            rejected_retry: Duration::from_secs(30 * 60),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
            min_refresh_age: Duration::from_secs(10),
            min_login_interval: Duration::from_secs(1),
        }
    }
}

struct ProfileSlots {
    settings: Arc<Profile>,
    base_url: Arc<str>,
    creds: Vec<Arc<CredSlot>>,
}

struct Snapshot {
    config: Config,
    profiles: BTreeMap<String, ProfileSlots>,
}

struct Inner {
    snapshot: RwLock<Arc<Snapshot>>,
    store: SharedStore,
    store_description: String,
    upstream: Arc<dyn UpstreamFactory>,
    shared: Arc<Shared>,
    started: Stamp,
    closed: AtomicBool,
    /// The gateway's sudo and dev-workspace tokens.
    variants: variants::Variants,
}

/// The token broker. Cheap to clone; all clones share one cache.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

/// What [`Broker::revoke_all`] achieved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RevokeSummary {
    /// Tokens Looker confirmed gone.
    pub revoked: u32,
    /// Tokens whose logout failed or did not finish in time.
    pub failed: u32,
}

impl Broker {
    /// A broker over `config`, reading secrets from `store`, on the [`SystemClock`].
    pub fn new(
        config: Config,
        store: SharedStore,
        store_description: String,
        upstream: Arc<dyn UpstreamFactory>,
        settings: BrokerSettings,
    ) -> Broker {
        Broker::with_clock(config, store, store_description, upstream, settings, Arc::new(SystemClock::new()))
    }

    /// [`Broker::new`] on another clock (tests inject a [`TestClock`] to simulate suspend).
    pub fn with_clock(
        config: Config,
        store: SharedStore,
        store_description: String,
        upstream: Arc<dyn UpstreamFactory>,
        settings: BrokerSettings,
        clock: SharedClock,
    ) -> Broker {
        let (events, _) = broadcast::channel(256);
        let (closing, _) = tokio::sync::watch::channel(false);
        let started = clock.now();
        let inner = Inner {
            snapshot: RwLock::new(Arc::new(Snapshot {
                config: Config::default(),
                profiles: BTreeMap::new(),
            })),
            store,
            store_description,
            upstream,
            shared: Arc::new(Shared {
                events,
                settings,
                wake: tokio::sync::Notify::new(),
                clock,
                closing,
                instance: new_instance_id().into(),
                tasks: tasks::Tasks::new(),
                logins: Arc::new(tokio::sync::watch::channel(0).0),
            }),
            started,
            closed: AtomicBool::new(false),
            variants: variants::Variants::default(),
        };
        let broker = Broker { inner: Arc::new(inner) };
        let _ = broker.reload(config);
        broker
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The time now on the broker's clock: pass it to [`IssuedToken`]'s methods.
    pub fn now(&self) -> Stamp {
        self.inner.shared.clock.now()
    }

    /// The one slot of `profile`'s credential `name`.
    pub(crate) fn slot(&self, profile: &str, name: &str) -> Option<Arc<CredSlot>> {
        let snap = self.snapshot();
        snap.profiles.get(profile)?.creds.iter().find(|s| &*s.name == name).cloned()
    }

    /// The secret store the broker reads.
    pub(crate) fn store(&self) -> &SharedStore {
        &self.inner.store
    }

    /// Listens to refresh and failure events.
    pub fn subscribe(&self) -> broadcast::Receiver<BrokerEvent> {
        self.inner.shared.events.subscribe()
    }

    /// The config currently served.
    pub fn config(&self) -> Config {
        self.snapshot().config.clone()
    }

    /// Profile names, sorted.
    pub fn profiles(&self) -> Vec<String> {
        self.snapshot().profiles.keys().cloned().collect()
    }

    /// How the secret store was chosen (for status).
    pub fn store_description(&self) -> &str {
        &self.inner.store_description
    }

    /// The API client for a profile after a reload. Unchanged connection settings and
    /// CA certificates keep the client their slots had (`old`'s); a renewed CA file,
    /// read again at this load, gives a new one.
    fn reload_api(&self, p: &Profile, old: Option<&ProfileSlots>) -> Result<Arc<dyn LookerApi>, LookerError> {
        match old.and_then(|o| Some((o, o.creds.first()?))) {
            Some((o, slot)) if o.settings.ca_file == p.ca_file => slot.api(),
            _ => self.inner.upstream.api_for(p),
        }
    }

    /// Swaps in a new config. Slots whose identity is unchanged keep their tokens;
    /// tokens of removed or changed credential sets are revoked in the background.
    /// Returns how many tokens are being revoked.
    pub fn reload(&self, mut config: Config) -> usize {
        let old = self.snapshot();
        let mut profiles = BTreeMap::new();
        let mut kept: Vec<Arc<CredSlot>> = Vec::new();
        for (pname, p) in config.profiles.iter_mut() {
            let old_p = old.profiles.get(pname).filter(|o| same_connection(&o.settings, p));
            // A CA file broken since the last load: the certificates read then stay, for
            // logins and gateway calls alike (the gateway's calls use these settings).
            if let (Some(ca), Some(earlier)) =
                (&mut p.ca_file, old_p.and_then(|o| o.settings.ca_file.as_ref()))
            {
                if let Some(why) = ca.keep_earlier_if_unusable(earlier) {
                    tracing::warn!(profile = %pname, error = %why,
                        "ca_file cannot be used now; keeping the certificate authorities read before (fix the file, then reload)");
                }
            }
            let p = &*p;
            let api = self.reload_api(p, old_p);
            if let Err(e) = &api {
                tracing::warn!(profile = %pname, error = %e, "profile cannot reach Looker as configured");
            }
            let base_url: Arc<str> = p.base_url.as_str().into();
            let wait = p.timeout() + self.inner.shared.settings.wait_slack;
            let creds = p
                .credentials
                .iter()
                .map(|c| {
                    let reuse = old_p.and_then(|o| {
                        o.creds.iter().find(|s| {
                            *s.name == *c.name
                                && s.client_id == c.client_id
                                && s.source() == c.secret_source().as_ref()
                                && s.kind() == c.kind
                        })
                    });
                    match reuse {
                        Some(s) => {
                            s.set_api(api.clone());
                            // A reload is a config change: a rejected secret may have been fixed.
                            s.clear_rejection();
                            s.set_rotate_after(c.rotate_after);
                            kept.push(s.clone());
                            s.clone()
                        }
                        None => Arc::new(
                            CredSlot::new(
                                pname,
                                &c.name,
                                &c.client_id,
                                &p.base_url,
                                wait,
                                p.always_fresh,
                                p.refresh_window(),
                                api.clone(),
                                self.inner.store.clone(),
                                self.inner.shared.clone(),
                            )
                            .with_source(c.secret_source())
                            .with_kind(c.kind)
                            .with_rotate_after(c.rotate_after),
                        ),
                    }
                })
                .collect();
            profiles.insert(pname.clone(), ProfileSlots { settings: Arc::new(p.clone()), base_url, creds });
        }
        let new = Arc::new(Snapshot { config, profiles });
        *self.inner.snapshot.write().unwrap_or_else(|p| p.into_inner()) = new;

        // Revoke what no longer exists.
        let now = self.now();
        let mut doomed = take_tokens(
            old.profiles
                .values()
                .flat_map(|p| p.creds.iter())
                .filter(|s| !kept.iter().any(|k| Arc::ptr_eq(k, s))),
        );
        // With them, the sudo and dev tokens got from those sets. (A session whose dev
        // token goes here logs in again on its next call, with the set that replaced it.)
        doomed.extend(self.inner.variants.take_gone(&kept));
        let n = doomed.iter().filter(|(_, t)| t.may_be_live(now)).count();
        self.inner.shared.wake.notify_one();
        if n > 0 {
            tracing::info!(tokens = n, "revoking tokens of removed or changed credential sets");
            self.revoke_in_background(now, doomed);
        }
        n
    }

    /// Retires `work` as a background task of the broker (awaited at shutdown).
    fn revoke_in_background(&self, now: Stamp, work: Vec<(Arc<dyn LookerApi>, Arc<LiveToken>)>) {
        let store = self.inner.store.clone();
        self.inner.shared.tasks.spawn(async move {
            logout_all(store, now, work).await;
        });
    }

    fn resolve<'a>(
        &self,
        snap: &'a Snapshot,
        profile: Option<&str>,
    ) -> Result<(&'a str, &'a ProfileSlots), BrokerError> {
        let known = || snap.profiles.keys().cloned().collect::<Vec<_>>();
        let name = match snap.config.resolve_profile(profile) {
            Some(n) => n,
            None => return Err(BrokerError::NoDefaultProfile { known: known() }),
        };
        match snap.profiles.get_key_value(name) {
            Some((k, p)) => Ok((k.as_str(), p)),
            None => Err(BrokerError::UnknownProfile { profile: name.to_string(), known: known() }),
        }
    }

    /// The profile `profile` names (None or "" = the default): its name and settings,
    /// without copying them (the gateway looks it up per call).
    pub fn profile(&self, profile: Option<&str>) -> Result<(Arc<str>, Arc<Profile>), BrokerError> {
        let snap = self.snapshot();
        let (name, p) = self.resolve(&snap, profile)?;
        let name: Arc<str> = p.creds.first().map(|c| c.profile.clone()).unwrap_or_else(|| name.into());
        Ok((name, p.settings.clone()))
    }

    /// [`Broker::token`] with the profile's `allowed_executables` applied to `exe`
    /// when `exe` is given; without one (a gateway session, whose credential was
    /// checked when it was minted) the list is not consulted.
    pub async fn token_checked(
        &self,
        profile: Option<&str>,
        credential: Option<&str>,
        min_ttl: Duration,
        exe: Option<Option<&std::path::Path>>,
    ) -> Result<IssuedToken, BrokerError> {
        match exe {
            Some(exe) => self.token_for(profile, credential, min_ttl, exe).await,
            None => self.token(profile, credential, min_ttl).await,
        }
    }

    /// A token for `profile` (None or "" = the default) with at least `min_ttl`
    /// left, from `credential` (None or "" = the first healthy set).
    pub async fn token(
        &self,
        profile: Option<&str>,
        credential: Option<&str>,
        min_ttl: Duration,
    ) -> Result<IssuedToken, BrokerError> {
        self.check_token_request(min_ttl)?;
        let snap = self.snapshot();
        let resolved = self.resolve(&snap, profile)?;
        self.token_in(resolved, credential, min_ttl).await
    }

    /// [`Broker::token`] for a caller running `exe`: when the profile has an
    /// `allowed_executables` list, the caller's program must be on it. The profile
    /// is resolved once for both.
    pub async fn token_for(
        &self,
        profile: Option<&str>,
        credential: Option<&str>,
        min_ttl: Duration,
        exe: Option<&std::path::Path>,
    ) -> Result<IssuedToken, BrokerError> {
        self.check_token_request(min_ttl)?;
        let snap = self.snapshot();
        let (pname, p) = self.resolve(&snap, profile)?;
        if !p.settings.allows_executable(exe) {
            let who = exe.map(|e| e.display().to_string()).unwrap_or_else(|| "an unknown program".into());
            return Err(BrokerError::Forbidden(format!(
                "{who} may not receive tokens of profile {pname:?}: it is not in the profile's allowed_executables"
            )));
        }
        self.token_in((pname, p), credential, min_ttl).await
    }

    /// What every token request must pass before a profile is even looked at.
    fn check_token_request(&self, min_ttl: Duration) -> Result<(), BrokerError> {
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(BrokerError::ShuttingDown);
        }
        if min_ttl > self.inner.shared.settings.max_min_ttl {
            return Err(BrokerError::BadRequest(format!(
                "min_ttl {}s is longer than any Looker token lives; ask for less",
                min_ttl.as_secs()
            )));
        }
        Ok(())
    }

    /// The token lookup itself, on a profile already resolved.
    async fn token_in(
        &self,
        (pname, p): (&str, &ProfileSlots),
        credential: Option<&str>,
        min_ttl: Duration,
    ) -> Result<IssuedToken, BrokerError> {
        let issue = |slot: &CredSlot, token, issued| IssuedToken {
            token,
            profile: slot.profile.clone(),
            credential: slot.name.clone(),
            base_url: p.base_url.clone(),
            issued,
        };
        if let Some(c) = credential.filter(|c| !c.is_empty()) {
            let slot = p.creds.iter().find(|s| *s.name == *c).ok_or_else(|| {
                BrokerError::UnknownCredential { profile: pname.to_string(), credential: c.to_string() }
            })?;
            return slot.get(min_ttl).await.map(|t| issue(slot, t, self.now()));
        }
        if p.creds.is_empty() {
            return Err(BrokerError::UnknownCredential {
                profile: pname.to_string(),
                credential: String::new(),
            });
        }
        // Failover: the first set not known to be rejected; a set rejected now
        // passes the turn to the next one. Other failures (Looker down) are not
        // the credential's fault and end the search.
        // Hot path: the first set in order holding a token good enough. One short
        // lock per set looked at, no allocation.
        let now = self.now();
        for slot in &p.creds {
            if let Some(t) = slot.cached(min_ttl, now) {
                // The stamp the lookup used: the answer's time left is counted from it,
                // without another clock read.
                return Ok(issue(slot, t, now));
            }
        }
        let mut first_err = None;
        let any_healthy = p.creds.iter().any(|s| !s.is_rejected(now));
        for slot in p.creds.iter().filter(|s| !any_healthy || !s.is_rejected(now)) {
            match slot.get(min_ttl).await {
                Ok(t) => return Ok(issue(slot, t, self.now())),
                Err(e @ BrokerError::Rejected { .. })
                | Err(e @ BrokerError::SignInAgain { .. })
                | Err(e @ BrokerError::Store(_)) => {
                    first_err.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(first_err.unwrap_or(BrokerError::UnknownCredential {
            profile: pname.to_string(),
            credential: String::new(),
        }))
    }

    /// Status of every profile and credential set; never a token value.
    pub fn status(&self) -> StatusReport {
        let snap = self.snapshot();
        let now = self.now();
        StatusReport {
            version: crate::VERSION.into(),
            pid: std::process::id(),
            secret_store: self.inner.store_description.clone(),
            default_profile: snap.config.resolve_profile(None).map(str::to_string),
            uptime_secs: now.saturating_duration_since(self.inner.started).as_secs(),
            profiles: snap
                .profiles
                .iter()
                .map(|(name, p)| ProfileStatus {
                    name: name.clone(),
                    base_url: p.base_url.to_string(),
                    credentials: p.creds.iter().map(|s| s.status(now)).collect(),
                })
                .collect(),
            gateway: None,
        }
    }
}

/// A fresh agent instance id: 20 random letters and digits (a valid file and bus name part).
fn new_instance_id() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 20)
}

/// True when two profiles reach Looker the same way (credential lists aside),
/// so tokens obtained under one are still good under the other.
fn same_connection(a: &Profile, b: &Profile) -> bool {
    a.base_url == b.base_url
        && a.verify_tls == b.verify_tls
        // The path: a renewed file reaches the same Looker (its certificates are compared
        // where the client is chosen, in `reload_api`).
        && a.ca_file.as_ref().map(CaFile::path) == b.ca_file.as_ref().map(CaFile::path)
        && a.timeout == b.timeout
        && a.allow_insecure_http == b.allow_insecure_http
        && a.always_fresh == b.always_fresh
        && a.refresh_window == b.refresh_window
}

/// Retires tokens: logs out, concurrently, those Looker may still accept (one
/// already gone counts as revoked), then drops their journal entries. A token
/// whose logout failed keeps its entry, so the next start tries again.
pub(crate) async fn logout_all(
    store: SharedStore,
    now: Stamp,
    work: Vec<(Arc<dyn LookerApi>, Arc<LiveToken>)>,
) -> RevokeSummary {
    let store = &store;
    let results = futures_util::future::join_all(work.iter().map(|(api, t)| async move {
        let live = t.may_be_live(now);
        let outcome = if live { api.logout(&t.token).await.map(|()| true) } else { Ok(false) };
        if outcome.is_ok() {
            if let Some(id) = &t.journal_id {
                if let Err(e) = store.journal_remove(id).await {
                    tracing::warn!(error = %e, "could not clear a token journal entry");
                }
            }
        }
        outcome
    }))
    .await;
    let mut s = RevokeSummary::default();
    for r in results {
        match r {
            Ok(true) => s.revoked += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not revoke a token");
                s.failed += 1;
            }
        }
    }
    s
}
