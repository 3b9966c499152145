//! What a gateway client holds instead of a client secret and a real token:
//! **gateway credentials** (a client_id and client_secret minted by the agent, bound
//! to a profile and optionally a credential set, dying with the process they were
//! minted for or at their TTL) and **sessions** (a local random handle per login,
//! sent as `Authorization: token …`, mapped to the real token at each call).
//!
//! Nothing here is a real Looker token: the broker holds those. Lookups take one
//! short lock; values are compared in constant time.

use crate::broker::Variant;
use crate::secret::Secret;
use rand::distr::{Alphanumeric, SampleString};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// How long a session from `POST /login` lives, as Looker's own tokens do; the
/// SDKs log in again before it ends.
pub const SESSION_TTL: Duration = Duration::from_secs(3600);

/// Default life of a credential from `lookerctl gateway credential`.
pub const DEFAULT_CREDENTIAL_TTL: Duration = Duration::from_secs(8 * 3600);

/// A gateway credential's length of client_id and client_secret, as Looker's.
const CLIENT_ID_LEN: usize = 20;
const CLIENT_SECRET_LEN: usize = 24;
/// A session token's length, as Looker's access tokens.
const SESSION_TOKEN_LEN: usize = 40;

/// A gateway credential. Its secret is not kept here in the clear for `Debug`.
#[derive(Debug)]
pub struct GatewayCredential {
    /// Local id (sessions point to it).
    pub id: u64,
    /// The client_id clients log in with (not secret).
    pub client_id: String,
    secret: Secret,
    /// The profile its sessions use.
    pub profile: Arc<str>,
    /// The credential set its sessions use (`None`: the profile's first healthy one).
    pub credential: Option<Arc<str>>,
    /// When it stops working (`None`: only when its process exits).
    pub expires: Option<Instant>,
    /// The same, on the wall clock (for answers and status).
    pub expires_at: Option<SystemTime>,
    /// The process it dies with, if bound to one.
    pub bound_pid: Option<i32>,
    /// Set when it ended (its process exited, or shutdown): its sessions end with it.
    retired: std::sync::atomic::AtomicBool,
}

impl GatewayCredential {
    /// True while it works: not retired, not past its TTL.
    pub fn is_live(&self) -> bool {
        !self.retired.load(Ordering::Relaxed) && self.expires.is_none_or(|e| Instant::now() < e)
    }
}

/// One logged-in gateway client.
#[derive(Debug)]
pub struct Session {
    /// Local id; also the owner of the session's own tokens in the broker.
    pub id: u64,
    token: Secret,
    /// The gateway credential it logged in with.
    pub minted_by: Arc<GatewayCredential>,
    /// Profile.
    pub profile: Arc<str>,
    /// Credential set (`None`: the first healthy one; pinned once the session sudoes or
    /// moves to dev, which need a token of one set).
    pub credential: Option<Arc<str>>,
    /// Which real token it uses: shared, sudo, dev.
    pub variant: Variant,
    /// When it ends (`None`: with its credential).
    pub expires: Option<Instant>,
    /// Wall-clock creation time (status).
    pub created: SystemTime,
}

impl Session {
    /// Seconds left, for the login answer (a session bound to its credential says an hour).
    pub fn expires_in(&self) -> u64 {
        match self.expires {
            Some(e) => e.saturating_duration_since(Instant::now()).as_secs(),
            None => SESSION_TTL.as_secs(),
        }
    }
}

#[derive(Default)]
struct State {
    credentials: HashMap<String, Arc<GatewayCredential>>,
    sessions: HashMap<String, Arc<Session>>,
}

/// The gateway's credentials and sessions.
#[derive(Default)]
pub struct Sessions {
    state: Mutex<State>,
    next_id: AtomicU64,
}

/// A freshly minted credential: the record and its secret (shown once, to the minter).
pub struct Minted {
    /// The credential.
    pub credential: Arc<GatewayCredential>,
    /// Its client_secret.
    pub client_secret: Secret,
}

