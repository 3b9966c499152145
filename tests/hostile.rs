//! Issue 7, hostile clients: every limit of the socket server, each tested with
//! small values on an in-process daemon (the same `Daemon::bind` + `run` the
//! binary uses), plus the parsers' resource bounds and a replay of the fuzz seeds.

mod common;

use looker_agent::daemon::server::Limits;
use looker_agent::daemon::{Daemon, DaemonOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// The fuzz targets' harness and checks, compiled here too so that the seeds replay.
#[path = "../fuzz/src/lib.rs"]
mod fuzzing;

/// A health check on a keep-alive connection.
const HEALTH: &[u8] = b"GET /v1/health HTTP/1.1\r\nHost: a\r\n\r\n";
/// A health check after which the server closes the connection.
const HEALTH_THEN_CLOSE: &[u8] = b"GET /v1/health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";

/// An in-process daemon with `limits`, no profiles, no D-Bus.
struct Agent {
    socket: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Agent {
    async fn start(limits: Limits) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("run").join("agent.sock");
        let mut opts = DaemonOptions::new(socket.clone());
        opts.limits = limits;
        opts.dbus = false;
        let daemon = Daemon::bind(opts).unwrap();
        let broker = common::broker::memory_broker(None, &[]).await;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            daemon
                .run(broker, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Agent { socket, stop: Some(tx), task: Some(task), _dir: dir }
    }

    async fn connect(&self) -> UnixStream {
        UnixStream::connect(&self.socket).await.unwrap()
    }

    /// One request on a fresh connection, answered in full.
    async fn healthy(&self) {
        let r = exchange(&self.socket, HEALTH_THEN_CLOSE).await;
        assert!(r.starts_with("HTTP/1.1 200") && r.contains("\"status\":\"ok\""), "not healthy: {r}");
    }

    /// A connection that was served once and is kept open, taking a connection slot.
    async fn held(&self) -> UnixStream {
        let mut s = self.connect().await;
        s.write_all(HEALTH).await.unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
        s
    }

    /// Asks on fresh connections, every `poll`, until one is served: a slot came
    /// free. Fails saying `why` not after 5 s.
    async fn served_again(&self, poll: Duration, why: &str) {
        let start = Instant::now();
        loop {
            if exchange(&self.socket, HEALTH_THEN_CLOSE).await.starts_with("HTTP/1.1 200") {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "{why}");
            tokio::time::sleep(poll).await;
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task.take().unwrap()).await.unwrap().unwrap();
    }
}

/// Sends `bytes` on a fresh connection and reads until the server closes it (15 s at most).
async fn exchange(socket: &Path, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(socket).await.unwrap();
    let _ = s.write_all(bytes).await;
    read_until_closed(&mut s, Duration::from_secs(15)).await.0
}

/// Reads until EOF (or a reset); returns the text and how long it took. Panics after `limit`.
async fn read_until_closed(s: &mut UnixStream, limit: Duration) -> (String, Duration) {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), s.read(&mut buf)).await {
            Err(_) => panic!(
                "connection still open after {limit:?}; read so far: {}",
                String::from_utf8_lossy(&out)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), start.elapsed())
}

fn limits() -> Limits {
    Limits::default()
}

/// Fails unless the server acted `took` after the start, at its `timeout`: not more
/// than 50 ms early (timer slack), not 2 s late.
fn assert_at_the_timeout(took: Duration, timeout: Duration, what: &str) {
    assert!(
        took >= timeout - Duration::from_millis(50) && took < timeout + Duration::from_secs(2),
        "{what} after {took:?}"
    );
}

