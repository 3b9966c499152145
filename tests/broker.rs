//! The broker's scheduling logic, deterministic under `tokio::time::pause()`:
//! an in-process fake Looker on tokio's clock (the emulator is checked end to
//! end elsewhere; here time itself is the subject).

mod common;

use async_trait::async_trait;
use looker_agent::broker::{Broker, BrokerError, BrokerSettings, TestClock, UpstreamFactory};
use looker_agent::config::{Config, Credential, Profile};
use looker_agent::looker::{LoginToken, LookerApi, LookerError, LookerUser};
use looker_agent::secret::Secret;
use looker_agent::store::memory::MemoryStore;
use looker_agent::store::{SecretKey, SecretStore};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A Looker on tokio's clock: counts logins, tracks live tokens.
#[derive(Default)]
struct Fake {
    state: Mutex<FakeState>,
}

#[derive(Default)]
struct FakeState {
    lifetime: u64,
    login_delay: Duration,
    logout_delay: Duration,
    fail: Option<LookerError>,
    secrets: HashMap<String, String>,
    live: HashMap<String, Instant>,
    logins: u64,
    attempts: u64,
    attempt_times: Vec<Instant>,
    max_live: usize,
    n: u64,
}

impl Fake {
    fn new(lifetime: u64, creds: &[(&str, &str)]) -> Arc<Fake> {
        let f = Fake::default();
        {
            let mut st = f.state.lock().unwrap();
            st.lifetime = lifetime;
            for (id, s) in creds {
                st.secrets.insert(id.to_string(), s.to_string());
            }
        }
        Arc::new(f)
    }
    fn live_now(&self) -> usize {
        let mut st = self.state.lock().unwrap();
        let now = Instant::now();
        st.live.retain(|_, exp| *exp > now);
        st.live.len()
    }
    fn logins(&self) -> u64 {
        self.state.lock().unwrap().logins
    }
    fn attempts(&self) -> u64 {
        self.state.lock().unwrap().attempts
    }
    fn set_fail(&self, e: Option<LookerError>) {
        self.state.lock().unwrap().fail = e;
    }
    fn set_delay(&self, d: Duration) {
        self.state.lock().unwrap().login_delay = d;
    }
    fn set_logout_delay(&self, d: Duration) {
        self.state.lock().unwrap().logout_delay = d;
    }
    fn is_live(&self, t: &str) -> bool {
        let st = self.state.lock().unwrap();
        st.live.get(t).is_some_and(|e| *e > Instant::now())
    }
}

#[async_trait]
impl LookerApi for Fake {
    async fn login(&self, client_id: &str, secret: &Secret) -> Result<LoginToken, LookerError> {
        let delay = {
            let mut st = self.state.lock().unwrap();
            st.attempts += 1;
            st.attempt_times.push(Instant::now());
            st.login_delay
        };
        tokio::time::sleep(delay).await;
        let mut st = self.state.lock().unwrap();
        if let Some(e) = &st.fail {
            return Err(e.clone());
        }
        if st.secrets.get(client_id).map(String::as_str) != Some(secret.expose()) {
            return Err(LookerError::Rejected { status: 404, message: "Not found".into() });
        }
        st.n += 1;
        st.logins += 1;
        let token = format!("tok{}", st.n);
        let now = Instant::now();
        let exp = now + Duration::from_secs(st.lifetime);
        st.live.insert(token.clone(), exp);
        st.live.retain(|_, e| *e > now);
        st.max_live = st.max_live.max(st.live.len());
        Ok(LoginToken {
            access_token: Secret::new(token),
            token_type: "Bearer".into(),
            expires_in: st.lifetime,
        })
    }
    async fn set_workspace(&self, _: &Secret, _: &str) -> Result<(), LookerError> {
        Ok(())
    }
    async fn logout(&self, t: &Secret) -> Result<(), LookerError> {
        let delay = self.state.lock().unwrap().logout_delay;
        tokio::time::sleep(delay).await;
        self.state.lock().unwrap().live.remove(t.expose());
        Ok(())
    }
    async fn alive(&self) -> Result<(), LookerError> {
        Ok(())
    }
    async fn user(&self, _t: &Secret) -> Result<LookerUser, LookerError> {
        Ok(LookerUser::default())
    }
}

