//! `lookerctl login` (issue 14, point 1): OAuth sign-in with the real lookerctl and
//! agent against the emulator's consent page and `POST /api/token`.
//!
//! - end to end in a real browser: headless Chromium (Debian's `chromium`) as
//!   `$BROWSER` approves on the consent page and follows the redirect to lookerctl's
//!   loopback listener; the agent's token acts as the user who approved; the refresh
//!   token is in the Secret Service and in no file, log or output;
//! - short tokens get refreshed from the grant (Looker rotating the refresh token at
//!   each use), and a restart after rotations still works;
//! - `kill -9` of the agent while a refresh is in flight loses nothing;
//! - a revoked grant says "sign in again: lookerctl login PROFILE" in errors and
//!   status, and signing in again fixes it without a restart;
//! - Deny, a redirect with the wrong state, and a name taken by an API key are clear
//!   refusals that store nothing.
//!
//! The non-browser tests drive the consent page with curl, as a browser would.

mod common;
#[path = "clients/real_clients.rs"]
mod real_clients;

use common::*;
use looker_agent::store::file::FileStore;
use looker_agent::store::{SecretKey, SecretStore};
use looker_emulator::{EmulatorUser, Faults, OneShotFault, TokenKind};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);
const GUID: &str = "looker-agent";
const USER: &str = "7";

/// The `$BROWSER` script: a fresh Chromium profile, no network of its own.
const BROWSER_SCRIPT: &str = r#"#!/bin/sh
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --dump-dom "$1" > "$BROWSER_DOM" 2>/dev/null
"#;

/// A loopback port free right now (the redirect URI must name a fixed port).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Setup {
    env: TestEnv,
    emu: BgEmulator,
    profile: String,
    port: u16,
}

impl Setup {
    fn new(store: &str, lifetime: Duration) -> Setup {
        let env = TestEnv::new(store);
        let emu = BgEmulator::start(lifetime, &[]);
        let profile = unique("oa");
        env.ctl_ok(&["profile", "add", &profile, "--base-url", &emu.url()], None);
        let port = free_port();
        emu.emu().register_oauth_app(GUID, &format!("http://127.0.0.1:{port}"));
        emu.emu().set_oauth_user(EmulatorUser::new(USER, "Ada Lovelace", "ada@example.com"));
        Setup { env, emu, profile, port }
    }

    fn login_args(&self) -> Vec<String> {
        vec!["login".into(), self.profile.clone(), "--port".into(), self.port.to_string()]
    }

    /// `lookerctl login … --no-browser` started; returns it and the link it printed.
    fn start_login(&self, extra: &[&str]) -> (Child, String, mpsc::Receiver<String>) {
        self.start_login_env(extra, &[])
    }

    /// [`Setup::start_login`] with extra environment variables.
    fn start_login_env(
        &self,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> (Child, String, mpsc::Receiver<String>) {
        let mut args = self.login_args();
        args.push("--no-browser".into());
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = self.env.ctl_command(&args, env, None);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // With --no-browser the link is the first line of standard output, alone.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut url = String::new();
        stdout.read_line(&mut url).unwrap();
        let url = url.trim().to_string();
        assert!(url.starts_with(&self.emu.url()) && url.contains("/auth?"), "the link: {url:?}");
        child.stdout = Some(stdout.into_inner());
        (child, url, rx)
    }

    /// What a browser does with the link: the consent page, the decision, the redirect.
    fn answer_consent(&self, url: &str, decision: &str) {
        let page = curl(&["-s", url]);
        let id = page
            .split("name=\"consent\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no consent form: {page}"))
            .to_string();
        let to = curl(&[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{redirect_url}",
            "--data",
            &format!("consent={id}&decision={decision}"),
            &format!("{}/auth/decision", self.emu.url()),
        ]);
        assert!(to.starts_with(&format!("http://127.0.0.1:{}", self.port)), "redirect: {to}");
        curl(&["-s", &to]);
    }

