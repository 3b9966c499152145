//! Issue 3 end to end: the real daemon against the emulator's fault knobs.
//! (The timing logic itself is tested deterministically in tests/broker.rs.)

mod common;

use common::*;
use looker_emulator::Faults;
use std::time::{Duration, Instant};

fn status_json(env: &TestEnv) -> serde_json::Value {
    serde_json::from_str(&env.ctl_ok(&["status", "--json"], None)).unwrap()
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn kill_dash_nine_then_restart_leaves_no_live_token() {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("k1", "s1"), ("k2", "s2")]);
    let env = TestEnv::new("file");
    env.add_profile("one", &emu.url(), &[("a", "k1", "s1")]);
    env.add_profile("two", &emu.url(), &[("b", "k2", "s2")]);
    let mut agent = env.start_agent(&[]);
    let t1 = env.ctl_ok(&["token", "one"], None);
    let t2 = env.ctl_ok(&["token", "two"], None);
    assert_eq!(emu.emu().counters().live_tokens, 2);
    let (status, _) = agent.stop_with(9);
    assert!(!status.success());
    // The dead agent revoked nothing.
    assert!(emu.emu().is_live(t1.trim()) && emu.emu().is_live(t2.trim()));
    // The token values rest only in the 0600 journal of the file store.
    let agent2 = env.start_agent(&[]);
    let start = Instant::now();
    wait_until("orphans revoked", Duration::from_secs(5), || emu.emu().counters().live_tokens == 0);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(!agent2.log_text().contains(t1.trim()));
    // The journal is empty again once they are revoked.
    let journal = env.dir.path().join("data/looker-agent/journal");
    wait_until("journal cleared", Duration::from_secs(5), || {
        std::fs::read_dir(&journal).map(|d| d.count() == 0).unwrap_or(true)
    });
}

#[test]
fn outage_keeps_serving_the_cache_and_status_says_why() {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("o1", "s1")]);
    let env = TestEnv::new("file");
    env.add_profile("prod", &emu.url(), &[("c", "o1", "s1")]);
    let _agent = env.start_agent(&[]);
    let t = env.ctl_ok(&["token", "prod"], None);
    emu.emu().set_faults(Faults { login_status: Some(503), ..Default::default() });
    // Cached token still served while Looker fails.
    assert_eq!(env.ctl_ok(&["token", "prod"], None), t);
    // Once the cached token is gone (a client saw a 401), requests fail fast
    // with "unavailable" (exit 6) instead of hanging.
    let client = looker_agent::client::AgentClient::new(&env.socket);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(client.invalidate(Some("prod"), t.trim())).unwrap();
    let start = Instant::now();
    let out = env.ctl(&["token", "prod"], None);
    assert_eq!(out.status.code(), Some(6), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("503"));
    assert!(start.elapsed() < Duration::from_secs(10));
    let v = status_json(&env);
    let c = &v["profiles"][0]["credentials"][0];
    assert!(c["last_error"].as_str().unwrap().contains("503"), "{c}");
    assert!(matches!(c["state"].as_str(), Some("backing_off") | Some("logging_in")), "{c}");
    // Looker heals: a fresh login works again within a backoff step.
    emu.emu().set_faults(Faults::default());
    wait_until("recovery", Duration::from_secs(10), || env.ctl(&["token", "prod"], None).status.success());
}

#[test]
fn first_set_rejected_second_serves_and_status_names_the_first() {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("r1", "right"), ("r2", "s2")]);
    let env = TestEnv::new("file");
    env.add_profile("prod", &emu.url(), &[("first", "r1", "wrong"), ("second", "r2", "s2")]);
    let _agent = env.start_agent(&[]);
    let v: serde_json::Value =
        serde_json::from_str(&env.ctl_ok(&["token", "prod", "--format", "json"], None)).unwrap();
    assert_eq!(v["credential"], "second");
    let s = status_json(&env);
    let first = &s["profiles"][0]["credentials"][0];
    assert_eq!(first["state"], "rejected");
    assert!(first["rejected_since"].is_string());
    assert!(first["last_error"].as_str().unwrap().contains("Not found"), "{first}");
    let human = env.ctl_ok(&["status"], None);
    assert!(human.contains("rejected") && !human.contains(v["access_token"].as_str().unwrap()));
}