struct FakeUpstream(Arc<Fake>);
impl UpstreamFactory for FakeUpstream {
    fn api_for(&self, _p: &Profile) -> Result<Arc<dyn LookerApi>, LookerError> {
        Ok(self.0.clone())
    }
}

fn profile(creds: &[(&str, &str)]) -> Profile {
    Profile {
        timeout: Some(Duration::from_secs(10)),
        credentials: creds.iter().map(|(n, id)| Credential::new(*n, *id)).collect(),
        ..Profile::new("https://looker.example.com")
    }
}

/// A broker over one profile `prod` whose credential sets are `(name, client_id, secret)`.
async fn broker(fake: &Arc<Fake>, creds: &[(&str, &str, &str)]) -> Broker {
    let b = broker_on(fake, creds, Arc::new(MemoryStore::new())).await;
    b.spawn_maintenance();
    b
}

/// [`broker`] on `store`, without maintenance (a daemon starts its own).
async fn broker_on(fake: &Arc<Fake>, creds: &[(&str, &str, &str)], store: Arc<MemoryStore>) -> Broker {
    let cfg = prod_config(&store, creds).await;
    Broker::new(cfg, store, "memory".into(), Arc::new(FakeUpstream(fake.clone())), BrokerSettings::default())
}

/// Stores the secrets of the credential sets `(name, client_id, secret)` in `store`
/// and returns a config with the one profile `prod` that names them.
async fn prod_config(store: &MemoryStore, creds: &[(&str, &str, &str)]) -> Config {
    for (n, id, s) in creds {
        store.set(&SecretKey::new("prod", *n), id, &Secret::new(*s)).await.unwrap();
    }
    let mut cfg = Config::default();
    cfg.profiles
        .insert("prod".into(), profile(&creds.iter().map(|(n, id, _)| (*n, *id)).collect::<Vec<_>>()));
    cfg
}

const S: fn(u64) -> Duration = Duration::from_secs;

#[tokio::test(start_paused = true)]
async fn min_ttl_is_honoured_with_40s_tokens() {
    let fake = Fake::new(40, &[("id", "sec")]);
    let b = broker(&fake, &[("c", "id", "sec")]).await;
    let first = b.token(Some("prod"), None, S(30)).await.unwrap();
    tokio::time::sleep(S(15)).await;
    let second = b.token(Some("prod"), None, S(30)).await.unwrap();
    assert!(second.expires_in(b.now()) >= 30, "only {}s left", second.expires_in(b.now()));
    assert_ne!(first.token.token.expose(), second.token.token.expose());
    // A min_ttl beyond what a token can live is a bad request, not a login loop.
    let e = b.token(Some("prod"), None, S(41)).await.unwrap_err();
    assert!(matches!(e, BrokerError::BadRequest(_)), "{e:?}");
}

#[tokio::test(start_paused = true)]
async fn herd_on_a_cold_credential_makes_one_login() {
    let fake = Fake::new(3600, &[("id", "sec")]);
    fake.set_delay(Duration::from_millis(50));
    let b = broker(&fake, &[("c", "id", "sec")]).await;
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move {
                b.token(Some("prod"), None, S(60)).await.map(|t| t.token.token.expose().to_string())
            })
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for t in tasks {
        seen.insert(t.await.unwrap().unwrap());
    }
    assert_eq!(seen.len(), 1);
    assert_eq!(fake.logins(), 1);
}