/// What a credential or sessions ending leaves to clean up: the sessions that ended
/// (their own tokens must be revoked).
pub type Ended = Vec<Arc<Session>>;

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Consistent at every unlock: a poisoned lock is safe to reuse.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Mints a credential for `profile` (and `credential`), living `ttl` or, when
    /// bound to `pid`, until that process exits (the caller watches it).
    pub fn mint(
        &self,
        profile: &str,
        credential: Option<&str>,
        ttl: Option<Duration>,
        bound_pid: Option<i32>,
    ) -> Minted {
        let client_secret = Secret::new(random(CLIENT_SECRET_LEN));
        let cred = Arc::new(GatewayCredential {
            id: self.id(),
            client_id: random(CLIENT_ID_LEN),
            secret: client_secret.clone(),
            profile: profile.into(),
            credential: credential.map(Arc::from),
            expires: ttl.map(|t| Instant::now() + t),
            expires_at: ttl.map(|t| SystemTime::now() + t),
            bound_pid,
            retired: std::sync::atomic::AtomicBool::new(false),
        });
        self.lock().credentials.insert(cred.client_id.clone(), cred.clone());
        Minted { credential: cred, client_secret }
    }

    /// The live credential these values name, if any (Looker's login, emulated).
    pub fn check(&self, client_id: &str, client_secret: &str) -> Option<Arc<GatewayCredential>> {
        let st = self.lock();
        let c = st.credentials.get(client_id)?;
        if !constant_time_eq(c.secret.expose().as_bytes(), client_secret.as_bytes()) || !c.is_live() {
            return None;
        }
        Some(c.clone())
    }

    /// Starts a session of `cred`: acting as `user_id` (sudo) if given, living `ttl`
    /// (`None`: as long as the credential). Returns it and its token.
    pub fn open(
        &self,
        cred: &Arc<GatewayCredential>,
        credential: Option<Arc<str>>,
        user_id: Option<Arc<str>>,
        ttl: Option<Duration>,
    ) -> (Arc<Session>, Secret) {
        let token = Secret::new(random(SESSION_TOKEN_LEN));
        let ends = ttl.map(|t| Instant::now() + t);
        // Never outlives its credential.
        let expires = match (ends, cred.expires) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let session = Arc::new(Session {
            id: self.id(),
            token: token.clone(),
            minted_by: cred.clone(),
            profile: cred.profile.clone(),
            credential: credential.or_else(|| cred.credential.clone()),
            variant: Variant { user_id, dev_owner: None },
            expires,
            created: SystemTime::now(),
        });
        self.lock().sessions.insert(token.expose().to_string(), session.clone());
        (session, token)
    }

    /// The live session a token names; an expired one is removed (and returned in
    /// `ended` for clean-up).
    pub fn get(&self, token: &str, ended: &mut Ended) -> Option<Arc<Session>> {
        let mut st = self.lock();
        let s = st.sessions.get(token)?;
        let alive = s.expires.is_none_or(|e| Instant::now() < e) && s.minted_by.is_live();
        if alive {
            return Some(s.clone());
        }
        if let Some(s) = st.sessions.remove(token) {
            ended.push(s);
        }
        None
    }

    /// The session with its workspace changed: `Some(set)` gives it a dev token of its
    /// own from that credential set (pinned: a dev workspace is one Looker user's),
    /// `None` takes it back to production and to the binding it had before: its sudo
    /// user's set, or its gateway credential's (so it is not stranded on a set a later
    /// reload removes).
    pub fn set_dev(&self, session: &Session, dev: Option<Arc<str>>) -> Option<Arc<Session>> {
        let mut st = self.lock();
        let key = session.token.expose();
        let old = st.sessions.get(key)?.clone();
        let dev_owner = dev.is_some().then_some(old.id);
        let credential = match dev {
            Some(set) => Some(set),
            None if old.variant.user_id.is_some() => old.credential.clone(),
            None => old.minted_by.credential.clone(),
        };
        let new = Arc::new(Session {
            id: old.id,
            token: old.token.clone(),
            minted_by: old.minted_by.clone(),
            profile: old.profile.clone(),
            credential,
            variant: Variant { user_id: old.variant.user_id.clone(), dev_owner },
            expires: old.expires,
            created: old.created,
        });
        st.sessions.insert(key.to_string(), new.clone());
        Some(new)
    }

    /// Ends one session (a client's logout).
    pub fn close(&self, token: &str) -> Option<Arc<Session>> {
        self.lock().sessions.remove(token)
    }

    /// Ends a credential and every session it opened (its process exited).
    pub fn retire(&self, credential_id: u64) -> Ended {
        let mut st = self.lock();
        st.credentials.retain(|_, c| {
            if c.id == credential_id {
                c.retired.store(true, Ordering::Relaxed);
            }
            c.id != credential_id
        });
        let keys: Vec<String> = st
            .sessions
            .iter()
            .filter(|(_, s)| s.minted_by.id == credential_id)
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().filter_map(|k| st.sessions.remove(k)).collect()
    }

    /// Drops expired credentials and sessions; returns the sessions that ended.
    pub fn sweep(&self) -> Ended {
        let now = Instant::now();
        let mut st = self.lock();
        st.credentials.retain(|_, c| c.is_live());
        let keys: Vec<String> = st
            .sessions
            .iter()
            .filter(|(_, s)| s.expires.is_some_and(|e| now >= e) || !s.minted_by.is_live())
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().filter_map(|k| st.sessions.remove(k)).collect()
    }

    /// Ends everything (shutdown).
    pub fn clear(&self) -> Ended {
        let mut st = self.lock();
        for c in st.credentials.values() {
            c.retired.store(true, Ordering::Relaxed);
        }
        st.credentials.clear();
        st.sessions.drain().map(|(_, s)| s).collect()
    }

    /// Live credentials and sessions, for status (never a secret or token).
    pub fn snapshot(&self) -> (Vec<Arc<GatewayCredential>>, Vec<Arc<Session>>) {
        let st = self.lock();
        let mut creds: Vec<_> = st.credentials.values().cloned().collect();
        creds.sort_by_key(|c| c.id);
        let mut sessions: Vec<_> = st.sessions.values().cloned().collect();
        sessions.sort_by_key(|s| s.id);
        (creds, sessions)
    }
}

