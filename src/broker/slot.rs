//! [`CredSlot`]: one credential set's token cache, single-flight login and health.
//!
//! Locking rule: the slot's `std::sync::Mutex` is only held for quick state
//! changes, never across an `.await` (no I/O under the lock).

use super::clock::{SharedClock, Stamp};
use super::error::BrokerError;
use super::tasks::{Counted, Tasks};
use super::token::LiveToken;
use super::{BrokerEvent, BrokerSettings};
use crate::config::CredentialKind;
use crate::looker::{LoginToken, LookerApi, LookerError};
use crate::oauth::grant::{GrantError, GrantKeeper};
use crate::protocol::{CredentialState, CredentialStatus};
use crate::secret_source::SecretSource;
use crate::store::{JournalEntry, SecretKey, SharedStore};
use rand::distr::{Alphanumeric, SampleString};
use rand::Rng;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};
use tokio::sync::{broadcast, watch, Notify};

/// The outcome of one login, shared by every waiter.
type Outcome = Option<Result<Arc<LiveToken>, BrokerError>>;

/// One credential set of one profile, with its cached token.
pub struct CredSlot {
    /// Profile name.
    pub profile: Arc<str>,
    /// Credential set name.
    pub name: Arc<str>,
    /// Looker client_id (not secret).
    pub client_id: String,
    /// The profile's base URL.
    pub base_url: Arc<str>,
    /// How long a waiting client may wait on a login.
    pub wait_timeout: Duration,
    /// Keep this set's token fresh even when nobody asked lately.
    pub always_fresh: bool,
    /// A set asked for within this window counts as in use and is refreshed ahead of expiry.
    pub refresh_window: Duration,
    /// The profile's API client; a reload may give a new one (a CA file read again).
    api: RwLock<Result<Arc<dyn LookerApi>, LookerError>>,
    store: SharedStore,
    /// Where the secret comes from when not from the store (run at each login).
    source: Option<SecretSource>,
    /// An API key or an OAuth grant (whose refresh token `grant` keeps).
    kind: CredentialKind,
    grant: GrantKeeper,
    shared: Arc<Shared>,
    state: Mutex<SlotState>,
}

/// What every slot of one broker shares.
pub struct Shared {
    /// Event fan-out (D-Bus signals).
    pub events: broadcast::Sender<BrokerEvent>,
    /// Tunables.
    pub settings: BrokerSettings,
    /// Wakes the maintenance task when a slot's schedule changed.
    pub wake: Notify,
    /// Every expiry decision reads this (it counts time spent suspended).
    pub clock: SharedClock,
    /// Turns true when the broker closes: clients waiting on a login get their answer.
    pub closing: watch::Sender<bool>,
    /// This agent instance: the owner of the journal entries it writes.
    pub instance: Arc<str>,
    /// The broker's background tasks (logins among them), awaited at shutdown.
    pub(crate) tasks: Tasks,
    /// How many logins run now; changes the moment one ends (shutdown waits on it).
    pub(crate) logins: Arc<watch::Sender<usize>>,
}

#[derive(Default)]
struct SlotState {
    current: Option<Arc<LiveToken>>,
    /// Superseded tokens that clients may still hold; revoked at shutdown or when expired.
    older: Vec<Arc<LiveToken>>,
    inflight: Option<watch::Receiver<Outcome>>,
    /// Usable lifetime of the last token Looker gave (for the min_ttl check).
    lifetime: Option<Duration>,
    logins: u64,
    last_login: Option<SystemTime>,
    last_error: Option<(SystemTime, String)>,
    failures: u32,
    backoff_until: Option<(Stamp, SystemTime)>,
    /// The backoff is for a failed secret source, not for Looker: clients get a
    /// secret-store error, and a config change ends it.
    backoff_for_source: bool,
    rejected: Option<Rejection>,
    last_used: Option<Stamp>,
    /// When the last login started: logins are spaced by `min_login_interval`.
    last_login_started: Option<Stamp>,
    /// What is known about the API key's age, and its rotation (daemon/key_upkeep.rs).
    key: KeyFacts,
}