    fn login_ok(&self) -> String {
        let (child, url, rx) = self.start_login(&[]);
        self.answer_consent(&url, "allow");
        let out = finish(child, rx);
        assert!(out.status.success(), "login failed: {}\n{}", out.status, err(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn data_dir(&self) -> PathBuf {
        self.env.dir.path().join("data").join("looker-agent")
    }

    /// The refresh token the file store holds for `name`.
    fn stored(&self, name: &str) -> Option<String> {
        let store = FileStore::new(self.data_dir());
        let key = SecretKey::new(self.profile.as_str(), name);
        self.emu.rt.block_on(store.get(&key, GUID)).ok().map(|s| s.expose().to_string())
    }

    /// The one live refresh token at Looker.
    fn live_refresh_token(&self) -> String {
        let live = self.emu.emu().refresh_tokens();
        assert_eq!(live.len(), 1, "one live grant");
        live[0].refresh_token.clone()
    }

    fn token(&self) -> String {
        self.env.ctl_ok(&["token", &self.profile, "--min-ttl", "1"], None).trim().to_string()
    }

    fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.env.ctl_ok(&["status", "--json"], None)).unwrap()
    }

    fn cred_status(&self, name: &str) -> serde_json::Value {
        let st = self.status();
        let p =
            st["profiles"].as_array().unwrap().iter().find(|p| p["name"] == self.profile.as_str()).cloned();
        let p = p.unwrap_or_else(|| panic!("no profile in {st}"));
        p["credentials"].as_array().unwrap().iter().find(|c| c["name"] == name).cloned().unwrap()
    }
}

/// Waits for a [`Setup::start_login`] process; its output, stderr gathered from the reader.
fn finish(child: Child, rx: mpsc::Receiver<String>) -> Output {
    let mut out = child.wait_with_output().unwrap();
    // The reader thread ends at EOF, once the process has exited.
    out.stderr = rx.iter().collect::<Vec<_>>().join("\n").into_bytes();
    out
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn headless_chromium_signs_in_and_the_agent_acts_as_that_user() {
    let Some(chromium) = real_clients::chromium("headless_chromium_signs_in_and_the_agent_acts_as_that_user")
    else {
        return;
    };
    if !require_secret_service() {
        return;
    }
    let s = Setup::new("secret-service", HOUR);
    s.emu.emu().set_consent_auto_submit(true);
    let mut agent = s.env.start_agent(&[]);
    let script = s.env.dir.path().join("browser.sh");
    std::fs::write(&script, BROWSER_SCRIPT).unwrap();
    let dom = s.env.dir.path().join("dom.html");
    let browser = format!("sh {}", script.display());
    let args = s.login_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.env.ctl_with(
        &args,
        None,
        &[
            ("BROWSER", browser.as_str()),
            ("CHROMIUM", chromium.to_str().unwrap()),
            ("BROWSER_DOM", dom.to_str().unwrap()),
        ],
        None,
    );
    assert!(out.status.success(), "login failed: {}\n{}", out.status, err(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("Ada Lovelace"), "says who signed in: {stdout}");
    assert_eq!(s.emu.emu().oauth_counters().consents_allowed, 1);
    // The browser saw lookerctl's page (written once the browser exits).
    wait_for("chromium to write the page", Duration::from_secs(60), || read(&dom).contains("Signed in"));

    // The agent's token acts as the user who approved, and came from the grant.
    let token = s.token();
    let (status, body) = looker_user(&s.emu.url(), &token);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"id\":\"7\"") || body.contains("\"id\": \"7\""), "{body}");
    let info = s.emu.emu().token_info(&token).expect("live");
    assert_eq!(info.kind, TokenKind::OAuth { client_guid: GUID.into() });

    // The refresh token is in the Secret Service, and nowhere else.
    let refresh = s.live_refresh_token();
    let lookup = Command::new("secret-tool")
        .args(["lookup", "application", "looker-agent", "profile", &s.profile, "credential", "oauth"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&lookup.stdout),
        refresh,
        "the Secret Service holds the live refresh token"
    );
    let cfg = read(&s.env.config);
    assert!(cfg.contains("kind = \"oauth\"") && cfg.contains(GUID), "{cfg}");
    let st = s.cred_status("oauth");
    assert_eq!(st["kind"], "oauth", "{st}");
    agent.stop_with(15);
    assert!(!s.emu.emu().is_live(&token), "the agent revoked its token at shutdown");
    let log = agent.log_text();
    for (what, text) in [("agent log", log.as_str()), ("lookerctl output", &format!("{stdout}{}", err(&out)))]
    {
        assert!(!text.contains(&refresh), "the refresh token is in the {what}");
    }
    assert_nowhere_under(s.env.dir.path(), &refresh, "refresh token");
    let _ = Command::new("secret-tool")
        .args(["clear", "application", "looker-agent", "profile", &s.profile])
        .status();
}

#[test]
fn short_tokens_are_refreshed_from_the_rotating_grant_and_a_restart_still_works() {
    // Tokens of 5 s: the agent refreshes a set in use ahead of expiry, each time
    // with the refresh token Looker rotated last time.
    let s = Setup::new("file", Duration::from_secs(5));
    let out = s.login_ok();
    assert!(out.contains("signed in to"), "{out}");
    assert_eq!(s.stored("oauth").as_deref(), Some(s.live_refresh_token().as_str()));
    let mut agent = s.env.start_agent(&[]);
    let first = s.token();
    wait_for("three refreshes", Duration::from_secs(30), || {
        let _ = s.env.ctl(&["token", &s.profile, "--min-ttl", "1"], None);
        s.emu.emu().oauth_counters().refreshes >= 3
    });
    let next = s.token();
    assert_ne!(first, next, "a fresh token came from the grant");
    assert_eq!(looker_user(&s.emu.url(), &next).0, 200);
    assert_eq!(s.stored("oauth").as_deref(), Some(s.live_refresh_token().as_str()), "the store keeps up");
    // A hard stop and a new agent: the stored (rotated) refresh token still works.
    agent.stop_with(9);
    let _agent = s.env.start_agent(&[]);
    let after = s.token();
    assert_eq!(looker_user(&s.emu.url(), &after).0, 200);
    assert_eq!(s.stored("oauth").as_deref(), Some(s.live_refresh_token().as_str()));
}

#[test]
fn kill_9_during_a_refresh_loses_nothing() {
    let s = Setup::new("file", HOUR);
    s.login_ok();
    let mut agent = s.env.start_agent(&[]);
    let before = s.emu.emu().oauth_counters().refreshes;
    // Looker holds the refresh: the agent is killed while it is in flight.
    s.emu.emu().set_faults(Faults { login_delay: Duration::from_secs(30), ..Default::default() });
    let mut waiting = s.env.ctl_command(&["token", &s.profile], &[], None);
    let mut waiting = waiting.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for("the refresh to be in flight", Duration::from_secs(10), || {
        s.cred_status("oauth")["state"] == "logging_in"
    });
    agent.stop_with(9);
    let _ = waiting.wait();
    s.emu.emu().set_faults(Faults::default());
    let _agent = s.env.start_agent(&[]);
    let token = s.token();
    assert_eq!(looker_user(&s.emu.url(), &token).0, 200, "still signed in");
    assert_eq!(s.emu.emu().oauth_counters().refreshes, before + 1);
    assert_eq!(s.stored("oauth").as_deref(), Some(s.live_refresh_token().as_str()));
}

#[test]
fn a_revoked_grant_says_sign_in_again_and_signing_in_again_fixes_it() {
    let s = Setup::new("file", HOUR);
    s.login_ok();
    let _agent = s.env.start_agent(&[]);
    s.token();
    assert_eq!(s.emu.emu().revoke_oauth_grants(USER), 1);
    s.env.ctl_ok(&["revoke", &s.profile], None);
    let out = s.env.ctl(&["token", &s.profile], None);
    assert_eq!(out.status.code(), Some(5), "{}", err(&out));
    let msg = err(&out);
    assert!(msg.contains(&format!("sign in again: lookerctl login {}", s.profile)), "{msg}");
    let st = s.cred_status("oauth");
    assert_eq!(st["state"], "rejected", "{st}");
    assert!(
        st["last_error"].as_str().unwrap_or_default().contains(&format!("lookerctl login {}", s.profile)),
        "{st}"
    );
    // Signing in again (same name) replaces the grant; the running agent uses it.
    s.login_ok();
    let token = s.token();
    assert_eq!(looker_user(&s.emu.url(), &token).0, 200);
}

#[test]
fn an_answer_lost_after_rotation_is_reported_as_sign_in_again() {
    // The one window no client can close: Looker rotated the refresh token and its
    // answer never arrived. The agent must say what to do, not loop or crash.
    let s = Setup::new("file", HOUR);
    s.login_ok();
    let _agent = s.env.start_agent(&[]);
    s.emu.emu().fail_next_oauth_token(OneShotFault::DropAfterApplying);
    let first = s.env.ctl(&["token", &s.profile], None);
    assert!(!first.status.success(), "the lost answer fails this request");
    // The next attempt (after the backoff) presents the old, rotated-away token.
    s.env.ctl_ok(&["revoke", &s.profile], None);
    wait_for("the agent to report the lost grant", Duration::from_secs(30), || {
        let _ = s.env.ctl(&["token", &s.profile], None);
        s.cred_status("oauth")["state"] == "rejected"
    });
    let out = s.env.ctl(&["token", &s.profile], None);
    assert_eq!(out.status.code(), Some(5), "{}", err(&out));
    assert!(err(&out).contains("lookerctl login"), "{}", err(&out));
}

#[test]
fn deny_stores_nothing_and_says_so() {
    let s = Setup::new("file", HOUR);
    let (child, url, rx) = s.start_login_env(&[], &[("SSH_CONNECTION", "10.0.0.1 5000 10.0.0.2 22")]);
    s.answer_consent(&url, "deny");
    let out = finish(child, rx);
    let forward = format!("ssh -L {}:127.0.0.1:{}", s.port, s.port);
    assert!(err(&out).contains(&forward), "tells SSH users which port to forward: {}", err(&out));
    assert_eq!(out.status.code(), Some(5), "{}", err(&out));
    assert!(err(&out).contains("access_denied") && err(&out).contains("nothing was stored"), "{}", err(&out));
    assert!(!read(&s.env.config).contains("oauth"), "{}", read(&s.env.config));
    assert_eq!(s.stored("oauth"), None);
}

#[test]
fn a_redirect_with_another_state_is_turned_away_and_the_sign_in_goes_on() {
    let s = Setup::new("file", HOUR);
    let (child, url, rx) = s.start_login(&["--name", "work"]);
    let stray = curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://127.0.0.1:{}/?code=forged&state=not-this-one", s.port),
    ]);
    assert_eq!(stray, "400");
    s.answer_consent(&url, "allow");
    let out = finish(child, rx);
    assert!(out.status.success(), "{}", err(&out));
    assert_eq!(s.stored("work").as_deref(), Some(s.live_refresh_token().as_str()));
    let listed = s.env.ctl_ok(&["credential", "list", &s.profile, "--json"], None);
    assert!(listed.contains("\"kind\": \"oauth\""), "{listed}");
    // `credential verify` uses the grant (and keeps the rotated refresh token).
    let verified = s.env.ctl_ok(&["credential", "verify", &s.profile, "work"], None);
    assert!(verified.contains("Ada Lovelace"), "{verified}");
    assert_eq!(s.stored("work").as_deref(), Some(s.live_refresh_token().as_str()));
}

