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

#[path = "../tests/common/broker.rs"]
mod test_broker;
use criterion::{criterion_group, criterion_main, Criterion};
use looker_agent::broker::{Broker, IssuedToken, LiveToken};
use looker_agent::daemon::handler::Ctx;
use looker_agent::daemon::server::{self, Limits};
use looker_agent::secret::Secret;
use looker_emulator::{Emulator, EmulatorConfig, EmulatorUser};
use std::hint::black_box;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::time::Duration;
use test_broker::memory_broker;

const PROFILE: &str = "bench";
const TOKEN_PATH: &str = "/v1/profiles/bench/token";

/// A broker for one profile on an emulator, its token already cached.
fn warm_broker(rt: &tokio::runtime::Runtime) -> (Broker, Emulator) {
    rt.block_on(async {
        let emu = Emulator::start(EmulatorConfig::default()).await.expect("emulator");
        emu.add_credential("bench-id", "bench-secret", EmulatorUser::new("1", "Bench", "bench@example.com"));
        let url = emu.base_url();
        let broker = memory_broker(Some((PROFILE, &url)), &[("default", "bench-id", "bench-secret")]).await;
        broker.token(Some(PROFILE), None, Duration::from_secs(60)).await.expect("first token");
        (broker, emu)
    })
}

/// A keep-alive client connection that reconnects when the server says `Connection: close`
/// (the agent does after 100,000 requests on one connection).
struct Client {
    s: UnixStream,
    path: std::path::PathBuf,
    buf: Vec<u8>,
}

impl Client {
    fn new(path: &std::path::Path) -> Client {
        Client { s: UnixStream::connect(path).expect("connect"), path: path.to_path_buf(), buf: Vec::new() }
    }

    /// Sends `req` and reads one HTTP/1.1 answer with a Content-Length; returns its length.
    fn round_trip(&mut self, req: &[u8]) -> usize {
        self.s.write_all(req).expect("write");
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.s.read(&mut chunk).expect("read");
            assert!(n > 0, "connection closed");
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).expect("head");
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    if head.lines().any(|l| l.eq_ignore_ascii_case("connection: close")) {
                        self.s = UnixStream::connect(&self.path).expect("reconnect");
                    }
                    return self.buf.len();
                }
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

    let now = looker_agent::broker::Stamp::START;
    let issued = IssuedToken {
        token: Arc::new(LiveToken::new(Secret::new("a".repeat(40)), now, now, Duration::from_secs(3600))),
        profile: PROFILE.into(),
        credential: "default".into(),
        base_url: "https://example.looker.com".into(),
        issued: now,
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
        let ctx =
            Arc::new(Ctx::new(broker.clone(), rustix::process::getuid().as_raw(), None, Limits::default()));
        rt.spawn(server::serve(listener, ctx, stop_rx));
    }
    let req = format!("GET {TOKEN_PATH} HTTP/1.1\r\nHost: agent\r\n\r\n").into_bytes();
    let mut conn = Client::new(&sock);
    conn.round_trip(&req);
    assert!(
        conn.buf.starts_with(b"HTTP/1.1 200"),
        "token request failed: {}",
        String::from_utf8_lossy(&conn.buf)
    );
    let answer = conn.buf.clone();
    c.bench_function("socket/token_keepalive", |b| b.iter(|| conn.round_trip(&req)));

    let base = dir.path().join("pingpong.sock");
    pingpong_server(&base, answer);
    let mut pconn = Client::new(&base);
    c.bench_function("socket/pingpong_baseline", |b| b.iter(|| pconn.round_trip(&req)));

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