/// An API key's age and automatic rotation, as the daemon's key upkeep learns and
/// runs them. Not secret.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyFacts {
    /// `rotate_after` from the config (updated in place on reload).
    pub(crate) rotate_after: Option<Duration>,
    /// When Looker says the key was created.
    pub(crate) created_at: Option<SystemTime>,
    /// Why the age is unknown, once looking it up failed.
    pub(crate) unknown_because: Option<String>,
    /// Whether this slot's key was looked up (once per slot: a rotation makes a new one).
    pub(crate) checked: bool,
    /// The last automatic rotation's failure, and when the next attempt may run.
    pub(crate) rotation_error: Option<String>,
    /// No automatic rotation before this.
    pub(crate) next_attempt: Option<SystemTime>,
    /// Automatic rotations that failed in a row (for the backoff).
    pub(crate) failures: u32,
}

#[derive(Clone)]
struct Rejection {
    at: SystemTime,
    retry_at: Stamp,
    status: u16,
    message: String,
}

impl CredSlot {
    /// A slot with no token yet.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        profile: &str,
        name: &str,
        client_id: &str,
        base_url: &str,
        wait_timeout: Duration,
        always_fresh: bool,
        refresh_window: Duration,
        api: Result<Arc<dyn LookerApi>, LookerError>,
        store: SharedStore,
        shared: Arc<Shared>,
    ) -> CredSlot {
        CredSlot {
            profile: profile.into(),
            name: name.into(),
            client_id: client_id.to_string(),
            base_url: base_url.into(),
            wait_timeout,
            always_fresh,
            refresh_window,
            api: RwLock::new(api),
            store,
            source: None,
            kind: CredentialKind::ApiKey,
            grant: GrantKeeper::new(),
            shared,
            state: Mutex::new(SlotState::default()),
        }
    }

    /// The slot with its secret printed by `source` instead of read from the store.
    pub fn with_source(mut self, source: Option<SecretSource>) -> CredSlot {
        self.source = source;
        self
    }

    /// The external source of the secret, if any.
    pub fn source(&self) -> Option<&SecretSource> {
        self.source.as_ref()
    }

    /// The slot of an OAuth grant (`kind = "oauth"`) or of an API key.
    pub fn with_kind(mut self, kind: CredentialKind) -> CredSlot {
        self.kind = kind;
        self
    }

    /// What the set logs in with.
    pub fn kind(&self) -> CredentialKind {
        self.kind
    }

    /// The current token, if live, without marking the set in use.
    pub(crate) fn peek_token(&self) -> Option<Arc<LiveToken>> {
        let now = self.shared.clock.now();
        self.lock().current.as_ref().filter(|t| t.remaining(now) > Duration::ZERO).cloned()
    }

    /// What is known about the key's age and rotation.
    pub(crate) fn key_facts(&self) -> KeyFacts {
        self.lock().key.clone()
    }

    /// Changes what is known about the key (the daemon's key upkeep).
    pub(crate) fn update_key_facts(&self, f: impl FnOnce(&mut KeyFacts)) {
        f(&mut self.lock().key);
    }

    /// Sets `rotate_after` (at creation, and in place when a reload changes it).
    pub fn with_rotate_after(self, rotate_after: Option<Duration>) -> CredSlot {
        self.set_rotate_after(rotate_after);
        self
    }

    /// Updates `rotate_after` in place.
    pub(crate) fn set_rotate_after(&self, rotate_after: Option<Duration>) {
        self.lock().key.rotate_after = rotate_after;
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        // The state stays consistent at every unlock, so a poisoned lock is safe to reuse.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The API client for this slot's profile.
    pub fn api(&self) -> Result<Arc<dyn LookerApi>, LookerError> {
        self.api.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Gives the slot the profile's API client as a reload made it; the slot's token
    /// stays (same Looker, same credential). A new client (a CA file read again) also
    /// ends the backoff: the failures it counted may have been the old client's (a
    /// certificate its CA file did not cover), and the fix deserves a try now.
    pub(crate) fn set_api(&self, api: Result<Arc<dyn LookerApi>, LookerError>) {
        let mut current = self.api.write().unwrap_or_else(|p| p.into_inner());
        let changed = match (&*current, &api) {
            (Ok(a), Ok(b)) => !Arc::ptr_eq(a, b),
            _ => true,
        };
        *current = api;
        drop(current);
        if changed {
            let mut st = self.lock();
            st.failures = 0;
            st.backoff_until = None;
            st.backoff_for_source = false;
        }
    }

    /// True when the last login was rejected and the long backoff has not passed.
    pub fn is_rejected(&self, now: Stamp) -> bool {
        self.lock().rejected.as_ref().is_some_and(|r| now < r.retry_at)
    }

    /// True while a login runs.
    pub fn has_inflight(&self) -> bool {
        self.lock().inflight.is_some()
    }

    /// Forgets a rejection, and a failed secret source's rest (after a config change
    /// the secret may be fixed).
    pub fn clear_rejection(&self) {
        let mut st = self.lock();
        st.rejected = None;
        if st.backoff_for_source {
            st.backoff_until = None;
            st.backoff_for_source = false;
        }
    }

    /// The cached token if it has at least `min_ttl` left (and marks the set in use).
    pub fn cached(&self, min_ttl: Duration, now: Stamp) -> Option<Arc<LiveToken>> {
        let mut st = self.lock();
        let t = st.current.as_ref().filter(|t| t.remaining(now) >= min_ttl)?.clone();
        st.last_used = Some(now);
        t.mark_handed_out();
        Some(t)
    }

    /// A token with at least `min_ttl` left: from cache, or from the one login
    /// that runs for every waiting client.
    pub async fn get(self: &Arc<Self>, min_ttl: Duration) -> Result<Arc<LiveToken>, BrokerError> {
        let now = self.shared.clock.now();
        let mut rx = {
            let mut st = self.lock();
            st.last_used = Some(now);
            if let Some(t) = &st.current {
                if t.remaining(now) >= min_ttl {
                    t.mark_handed_out();
                    return Ok(t.clone());
                }
            }
            if let Some(lifetime) = st.lifetime {
                if min_ttl > lifetime {
                    return Err(self.min_ttl_too_long(min_ttl, lifetime));
                }
            }
            if let Some(r) = &st.rejected {
                if now < r.retry_at {
                    return Err(self.rejected_error(r.status, &r.message));
                }
            }
            match &st.inflight {
                Some(rx) => rx.clone(),
                // No new login once shutdown began: its token could outlive the agent.
                None if *self.shared.closing.borrow() => return Err(BrokerError::ShuttingDown),
                None => {
                    if let Some((until, _)) = st.backoff_until {
                        if now < until {
                            let last =
                                st.last_error.as_ref().map(|(_, e)| e.as_str()).unwrap_or("earlier failures");
                            if st.backoff_for_source {
                                return Err(BrokerError::Store(format!(
                                    "{last} (the agent runs the secret source again in {}s, or at once \
                                     after the credential set changes)",
                                    until.saturating_duration_since(now).as_secs().max(1)
                                )));
                            }
                            return Err(BrokerError::Unavailable {
                                profile: self.profile.to_string(),
                                reason: format!(
                                    "{last}; next login attempt in {}s",
                                    until.saturating_duration_since(now).as_secs().max(1)
                                ),
                            });
                        }
                    }
                    self.start_login(&mut st)
                }
            }
        };
        let closing = self.shared.closing.subscribe();
        let outcome = match tokio::time::timeout(self.wait_timeout, wait_outcome(&mut rx, closing)).await {
            Ok(o) => o,
            Err(_) => {
                return Err(BrokerError::Unavailable {
                    profile: self.profile.to_string(),
                    reason: format!("no answer from Looker within {}s", self.wait_timeout.as_secs()),
                })
            }
        };
        let token = match outcome {
            Some(r) => r?,
            // The broker closed (or the login task died): the client gets its 503 now,
            // while the login finishes in the background and shutdown revokes its token.
            None => return Err(BrokerError::ShuttingDown),
        };
        if token.remaining(self.shared.clock.now()) >= min_ttl {
            token.mark_handed_out();
            Ok(token)
        } else {
            Err(self.min_ttl_too_long(min_ttl, token.lifetime()))
        }
    }

    /// Starts a login unless one runs; for refreshes that nobody waits on.
    pub fn refresh_in_background(self: &Arc<Self>) {
        let mut st = self.lock();
        if st.inflight.is_none() && !*self.shared.closing.borrow() {
            drop(self.start_login(&mut st));
        }
    }

    fn min_ttl_too_long(&self, min_ttl: Duration, lifetime: Duration) -> BrokerError {
        BrokerError::BadRequest(format!(
            "min_ttl {}s is longer than a token of profile {:?} can live ({}s); ask for less",
            min_ttl.as_secs(),
            self.profile,
            lifetime.as_secs()
        ))
    }

    fn rejected_error(&self, status: u16, message: &str) -> BrokerError {
        if self.kind == CredentialKind::Oauth {
            return BrokerError::SignInAgain {
                profile: self.profile.to_string(),
                credential: self.name.to_string(),
                status,
                message: message.to_string(),
            };
        }
        BrokerError::Rejected {
            profile: self.profile.to_string(),
            credential: self.name.to_string(),
            status,
            message: message.to_string(),
        }
    }

    /// Registers a login as in flight and spawns it, so a client giving up does not cancel it.
    ///
    /// Logins of one set are spaced at least `min_login_interval` apart, whatever
    /// clients do (a loop of get + invalidate cannot make the agent hammer Looker).
    fn start_login(self: &Arc<Self>, st: &mut SlotState) -> watch::Receiver<Outcome> {
        let (tx, rx) = watch::channel(None);
        st.inflight = Some(rx.clone());
        let now = self.shared.clock.now();
        let not_before = st.last_login_started.map(|t| t + self.shared.settings.min_login_interval);
        let start = not_before.filter(|t| *t > now).unwrap_or(now);
        st.last_login_started = Some(start);
        let slot = self.clone();
        let delay = start.saturating_duration_since(now);
        // Counted from now (under the slot's lock) until the slot holds its outcome.
        let login = Counted::new(&self.shared.logins);
        self.shared.tasks.spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let result = slot.login_once().await;
            slot.finish(result, tx);
            drop(login);
        });
        rx
    }

    async fn login_once(&self) -> Result<Arc<LiveToken>, LoginFailure> {
        let api = self.api().map_err(LoginFailure::Looker)?;
        let key = SecretKey::new(self.profile.as_ref(), self.name.as_ref());
        if self.kind == CredentialKind::Oauth {
            let sent = self.shared.clock.now();
            let answer =
                self.grant.refresh(api.as_ref(), self.store.as_ref(), &key, &self.client_id).await.map_err(
                    |e| match e {
                        GrantError::Looker(e) => LoginFailure::Looker(e),
                        GrantError::Store(m) => LoginFailure::Store(m),
                    },
                )?;
            return Ok(self.adopt(answer, sent).await);
        }
        let secret = match &self.source {
            Some(source) => source.fetch().await.map_err(|e| LoginFailure::Store(e.to_string()))?,
            None => {
                self.store.get(&key, &self.client_id).await.map_err(|e| LoginFailure::Store(e.to_string()))?
            }
        };
        let sent = self.shared.clock.now();
        let answer = api.login(&self.client_id, &secret).await.map_err(LoginFailure::Looker)?;
        drop(secret);
        Ok(self.adopt(answer, sent).await)
    }

    /// A token these credentials produced (a login, a sudo), journaled before anyone
    /// can use it: if the agent dies, the next start revokes it.
    pub(crate) async fn adopt(&self, answer: LoginToken, sent: Stamp) -> Arc<LiveToken> {
        let received = self.shared.clock.now();
        let mut token =
            LiveToken::new(answer.access_token, sent, received, Duration::from_secs(answer.expires_in));
        let entry = JournalEntry {
            id: Alphanumeric.sample_string(&mut rand::rng(), 20),
            profile: self.profile.to_string(),
            credential: self.name.to_string(),
            base_url: self.base_url.to_string(),
            token: token.token.clone(),
            expires_at_unix: unix(SystemTime::now()) + answer.expires_in as i64,
            owner: Some(self.shared.instance.to_string()),
        };
        match self.store.journal_add(&entry).await {
            Ok(()) => token.journal_id = Some(entry.id),
            Err(e) => tracing::warn!(profile = %self.profile, credential = %self.name, error = %e,
                "token not journaled: if the agent crashes it stays live at Looker until it expires"),
        }
        Arc::new(token)
    }

    /// A login of its own, never handed out as the set's shared token: for a token
    /// one client must not share (one moved to the dev workspace). Counted as a login
    /// in flight, so shutdown waits for it and revokes what it brings.
    pub(crate) async fn login_unshared(&self) -> Result<Arc<LiveToken>, BrokerError> {
        if *self.shared.closing.borrow() {
            return Err(BrokerError::ShuttingDown);
        }
        let _counted = Counted::new(&self.shared.logins);
        match self.login_once().await {
            Ok(t) => Ok(t),
            Err(LoginFailure::Looker(LookerError::Rejected { status, message })) => {
                Err(self.rejected_error(status, &message))
            }
            Err(LoginFailure::Looker(e)) => {
                Err(BrokerError::Unavailable { profile: self.profile.to_string(), reason: e.to_string() })
            }
            Err(LoginFailure::Store(message)) => Err(BrokerError::Store(message)),
        }
    }

    /// The shared state of the broker this slot belongs to.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn finish(&self, result: Result<Arc<LiveToken>, LoginFailure>, tx: watch::Sender<Outcome>) {
        let now = self.shared.clock.now();
        let wall = SystemTime::now();
        let shared = {
            let mut st = self.lock();
            st.inflight = None;
            match result {
                Ok(token) => {
                    if let Some(old) = st.current.replace(token.clone()) {
                        // Kept until no client can rely on it; the maintenance task revokes it.
                        st.older.push(old);
                    }
                    st.lifetime = Some(token.lifetime());
                    st.logins += 1;
                    st.last_login = Some(wall);
                    st.failures = 0;
                    st.backoff_until = None;
                    st.backoff_for_source = false;
                    st.rejected = None;
                    let expires_at = wall + token.remaining(now);
                    let _ = self.shared.events.send(BrokerEvent::TokenRefreshed {
                        profile: self.profile.to_string(),
                        credential: self.name.to_string(),
                        expires_at_unix: unix(expires_at),
                    });
                    tracing::info!(profile = %self.profile, credential = %self.name,
                        expires_in = token.remaining(now).as_secs(), "logged in to Looker");
                    Ok(token)
                }
                Err(LoginFailure::Looker(LookerError::Rejected { status, message })) => {
                    let err = self.rejected_error(status, &message);
                    st.last_error = Some((wall, match self.kind {
                        CredentialKind::Oauth => format!(
                            "Looker refused the OAuth grant (HTTP {status}: {message}): it was revoked or expired; {}",
                            crate::oauth::grant::sign_in_again(&self.profile, &self.name)
                        ),
                        CredentialKind::ApiKey => {
                            format!("Looker rejected the credentials (HTTP {status}: {message})")
                        }
                    }));
                    st.rejected = Some(Rejection {
                        at: wall,
                        retry_at: now + self.shared.settings.rejected_retry,
                        status,
                        message: message.clone(),
                    });
                    self.failed(&err);
                    Err(err)
                }
                Err(LoginFailure::Looker(e)) => {
                    st.failures = st.failures.saturating_add(1);
                    st.backoff_for_source = false;
                    let retry_after = match &e {
                        LookerError::Unavailable { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    let delay = self.shared.settings.backoff(st.failures, retry_after);
                    st.backoff_until = Some((now + delay, wall + delay));
                    let reason = e.to_string();
                    st.last_error = Some((wall, reason.clone()));
                    let err = BrokerError::Unavailable { profile: self.profile.to_string(), reason };
                    self.failed(&err);
                    Err(err)
                }
                Err(LoginFailure::Store(message)) => {
                    if self.source.is_some() {
                        // A source is a program (pass waiting on a pinentry may take its whole
                        // timeout): not rerun at every request while it keeps failing.
                        st.failures = st.failures.saturating_add(1);
                        let delay = source_backoff(st.failures);
                        st.backoff_until = Some((now + delay, wall + delay));
                        st.backoff_for_source = true;
                    }
                    st.last_error = Some((wall, message.clone()));
                    let err = BrokerError::Store(message);
                    self.failed(&err);
                    Err(err)
                }
            }
        };
        let _ = tx.send(Some(shared));
        self.shared.wake.notify_one();
    }

    fn failed(&self, err: &BrokerError) {
        tracing::warn!(profile = %self.profile, credential = %self.name, error = %err, "login failed");
        let _ = self.shared.events.send(BrokerEvent::CredentialFailed {
            profile: self.profile.to_string(),
            credential: self.name.to_string(),
            reason: err.to_string(),
        });
    }

    /// Drops the current token if it is `access_token` (a client saw it rejected) and
    /// returns whatever matched, for revocation.
    pub fn invalidate(&self, access_token: &str) -> Option<Arc<LiveToken>> {
        let mut st = self.lock();
        if st.current.as_ref().is_some_and(|t| t.token.expose() == access_token) {
            return st.current.take();
        }
        let idx = st.older.iter().position(|t| t.token.expose() == access_token)?;
        Some(st.older.swap_remove(idx))
    }

    /// Takes every token the slot holds (expired ones too, for their journal
    /// entries), leaving it empty.
    pub fn take_tokens(&self) -> Vec<Arc<LiveToken>> {
        let mut st = self.lock();
        let mut out: Vec<_> = st.current.take().into_iter().collect();
        out.append(&mut st.older);
        out
    }

    /// When the current token should be replaced: once about a third of its
    /// life remains, but never sooner than `min_refresh_age` after it was
    /// obtained, so short-lived tokens are not refreshed in a loop.
    fn refresh_due(&self, t: &LiveToken) -> Stamp {
        let lifetime = t.lifetime();
        let age = (lifetime * 2 / 3).max(self.shared.settings.min_refresh_age.min(lifetime));
        t.obtained + age
    }

    /// Housekeeping, run by the broker's maintenance task: starts a due refresh
    /// (or a retry once a backoff step passed) for a set in use, and hands back
    /// superseded tokens no client can rely on any more, for revocation.
    /// Returns when it next wants to run.
    pub fn maintain(self: &Arc<Self>, now: Stamp) -> (Option<Stamp>, Vec<Arc<LiveToken>>) {
        let mut st = self.lock();
        let mut next: Option<Stamp> = None;
        let mut soonest = |t: Stamp| next = Some(next.map_or(t, |n: Stamp| n.min(t)));

        // A superseded token lives on only while a client may hold it: until the
        // expiry it was handed out with. One nobody received goes at once.
        // Expired ones go too (their journal entries must be cleared).
        let mut revoke = Vec::new();
        st.older.retain(|t| {
            if !t.may_be_live(now) || !t.was_handed_out() || now >= t.expires {
                revoke.push(t.clone());
                false
            } else {
                true
            }
        });
        for t in &st.older {
            soonest(t.expires);
        }

        let window = self.refresh_window;
        let in_use =
            self.always_fresh || st.last_used.is_some_and(|u| now.saturating_duration_since(u) < window);
        let rejected = st.rejected.as_ref().is_some_and(|r| now < r.retry_at);
        if in_use && !rejected && st.inflight.is_none() {
            let due = match &st.current {
                Some(t) => Some(self.refresh_due(t)),
                // No token but wanted: only retry after a failure (a backoff step).
                None if st.failures > 0 => Some(now),
                None => None,
            };
            if let Some(due) = due {
                let due = match st.backoff_until {
                    Some((until, _)) if until > due => until,
                    _ => due,
                };
                if now >= due {
                    tracing::debug!(profile = %self.profile, credential = %self.name, "refreshing ahead of expiry");
                    drop(self.start_login(&mut st));
                } else {
                    soonest(due);
                }
            }
            if let Some(u) = st.last_used.filter(|_| !self.always_fresh) {
                // Re-evaluate when the set falls out of use.
                soonest(u + window);
            }
        }
        (next, revoke)
    }

    /// Status without token values.
    pub fn status(&self, now: Stamp) -> CredentialStatus {
        let wall = SystemTime::now();
        let st = self.lock();
        let current = st.current.as_ref().filter(|t| t.remaining(now) > Duration::ZERO);
        let rejected = st.rejected.as_ref().filter(|r| now < r.retry_at);
        let backing_off = st.backoff_until.filter(|(until, _)| now < *until);
        let state = if rejected.is_some() {
            CredentialState::Rejected
        } else if st.inflight.is_some() {
            if current.is_some() {
                CredentialState::Refreshing
            } else {
                CredentialState::LoggingIn
            }
        } else if backing_off.is_some() {
            CredentialState::BackingOff
        } else if current.is_some() {
            CredentialState::Fresh
        } else {
            CredentialState::Idle
        };
        let live = st.current.iter().chain(st.older.iter()).filter(|t| t.may_be_live(now)).count();
        CredentialStatus {
            name: self.name.to_string(),
            client_id: self.client_id.clone(),
            kind: self.kind,
            state,
            expires_in: current.map(|t| t.remaining(now).as_secs()),
            expires_at: current.map(|t| rfc3339(wall + t.remaining(now))),
            last_login: st.last_login.map(rfc3339),
            last_error: st.last_error.as_ref().map(|(_, e)| e.clone()),
            last_error_at: st.last_error.as_ref().map(|(t, _)| rfc3339(*t)),
            backoff_until: backing_off.map(|(_, w)| rfc3339(w)),
            rejected_since: rejected.map(|r| rfc3339(r.at)),
            refresh_at: current.map(|t| rfc3339(wall + self.refresh_due(t).saturating_duration_since(now))),
            logins: st.logins,
            live_tokens: live as u32,
            secret_source: self.source.as_ref().map(SecretSource::display),
            key_created_at: st.key.created_at.map(rfc3339),
            key_age_seconds: st.key.created_at.map(|c| wall.duration_since(c).unwrap_or_default().as_secs()),
            key_age_unknown: st.key.unknown_because.clone(),
            rotate_after_seconds: st.key.rotate_after.map(|d| d.as_secs()),
            next_rotation_at: st.key.rotate_after.and_then(|after| {
                let due = st.key.created_at.map(|c| c + after)?;
                Some(rfc3339(st.key.next_attempt.map_or(due, |n| n.max(due))))
            }),
            rotation_error: st.key.rotation_error.clone(),
        }
    }
}