#[test]
fn hand_edited_config_is_picked_up_and_removed_sets_revoked() {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("h1", "s1"), ("h2", "s2")]);
    let env = TestEnv::new("file");
    env.add_profile("prod", &emu.url(), &[("a", "h1", "s1"), ("b", "h2", "s2")]);
    let _agent = env.start_agent(&[]);
    let ta = env.ctl_ok(&["token", "prod", "--credential", "a"], None);
    let tb = env.ctl_ok(&["token", "prod", "--credential", "b"], None);
    // Remove set `a` with an editor-style rewrite (no lookerctl, no signal).
    let text = read(&env.config);
    let start = text.find("[[profiles.prod.credentials]]").unwrap();
    let second = text[start + 1..].find("[[profiles.prod.credentials]]").unwrap() + start + 1;
    let edited = format!("{}{}", &text[..start], &text[second..]);
    let tmp = env.config.with_extension("tmp");
    std::fs::write(&tmp, edited).unwrap();
    std::fs::rename(&tmp, &env.config).unwrap();
    wait_until("revocation of the removed set", Duration::from_secs(10), || !emu.emu().is_live(ta.trim()));
    assert!(emu.emu().is_live(tb.trim()));
    let out = env.ctl(&["token", "prod", "--credential", "a"], None);
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn sighup_reloads_and_broken_edit_keeps_the_old_config() {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("g1", "s1")]);
    let env = TestEnv::new("file");
    env.add_profile("prod", &emu.url(), &[("a", "g1", "s1")]);
    let agent = env.start_agent(&[]);
    let good = read(&env.config);
    std::fs::write(&env.config, format!("{good}\nthis is not toml\n")).unwrap();
    unsafe_kill(agent.pid(), 1);
    // The event, not a pause: the reload ran (and refused the broken file)...
    wait_until("reload error logged", Duration::from_secs(5), || {
        agent.log_text().contains("keeping the previous one")
    });
    // ...and the agent still serves with the previous config.
    let out = env.ctl(&["token", "prod"], None);
    assert!(
        out.status.success(),
        "{:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        agent.log_text()
    );
}

/// One raw HTTP request over the agent socket; returns (status, body).
fn raw_request(socket: &std::path::Path, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn sigterm_with_a_login_in_flight_answers_503_and_leaves_no_live_token() {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("p1", "s1")]);
    let env = TestEnv::new("file");
    env.add_profile("prod", &emu.url(), &[("c", "p1", "s1")]);
    let mut agent = env.start_agent(&["--revoke-deadline", "1s"]);
    // Looker answers the login only after the revoke deadline has passed.
    emu.emu().set_faults(Faults { login_delay: Duration::from_secs(4), ..Default::default() });
    let socket = env.socket.clone();
    let client = std::thread::spawn(move || {
        raw_request(
            &socket,
            "GET /v1/profiles/prod/token HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n",
        )
    });
    wait_until("the login parked at Looker", Duration::from_secs(10), || {
        status_json(&env)["profiles"][0]["credentials"][0]["state"] == "logging_in"
    });
    unsafe_kill(agent.pid(), 15);
    // The waiting client gets its answer at once, not an empty reply.
    let (status, body) = client.join().unwrap();
    assert_eq!(status, 503, "{body}\n{}", agent.log_text());
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "upstream_unavailable", "{v}");
    let (exit, took) = agent.stop_with(0);
    assert!(exit.success(), "{exit:?}");
    // The agent waited for the late login (journaled on arrival) and revoked its token.
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert_eq!(emu.emu().counters().logins, 1, "{}", agent.log_text());
    assert_eq!(emu.emu().counters().live_tokens, 0, "{}", agent.log_text());
    emu.emu().set_faults(Faults::default());
    let next = env.start_agent(&[]);
    assert_eq!(emu.emu().counters().live_tokens, 0, "{}", next.log_text());
    let journal = env.dir.path().join("data/looker-agent/journal");
    assert_eq!(std::fs::read_dir(&journal).map(|d| d.count()).unwrap_or(0), 0);
}

#[test]
fn a_complete_journal_temp_file_left_by_a_crash_is_revoked() {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("t1", "s1")]);
    let env = TestEnv::new("file");
    env.add_profile("prod", &emu.url(), &[("c", "t1", "s1")]);
    let mut agent = env.start_agent(&[]);
    let t = env.ctl_ok(&["token", "prod"], None).trim().to_string();
    agent.stop_with(9);
    // The crash hit between writing the entry and renaming it into place, twenty
    // minutes ago: a complete entry under a temporary name.
    let journal = env.dir.path().join("data/looker-agent/journal");
    let entry = std::fs::read_dir(&journal).unwrap().next().unwrap().unwrap().path();
    let tmp = journal.join(".tmp-Xy12Zq");
    std::fs::rename(&entry, &tmp).unwrap();
    let st = std::process::Command::new("touch").args(["-d", "20 minutes ago"]).arg(&tmp).status().unwrap();
    assert!(st.success());
    assert!(emu.emu().is_live(&t));
    let next = env.start_agent(&[]);
    wait_until("the token named by the temp file revoked", Duration::from_secs(10), || {
        !emu.emu().is_live(&t)
    });
    wait_until("the temp file removed", Duration::from_secs(5), || !tmp.exists());
    assert!(!next.log_text().contains(&t));
}
