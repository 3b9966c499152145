//! Issue 7, secrets: a whole life cycle (profile and credential added, tokens over
//! the socket and D-Bus, exec, invalidate, a proactive refresh, revoke, SIGTERM)
//! with the daemon logging at `RUST_LOG=trace` and lookerctl run with it too. The
//! client secret and every token the agent obtained must appear nowhere: not in
//! the log, not in any lookerctl stderr, not in the stdout of commands that do
//! not exist to print a token, and not in the daemon's environment or argv.

mod common;

use common::*;
use looker_agent::client::AgentClient;
use std::process::Output;
use std::time::Duration;

/// Everything a scenario printed that must not hold a secret, with where it came from.
#[derive(Default)]
struct Seen {
    texts: Vec<(String, String)>,
    tokens: Vec<String>,
}

impl Seen {
    /// Records a lookerctl run: stderr always; stdout unless it is the token's own output.
    fn run(&mut self, what: &str, out: &Output, stdout_carries_token: bool) -> String {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        self.texts.push((format!("{what} (stderr)"), String::from_utf8_lossy(&out.stderr).into_owned()));
        if !stdout_carries_token {
            self.texts.push((format!("{what} (stdout)"), stdout.clone()));
        }
        assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
        stdout
    }

    fn token(&mut self, t: &str) -> String {
        let t = t.trim().to_string();
        assert_eq!(t.len(), 40, "not a token: {t:?}");
        if !self.tokens.contains(&t) {
            self.tokens.push(t.clone());
        }
        t
    }
}

fn ctl(env: &TestEnv, args: &[&str], stdin: Option<&str>) -> Output {
    env.ctl(args, stdin)
}

