//! What a gateway client holds instead of a client secret and a real token:
//! **gateway credentials** (a client_id and client_secret minted by the agent, bound
//! to a profile and optionally a credential set, dying with the process they were
//! minted for or at their TTL) and **sessions** (a local random handle per login,
//! sent as `Authorization: token …`, mapped to the real token at each call).
//!
//! Nothing here is a real Looker token: the broker holds those, and a credential's
//! secret is kept only as its SHA-256 (what [`saved`](super::saved) writes, too, so an
//! agent restart keeps them). Lookups take one short lock; values are compared in
//! constant time.

use super::saved::{Saved, SavedCredential, SavedSession, Saver};
use crate::broker::Variant;
use crate::secret::Secret;
use rand::distr::{Alphanumeric, SampleString};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// How long a session from `POST /login` lives, as Looker's own tokens do; the
/// SDKs log in again before it ends.
pub const SESSION_TTL: Duration = Duration::from_secs(3600);

/// Default life of a credential from `lookerctl gateway credential`.
pub const DEFAULT_CREDENTIAL_TTL: Duration = Duration::from_secs(8 * 3600);

/// The longest life a gateway credential may be minted with (a year: a longer-lived
/// handle is a secret nobody remembers to end).
pub const MAX_CREDENTIAL_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// A gateway credential's length of client_id and client_secret, as Looker's.
const CLIENT_ID_LEN: usize = 20;
const CLIENT_SECRET_LEN: usize = 24;
/// A session token's length, as Looker's access tokens.
const SESSION_TOKEN_LEN: usize = 40;

/// A SHA-256 digest: how a credential's secret and a session's token are kept for
/// saving (a login or token presented is hashed and compared).
pub type Digest = [u8; 32];

/// The SHA-256 of `value`.
pub fn digest(value: &str) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, value.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The process a credential dies with: its pid and its start time (clock ticks since
/// boot, from /proc/PID/stat), which tell it from a later process given the same pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BoundProcess {
    /// Its pid.
    pub pid: i32,
    /// Its start time, if /proc told it.
    pub start_time: Option<u64>,
}

/// A gateway credential. Its secret is kept only as a digest.
#[derive(Debug)]
pub struct GatewayCredential {
    /// Local id (sessions point to it).
    pub id: u64,
    /// The client_id clients log in with (not secret).
    pub client_id: String,
    secret: Digest,
    /// The profile its sessions use.
    pub profile: Arc<str>,
    /// The credential set its sessions use (`None`: the profile's first healthy one).
    pub credential: Option<Arc<str>>,
    /// When it stops working (`None`: only when its process exits).
    pub expires: Option<Instant>,
    /// The same, on the wall clock (for answers and status).
    pub expires_at: Option<SystemTime>,
    /// The process it dies with, if bound to one.
    pub bound: Option<BoundProcess>,
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
    /// Its token's digest (what is saved; the token itself is only the map's key).
    token: Digest,
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
    /// Keyed by token: the lookup every call makes.
    sessions: HashMap<String, Arc<Session>>,
    /// Sessions an earlier run of the agent saved, by token digest, until their token
    /// is presented again (then they move to `sessions`): the hot path hashes nothing.
    restored: HashMap<Digest, Arc<Session>>,
}

impl State {
    fn remove_where(&mut self, mut ends: impl FnMut(&Session) -> bool) -> Ended {
        let keys: Vec<String> =
            self.sessions.iter().filter(|(_, s)| ends(s)).map(|(k, _)| k.clone()).collect();
        let mut ended: Ended = keys.iter().filter_map(|k| self.sessions.remove(k)).collect();
        let digests: Vec<Digest> = self.restored.iter().filter(|(_, s)| ends(s)).map(|(k, _)| *k).collect();
        ended.extend(digests.iter().filter_map(|k| self.restored.remove(k)));
        ended
    }
}

/// The gateway's credentials and sessions.
#[derive(Default)]
pub struct Sessions {
    state: Mutex<State>,
    next_id: AtomicU64,
    /// Where every change is saved, once the daemon says so ([`Sessions::save_to`]).
    saver: OnceLock<Saver>,
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

