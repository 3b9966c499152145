//! In-process benchmarks of the token hot path (criterion):
//!
//! - `broker/cache_hit`: [`Broker::token`] when the token is cached;
//! - `token/to_json`: the token object written for the socket API;
//! - `socket/token_keepalive` vs `socket/pingpong_baseline`: one GET token over a
//!   keep-alive Unix-socket connection through the real accept loop, hyper and the
//!   handler, against a bare thread that answers the same bytes (the floor);
//! - `cli/parse_args`: lookerctl's argument parsing, part of its start-up.
//!
//! `cargo bench --bench hot_path` (scripts/bench.sh runs it with short times).

use criterion::{criterion_group, criterion_main, Criterion};
use looker_agent::broker::{Broker, BrokerSettings, IssuedToken, LiveToken, RealUpstream};
use looker_agent::config::{Config, Credential, Profile};
use looker_agent::daemon::handler::Ctx;
use looker_agent::daemon::server::{self, Limits};
use looker_agent::emulator::{Emulator, EmulatorConfig, EmulatorUser};
use looker_agent::secret::Secret;
use looker_agent::store::memory::MemoryStore;
use looker_agent::store::{SecretKey, SecretStore};
use std::hint::black_box;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::time::Duration;

const PROFILE: &str = "bench";
const TOKEN_PATH: &str = "/v1/profiles/bench/token";

/// A broker for one profile on an emulator, its token already cached.
fn warm_broker(rt: &tokio::runtime::Runtime) -> (Broker, Emulator) {
    rt.block_on(async {
        let emu = Emulator::start(EmulatorConfig::default()).await.expect("emulator");
        emu.add_credential("bench-id", "bench-secret", EmulatorUser::new("1", "Bench", "bench@example.com"));
        let store = MemoryStore::new();
        store
            .set(&SecretKey::new(PROFILE, "default"), "bench-id", &Secret::new("bench-secret"))
            .await
            .expect("store");
        let mut profile = Profile::new(emu.base_url());
        profile.credentials.push(Credential { name: "default".into(), client_id: "bench-id".into() });
        let mut config = Config::default();
        config.profiles.insert(PROFILE.into(), profile);
        let broker = Broker::new(
            config,
            Arc::new(store),
            "memory".into(),
            Arc::new(RealUpstream),
            BrokerSettings::default(),
        );
        broker.token(Some(PROFILE), None, Duration::from_secs(60)).await.expect("first token");
        (broker, emu)
    })
}

/// Sends `req` and reads one HTTP/1.1 answer with a Content-Length; returns its length.
fn round_trip(s: &mut UnixStream, req: &[u8], buf: &mut Vec<u8>) -> usize {
    s.write_all(req).expect("write");
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).expect("head");
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return buf.len();
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A thread per connection answering every request with `answer` (the raw floor).
fn pingpong_server(path: &std::path::Path, answer: Vec<u8>) {
    let listener = UnixListener::bind(path).expect("bind baseline");
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::with_capacity(4096);
                let mut chunk = [0u8; 4096];
                loop {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    if find(&buf, b"\r\n\r\n").is_some() {
                        buf.clear();
                        if conn.write_all(&answer).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
}

fn benches(c: &mut Criterion) {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (broker, _emu) = warm_broker(&rt);

    c.bench_function("broker/cache_hit", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(broker.token(Some(PROFILE), None, Duration::from_secs(60)).await.expect("token"))
        })
    });

    let now = tokio::time::Instant::now();
    let issued = IssuedToken {
        token: Arc::new(LiveToken::new(Secret::new("a".repeat(40)), now, now, Duration::from_secs(3600))),
        profile: PROFILE.into(),
        credential: "default".into(),
        base_url: "https://example.looker.com".into(),
    };
    c.bench_function("token/to_json", |b| b.iter(|| black_box(issued.to_json(now))));

    // The real accept loop and handler on a temporary socket.
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("agent.sock");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    {
        let _guard = rt.enter();
        let std_listener = UnixListener::bind(&sock).expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let listener = tokio::net::UnixListener::from_std(std_listener).expect("listener");
        let ctx = Arc::new(Ctx {
            broker: broker.clone(),
            uid: rustix::process::getuid().as_raw(),
            reload: None,
            limits: Limits::default(),
        });
        rt.spawn(server::serve(listener, ctx, stop_rx));
    }
    let req = format!("GET {TOKEN_PATH} HTTP/1.1\r\nHost: agent\r\n\r\n").into_bytes();
    let mut conn = UnixStream::connect(&sock).expect("connect");
    let mut buf = Vec::with_capacity(4096);
    round_trip(&mut conn, &req, &mut buf);
    assert!(buf.starts_with(b"HTTP/1.1 200"), "token request failed: {}", String::from_utf8_lossy(&buf));
    let answer = buf.clone();
    c.bench_function("socket/token_keepalive", |b| b.iter(|| round_trip(&mut conn, &req, &mut buf)));

    let base = dir.path().join("pingpong.sock");
    pingpong_server(&base, answer);
    let mut pconn = UnixStream::connect(&base).expect("connect baseline");
    c.bench_function("socket/pingpong_baseline", |b| b.iter(|| round_trip(&mut pconn, &req, &mut buf)));

    c.bench_function("cli/parse_args", |b| {
        b.iter(|| black_box(looker_agent::cli::args::parse_from(["lookerctl", "token", "dev"]).is_ok()))
    });

    let _ = stop_tx.send(true);
}

criterion_group! {
    name = hot_path;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(hot_path);