/// Writes `bytes` one every 50 ms, after each looking for an answer; the trickle a
/// total timeout must cut. Returns what the server answered (empty when it closed
/// or refused further bytes), or `None` when it took every byte without a word.
async fn trickle(s: &mut UnixStream, bytes: impl IntoIterator<Item = u8>) -> Option<String> {
    for b in bytes {
        if s.write_all(&[b]).await.is_err() {
            return Some(String::new());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_line_and_headers_beyond_the_limit_are_refused() {
    let agent = Agent::start(Limits { max_header_bytes: 8192, ..limits() }).await;

    // Just under the limit: served.
    let mut ok = b"GET /v1/health HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Pad: ".to_vec();
    ok.extend(std::iter::repeat_n(b'a', 6000));
    ok.extend(b"\r\n\r\n");
    assert!(exchange(&agent.socket, &ok).await.starts_with("HTTP/1.1 200"));

    // A request line longer than the whole allowance.
    let mut long_line = b"GET /v1/".to_vec();
    long_line.extend(std::iter::repeat_n(b'x', 20_000));
    long_line.extend(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = exchange(&agent.socket, &long_line).await;
    assert!(r.starts_with("HTTP/1.1 414") || r.starts_with("HTTP/1.1 431"), "long request line: {r}");

    // Headers beyond it, in one header or in many.
    let mut big = b"GET /v1/health HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 20_000));
    big.extend(b"\r\n\r\n");
    let r = exchange(&agent.socket, &big).await;
    assert!(r.starts_with("HTTP/1.1 431"), "one big header: {r}");
    let mut many = b"GET /v1/health HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..2000 {
        many.extend(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend(b"\r\n");
    let r = exchange(&agent.socket, &many).await;
    assert!(r.starts_with("HTTP/1.1 431"), "many headers: {r}");

    // Headers that never end: refused once the allowance is used up, not buffered on.
    let mut s = agent.connect().await;
    s.write_all(b"GET /v1/health HTTP/1.1\r\n").await.unwrap();
    let chunk =
        b"X-Endless: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let mut sent = 0;
    while sent < 1 << 20 {
        if s.write_all(chunk).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    let (r, _) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(r.is_empty() || r.starts_with("HTTP/1.1 431"), "endless headers: {r}");
    agent.healthy().await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_beyond_the_limit_are_refused() {
    let agent = Agent::start(Limits { max_body: 1024, ..limits() }).await;
    let post = |len: usize, body: &[u8]| {
        let mut r = format!(
            "POST /v1/revoke HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    };
    // Within the limit (padding included): served.
    let mut body = br#"{"profile":null}"#.to_vec();
    body.extend(std::iter::repeat_n(b' ', 1000));
    let r = exchange(&agent.socket, &post(body.len(), &body)).await;
    assert!(r.starts_with("HTTP/1.1 200") && r.contains("\"revoked\":0"), "{r}");

    // Declared larger than the limit: refused without waiting for (or reading) it.
    let start = Instant::now();
    let r = exchange(&agent.socket, &post(10 << 20, b"{")).await;
    assert!(r.starts_with("HTTP/1.1 400") && r.contains("larger than 1024 bytes"), "{r}");
    assert!(start.elapsed() < Duration::from_secs(5));

    // Chunked, so no length is declared: cut off at the limit.
    let mut chunked =
        b"POST /v1/revoke HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..4 {
        chunked.extend(b"200\r\n");
        chunked.extend(std::iter::repeat_n(b' ', 0x200));
        chunked.extend(b"\r\n");
    }
    chunked.extend(b"0\r\n\r\n");
    let r = exchange(&agent.socket, &chunked).await;
    assert!(r.starts_with("HTTP/1.1 400") && r.contains("larger than 1024 bytes"), "{r}");
    agent.healthy().await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_connection_are_capped() {
    let agent = Agent::start(Limits { max_requests_per_connection: 3, ..limits() }).await;
    let mut s = agent.connect().await;
    s.write_all(&HEALTH.repeat(5)).await.unwrap();
    let (r, _) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert_eq!(r.matches("HTTP/1.1 200").count(), 3, "{r}");
    // The last one served says so, then the server closes.
    let last = r.rsplit("HTTP/1.1 200").next().unwrap();
    assert!(last.to_ascii_lowercase().contains("connection: close"), "{r}");
    agent.healthy().await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_fresh_or_kept_alive() {
    let timeout = Duration::from_millis(400);
    let agent = Agent::start(Limits { header_timeout: timeout, ..limits() }).await;

    // Connected, never a byte sent.
    let mut s = agent.connect().await;
    let (r, took) = read_until_closed(&mut s, Duration::from_secs(8)).await;
    assert!(r.is_empty() || r.starts_with("HTTP/1.1 408"), "{r}");
    assert_at_the_timeout(took, timeout, "closed");

    // One request answered, then idle on keep-alive: hyper's header timeout runs
    // again from the end of the answer, so the idle connection is closed too.
    let mut s = agent.connect().await;
    s.write_all(HEALTH).await.unwrap();
    let (r, took) = read_until_closed(&mut s, Duration::from_secs(8)).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_at_the_timeout(took, timeout, "kept-alive connection closed");
    agent.healthy().await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_cannot_stretch_the_header_timeout() {
    let timeout = Duration::from_millis(500);
    let agent = Agent::start(Limits { header_timeout: timeout, ..limits() }).await;
    // A byte every 50 ms, for ever: the timeout is a total for the headers, not per read.
    let mut s = agent.connect().await;
    let start = Instant::now();
    let request =
        b"GET /v1/health HTTP/1.1\r\nHost: a\r\nX-Slow: ".iter().copied().chain(std::iter::repeat(b'a'));
    let answer = trickle(&mut s, request.take(200)).await;
    let took = start.elapsed();
    let head = answer.unwrap_or_else(|| panic!("a slow loris kept its connection for {took:?}"));
    assert!(head.is_empty() || head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(took < timeout + Duration::from_secs(2), "closed only after {took:?}");

    // Many of them at once do not keep the agent from others.
    let mut lorises = Vec::new();
    for _ in 0..50 {
        let mut s = agent.connect().await;
        s.write_all(b"GET /v1/health HTTP/1.1\r\n").await.unwrap();
        lorises.push(s);
    }
    agent.healthy().await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_are_cut_at_the_body_timeout() {
    let timeout = Duration::from_millis(400);
    let agent = Agent::start(Limits { body_timeout: timeout, ..limits() }).await;
    let head = b"POST /v1/revoke HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";

    // Part of the body, then nothing.
    let mut s = agent.connect().await;
    s.write_all(head).await.unwrap();
    s.write_all(b"{\"prof").await.unwrap();
    let (r, took) = read_until_closed(&mut s, Duration::from_secs(8)).await;
    assert!(r.starts_with("HTTP/1.1 400") && r.contains("not received in time"), "{r}");
    assert_at_the_timeout(took, timeout, "answered");

    // A byte every 50 ms: the timeout is a total for the body, not per read.
    let mut s = agent.connect().await;
    s.write_all(head).await.unwrap();
    let start = Instant::now();
    let answer = trickle(&mut s, [b' '; 100]).await.unwrap_or_default();
    let took = start.elapsed();
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("not received in time"), "{answer}");
    assert!(took < timeout + Duration::from_secs(2), "a trickled body held the request for {took:?}");
    agent.healthy().await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_answered_503_and_the_cap_frees_up() {
    let agent = Agent::start(Limits { max_connections: 3, ..limits() }).await;
    // Three clients, each served once and holding its connection open.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(agent.held().await);
    }
    // A fourth is told why (a documented code, 503 upstream_unavailable) and closed, not served.
    let r = exchange(&agent.socket, HEALTH).await;
    assert!(r.starts_with("HTTP/1.1 503") && r.contains("\"upstream_unavailable\""), "beyond the cap: {r}");
    assert!(r.contains("limit of 3 connections") && !r.contains("\"status\":\"ok\""), "{r}");

    // One client leaves: its slot serves the next.
    drop(held.pop());
    agent.served_again(Duration::from_millis(20), "the freed slot was not reused").await;
    drop(held);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_cannot_hold_a_connection_for_ever() {
    let agent =
        Agent::start(Limits { write_timeout: Duration::from_millis(300), max_connections: 2, ..limits() })
            .await;
    // Pipelined requests, answers never read: the server's writes back up.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut s = agent.connect().await;
        let many = b"GET /v1/status HTTP/1.1\r\nHost: a\r\n\r\n".repeat(20_000);
        let _ = tokio::time::timeout(Duration::from_secs(2), s.write_all(&many)).await;
        stalled.push(s);
    }
    // Both slots are taken by stalled connections; they must not keep them for ever.
    agent.served_again(Duration::from_millis(100), "stalled readers hold every connection slot").await;
    drop(stalled);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_cannot_take_the_connection_slots() {
    // The system's python (not a per-user shim): uid 65534 must be able to run it.
    let python = Path::new("/usr/bin/python3");
    if rustix::process::geteuid().as_raw() != 0 || !python.exists() {
        eprintln!("skipped: needs root and /usr/bin/python3 to connect as another uid (CI has both)");
        return;
    }
    let agent = Agent::start(Limits { max_connections: 8, max_foreign_connections: 4, ..limits() }).await;
    // Let uid 65534 reach the socket, as a careless chmod would.
    let mut p = agent.socket.clone();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    while p.pop() && p.starts_with(agent._dir.path()) {
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    }
    // 40 idle connections and one asking twice on the same connection, as uid 65534.
    let script = r#"
import socket, sys, time
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX)
s.connect(path)
s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: a\r\n\r\n" * 2)
s.settimeout(5)
got = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
except Exception as e:
    got += b"<" + str(e).encode() + b">"
held = []
for _ in range(40):
    h = socket.socket(socket.AF_UNIX)
    h.connect(path)
    held.append(h)
sys.stdout.write(got.decode("latin-1"))
sys.stdout.write("\n--held--\n")
sys.stdout.flush()
time.sleep(3)
"#;
    let mut child = tokio::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(python)
        .args(["-c", script])
        .arg(&agent.socket)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("--held--") {
        let n = tokio::time::timeout(Duration::from_secs(20), stdout.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "the foreign client died: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen).into_owned();
    // One 403 per connection, then the server closes it; no data.
    assert!(text.starts_with("HTTP/1.1 403") && text.contains("forbidden"), "{text}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
    assert!(text.to_ascii_lowercase().contains("connection: close") && !text.contains("profiles"), "{text}");
    // While the other user's connections are open, the owner is served.
    for _ in 0..8 {
        agent.healthy().await;
    }
    let mut held = Vec::new();
    for _ in 0..7 {
        held.push(agent.held().await);
    }
    let _ = child.wait().await;
    drop(held);
    agent.stop().await;
}

/// A looker.ini that expands exponentially (`%(b)s` ten times, ten levels deep)
/// or holds 100,000 keys is refused or read in bounded time and memory.
#[test]
fn hostile_looker_ini_files_are_bounded() {
    use looker_agent::looker_ini::parse;
    let mut bomb = String::from("[L]\nbase_url=https://x.example\n");
    let keys = "abcdefghij";
    for (i, k) in keys.chars().enumerate().take(9) {
        let next = keys.chars().nth(i + 1).unwrap();
        bomb.push_str(&format!("{k}={}\n", format!("%({next})s").repeat(10)));
    }
    bomb.push_str("j=xxxxxxxxxx\n");
    let start = Instant::now();
    let e = parse(&bomb).unwrap_err().to_string();
    assert!(e.contains("expand to more than"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(30), "took {:?}", start.elapsed());

    let mut many = String::from("[L]\nbase_url=https://x.example\n");
    for i in 0..100_000 {
        many.push_str(&format!("k{i}=v\n"));
    }
    let start = Instant::now();
    assert_eq!(parse(&many).unwrap()[0].entries.len(), 100_001);
    assert!(start.elapsed() < Duration::from_secs(30), "took {:?}", start.elapsed());

    let mut wide = String::from("[DEFAULT]\n");
    for i in 0..30_000 {
        wide.push_str(&format!("k{i}=v\n"));
    }
    for i in 0..30_000 {
        wide.push_str(&format!("[s{i}]\n"));
    }
    let start = Instant::now();
    let e = parse(&wide).unwrap_err().to_string();
    assert!(e.contains("expand to more than"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(30), "took {:?}", start.elapsed());

    // A reference inside a secret is the secret's text: not shown in the error.
    let e = parse("[L]\nbase_url=https://x\nclient_secret=ab%(cdefgh)s\n").unwrap_err().to_string();
    assert!(!e.contains("cdefgh"), "{e}");
}

/// Every committed fuzz seed (and every crash found and fixed since) runs clean
/// through the fuzz targets' checks; the fuzzing itself is scripts/fuzz.sh.
#[test]
fn fuzz_corpus_replays_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let socket = fuzzing::SocketHarness::new().unwrap();
    let gateway = fuzzing::GatewayHarness::new().unwrap();
    let mut replayed = 0;
    for (target, check) in [
        ("config_parse", fuzzing::config as fn(&[u8]) -> Result<(), String>),
        ("looker_answer", fuzzing::looker_answer),
        ("looker_ini", fuzzing::looker_ini),
        ("gateway_state", fuzzing::gateway_state),
        ("socket_request", |_: &[u8]| Ok(())),
        ("gateway_request", |_: &[u8]| Ok(())),
    ] {
        let dir = root.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        assert!(!files.is_empty(), "no seeds in {}", dir.display());
        for f in files {
            let data = std::fs::read(&f).unwrap();
            let r = match target {
                "socket_request" => socket.run(&data).map(|_| ()),
                "gateway_request" => gateway.run(&data).map(|_| ()),
                _ => check(&data),
            };
            r.unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            replayed += 1;
        }
    }
    assert!(replayed >= 35);
}