    /// From now on every change is saved to `path` (the daemon's gateway state file),
    /// with the gateway's TCP `port`; the state as it is now is saved at once.
    pub fn save_to(self: &Arc<Self>, path: std::path::PathBuf, port: Option<u16>) {
        let me = Arc::downgrade(self);
        match Saver::start(path, port, move || me.upgrade().map(|s| s.to_saved())) {
            Ok(saver) => {
                let _ = self.saver.set(saver);
            }
            Err(e) => tracing::warn!(error = %e,
                "cannot start saving the gateway's credentials and sessions; an agent restart would end them"),
        }
    }

    /// Waits until every change so far is saved (tests; shutdown).
    pub fn flush_saves(&self) {
        if let Some(saver) = self.saver.get() {
            saver.flush();
        }
    }

    /// Saves what is pending, then nothing more (shutdown: what it ends, the next run
    /// takes up again).
    pub fn stop_saving(&self) {
        if let Some(saver) = self.saver.get() {
            saver.stop();
        }
    }

    /// Something changed: the saver, if any, saves it soon.
    fn changed(&self) {
        if let Some(saver) = self.saver.get() {
            saver.changed();
        }
    }

    /// Mints a credential for `profile` (and `credential`), living `ttl` or, when
    /// bound to a process, until it exits (the caller watches it).
    pub fn mint(
        &self,
        profile: &str,
        credential: Option<&str>,
        ttl: Option<Duration>,
        bound: Option<BoundProcess>,
    ) -> Minted {
        let client_secret = Secret::new(random(CLIENT_SECRET_LEN));
        let cred = Arc::new(GatewayCredential {
            id: self.id(),
            client_id: random(CLIENT_ID_LEN),
            secret: digest(client_secret.expose()),
            profile: profile.into(),
            credential: credential.map(Arc::from),
            expires: ttl.map(|t| Instant::now() + t),
            expires_at: ttl.map(|t| SystemTime::now() + t),
            bound,
            retired: std::sync::atomic::AtomicBool::new(false),
        });
        self.lock().credentials.insert(cred.client_id.clone(), cred.clone());
        self.changed();
        Minted { credential: cred, client_secret }
    }