#[tokio::test(start_paused = true)]
async fn steady_clients_never_wait_and_few_tokens_live() {
    let fake = Fake::new(20, &[("id", "sec")]);
    fake.set_delay(Duration::from_millis(300));
    let b = broker(&fake, &[("c", "id", "sec")]).await;
    b.token(Some("prod"), None, S(5)).await.unwrap(); // warm up
    let mut max_live = 0;
    for _ in 0..45 {
        tokio::time::sleep(S(1)).await;
        let start = Instant::now();
        let t = b.token(Some("prod"), None, S(5)).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO, "a client waited on a login");
        assert!(fake.is_live(t.token.token.expose()));
        max_live = max_live.max(fake.live_now());
    }
    let logins = fake.logins();
    assert!((2..=6).contains(&logins), "{logins} logins");
    assert!(max_live <= 2, "{max_live} live tokens");
    assert!(fake.state.lock().unwrap().max_live <= 2);
}

#[tokio::test(start_paused = true)]
async fn outage_serves_the_cache_backs_off_and_recovers() {
    let fake = Fake::new(600, &[("id", "sec")]);
    let b = broker(&fake, &[("c", "id", "sec")]).await;
    let t0 = b.token(Some("prod"), None, S(60)).await.unwrap();
    fake.set_fail(Some(LookerError::Unavailable { reason: "HTTP 503".into(), retry_after: None }));
    // Refresh falls due at 2/3 of the ~570 s usable life; Looker is down from now on.
    let outage_start = Instant::now();
    for _ in 0..700 {
        tokio::time::sleep(S(1)).await;
        // The cached token still satisfies min_ttl=60 until ~510 s: it keeps being served.
        if Instant::now().duration_since(outage_start) < S(500) {
            let t = b.token(Some("prod"), None, S(60)).await.unwrap();
            assert_eq!(t.token.token.expose(), t0.token.token.expose());
        }
    }
    // Attempts are spaced by exponential backoff (≤ one per step): far fewer than one a second.
    let attempts = fake.attempts() - 1;
    assert!((2..=12).contains(&attempts), "{attempts} attempts in the outage");
    let times = fake.state.lock().unwrap().attempt_times.clone();
    let status = b.status();
    let c = &status.profiles[0].credentials[0];
    assert!(c.last_error.as_deref().unwrap_or("").contains("503"), "{c:?}");
    // Heal: a new token within one backoff step (≤ 5 min cap).
    fake.set_fail(None);
    let healed = Instant::now();
    let mut recovered = None;
    for _ in 0..400 {
        tokio::time::sleep(S(1)).await;
        if fake.logins() >= 2 {
            recovered = Some(Instant::now().duration_since(healed));
            break;
        }
    }
    let took = recovered.expect("no login after Looker healed");
    let last_gap = times.windows(2).last().map(|w| w[1] - w[0]).unwrap_or(S(1));
    assert!(took <= S(300).max(last_gap * 2), "recovered after {took:?}");
    assert!(b.token(Some("prod"), None, S(60)).await.is_ok());
}

/// Each backoff step is a random point in the upper half of its doubling step, so the
/// retry rate has a floor under it (full jitter can draw zero, again and again), and a
/// `Retry-After` is honoured up to the cap.
#[test]
fn backoff_steps_double_with_jitter_in_their_upper_half() {
    let s = BrokerSettings::default();
    for failures in 1..=12u32 {
        let ceiling = (S(1) * 2u32.pow(failures - 1)).min(S(300));
        for _ in 0..200 {
            let d = s.backoff(failures, None);
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "step {failures}: {d:?} outside {:?}..={ceiling:?}",
                ceiling / 2
            );
        }
    }
    assert!(s.backoff(1, Some(S(30))) >= S(30));
    assert!(s.backoff(1, Some(S(3600))) <= S(300));
}

