//! The consent page in a real browser: headless Chromium (Debian's
//! `chromium`, installed by scripts/test.sh) opens the `/auth` URL through
//! a `$BROWSER`-style script, the page's auto-submit clicks the button, and
//! the browser follows the redirect to a loopback listener like the one
//! `lookerctl login` runs. Skips when Chromium is missing, except under
//! `CI=true`, where it fails.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use looker_emulator::Emulator;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// The `$BROWSER` script the lead's `lookerctl login` test can use as is:
/// a fresh profile, no network of its own, the DOM printed once loaded.
const BROWSER_SCRIPT: &str = r#"#!/bin/sh
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --dump-dom "$1"
"#;

/// Chromium: `$LOOKER_AGENT_CHROMIUM`, else `chromium` or
/// `chromium-browser` on the `PATH`.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LOOKER_AGENT_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
}

fn chromium_or_skip(test: &str) -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        let ci = matches!(std::env::var("CI").as_deref(), Ok("true" | "1"));
        assert!(
            !ci,
            "{test}: chromium is not installed (scripts/test.sh installs it); CI must run this test"
        );
        eprintln!("{test}: SKIPPED: chromium is not installed (scripts/test.sh installs it)");
    }
    found
}

/// A loopback listener answering every request with a small page and
/// sending the request targets of `/callback` (not `/favicon.ico`) on.
async fn callback_listener() -> (u16, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let target = head.split(' ').nth(1).unwrap_or("").to_owned();
                // Sent before answering, so it is there once the browser has the page.
                if target.starts_with("/callback") {
                    let _ = tx.send(target);
                }
                let body = "<html><body><h1 id=\"done\">Signed in to the test listener</h1></body></html>";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (port, rx)
}

/// Runs the `$BROWSER` script on `url`; its standard output (the DOM).
async fn browse(chromium: &Path, url: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("browser.sh");
    std::fs::write(&script, BROWSER_SCRIPT).expect("write script");
    let run = tokio::process::Command::new("sh")
        .arg(&script)
        .arg(url)
        .env("CHROMIUM", chromium)
        .env("TMPDIR", dir.path())
        .kill_on_drop(true)
        .output();
    let out =
        tokio::time::timeout(Duration::from_secs(120), run).await.expect("chromium finishes").expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "chromium: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn browser_emulator(port: u16) -> (Emulator, String) {
    let emu = emulator().await;
    let redirect = format!("http://127.0.0.1:{port}/callback");
    emu.register_oauth_app(GUID, &redirect);
    assert!(emu.set_oauth_user_id("7"));
    emu.set_consent_auto_submit(true);
    (emu, redirect)
}

fn query_of(target: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str(target.split_once('?').map_or("", |(_, q)| q)).expect("query")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_allows_and_the_code_signs_in() {
    let Some(chromium) = chromium_or_skip("headless_chromium_allows_and_the_code_signs_in") else {
        return;
    };
    let (port, mut callbacks) = callback_listener().await;
    let (emu, redirect) = browser_emulator(port).await;
    let (verifier, challenge) = pkce();

    let dom = browse(&chromium, &auth_url(&emu.base_url(), GUID, &redirect, "state-42", &challenge)).await;
    assert!(dom.contains("Signed in to the test listener"), "{dom}");
    let target = callbacks.try_recv().expect("the browser reached the callback");
    assert!(callbacks.try_recv().is_err(), "one callback only");
    let params = query_of(&target);
    assert_eq!(param(&params, "state"), Some("state-42"), "{target}");
    let code = param(&params, "code").expect("code");

    let resp = client()
        .post(format!("{}/api/token", emu.base_url()))
        .json(&serde_json::json!({
            "grant_type": "authorization_code",
            "client_id": GUID,
            "redirect_uri": redirect,
            "code": code,
            "code_verifier": verifier,
        }))
        .send()
        .await
        .expect("token");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    let user: Value = get(&emu, "/api/4.0/user", body["access_token"].as_str().expect("access"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(user["id"], "7");
    assert_eq!(emu.oauth_counters().consents_allowed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_denies_when_asked() {
    let Some(chromium) = chromium_or_skip("headless_chromium_denies_when_asked") else {
        return;
    };
    let (port, mut callbacks) = callback_listener().await;
    let (emu, redirect) = browser_emulator(port).await;
    let (_, challenge) = pkce();

    let url = format!("{}&auto=deny", auth_url(&emu.base_url(), GUID, &redirect, "s", &challenge));
    let dom = browse(&chromium, &url).await;
    assert!(dom.contains("Signed in to the test listener"), "{dom}");
    let params = query_of(&callbacks.try_recv().expect("the browser reached the callback"));
    assert_eq!(param(&params, "error"), Some("access_denied"));
    assert_eq!(param(&params, "code"), None);
    assert_eq!(emu.oauth_counters().consents_denied, 1);
}
