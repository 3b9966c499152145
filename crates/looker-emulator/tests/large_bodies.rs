//! Large bodies stream through the emulator: a download is generated as it
//! is read and an upload is checked as it arrives, so neither grows the
//! process by anything like its size. A test binary of its own, so no other
//! test's allocations blur the resident-set figures.

use std::time::Duration;

use looker_emulator::{Emulator, EmulatorConfig, EmulatorUser};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Big enough that holding it would show plainly in the resident set.
const SIZE: u64 = 256 * 1024 * 1024;
/// What the emulator (and the test's own buffers) may add while streaming.
const RSS_SLACK_KIB: u64 = 32 * 1024;

/// This process's resident set, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS value")
}

fn pattern_ok(offset: u64, chunk: &[u8]) -> bool {
    chunk.iter().enumerate().all(|(i, &b)| u64::from(b) == (offset + i as u64) % 251)
}

async fn token(emu: &Emulator) -> String {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(format!("{}/api/4.0/login", emu.base_url()))
        .form(&[("client_id", "big"), ("client_secret", "bodies")])
        .send()
        .await
        .expect("login");
    let body: Value = resp.json().await.expect("json");
    body["access_token"].as_str().expect("access_token").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways_in_bounded_memory() {
    let emu = Emulator::start(EmulatorConfig::default()).await.expect("start emulator");
    emu.add_credential("big", "bodies", EmulatorUser::new("5", "Big Bodies", "big@example.com"));
    let token = token(&emu).await;
    let client =
        reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(600)).build().expect("client");
    let before = rss_kib();

    // Download, read chunk by chunk.
    let mut resp = client
        .get(format!("{}/api/4.0/emulator/download?bytes={SIZE}", emu.base_url()))
        .header("Authorization", format!("token {token}"))
        .send()
        .await
        .expect("download");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.content_length(), Some(SIZE));
    let (mut got, mut ok, mut peak) = (0u64, true, before);
    while let Some(chunk) = resp.chunk().await.expect("download chunk") {
        // Checking every byte in a debug build is slow; a sample per chunk
        // catches a lost, repeated or shifted chunk.
        ok &= pattern_ok(got, &chunk[..chunk.len().min(509)]);
        got += chunk.len() as u64;
        if got % (16 * 1024 * 1024) < chunk.len() as u64 {
            peak = peak.max(rss_kib());
        }
    }
    assert_eq!(got, SIZE);
    assert!(ok, "the download is not the pattern");

    // Upload, chunked, over a raw connection: the emulator answers only
    // after the last byte, so it must have read it all as it came.
    let mut conn = TcpStream::connect(emu.addr()).await.expect("connect");
    let head = format!(
        "POST /api/4.0/emulator/upload HTTP/1.1\r\nHost: {}\r\nAuthorization: token {token}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        emu.addr()
    );
    conn.write_all(head.as_bytes()).await.expect("write head");
    let chunk: Vec<u8> = (0..251 * 1024).map(|i| (i % 251) as u8).collect();
    let mut sent = 0u64;
    while sent < SIZE {
        let n = usize::try_from((SIZE - sent).min(chunk.len() as u64)).expect("small");
        // Every chunk starts at a multiple of 251, so each is the pattern from phase 0.
        conn.write_all(format!("{n:x}\r\n").as_bytes()).await.expect("write");
        conn.write_all(&chunk[..n]).await.expect("write");
        conn.write_all(b"\r\n").await.expect("write");
        sent += n as u64;
        if sent % (16 * 1024 * 1024) < n as u64 {
            peak = peak.max(rss_kib());
        }
    }
    conn.write_all(b"0\r\n\r\n").await.expect("write");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.expect("read the answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{answer}: {e}"));
    assert_eq!(body, serde_json::json!({"bytes": SIZE, "pattern_ok": true}));

    let growth = peak.saturating_sub(before);
    assert!(
        growth <= RSS_SLACK_KIB,
        "the resident set grew by {growth} KiB while streaming {SIZE} bytes each way"
    );
    eprintln!("resident set growth while streaming {} MiB each way: {growth} KiB", SIZE >> 20);
}