    /// The live credential these values name, if any (Looker's login, emulated).
    pub fn check(&self, client_id: &str, client_secret: &str) -> Option<Arc<GatewayCredential>> {
        let presented = digest(client_secret);
        let st = self.lock();
        let c = st.credentials.get(client_id)?;
        if !constant_time_eq(&c.secret, &presented) || !c.is_live() {
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
            token: digest(token.expose()),
            minted_by: cred.clone(),
            profile: cred.profile.clone(),
            credential: credential.or_else(|| cred.credential.clone()),
            variant: Variant { user_id, dev_owner: None },
            expires,
            created: SystemTime::now(),
        });
        self.lock().sessions.insert(token.expose().to_string(), session.clone());
        self.changed();
        (session, token)
    }

    /// The live session a token names; an expired one is removed (and returned in
    /// `ended` for clean-up).
    pub fn get(&self, token: &str, ended: &mut Ended) -> Option<Arc<Session>> {
        let mut st = self.lock();
        let s = match st.sessions.get(token) {
            Some(s) => s.clone(),
            None if st.restored.is_empty() => return None,
            // A session from before a restart, presented for the first time since.
            None => {
                let s = st.restored.remove(&digest(token))?;
                st.sessions.insert(token.to_string(), s.clone());
                s
            }
        };
        if s.expires.is_none_or(|e| Instant::now() < e) && s.minted_by.is_live() {
            return Some(s);
        }
        if let Some(s) = st.sessions.remove(token) {
            ended.push(s);
        }
        drop(st);
        self.changed();
        None
    }

    /// The session `token` names, with its workspace changed: `Some(set)` gives it a
    /// dev token of its own from that credential set (pinned: a dev workspace is one
    /// Looker user's), `None` takes it back to production and to the binding it had
    /// before: its sudo user's set, or its gateway credential's (so it is not stranded
    /// on a set a later reload removes).
    pub fn set_dev(&self, token: &str, dev: Option<Arc<str>>) -> Option<Arc<Session>> {
        let mut st = self.lock();
        let old = st.sessions.get(token)?.clone();
        let dev_owner = dev.is_some().then_some(old.id);
        let credential = match dev {
            Some(set) => Some(set),
            None if old.variant.user_id.is_some() => old.credential.clone(),
            None => old.minted_by.credential.clone(),
        };
        let new = Arc::new(Session {
            id: old.id,
            token: old.token,
            minted_by: old.minted_by.clone(),
            profile: old.profile.clone(),
            credential,
            variant: Variant { user_id: old.variant.user_id.clone(), dev_owner },
            expires: old.expires,
            created: old.created,
        });
        st.sessions.insert(token.to_string(), new.clone());
        drop(st);
        self.changed();
        Some(new)
    }

    /// Ends one session (a client's logout).
    pub fn close(&self, token: &str) -> Option<Arc<Session>> {
        let mut st = self.lock();
        let closed = st.sessions.remove(token).or_else(|| st.restored.remove(&digest(token)));
        drop(st);
        if closed.is_some() {
            self.changed();
        }
        closed
    }

    /// Ends a credential and every session it opened (its process exited).
    pub fn retire(&self, credential_id: u64) -> Ended {
        self.retire_where(|c| c.id == credential_id).1
    }

    /// Ends the credentials `ends` picks and every session they opened; returns how
    /// many credentials ended, and the sessions.
    pub fn retire_where(&self, mut ends: impl FnMut(&GatewayCredential) -> bool) -> (u32, Ended) {
        let mut st = self.lock();
        let mut gone = std::collections::HashSet::new();
        st.credentials.retain(|_, c| {
            if ends(c) {
                c.retired.store(true, Ordering::Relaxed);
                gone.insert(c.id);
                return false;
            }
            true
        });
        let ended = st.remove_where(|s| gone.contains(&s.minted_by.id));
        drop(st);
        if !gone.is_empty() {
            self.changed();
        }
        (gone.len() as u32, ended)
    }

    /// Drops expired credentials and sessions; returns the sessions that ended.
    pub fn sweep(&self) -> Ended {
        let now = Instant::now();
        let mut st = self.lock();
        let before = st.credentials.len();
        st.credentials.retain(|_, c| c.is_live());
        let dropped = st.credentials.len() != before;
        let ended = st.remove_where(|s| s.expires.is_some_and(|e| now >= e) || !s.minted_by.is_live());
        drop(st);
        if dropped || !ended.is_empty() {
            self.changed();
        }
        ended
    }

    /// Ends everything in this run (shutdown). What was last saved stays saved: the
    /// next run takes it up again.
    pub fn clear(&self) -> Ended {
        let mut st = self.lock();
        for c in st.credentials.values() {
            c.retired.store(true, Ordering::Relaxed);
        }
        st.credentials.clear();
        let mut ended: Ended = st.sessions.drain().map(|(_, s)| s).collect();
        ended.extend(st.restored.drain().map(|(_, s)| s));
        ended
    }

    /// Live credentials and sessions, for status (never a secret or token).
    pub fn snapshot(&self) -> (Vec<Arc<GatewayCredential>>, Vec<Arc<Session>>) {
        let st = self.lock();
        let mut creds: Vec<_> = st.credentials.values().cloned().collect();
        creds.sort_by_key(|c| c.id);
        let mut sessions: Vec<_> = st.sessions.values().chain(st.restored.values()).cloned().collect();
        sessions.sort_by_key(|s| s.id);
        (creds, sessions)
    }

    /// The state as it is saved: live credentials and sessions, times on the wall clock.
    pub fn to_saved(&self) -> Saved {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let on_wall = |e: Instant| wall + e.saturating_duration_since(now);
        let st = self.lock();
        let mut credentials: Vec<SavedCredential> = st
            .credentials
            .values()
            .filter(|c| c.is_live())
            .map(|c| SavedCredential {
                id: c.id,
                client_id: c.client_id.clone(),
                secret_sha256: c.secret,
                profile: c.profile.to_string(),
                credential: c.credential.as_deref().map(str::to_string),
                expires_at: c.expires_at,
                bound: c.bound,
            })
            .collect();
        credentials.sort_by_key(|c| c.id);
        let mut sessions: Vec<SavedSession> = st
            .sessions
            .values()
            .chain(st.restored.values())
            .filter(|s| s.minted_by.is_live() && s.expires.is_none_or(|e| now < e))
            .map(|s| SavedSession {
                token_sha256: s.token,
                minted_by: s.minted_by.id,
                credential: s.credential.as_deref().map(str::to_string),
                user_id: s.variant.user_id.as_deref().map(str::to_string),
                dev: s.variant.dev_owner.is_some(),
                expires_at: s.expires.map(on_wall),
                created: s.created,
            })
            .collect();
        sessions.sort_by_key(|s| (s.created, s.token_sha256));
        Saved { credentials, sessions, ..Saved::default() }
    }

    /// Takes up what an earlier run saved (the caller has dropped credentials whose
    /// process is gone): credentials still within their TTL and their live sessions.
    /// Returns the process-bound credentials kept, for the caller to watch. Each gets
    /// a new id of this run (ids are only names within a run; the broker holds no
    /// token of an earlier one).
    pub fn restore(&self, saved: Saved) -> Vec<Arc<GatewayCredential>> {
        let (now, wall) = (Instant::now(), SystemTime::now());
        // A saved wall-clock end (`None`: no end) on this run's clock; `None` once it
        // has passed, or when it is further off than any credential may live.
        let ends = |at: Option<SystemTime>| match at {
            None => Some(None),
            Some(at) => at
                .duration_since(wall)
                .ok()
                .filter(|left| *left <= MAX_CREDENTIAL_TTL)
                .and_then(|left| now.checked_add(left))
                .map(Some),
        };
        let mut by_id = HashMap::new();
        let mut bound = Vec::new();
        let mut st = self.lock();
        for c in saved.credentials {
            let Some(expires) = ends(c.expires_at) else { continue };
            let cred = Arc::new(GatewayCredential {
                id: self.id(),
                client_id: c.client_id,
                secret: c.secret_sha256,
                profile: c.profile.into(),
                credential: c.credential.map(Arc::from),
                expires,
                expires_at: c.expires_at,
                bound: c.bound,
                retired: std::sync::atomic::AtomicBool::new(false),
            });
            if cred.bound.is_some() {
                bound.push(cred.clone());
            }
            by_id.insert(c.id, cred.clone());
            st.credentials.insert(cred.client_id.clone(), cred);
        }
        for s in saved.sessions {
            let Some(cred) = by_id.get(&s.minted_by) else { continue };
            let Some(expires) = ends(s.expires_at) else { continue };
            let id = self.id();
            let session = Arc::new(Session {
                id,
                token: s.token_sha256,
                minted_by: cred.clone(),
                profile: cred.profile.clone(),
                credential: s.credential.map(Arc::from),
                variant: Variant { user_id: s.user_id.map(Arc::from), dev_owner: s.dev.then_some(id) },
                expires,
                created: s.created,
            });
            st.restored.insert(session.token, session);
        }
        bound
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
        let a = s.mint("prod", None, None, Some(BoundProcess { pid: 1, start_time: None }));
        let b = s.mint("prod", None, None, Some(BoundProcess { pid: 2, start_time: None }));
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
        let moved = s.set_dev(t1.expose(), Some("api".into())).unwrap();
        assert_eq!(moved.variant.dev_owner, Some(one.id));
        assert_eq!(moved.credential.as_deref(), Some("api"));
        let mut ended = Vec::new();
        assert_eq!(s.get(t1.expose(), &mut ended).unwrap().variant.dev_owner, Some(one.id));
        assert!(s.get(t2.expose(), &mut ended).unwrap().variant.is_shared());
        // Back in production it is unpinned again, as its credential is.
        let back = s.set_dev(t1.expose(), None).unwrap();
        assert!(back.variant.is_shared());
        assert_eq!(back.credential, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_keeps_live_credentials_and_sessions_and_nothing_else() {
        let before = Sessions::default();
        let kept = before.mint("prod", Some("api"), Some(Duration::from_secs(600)), None);
        let short = before.mint("prod", None, Some(Duration::from_secs(5)), None);
        let (plain, plain_token) = before.open(&kept.credential, None, None, Some(SESSION_TTL));
        let (_, sudo_token) = before.open(&kept.credential, None, Some("42".into()), Some(SESSION_TTL));
        let (_, dev_token) = before.open(&kept.credential, None, None, Some(SESSION_TTL));
        before.set_dev(dev_token.expose(), Some("api".into())).unwrap();
        let (_, logged_out) = before.open(&kept.credential, None, None, Some(SESSION_TTL));
        before.close(logged_out.expose());
        before.open(&short.credential, None, None, Some(SESSION_TTL));
        let saved = before.to_saved();
        assert_eq!(saved.credentials.len(), 2);
        assert_eq!(saved.sessions.len(), 4);

        // The wall clock moves on while the agent is down; `short` ends meanwhile.
        let mut saved = saved;
        for c in &mut saved.credentials {
            c.expires_at = c.expires_at.map(|t| t - Duration::from_secs(10));
        }
        let after = Sessions::default();
        assert!(after.restore(saved).is_empty(), "nothing here is bound to a process");
        assert!(after.check(&short.credential.client_id, short.client_secret.expose()).is_none());
        let c = after.check(&kept.credential.client_id, kept.client_secret.expose()).unwrap();
        assert_eq!(c.credential.as_deref(), Some("api"));
        assert!(after.check(&kept.credential.client_id, "wrong").is_none());

        let mut ended = Vec::new();
        let s = after.get(plain_token.expose(), &mut ended).expect("the session's token works again");
        assert_eq!(s.profile.as_ref(), "prod");
        assert_eq!(s.created, plain.created);
        assert!(s.variant.is_shared());
        // Found once by its digest, then by its token like any session.
        assert!(!after.lock().restored.contains_key(&digest(plain_token.expose())));
        assert_eq!(after.get(plain_token.expose(), &mut ended).unwrap().id, s.id);
        let sudo = after.get(sudo_token.expose(), &mut ended).unwrap();
        assert_eq!(sudo.variant.user_id.as_deref(), Some("42"));
        let dev = after.get(dev_token.expose(), &mut ended).unwrap();
        assert_eq!(dev.variant.dev_owner, Some(dev.id), "still in dev, owning its own tokens");
        assert!(after.get(logged_out.expose(), &mut ended).is_none());
        assert!(after.get("not-a-token", &mut ended).is_none());
        // New ids do not collide with restored ones (a dev session's id owns tokens).
        let new = after.mint("prod", None, None, None);
        assert!(new.credential.id > dev.id && new.credential.id > sudo.id);
        // Its TTL still runs: the session ends when the credential's time is up.
        tokio::time::advance(Duration::from_secs(600)).await;
        assert!(after.get(plain_token.expose(), &mut ended).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn saved_times_too_far_off_are_dropped_not_a_crash() {
        let before = Sessions::default();
        let m = before.mint("prod", None, Some(MAX_CREDENTIAL_TTL), None);
        before.open(&m.credential, None, None, None);
        let mut saved = before.to_saved();
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        saved.credentials[0].expires_at = Some(far);
        let after = Sessions::default();
        after.restore(saved);
        assert!(after.check(&m.credential.client_id, m.client_secret.expose()).is_none());
        assert!(after.to_saved().sessions.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_restored_session_can_log_out_before_any_call() {
        let before = Sessions::default();
        let m = before.mint("prod", None, None, None);
        let (_, token) = before.open(&m.credential, None, None, None);
        let after = Sessions::default();
        after.restore(before.to_saved());
        assert!(after.close(token.expose()).is_some());
        assert!(after.get(token.expose(), &mut Vec::new()).is_none());
        assert!(after.to_saved().sessions.is_empty());
    }

    #[test]
    fn equal_only_when_equal() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