#[test]
fn a_name_taken_by_an_api_key_is_refused_before_the_browser() {
    let s = Setup::new("file", HOUR);
    s.emu.emu().add_credential("id-1", "secret-1", EmulatorUser::new("10", "Svc", "svc@example.com"));
    s.env.ctl_ok(&["credential", "add", &s.profile, "oauth", "--client-id", "id-1"], Some("secret-1"));
    let mut args = s.login_args();
    args.push("--no-browser".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.env.ctl(&args, None);
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));
    assert!(err(&out).contains("is an API key"), "{}", err(&out));
    assert!(!err(&out).contains("/auth?"), "refused before any link: {}", err(&out));
    // A rotation of an OAuth set is refused as such.
    let rot = s.env.ctl(&["credential", "rotate", &s.profile, "nope"], None);
    assert_ne!(rot.status.code(), Some(0));
}

#[test]
fn an_oauth_set_takes_over_when_the_api_key_before_it_is_rejected() {
    let s = Setup::new("file", HOUR);
    s.emu.emu().add_credential("id-1", "secret-1", EmulatorUser::new("10", "Svc", "svc@example.com"));
    s.env.ctl_ok(&["credential", "add", &s.profile, "key", "--client-id", "id-1"], Some("secret-1"));
    s.login_ok();
    let _agent = s.env.start_agent(&[]);
    let first = s.token();
    assert!(matches!(s.emu.emu().token_info(&first).unwrap().kind, TokenKind::ApiLogin { .. }));
    // The key is deleted at Looker: the next login fails over to the grant.
    s.emu.emu().remove_credential("id-1");
    s.env.ctl_ok(&["revoke", &s.profile], None);
    let next = s.token();
    assert_eq!(s.emu.emu().token_info(&next).unwrap().kind, TokenKind::OAuth { client_guid: GUID.into() });
    let (status, body) = looker_user(&s.emu.url(), &next);
    assert_eq!(status, 200);
    assert!(body.contains("Ada Lovelace"), "{body}");
}