#[tokio::test(start_paused = true)]
async fn outage_without_cache_fails_fast_and_does_not_hammer() {
    let fake = Fake::new(600, &[("id", "sec")]);
    fake.set_fail(Some(LookerError::Unavailable {
        reason: "connect refused".into(),
        retry_after: Some(S(30)),
    }));
    let b = broker(&fake, &[("c", "id", "sec")]).await;
    let e = b.token(Some("prod"), None, S(60)).await.unwrap_err();
    assert!(matches!(e, BrokerError::Unavailable { .. }));
    // During the Retry-After window further requests fail at once without a login attempt.
    for _ in 0..20 {
        let start = Instant::now();
        assert!(b.token(Some("prod"), None, S(60)).await.is_err());
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
    assert_eq!(fake.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn rejected_set_fails_over_to_the_next() {
    let fake = Fake::new(3600, &[("id1", "right"), ("id2", "sec2")]);
    let b = broker(&fake, &[("first", "id1", "wrong"), ("second", "id2", "sec2")]).await;
    let t = b.token(Some("prod"), None, S(60)).await.unwrap();
    assert_eq!(&*t.credential, "second");
    // The rejected set is not retried on every request.
    let before = fake.attempts();
    for _ in 0..10 {
        assert_eq!(&*b.token(Some("prod"), None, S(60)).await.unwrap().credential, "second");
    }
    assert_eq!(fake.attempts(), before);
    let st = b.status();
    let first = &st.profiles[0].credentials[0];
    assert_eq!(first.state.as_str(), "rejected");
    assert!(first.last_error.as_deref().unwrap().contains("Not found"), "{first:?}");
    // Asking for the rejected set by name gets its rejection.
    let e = b.token(Some("prod"), Some("first"), S(60)).await.unwrap_err();
    assert!(matches!(e, BrokerError::Rejected { ref message, .. } if message == "Not found"), "{e:?}");
}

#[tokio::test(start_paused = true)]
async fn fifty_invalidations_of_one_token_cause_one_login() {
    let fake = Fake::new(3600, &[("id", "sec")]);
    let b = broker(&fake, &[("c", "id", "sec")]).await;
    let t = b.token(Some("prod"), None, S(60)).await.unwrap();
    let tok = t.token.token.expose().to_string();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let b = b.clone();
            let tok = tok.clone();
            tokio::spawn(async move {
                b.invalidate(Some("prod"), &tok).unwrap();
                b.token(Some("prod"), None, S(60)).await.unwrap().token.token.expose().to_string()
            })
        })
        .collect();
    let mut news = std::collections::BTreeSet::new();
    for task in tasks {
        news.insert(task.await.unwrap());
    }
    assert_eq!(news.len(), 1);
    assert!(!news.contains(&tok));
    assert_eq!(fake.logins(), 2);
    tokio::time::sleep(S(1)).await;
    assert!(!fake.is_live(&tok), "the invalidated token was not revoked");
}

#[tokio::test(start_paused = true)]
async fn removed_credential_set_is_revoked_on_reload() {
    let fake = Fake::new(3600, &[("id1", "s1"), ("id2", "s2")]);
    let b = broker(&fake, &[("a", "id1", "s1"), ("b", "id2", "s2")]).await;
    let ta = b.token(Some("prod"), Some("a"), S(60)).await.unwrap();
    let tb = b.token(Some("prod"), Some("b"), S(60)).await.unwrap();
    let mut cfg = b.config();
    cfg.profiles.get_mut("prod").unwrap().credentials.retain(|c| c.name == "b");
    assert_eq!(b.reload(cfg), 1);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!fake.is_live(ta.token.token.expose()));
    assert!(fake.is_live(tb.token.token.expose()), "an unchanged set kept its token");
    assert_eq!(
        b.token(Some("prod"), None, S(60)).await.unwrap().token.token.expose(),
        tb.token.token.expose()
    );
}

