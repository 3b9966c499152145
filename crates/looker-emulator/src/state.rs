//! The emulator's bookkeeping: registered credentials, issued tokens, the
//! fault knobs and the counters. One short-held mutex guards it all; no lock
//! is ever held across an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use rand::distr::Alphanumeric;
use rand::Rng;
use tokio::time::Instant;

use super::api3::Api3;
use super::oauth::OAuth;
use super::one_shot::OneShots;
use super::{Counters, EmulatorUser, Faults, LiveTokenInfo, TokenKind, Workspace};

/// Length of the access tokens Looker hands out.
const TOKEN_LEN: usize = 40;

/// Expired tokens are swept out of the map once it grows past this size
/// (and then past twice the size that survived the previous sweep).
const FIRST_SWEEP: usize = 1024;

/// An API3 key: a client_id's secret and the user it acts as. Keys added
/// by [`State::add_credential`] and keys created through
/// `credentials_api3` are the same thing.
pub(crate) struct Credential {
    pub(crate) secret: String,
    pub(crate) user: Arc<EmulatorUser>,
    /// Looker's credentials_api3 id (digits, unique on the instance).
    pub(crate) key_id: String,
    /// Wall-clock creation time, for `created_at`.
    pub(crate) created_at: SystemTime,
    /// The caller's `purpose`, when it gave one.
    pub(crate) purpose: Option<String>,
}

/// What the emulator remembers about an access token it issued.
pub(crate) struct IssuedToken {
    /// The user the token acts as (the sudo target for a sudo token).
    pub(crate) user: Arc<EmulatorUser>,
    pub(crate) expires_at: Instant,
    /// How it was obtained.
    pub(crate) kind: TokenKind,
    /// At Looker the dev/production workspace is a property of the token.
    pub(crate) workspace: Workspace,
    /// The OAuth grant it came from, so revoking the grant revokes it.
    pub(crate) grant: Option<u64>,
}

/// Everything behind the mutex.
pub(crate) struct Tables {
    pub(crate) credentials: HashMap<String, Credential>,
    /// Every user the emulator knows, by id: those of credentials, the
    /// OAuth approver and [`State::add_user`]'s.
    pub(crate) users: HashMap<String, Arc<EmulatorUser>>,
    pub(crate) tokens: HashMap<String, IssuedToken>,
    token_lifetime: Duration,
    faults: Faults,
    clock_offset: Duration,
    sweep_at: usize,
    /// The last credentials_api3 id handed out.
    pub(crate) last_key_id: u64,
    pub(crate) api3: Api3,
    pub(crate) oauth: OAuth,
    pub(crate) one_shots: OneShots,
}

/// The outcome of checking a client_id / client_secret pair.
pub(crate) enum LoginOutcome {
    /// A new token was issued.
    Issued {
        /// The new access token.
        token: String,
        /// Its lifetime, as reported in `expires_in`.
        lifetime: Duration,
    },
    /// Unknown client_id or wrong secret.
    Rejected,
}

/// The outcome of a sudo login, `POST /login/{user_id}`.
pub(crate) enum SudoOutcome {
    /// A new token acting as the user was issued.
    Issued {
        /// The new access token.
        token: String,
        /// Its lifetime, as reported in `expires_in`.
        lifetime: Duration,
    },
    /// The caller's token is missing, unknown, revoked or expired.
    Unauthenticated,
    /// The caller is not an admin.
    Forbidden,
    /// No such user.
    UnknownUser,
}

/// The shared state of one emulator.
pub(crate) struct State {
    pub(crate) tables: Mutex<Tables>,
    logins: AtomicU64,
    failed_logins: AtomicU64,
    logouts: AtomicU64,
    sudo_logins: AtomicU64,
    api_calls: AtomicU64,
}