fn full_scenario(store: &str, bus: Option<&PrivateBus>) {
    let id = unique("leak-id-");
    let secret = unique("leak-secret-");
    // 15 s tokens (so clients ask for `--min-ttl 5`): the agent refreshes them ahead of
    // expiry (at two thirds) within the test.
    let emu = BgEmulator::start(Duration::from_secs(15), &[(&id, &secret)]);
    let mut env = TestEnv::new(store);
    env.vars.insert("RUST_LOG".into(), "trace".into());
    if let Some(b) = bus {
        env.vars.insert("DBUS_SESSION_BUS_ADDRESS".into(), b.address.clone());
        env.vars.remove("LOOKER_AGENT_NO_DBUS");
    }
    let profile = unique("s");
    let mut seen = Seen::default();

    seen.run("profile add", &ctl(&env, &["profile", "add", &profile, "--base-url", &emu.url()], None), false);
    seen.run(
        "credential add",
        &ctl(&env, &["credential", "add", &profile, "c", "--client-id", &id], Some(&secret)),
        false,
    );
    seen.run("credential list", &ctl(&env, &["credential", "list", "--json"], None), false);
    seen.run("profile show", &ctl(&env, &["profile", "show", &profile, "--json"], None), false);

    let mut agent = env.start_agent(&[]);
    let pid = agent.pid();

    // Tokens, in every format.
    let t1 = seen.run("token", &ctl(&env, &["token", &profile, "--min-ttl", "5"], None), true);
    let t1 = seen.token(&t1);
    for format in ["json", "header", "env"] {
        let out = seen.run(
            &format!("token --format {format}"),
            &ctl(&env, &["token", &profile, "--min-ttl", "5", "--format", format], None),
            true,
        );
        assert!(out.contains(&t1) && !out.contains(&secret), "{out}");
    }
    seen.run("status", &ctl(&env, &["status"], None), false);
    seen.run("status --json", &ctl(&env, &["status", "--json"], None), false);

    // exec: the child, and only the child, gets the token, in its environment.
    let out = seen.run(
        "exec",
        &ctl(&env, &["exec", &profile, "--direct", "--min-ttl", "5", "--", "sh", "-c", "env"], None),
        true,
    );
    assert!(out.contains(&format!("LOOKER_ACCESS_TOKEN={t1}")), "{out}");
    assert!(!out.contains(&secret), "the child's environment holds the client secret");
    let out = seen.run(
        "exec (child output)",
        &ctl(&env, &["exec", &profile, "--min-ttl", "5", "--", "sh", "-c", "echo child ran"], None),
        false,
    );
    assert_eq!(out.trim(), "child ran");

    // Over D-Bus (lookerctl falls back to it when the socket is not there).
    if bus.is_some() {
        let mut got = None;
        wait_for("the D-Bus API", Duration::from_secs(10), || {
            let out = env.ctl_with(
                &["token", &profile, "--min-ttl", "5"],
                None,
                &[("LOOKER_AGENT_SOCKET", "/nonexistent/agent.sock")],
                None,
            );
            if out.status.success() {
                got = Some(out);
            }
            got.is_some()
        });
        let t = seen.run("token over D-Bus", &got.unwrap(), true);
        assert_eq!(seen.token(&t), t1);
    }

    // Invalidate: a client saw the token rejected; the next one is new, the old one revoked.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = AgentClient::new(&env.socket);
    rt.block_on(client.invalidate(Some(&profile), &t1)).unwrap();
    let t2 =
        seen.run("token after invalidate", &ctl(&env, &["token", &profile, "--min-ttl", "5"], None), true);
    let t2 = seen.token(&t2);
    assert_ne!(t1, t2);
    wait_for("the invalidated token revoked", Duration::from_secs(5), || !emu.emu().is_live(&t1));

    // A proactive refresh (at two thirds of the 15 s lifetime), then the refreshed token.
    let logins = emu.emu().counters().logins;
    wait_for("a proactive refresh", Duration::from_secs(30), || emu.emu().counters().logins > logins);
    let t3 = seen.run("token after refresh", &ctl(&env, &["token", &profile, "--min-ttl", "5"], None), true);
    let t3 = seen.token(&t3);
    assert_ne!(t3, t2);

    // Revoke, and one more token so the agent holds one at SIGTERM.
    let out = seen.run("revoke", &ctl(&env, &["revoke", &profile, "--json"], None), false);
    assert!(out.contains("\"revoked\""), "{out}");
    let t4 = seen.run("token after revoke", &ctl(&env, &["token", &profile, "--min-ttl", "5"], None), true);
    let t4 = seen.token(&t4);
    assert!(emu.emu().is_live(&t4));

    // Nothing in the daemon's environment or argv.
    let environ = std::fs::read(format!("/proc/{pid}/environ"));
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let environ = match environ {
        Ok(e) => String::from_utf8_lossy(&e).into_owned(),
        // Not root: the agent is not dumpable, so not even its own user can read it.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => String::new(),
        Err(e) => panic!("/proc/{pid}/environ: {e}"),
    };
    seen.texts.push(("daemon environ".into(), environ.clone()));
    seen.texts.push(("daemon cmdline".into(), String::from_utf8_lossy(&cmdline).into_owned()));
    if rustix::process::geteuid().as_raw() == 0 {
        assert!(environ.contains("RUST_LOG=trace"), "the environment was not read: {environ}");
    }

    let (status, _) = agent.stop_with(15);
    assert!(status.success());
    assert_eq!(emu.emu().counters().live_tokens, 0, "tokens left live after SIGTERM");

    // Every token the emulator issued is one we know of (so the check below covers them all).
    let c = emu.emu().counters();
    assert_eq!(c.logins as usize, seen.tokens.len(), "the agent obtained tokens the test did not see");

    let log = agent.log_text();
    assert!(log.contains("TRACE"), "the agent did not log at trace level:\n{log}");
    assert!(log.lines().count() > 50, "suspiciously short trace log:\n{log}");
    seen.texts.push(("daemon log".into(), log));
    for (what, text) in &seen.texts {
        assert!(!text.contains(&secret), "{what} shows the client secret:\n{text}");
        for t in &seen.tokens {
            assert!(!text.contains(t.as_str()), "{what} shows a token:\n{text}");
        }
    }
}

#[test]
fn a_full_life_at_trace_level_leaks_nothing_file_store_and_dbus() {
    let bus = PrivateBus::start();
    full_scenario("file", Some(&bus));
}

#[test]
fn a_full_life_at_trace_level_leaks_nothing_secret_service() {
    if require_secret_service() {
        full_scenario("secret-service", None);
    }
}

/// Every type that carries a token or a client secret shows neither in `Debug`.
#[test]
fn debug_output_of_secret_carrying_types_is_redacted() {
    use looker_agent::protocol::{InvalidateRequest, TokenObject};
    use looker_agent::secret::Secret;
    let token = "tok3nVALUEthatMustNotShow0123456789abcde";
    let t = TokenObject {
        access_token: token.into(),
        token_type: "Bearer".into(),
        expires_in: 3541,
        expires_at: "2026-11-22T17:04:05Z".into(),
        profile: "prod".into(),
        credential: "reporting".into(),
        base_url: "https://example.looker.com".into(),
    };
    let shown =
        format!("{t:?} {:?} {:?}", InvalidateRequest { access_token: token.into() }, Secret::new(token));
    assert!(!shown.contains(token) && shown.contains("prod"), "{shown}");
    let login = looker_agent::looker::client::parse_login_answer(
        format!(r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":3600}}"#).as_bytes(),
    )
    .unwrap();
    assert!(!format!("{login:?}").contains(token));
    let ini =
        looker_agent::looker_ini::parse(&format!("[Looker]\nbase_url=https://x\nclient_secret={token}\n"))
            .unwrap();
    assert!(!format!("{ini:?}").contains(token));
}