/// How long a failing secret source rests after its `failures`th failure in a row:
/// 5 s, doubling, at most a minute (a person fixing it should not wait long; a
/// config change ends it at once).
fn source_backoff(failures: u32) -> Duration {
    Duration::from_secs(5u64 << failures.saturating_sub(1).min(4)).min(Duration::from_secs(60))
}

/// The login's outcome, or `None` when the broker closes first (or the login task died).
async fn wait_outcome(rx: &mut watch::Receiver<Outcome>, mut closing: watch::Receiver<bool>) -> Outcome {
    tokio::select! {
        biased;
        r = rx.wait_for(|o| o.is_some()) => r.ok().and_then(|o| (*o).clone()),
        _ = closing.wait_for(|c| *c) => None,
    }
}

enum LoginFailure {
    Looker(LookerError),
    Store(String),
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// RFC 3339 UTC, whole seconds.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

impl BrokerSettings {
    /// Exponential backoff with equal jitter (a random point in the upper half of
    /// the step), at least the server's `Retry-After`.
    ///
    /// Not full jitter: a step that may be zero puts no floor under the retry rate,
    /// and one agent per user gains nothing from spreading that wide. Half a step of
    /// jitter still keeps agents that failed together from retrying together.
    pub fn backoff(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self.backoff_base.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        let ceiling = exp.min(self.backoff_cap);
        let jittered = rand::rng().random_range(ceiling / 2..=ceiling);
        jittered.max(retry_after.unwrap_or(Duration::ZERO).min(self.backoff_cap))
    }
}