impl State {
    pub(crate) fn new(token_lifetime: Duration, faults: Faults) -> Self {
        Self {
            tables: Mutex::new(Tables {
                credentials: HashMap::new(),
                users: HashMap::new(),
                tokens: HashMap::new(),
                token_lifetime,
                faults,
                clock_offset: Duration::ZERO,
                sweep_at: FIRST_SWEEP,
                last_key_id: 0,
                api3: Api3::default(),
                oauth: OAuth::default(),
                one_shots: OneShots::default(),
            }),
            logins: AtomicU64::new(0),
            failed_logins: AtomicU64::new(0),
            logouts: AtomicU64::new(0),
            sudo_logins: AtomicU64::new(0),
            api_calls: AtomicU64::new(0),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Tables> {
        // A panic while holding this lock cannot leave the tables half
        // updated in a way that matters to an emulator, so carry on.
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds or replaces a key; a replaced key keeps its id and age.
    pub(crate) fn add_credential(&self, client_id: &str, client_secret: &str, user: EmulatorUser) {
        let mut tables = self.lock();
        let user = tables.add_user(user);
        match tables.credentials.get_mut(client_id) {
            Some(cred) => {
                cred.secret = client_secret.to_owned();
                cred.user = user;
            }
            None => {
                tables.insert_key(client_id.to_owned(), client_secret.to_owned(), user, None);
            }
        }
    }

    /// Makes a user known (or replaces the one with its id) without a key.
    pub(crate) fn add_user(&self, user: EmulatorUser) -> Arc<EmulatorUser> {
        self.lock().add_user(user)
    }

    pub(crate) fn remove_credential(&self, client_id: &str) {
        self.lock().credentials.remove(client_id);
    }

    pub(crate) fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().token_lifetime = lifetime;
    }

    pub(crate) fn token_lifetime(&self) -> Duration {
        self.lock().token_lifetime
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    pub(crate) fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    pub(crate) fn advance_clock(&self, by: Duration) {
        let mut tables = self.lock();
        tables.clock_offset = tables.clock_offset.saturating_add(by);
    }

    /// Checks the pair and, when it is right, issues a fresh token.
    /// Counts neither success nor failure: the caller knows which answer
    /// finally went out.
    pub(crate) fn login(&self, client_id: &str, client_secret: &str) -> LoginOutcome {
        let mut tables = self.lock();
        let user = match tables.credentials.get(client_id) {
            Some(cred) if !client_secret.is_empty() && cred.secret == client_secret => Arc::clone(&cred.user),
            _ => return LoginOutcome::Rejected,
        };
        let (token, lifetime) =
            tables.issue(user, TokenKind::ApiLogin { client_id: client_id.to_owned() }, None);
        LoginOutcome::Issued { token, lifetime }
    }

    /// A sudo login: `admin_token` (an admin's live token) gets a new token
    /// acting as `user_id`. Counted in `sudo_logins` when issued.
    pub(crate) fn sudo(&self, admin_token: &str, user_id: &str) -> SudoOutcome {
        let mut tables = self.lock();
        let now = tables.now();
        let Some(admin) =
            tables.tokens.get(admin_token).filter(|t| t.expires_at > now).map(|t| Arc::clone(&t.user))
        else {
            return SudoOutcome::Unauthenticated;
        };
        if !admin.is_admin {
            return SudoOutcome::Forbidden;
        }
        let Some(user) = tables.find_user(user_id) else {
            return SudoOutcome::UnknownUser;
        };
        let (token, lifetime) = tables.issue(user, TokenKind::Sudo { admin_user_id: admin.id.clone() }, None);
        self.sudo_logins.fetch_add(1, Ordering::Relaxed);
        SudoOutcome::Issued { token, lifetime }
    }

    /// What the emulator knows about a live token.
    pub(crate) fn token_info(&self, token: &str) -> Option<LiveTokenInfo> {
        let tables = self.lock();
        let now = tables.now();
        tables.tokens.get(token).filter(|t| t.expires_at > now).map(|t| t.info(token, now))
    }

    /// Moves a live token to `workspace`; false when the token is not live.
    pub(crate) fn set_workspace(&self, token: &str, workspace: Workspace) -> bool {
        let mut tables = self.lock();
        let now = tables.now();
        match tables.tokens.get_mut(token).filter(|t| t.expires_at > now) {
            Some(t) => {
                t.workspace = workspace;
                true
            }
            None => false,
        }
    }

    /// Every live token, sorted by token (any fixed order will do).
    pub(crate) fn live_tokens(&self) -> Vec<LiveTokenInfo> {
        let tables = self.lock();
        let now = tables.now();
        let mut live: Vec<LiveTokenInfo> = tables
            .tokens
            .iter()
            .filter(|(_, t)| t.expires_at > now)
            .map(|(token, t)| t.info(token, now))
            .collect();
        live.sort_by(|a, b| a.token.cmp(&b.token));
        live
    }

    /// The user a live token acts as.
    pub(crate) fn authenticate(&self, token: &str) -> Option<Arc<EmulatorUser>> {
        let tables = self.lock();
        let now = tables.now();
        tables.tokens.get(token).filter(|t| t.expires_at > now).map(|t| Arc::clone(&t.user))
    }

    /// Revokes a live token; false when it is unknown, revoked or expired.
    pub(crate) fn logout(&self, token: &str) -> bool {
        let mut tables = self.lock();
        let now = tables.now();
        match tables.tokens.remove(token) {
            Some(t) if t.expires_at > now => {
                self.logouts.fetch_add(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// Revokes every token; returns how many were still live.
    pub(crate) fn revoke_all(&self) -> usize {
        let mut tables = self.lock();
        let now = tables.now();
        let live = tables.tokens.values().filter(|t| t.expires_at > now).count();
        tables.tokens.clear();
        live
    }

    pub(crate) fn is_live(&self, token: &str) -> bool {
        self.authenticate(token).is_some()
    }

    /// A configured user with this id, whichever credential it belongs to.
    pub(crate) fn find_user(&self, id: &str) -> Option<Arc<EmulatorUser>> {
        self.lock().find_user(id)
    }

    pub(crate) fn count_login(&self) {
        self.logins.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_failed_login(&self) {
        self.failed_logins.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_api_call(&self) {
        self.api_calls.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn api_calls(&self) -> u64 {
        self.api_calls.load(Ordering::Relaxed)
    }

    pub(crate) fn counters(&self) -> Counters {
        let live_tokens = {
            let tables = self.lock();
            let now = tables.now();
            tables.tokens.values().filter(|t| t.expires_at > now).count()
        };
        Counters {
            logins: self.logins.load(Ordering::Relaxed),
            failed_logins: self.failed_logins.load(Ordering::Relaxed),
            logouts: self.logouts.load(Ordering::Relaxed),
            sudo_logins: self.sudo_logins.load(Ordering::Relaxed),
            live_tokens: u64::try_from(live_tokens).unwrap_or(u64::MAX),
        }
    }
}

impl Tables {
    /// The emulator's idea of now: tokio's clock (so `tokio::time::pause`
    /// and `advance` work) plus whatever `advance_clock` added.
    pub(crate) fn now(&self) -> Instant {
        Instant::now() + self.clock_offset
    }

    /// A known user with this id.
    pub(crate) fn find_user(&self, id: &str) -> Option<Arc<EmulatorUser>> {
        self.users.get(id).map(Arc::clone)
    }

    /// Makes a user known, replacing the one with its id.
    pub(crate) fn add_user(&mut self, user: EmulatorUser) -> Arc<EmulatorUser> {
        let user = Arc::new(user);
        self.users.insert(user.id.clone(), Arc::clone(&user));
        user
    }

    /// Stores a new key under the next id; returns the id.
    pub(crate) fn insert_key(
        &mut self,
        client_id: String,
        secret: String,
        user: Arc<EmulatorUser>,
        purpose: Option<String>,
    ) -> String {
        self.last_key_id += 1;
        let key_id = self.last_key_id.to_string();
        self.credentials.insert(
            client_id,
            Credential { secret, user, key_id: key_id.clone(), created_at: SystemTime::now(), purpose },
        );
        key_id
    }

    /// Issues a fresh token in the production workspace, sweeping expired
    /// ones out first when the map has grown.
    pub(crate) fn issue(
        &mut self,
        user: Arc<EmulatorUser>,
        kind: TokenKind,
        grant: Option<u64>,
    ) -> (String, Duration) {
        let now = self.now();
        if self.tokens.len() >= self.sweep_at {
            self.tokens.retain(|_, t| t.expires_at > now);
            self.sweep_at = FIRST_SWEEP.max(self.tokens.len().saturating_mul(2));
        }
        let lifetime = self.token_lifetime;
        let token = loop {
            let candidate = random_token(TOKEN_LEN);
            if !self.tokens.contains_key(&candidate) {
                break candidate;
            }
        };
        self.tokens.insert(
            token.clone(),
            IssuedToken { user, expires_at: now + lifetime, kind, workspace: Workspace::Production, grant },
        );
        (token, lifetime)
    }
}

impl IssuedToken {
    fn info(&self, token: &str, now: Instant) -> LiveTokenInfo {
        LiveTokenInfo {
            token: token.to_owned(),
            kind: self.kind.clone(),
            user_id: self.user.id.clone(),
            workspace: self.workspace,
            expires_in: self.expires_at.saturating_duration_since(now),
        }
    }
}

/// `len` random ASCII letters and digits (40 for an access token, like
/// Looker's).
pub(crate) fn random_token(len: usize) -> String {
    rand::rng().sample_iter(Alphanumeric).take(len).map(char::from).collect()
}