fn random(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), len)
}

/// Compares without an early exit, so the time taken says nothing of where two
/// values differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn credentials_sessions_and_their_ends() {
        let s = Sessions::default();
        let m = s.mint("prod", None, Some(Duration::from_secs(100)), None);
        assert!(s.check(&m.credential.client_id, "wrong").is_none());
        let c = s.check(&m.credential.client_id, m.client_secret.expose()).unwrap();
        let (session, token) = s.open(&c, None, None, Some(SESSION_TTL));
        let mut ended = Vec::new();
        assert_eq!(s.get(token.expose(), &mut ended).unwrap().id, session.id);
        // A session never outlives its credential.
        tokio::time::advance(Duration::from_secs(101)).await;
        assert!(s.check(&m.credential.client_id, m.client_secret.expose()).is_none());
        assert!(s.get(token.expose(), &mut ended).is_none());
        assert_eq!(ended.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retiring_a_credential_ends_its_sessions_only() {
        let s = Sessions::default();
        let a = s.mint("prod", None, None, Some(1));
        let b = s.mint("prod", None, None, Some(2));
        let (_, ta) = s.open(&a.credential, None, None, None);
        let (_, tb) = s.open(&b.credential, None, None, None);
        assert_eq!(s.retire(a.credential.id).len(), 1);
        let mut ended = Vec::new();
        assert!(s.get(ta.expose(), &mut ended).is_none());
        assert!(s.get(tb.expose(), &mut ended).is_some());
        assert!(s.check(&a.credential.client_id, a.client_secret.expose()).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn dev_moves_one_session() {
        let s = Sessions::default();
        let m = s.mint("prod", None, None, None);
        let (one, t1) = s.open(&m.credential, None, None, None);
        let (_, t2) = s.open(&m.credential, None, None, None);
        let moved = s.set_dev(&one, Some("api".into())).unwrap();
        assert_eq!(moved.variant.dev_owner, Some(one.id));
        assert_eq!(moved.credential.as_deref(), Some("api"));
        let mut ended = Vec::new();
        assert_eq!(s.get(t1.expose(), &mut ended).unwrap().variant.dev_owner, Some(one.id));
        assert!(s.get(t2.expose(), &mut ended).unwrap().variant.is_shared());
        // Back in production it is unpinned again, as its credential is.
        let back = s.set_dev(&moved, None).unwrap();
        assert!(back.variant.is_shared());
        assert_eq!(back.credential, None);
    }

    #[test]
    fn equal_only_when_equal() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
