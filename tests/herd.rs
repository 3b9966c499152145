//! The cold herd (issue 8): 1,000 clients ask at once for a token nobody has yet,
//! while Looker takes 50 ms to answer a login. Exactly one login may happen, and
//! every client gets that one token. Counts, not times (scripts/bench.sh times it).

mod common;

use common::BgEmulator;
use looker_agent::daemon::{Daemon, DaemonOptions};
use looker_emulator::Faults;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const CLIENTS: usize = 1000;

/// Connects, retrying while the listen backlog is full (a non-blocking connect says EAGAIN).
async fn connect(path: &std::path::Path) -> UnixStream {
    for _ in 0..500 {
        match UnixStream::connect(path).await {
            Ok(s) => return s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::sleep(Duration::from_millis(2)).await
            }
            Err(e) => panic!("connect {}: {e}", path.display()),
        }
    }
    panic!("connect {}: backlog stayed full", path.display());
}

/// One GET over the connection; returns the status and body.
async fn get(s: &mut UnixStream, path: &str) -> (u16, String) {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: agent\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "agent closed the connection");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                return (status, body[..len].to_string());
            }
        }
    }
}

/// Client and server ends of a thousand connections live in this one process.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    let want = lim.maximum.map_or(8192, |m| m.min(8192));
    if lim.current.is_none_or(|c| c < want) {
        let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(want), maximum: lim.maximum });
    }
}

#[test]
fn thousand_cold_requests_make_one_login() {
    raise_fd_limit();
    let bg = BgEmulator::start(Duration::from_secs(3600), &[("herd-id", "herd-secret")]);
    bg.emu().set_faults(Faults { login_delay: Duration::from_millis(50), ..Faults::default() });

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let url = bg.url();
    let broker = rt.block_on(common::broker::memory_broker(
        Some(("herd", &url)),
        &[("default", "herd-id", "herd-secret")],
    ));

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = {
        let _guard = rt.enter();
        let mut opts = DaemonOptions::new(socket.clone());
        opts.dbus = false;
        let daemon = Daemon::bind(opts).unwrap();
        rt.spawn(daemon.run(broker, async move {
            let _ = stop_rx.await;
        }))
    };

    // Clients on their own runtime: every connection open first, then all ask at once.
    let clients = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let answers = clients.block_on(async {
        let mut conns = Vec::with_capacity(CLIENTS);
        for _ in 0..CLIENTS {
            conns.push(connect(&socket).await);
        }
        let go = Arc::new(tokio::sync::Barrier::new(CLIENTS));
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|mut s| {
                let go = go.clone();
                tokio::spawn(async move {
                    go.wait().await;
                    get(&mut s, "/v1/profiles/herd/token").await
                })
            })
            .collect();
        let mut out = Vec::with_capacity(CLIENTS);
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });

    assert_eq!(answers.len(), CLIENTS);
    let mut tokens = std::collections::BTreeSet::new();
    for (status, body) in &answers {
        assert_eq!(*status, 200, "a client got {status}: {body}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        tokens.insert(v["access_token"].as_str().unwrap().to_string());
    }
    assert_eq!(tokens.len(), 1, "every client must get the one token");
    let c = bg.emu().counters();
    assert_eq!(c.logins, 1, "1,000 cold requests must make exactly one login: {c:?}");
    assert_eq!(c.failed_logins, 0, "{c:?}");

    let _ = stop_tx.send(());
    let summary = rt.block_on(daemon).unwrap().unwrap();
    assert_eq!(summary.revoked.revoked, 1, "the one token is revoked at shutdown");
    assert_eq!(bg.emu().counters().live_tokens, 0);
}