/// A dev-workspace login still running when a reload removes its set: the reload's
/// sweep has passed by the time it ends, so the login itself sees the set gone and
/// revokes its token instead of keeping it live until shutdown.
#[tokio::test(start_paused = true)]
async fn a_variant_login_that_outlives_its_set_is_revoked() {
    let fake = Fake::new(3600, &[("id1", "s1"), ("id2", "s2")]);
    let b = broker(&fake, &[("a", "id1", "s1"), ("b", "id2", "s2")]).await;
    fake.set_delay(S(5));
    let dev = looker_agent::broker::Variant { user_id: None, dev_owner: Some(7) };
    let login = {
        let (b, dev) = (b.clone(), dev.clone());
        tokio::spawn(async move { b.variant_token("prod", "a", &dev, S(60)).await })
    };
    tokio::time::sleep(S(1)).await;
    assert_eq!(fake.attempts(), 1, "the dev login is running");
    let mut cfg = b.config();
    cfg.profiles.get_mut("prod").unwrap().credentials.retain(|c| c.name == "b");
    b.reload(cfg);
    let e = login.await.unwrap().unwrap_err();
    assert!(matches!(e, BrokerError::Unavailable { .. }), "{e:?}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(fake.logins(), 1);
    assert_eq!(fake.live_now(), 0, "the dev token of the removed set is still live");
}

#[tokio::test(start_paused = true)]
async fn unused_sets_are_not_refreshed() {
    let fake = Fake::new(600, &[("id", "sec")]);
    let b = broker(&fake, &[("c", "id", "sec")]).await;
    b.token(Some("prod"), None, S(60)).await.unwrap();
    // Past the 1 h window nobody asked: no more logins, however long we wait.
    tokio::time::sleep(S(3 * 3600)).await;
    let n = fake.logins();
    tokio::time::sleep(S(3 * 3600)).await;
    assert_eq!(fake.logins(), n);
    assert!(n <= 12, "{n} logins for an hour of use");
}

#[tokio::test(start_paused = true)]
async fn shutdown_revokes_everything_including_logins_in_flight() {
    let fake = Fake::new(3600, &[("id", "sec"), ("id2", "s2")]);
    fake.set_delay(Duration::from_millis(500));
    let b = broker(&fake, &[("c", "id", "sec"), ("d", "id2", "s2")]).await;
    b.token(Some("prod"), Some("c"), S(60)).await.unwrap();
    let b2 = b.clone();
    let pending = tokio::spawn(async move { b2.token(Some("prod"), Some("d"), S(60)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.close();
    let summary = b.revoke_all(S(5)).await;
    assert_eq!(summary.revoked, 2, "{summary:?}");
    assert_eq!(fake.live_now(), 0);
    let _ = pending.await;
    assert!(matches!(b.token(Some("prod"), None, S(60)).await, Err(BrokerError::ShuttingDown)));
}

#[tokio::test(start_paused = true)]
async fn a_get_invalidate_loop_cannot_hammer_looker() {
    let fake = Fake::new(3600, &[("id", "sec")]);
    let b = broker(&fake, &[("c", "id", "sec")]).await;
    let start = Instant::now();
    for _ in 0..20 {
        let t = b.token(Some("prod"), None, S(60)).await.unwrap();
        b.invalidate(Some("prod"), t.token.token.expose()).unwrap();
    }
    // 20 logins, spaced at least a second apart by the broker.
    assert_eq!(fake.logins(), 20);
    assert!(start.elapsed() >= S(19), "{:?}", start.elapsed());
}

/// A broker over one credential set on an injected clock (so that a test can suspend
/// the machine), the profile kept fresh or not; with its fake Looker and the clock.
async fn broker_on_clock(always_fresh: bool) -> (Arc<Fake>, Arc<TestClock>, Broker) {
    let fake = Fake::new(3600, &[("id", "sec")]);
    let clock = TestClock::new();
    let store = MemoryStore::new();
    let mut cfg = prod_config(&store, &[("c", "id", "sec")]).await;
    cfg.profiles.get_mut("prod").unwrap().always_fresh = always_fresh;
    let b = Broker::with_clock(
        cfg,
        Arc::new(store),
        "memory".into(),
        Arc::new(FakeUpstream(fake.clone())),
        BrokerSettings::default(),
        clock.clone(),
    );
    b.spawn_maintenance();
    (fake, clock, b)
}

#[tokio::test(start_paused = true)]
async fn a_night_in_suspend_does_not_hand_out_a_dead_token() {
    let (fake, clock, b) = broker_on_clock(false).await;
    let t0 = b.token(Some("prod"), None, S(60)).await.unwrap();
    // The lid closes for eight hours: tokio's (monotonic) time stays put.
    let before = Instant::now();
    clock.suspend(S(8 * 3600));
    assert_eq!(Instant::now(), before);
    // Status claims no time left for the dead token.
    let c = &b.status().profiles[0].credentials[0];
    assert_eq!(c.expires_in, None, "{c:?}");
    assert_ne!(c.state.as_str(), "fresh", "{c:?}");
    // The next client gets a new token, with its real time left.
    let t1 = b.token(Some("prod"), None, S(60)).await.unwrap();
    assert_ne!(t1.token.token.expose(), t0.token.token.expose(), "handed out a token that died in suspend");
    assert_eq!(fake.logins(), 2);
    assert!((3500..=3570).contains(&t1.expires_in(b.now())), "{}", t1.expires_in(b.now()));
}

#[tokio::test(start_paused = true)]
async fn a_short_suspend_shortens_the_time_left_it_reports() {
    let (_fake, clock, b) = broker_on_clock(false).await;
    let t0 = b.token(Some("prod"), None, S(60)).await.unwrap();
    clock.suspend(S(50 * 60));
    // 3570 s of usable life less 3000 s asleep: about 570 s left, not 3570.
    let left = t0.expires_in(b.now());
    assert!((560..=570).contains(&left), "{left}");
    let c = &b.status().profiles[0].credentials[0];
    assert!(c.expires_in.is_some_and(|s| (560..=570).contains(&s)), "{c:?}");
    // Cached for a small min_ttl; a client wanting ten minutes gets a fresh token.
    assert_eq!(
        b.token(Some("prod"), None, S(60)).await.unwrap().token.token.expose(),
        t0.token.token.expose()
    );
    let t1 = b.token(Some("prod"), None, S(600)).await.unwrap();
    assert_ne!(t1.token.token.expose(), t0.token.token.expose());
    assert!(t1.expires_in(b.now()) >= 600);
}

#[tokio::test(start_paused = true)]
async fn maintenance_rechecks_soon_after_a_resume() {
    let (fake, clock, b) = broker_on_clock(true).await;
    let t0 = b.token(Some("prod"), None, S(60)).await.unwrap();
    tokio::time::sleep(S(1)).await;
    // Asleep past the refresh point (two thirds of the life): on waking, the kept-fresh
    // set is refreshed without waiting for a client, within one maintenance period.
    clock.suspend(S(50 * 60));
    tokio::time::sleep(looker_agent::broker::maintenance::MAX_SLEEP + S(1)).await;
    assert_eq!(fake.logins(), 2, "no refresh after the resume");
    let c = &b.status().profiles[0].credentials[0];
    assert!(c.expires_in.is_some_and(|s| s > 3000), "{c:?}");
    let t1 = b.token(Some("prod"), None, S(60)).await.unwrap();
    assert_ne!(t1.token.token.expose(), t0.token.token.expose());
}

#[tokio::test(start_paused = true)]
async fn a_client_waiting_on_a_login_is_answered_at_close() {
    let fake = Fake::new(3600, &[("id", "sec")]);
    fake.set_delay(S(5));
    let b = broker(&fake, &[("c", "id", "sec")]).await;
    let b2 = b.clone();
    let waiting = tokio::spawn(async move { b2.token(Some("prod"), None, S(60)).await });
    tokio::time::sleep(S(1)).await;
    let closed_at = Instant::now();
    b.close();
    let e = waiting.await.unwrap().unwrap_err();
    assert_eq!(e, BrokerError::ShuttingDown);
    assert_eq!(e.code(), looker_agent::protocol::ErrorCode::UpstreamUnavailable);
    assert_eq!(Instant::now(), closed_at, "the client waited for the login");
    // The login still finishes and its token is revoked.
    let s = b.revoke_all(S(10)).await;
    assert_eq!((s.revoked, fake.logins(), fake.live_now()), (1, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn brokers_sharing_a_store_recover_only_dead_owners_entries() {
    let fake = Fake::new(3600, &[("id", "sec")]);
    let store = Arc::new(MemoryStore::new());
    let cfg = prod_config(&store, &[("c", "id", "sec")]).await;
    let make = || {
        Broker::new(
            cfg.clone(),
            store.clone(),
            "memory".into(),
            Arc::new(FakeUpstream(fake.clone())),
            BrokerSettings::default(),
        )
    };
    let first = make();
    let first_lock = first.lock_journal().await;
    let t = first.token(Some("prod"), None, S(60)).await.unwrap();
    // A second agent on the same store finds the first one's entry and leaves it.
    let second = make();
    let _second_lock = second.lock_journal().await;
    assert!(second.orphaned_tokens().await.is_empty());
    // An entry without an owner (an older version wrote it) is an orphan.
    let legacy = looker_agent::store::JournalEntry {
        id: "legacy".into(),
        profile: "prod".into(),
        credential: "c".into(),
        base_url: "https://looker.example.com".into(),
        token: Secret::new("old-token"),
        expires_at_unix: 0,
        owner: None,
    };
    store.journal_add(&legacy).await.unwrap();
    let orphans = second.orphaned_tokens().await;
    assert_eq!(orphans.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["legacy"]);
    second.clone().revoke_orphans(orphans).await;
    // Once the first is gone (its lock released), its entry is an orphan and revoked.
    drop(first_lock);
    let orphans = second.orphaned_tokens().await;
    assert_eq!(orphans.len(), 1);
    assert_eq!(orphans[0].owner.as_deref(), Some(first.instance()));
    assert_eq!(second.clone().revoke_orphans(orphans).await.revoked, 1);
    assert!(!fake.is_live(t.token.token.expose()));
    assert!(store.journal_list().await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// Shutdown: background work awaited, logins waited for on a notification, and
// each step with a deadline of its own (issue 12 point 3).

#[tokio::test(start_paused = true)]
async fn shutdown_wakes_the_moment_a_login_in_flight_ends() {
    let fake = Fake::new(3600, &[("id", "sec")]);
    // Not a multiple of any polling period: a timer would wake later than this.
    let login = Duration::from_millis(503);
    fake.set_delay(login);
    let b = broker(&fake, &[("c", "id", "sec")]).await;
    let started = Instant::now();
    let b2 = b.clone();
    let pending = tokio::spawn(async move { b2.token(Some("prod"), None, S(60)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.close();
    let summary = b.revoke_all(S(5)).await;
    assert_eq!(started.elapsed(), login, "revoke_all returned late: it did not wake on the login's end");
    assert_eq!((summary.revoked, summary.failed), (1, 0), "{summary:?}");
    assert_eq!((fake.logins(), fake.live_now()), (1, 0));
    assert_eq!(pending.await.unwrap().unwrap_err(), BrokerError::ShuttingDown);
}

/// A running daemon: what it returns when it stops.
type DaemonRun =
    tokio::task::JoinHandle<Result<looker_agent::daemon::RunSummary, looker_agent::daemon::DaemonError>>;

/// The daemon over `broker` (no D-Bus unless `bus` is given), stopped by the returned sender.
fn run_daemon(
    dir: &tempfile::TempDir,
    broker: Broker,
    bus: Option<String>,
) -> (tokio::sync::oneshot::Sender<()>, DaemonRun) {
    let mut opts = looker_agent::daemon::DaemonOptions::new(dir.path().join("agent.sock"));
    opts.dbus = bus.is_some();
    if let Some(address) = bus {
        opts.bus_address = looker_agent::daemon::bus::BusAddress::Address(address);
    }
    let daemon = looker_agent::daemon::Daemon::bind(opts).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(daemon.run(broker, async move {
        let _ = stopped.await;
    }));
    (stop, run)
}

/// A daemon told to stop while a background revocation is in flight: a client saw
/// the daemon's one token rejected, and Looker takes `logout_delay` to revoke it.
struct StoppedDuringRevocation {
    fake: Arc<Fake>,
    store: Arc<MemoryStore>,
    /// The token being revoked.
    tok: String,
    /// When the daemon was told to stop.
    stopping: Instant,
    run: DaemonRun,
    /// Holds the daemon's socket until the test ends.
    _dir: tempfile::TempDir,
}

async fn stop_during_revocation(logout_delay: Duration) -> StoppedDuringRevocation {
    let fake = Fake::new(3600, &[("id", "sec")]);
    let store = Arc::new(MemoryStore::new());
    let b = broker_on(&fake, &[("c", "id", "sec")], store.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (stop, run) = run_daemon(&dir, b.clone(), None);
    let t = b.token(Some("prod"), None, S(60)).await.unwrap();
    let tok = t.token.token.expose().to_string();
    fake.set_logout_delay(logout_delay);
    b.invalidate(Some("prod"), &tok).unwrap();
    let stopping = Instant::now();
    stop.send(()).unwrap();
    StoppedDuringRevocation { fake, store, tok, stopping, run, _dir: dir }
}

#[tokio::test(start_paused = true)]
async fn shutdown_awaits_a_background_revocation_in_flight() {
    let StoppedDuringRevocation { fake, store, tok, stopping, run, _dir } =
        stop_during_revocation(S(3)).await;
    let summary = run.await.unwrap().unwrap();
    assert_eq!(summary.revoked.revoked, 0, "the agent itself held no token any more");
    assert!(!fake.is_live(&tok), "the agent exited with a revocation still running");
    assert!(store.journal_list().await.unwrap().is_empty(), "the journal entry outlived its revocation");
    assert_eq!(stopping.elapsed(), S(3), "shutdown did not end the moment the revocation did");
}

#[tokio::test(start_paused = true)]
async fn a_background_revocation_is_cut_at_the_revoke_deadline() {
    // Looker hangs on the logout far beyond the revoke deadline.
    let StoppedDuringRevocation { fake, store, tok, stopping, run, _dir } =
        stop_during_revocation(S(600)).await;
    run.await.unwrap().unwrap();
    assert_eq!(
        stopping.elapsed(),
        looker_agent::daemon::DEFAULT_REVOKE_DEADLINE,
        "the background revocation was neither awaited nor cut at the revoke deadline"
    );
    // Cut: the token is left to the journal, so the next start revokes it.
    assert!(fake.is_live(&tok));
    let left = store.journal_list().await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].token.expose(), tok);
}

/// Real time until the agent owns its name on a real bus; then paused time, so the
/// stalled bus and the slow logout are measured exactly.
#[tokio::test]
async fn a_stalled_bus_does_not_eat_into_the_revoke_deadline() {
    use futures_util::StreamExt;
    use looker_agent::daemon::bus::BUS_NAME;
    let bus = common::PrivateBus::start();
    let fake = Fake::new(3600, &[("id", "sec")]);
    let b = broker_on(&fake, &[("c", "id", "sec")], Arc::new(MemoryStore::new())).await;
    let dir = tempfile::tempdir().unwrap();
    let (stop, run) = run_daemon(&dir, b.clone(), Some(bus.address.clone()));
    {
        let conn = zbus::connection::Builder::address(bus.address.as_str()).unwrap().build().await.unwrap();
        let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
        let mut owners = dbus.receive_name_owner_changed_with_args(&[(0, BUS_NAME)]).await.unwrap();
        if !dbus.name_has_owner(BUS_NAME.try_into().unwrap()).await.unwrap() {
            tokio::time::timeout(Duration::from_secs(30), owners.next())
                .await
                .expect("the agent never took its bus name");
        }
    }
    let t = b.token(Some("prod"), None, S(60)).await.unwrap();
    tokio::time::pause();
    // The bus stops answering, so releasing the name takes its whole timeout (2 s);
    // Looker takes 4 s to revoke, within the 5 s revoke deadline only if that
    // deadline is the revocation's own.
    bus.stall();
    fake.set_logout_delay(S(4));
    let stopping = Instant::now();
    stop.send(()).unwrap();
    let summary = run.await.unwrap().unwrap();
    assert_eq!((summary.revoked.revoked, summary.revoked.failed), (1, 0), "{summary:?}");
    assert!(!fake.is_live(t.token.token.expose()));
    // Both steps ran in full, one after the other (the real socket I/O may let
    // paused time step past a few milliseconds of other timers).
    let took = stopping.elapsed();
    assert!(took >= S(2) + S(4) && took < S(7), "{took:?}");
}
