//! The D-Bus API (issue 4) against a private dbus-daemon per test, the real
//! `looker-agent` binary (file store) and the Looker emulator.
//!
//! Needs `dbus-daemon` (dbus-daemon), `busctl` (systemd) and `gdbus` (libglib2.0-bin).

mod common;

use common::*;
use futures_util::StreamExt;
use looker_agent::client_bus::Agent1Proxy;
use looker_agent::client_bus::AgentError;
use looker_agent::daemon::bus::{BUS_NAME, INTERFACE, OBJECT_PATH};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// A private bus

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

// ---------------------------------------------------------------------------
// The agent on that bus

/// An environment whose agent and lookerctl talk to `bus` (None: no bus at all).
fn env_on(bus: Option<&PrivateBus>) -> TestEnv {
    let mut env = TestEnv::new("file");
    env.vars.remove("LOOKER_AGENT_NO_DBUS");
    if let Some(b) = bus {
        env.vars.insert("DBUS_SESSION_BUS_ADDRESS".into(), b.address.clone());
    }
    env
}

/// One emulator, one profile `p` with credential `c1`, one agent on `bus`.
struct Fixture {
    emu: BgEmulator,
    env: TestEnv,
    agent: AgentProc,
    profile: String,
    secret: String,
}

fn fixture(bus: &PrivateBus, extra: &[&str], rust_log: &str) -> Fixture {
    let id = unique("id-");
    let secret = unique("secret-");
    let emu = BgEmulator::start(Duration::from_secs(3600), &[(&id, &secret)]);
    let mut env = env_on(Some(bus));
    env.vars.insert("RUST_LOG".into(), rust_log.into());
    let profile = unique("p");
    env.add_profile(&profile, &emu.url(), &[("c1", &id, &secret)]);
    let agent = env.start_agent(extra);
    Fixture { emu, env, agent, profile, secret }
}

async fn proxy(conn: &zbus::Connection) -> Agent1Proxy<'static> {
    Agent1Proxy::builder(conn).cache_properties(zbus::proxy::CacheProperties::No).build().await.unwrap()
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn busctl(bus: &PrivateBus, args: &[&str]) -> Output {
    require_tool("busctl", "systemd");
    run(Command::new("busctl").arg("--user").args(args).env("DBUS_SESSION_BUS_ADDRESS", &bus.address))
}

fn gdbus(bus: &PrivateBus, args: &[&str]) -> Output {
    require_tool("gdbus", "libglib2.0-bin");
    run(Command::new("gdbus").args(args).env("DBUS_SESSION_BUS_ADDRESS", &bus.address))
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const METHOD_PREFIX: &str = "io.github.lookeragent.Agent1.";

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn zbus_busctl_and_gdbus_each_get_a_token_looker_accepts() {
    let bus = PrivateBus::start();
    let f = fixture(&bus, &[], "info,looker_agent::audit=debug");
    let rt = runtime();
    let (zbus_token, exp, base_url, profiles, version) = rt.block_on(async {
        let conn = bus.connect().await;
        assert!(
            bus.wait_owner(&conn, true, Duration::from_secs(10)).await,
            "name never owned; log:\n{}",
            f.agent.log_text()
        );
        let p = proxy(&conn).await;
        let (t, exp, url) = p.get_token(&f.profile, "", 0).await.unwrap();
        (t, exp, url, p.list_profiles().await.unwrap(), p.version().await.unwrap())
    });
    assert!(f.emu.emu().is_live(&zbus_token));
    assert_eq!(base_url, f.emu.url());
    assert!((exp - (unix_now() + 3600)).abs() < 60, "expires_at_unix {exp}");
    assert_eq!(profiles, vec![f.profile.clone()]);
    assert_eq!(version, env!("CARGO_PKG_VERSION"));

    // busctl: `sxs "TOKEN" EXPIRY "URL"`; the defaults ("" and 0) pick profile and credential.
    let out = busctl(&bus, &["call", BUS_NAME, OBJECT_PATH, INTERFACE, "GetToken", "ssu", "", "c1", "0"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let parts: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(parts[0], "sxs", "{stdout}");
    let busctl_token = parts[1].trim_matches('"');
    assert!(f.emu.emu().is_live(busctl_token), "{stdout}");

    // gdbus: `('TOKEN', int64 EXPIRY, 'URL')`.
    let method = format!("{METHOD_PREFIX}GetToken");
    let out = gdbus(
        &bus,
        &["call", "--session", "-d", BUS_NAME, "-o", OBJECT_PATH, "-m", &method, &f.profile, "c1", "120"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let gdbus_token = stdout.trim().strip_prefix("('").and_then(|s| s.split('\'').next()).unwrap_or_default();
    assert!(stdout.contains("int64") && f.emu.emu().is_live(gdbus_token), "{stdout}");

    // One token, one login, shared with the socket.
    assert_eq!(zbus_token, busctl_token);
    assert_eq!(zbus_token, gdbus_token);
    assert_eq!(f.env.ctl_ok(&["token", &f.profile], None).trim(), zbus_token);
    assert_eq!(f.emu.emu().counters().logins, 1);

    // The audit line names the caller, never the token.
    let log = f.agent.log_text();
    let audit: Vec<&str> =
        log.lines().filter(|l| l.contains("token handed out") && l.contains("transport=\"dbus\"")).collect();
    assert_eq!(audit.len(), 3, "log:\n{log}");
    for line in &audit {
        for field in
            ["pid=Some(", "uid=", "exe=Some(", "bus_name=:", "credential=c1", "expires_at_unix=", &f.profile]
        {
            assert!(line.contains(field), "{field} missing in {line}");
        }
    }
    assert!(
        audit.iter().any(|l| l.contains("busctl")) && audit.iter().any(|l| l.contains("gdbus")),
        "{audit:#?}"
    );
    assert!(!log.contains(&zbus_token) && !log.contains(&f.secret), "log leaks:\n{log}");
}

#[test]
fn signals_follow_logins_and_never_carry_a_token() {
    let bus = PrivateBus::start();
    let mut f = fixture(&bus, &[], "info");
    // A second profile whose secret Looker refuses.
    let bad_secret = unique("wrong-");
    let bad = unique("bad");
    f.emu.emu().add_credential(
        "bad-id",
        "right",
        looker_emulator::EmulatorUser::new("9", "B", "b@example.com"),
    );
    f.env.add_profile(&bad, &f.emu.url(), &[("cb", "bad-id", &bad_secret)]);

    let rt = runtime();
    let (tokens, signal_bodies) = rt.block_on(async {
        let conn = bus.connect().await;
        assert!(bus.wait_owner(&conn, true, Duration::from_secs(10)).await, "log:\n{}", f.agent.log_text());
        let p = proxy(&conn).await;

        // Every signal the agent's connection emits, raw.
        let owner = zbus::fdo::DBusProxy::new(&conn)
            .await
            .unwrap()
            .get_name_owner(BUS_NAME.try_into().unwrap())
            .await
            .unwrap();
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender(owner.clone())
            .unwrap()
            .build();
        let mut all = zbus::MessageStream::for_match_rule(rule, &conn, Some(1000)).await.unwrap();
        let bodies: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let sink = bodies.clone();
        let collector = tokio::spawn(async move {
            while let Some(Ok(m)) = all.next().await {
                sink.lock().unwrap().push(m.body().data().to_vec());
            }
        });
        let mut refreshed = p.receive_token_refreshed().await.unwrap();
        let mut failed = p.receive_credential_failed().await.unwrap();

        // A login: one TokenRefreshed with the token's expiry, not the token.
        let (t1, exp1, _) = p.get_token(&f.profile, "", 0).await.unwrap();
        let sig = next_refresh(&mut refreshed).await;
        let a = sig.args().unwrap();
        // The signal's expiry is taken at login, the answer's a moment later: whole seconds may differ.
        assert_eq!((a.profile, a.credential), (f.profile.as_str(), "c1"), "TokenRefreshed args");
        assert!((a.expires_at_unix - exp1).abs() <= 2, "{} vs {exp1}", a.expires_at_unix);
        assert!(![a.profile, a.credential].contains(&t1.as_str()));

        // A refresh after the client saw it rejected: a new token, a new signal.
        p.invalidate(&f.profile, &t1).await.unwrap();
        let (t2, exp2, _) = p.get_token(&f.profile, "c1", 0).await.unwrap();
        assert_ne!(t1, t2);
        let sig = next_refresh(&mut refreshed).await;
        let a = sig.args().unwrap();
        assert_eq!((a.profile, a.credential), (f.profile.as_str(), "c1"));
        assert!((a.expires_at_unix - exp2).abs() <= 2, "{} vs {exp2}", a.expires_at_unix);

        // A rejected credential: a typed error and CredentialFailed, without the secret.
        match p.get_token(&bad, "", 0).await {
            Err(AgentError::CredentialsRejected(m)) => assert!(!m.contains(&bad_secret), "{m}"),
            other => panic!("expected CredentialsRejected, got {other:?}"),
        }
        let sig = tokio::time::timeout(Duration::from_secs(10), failed.next()).await.unwrap().unwrap();
        let a = sig.args().unwrap();
        assert_eq!((a.profile, a.credential), (bad.as_str(), "cb"));
        assert!(!a.reason.is_empty() && !a.reason.contains(&bad_secret), "{}", a.reason);

        tokio::time::sleep(Duration::from_millis(200)).await;
        collector.abort();
        let bodies = bodies.lock().unwrap().clone();
        (vec![t1, t2], bodies)
    });
    assert!(signal_bodies.len() >= 3, "saw {} signals", signal_bodies.len());
    for body in &signal_bodies {
        for secret in tokens.iter().map(String::as_bytes).chain([bad_secret.as_bytes(), f.secret.as_bytes()])
        {
            assert!(!body.windows(secret.len()).any(|w| w == secret), "a signal carried a token or secret");
        }
    }
    let (st, _) = f.agent.stop_with(15);
    assert!(st.success());
}

#[test]
fn errors_are_typed_and_bad_calls_do_not_hurt_the_daemon() {
    let bus = PrivateBus::start();
    let f = fixture(&bus, &[], "info");
    let rt = runtime();
    rt.block_on(async {
        let conn = bus.connect().await;
        assert!(bus.wait_owner(&conn, true, Duration::from_secs(10)).await, "log:\n{}", f.agent.log_text());
        let p = proxy(&conn).await;
        match p.get_token("nope", "", 0).await {
            Err(AgentError::UnknownProfile(m)) => {
                assert!(m.contains("nope") && m.contains(&f.profile), "{m}")
            }
            other => panic!("expected UnknownProfile, got {other:?}"),
        }
        assert!(matches!(p.get_token(&f.profile, "nope", 0).await, Err(AgentError::UnknownCredential(_))));
        assert!(matches!(p.get_token(&f.profile, "", u32::MAX).await, Err(AgentError::BadRequest(_))));
        assert!(matches!(p.revoke("", "c1").await, Err(AgentError::BadRequest(_))));
        assert!(matches!(p.invalidate("nope", "x").await, Err(AgentError::UnknownProfile(_))));
    });

    // The error names as other libraries see them.
    let method = format!("{METHOD_PREFIX}GetToken");
    let out = gdbus(
        &bus,
        &["call", "--session", "-d", BUS_NAME, "-o", OBJECT_PATH, "-m", &method, "nope", "", "0"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("GDBus.Error:io.github.lookeragent.Agent1.Error.UnknownProfile"),
        "{}",
        text(&out)
    );
    let out = run(Command::new("dbus-send")
        .args(["--session", "--print-reply", &format!("--dest={BUS_NAME}"), OBJECT_PATH, &method])
        .args(["string:", "string:nope", "uint32:0"])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("io.github.lookeragent.Agent1.Error.UnknownCredential"),
        "{}",
        text(&out)
    );

    // Wrong types, wrong counts, unknown members: D-Bus errors, and the daemon keeps serving.
    let bad_calls: &[&[&str]] = &[
        &["call", BUS_NAME, OBJECT_PATH, INTERFACE, "GetToken", "ssi", "", "", "0"],
        &["call", BUS_NAME, OBJECT_PATH, INTERFACE, "GetToken", "ss", "", ""],
        &["call", BUS_NAME, OBJECT_PATH, INTERFACE, "GetToken", "ssus", "", "", "0", "x"],
        &["call", BUS_NAME, OBJECT_PATH, INTERFACE, "GetToken"],
        &["call", BUS_NAME, OBJECT_PATH, INTERFACE, "Revoke", "u", "7"],
        &["call", BUS_NAME, OBJECT_PATH, INTERFACE, "NoSuchMethod"],
        &["call", BUS_NAME, "/no/such/object", INTERFACE, "ListProfiles"],
        &["set-property", BUS_NAME, OBJECT_PATH, INTERFACE, "Version", "s", "9"],
    ];
    for args in bad_calls {
        let out = busctl(&bus, args);
        assert!(!out.status.success(), "busctl {args:?} succeeded: {}", text(&out));
        assert!(!out.stderr.is_empty(), "busctl {args:?}: no error message");
    }
    let out = busctl(&bus, &["get-property", BUS_NAME, OBJECT_PATH, INTERFACE, "Version"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("s \"{}\"", env!("CARGO_PKG_VERSION")));
    let out =
        busctl(&bus, &["call", BUS_NAME, OBJECT_PATH, INTERFACE, "GetToken", "ssu", &f.profile, "", "0"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(f.env.ctl(&["token", &f.profile], None).status.success());
    assert!(f.agent.log_text().lines().all(|l| !l.contains("panicked")));
}

/// One element of an introspection document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Elem {
    name: String,
    attrs: BTreeMap<String, String>,
    children: Vec<Elem>,
}

/// A small XML reader, enough for introspection data (no text content, no CDATA).
fn parse_xml(s: &str) -> Elem {
    let mut stack = vec![Elem { name: "#document".into(), attrs: BTreeMap::new(), children: vec![] }];
    let mut rest = s;
    while let Some(i) = rest.find('<') {
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("<!--") {
            rest = &r[r.find("-->").expect("unclosed comment") + 3..];
            continue;
        }
        let end = rest.find('>').expect("unclosed tag");
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let done = stack.pop().unwrap();
            assert_eq!(done.name, name.trim(), "mismatched tags");
            stack.last_mut().unwrap().children.push(done);
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let (name, mut attrs_src) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
        let mut attrs = BTreeMap::new();
        while let Some(eq) = attrs_src.find('=') {
            let key = attrs_src[..eq].trim().to_string();
            let after = attrs_src[eq + 1..].trim_start();
            let quote = after.chars().next().unwrap();
            let close = after[1..].find(quote).unwrap() + 1;
            let value = after[1..close]
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&");
            attrs.insert(key, value);
            attrs_src = &after[close + 1..];
        }
        let e = Elem { name: name.to_string(), attrs, children: vec![] };
        if self_closing {
            stack.last_mut().unwrap().children.push(e);
        } else {
            stack.push(e);
        }
    }
    assert_eq!(stack.len(), 1, "unclosed elements");
    stack.pop().unwrap()
}

/// The interface `name` of an introspection document, in a canonical form:
/// members sorted by kind and name; argument order kept; a method argument's
/// direction defaults to `in`, as the spec says.
fn canonical_interface(xml: &str, name: &str) -> Vec<Elem> {
    let doc = parse_xml(xml);
    let node = doc.children.iter().find(|e| e.name == "node").expect("no <node>");
    let iface = node
        .children
        .iter()
        .find(|e| e.name == "interface" && e.attrs.get("name").map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no interface {name} in:\n{xml}"));
    let mut members: Vec<Elem> = iface
        .children
        .iter()
        .map(|m| {
            let mut m = m.clone();
            if m.name == "method" {
                for a in m.children.iter_mut().filter(|a| a.name == "arg") {
                    a.attrs.entry("direction".into()).or_insert_with(|| "in".into());
                }
            }
            // Annotations may come in any order; arguments may not.
            let (mut ann, args): (Vec<Elem>, Vec<Elem>) =
                m.children.into_iter().partition(|c| c.name == "annotation");
            ann.sort();
            m.children = args.into_iter().chain(ann).collect();
            m
        })
        .collect();
    members.sort_by(|a, b| (&a.name, a.attrs.get("name")).cmp(&(&b.name, b.attrs.get("name"))));
    members
}

#[test]
fn live_introspection_matches_the_xml_in_dbus_dir() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("dbus").join(format!("{INTERFACE}.xml"));
    let expected = canonical_interface(&read(&file), INTERFACE);
    let names: Vec<String> = expected
        .iter()
        .map(|m| format!("{} {}", m.name, m.attrs.get("name").cloned().unwrap_or_default()))
        .collect();
    assert_eq!(
        names,
        [
            "method GetToken",
            "method Invalidate",
            "method ListProfiles",
            "method Revoke",
            "property Version",
            "signal CredentialFailed",
            "signal TokenRefreshed"
        ]
    );

    let bus = PrivateBus::start();
    let f = fixture(&bus, &[], "info");
    let rt = runtime();
    let live = rt.block_on(async {
        let conn = bus.connect().await;
        assert!(bus.wait_owner(&conn, true, Duration::from_secs(10)).await, "log:\n{}", f.agent.log_text());
        let intro = zbus::fdo::IntrospectableProxy::builder(&conn)
            .destination(BUS_NAME)
            .unwrap()
            .path(OBJECT_PATH)
            .unwrap()
            .build()
            .await
            .unwrap();
        intro.introspect().await.unwrap()
    });
    assert_eq!(canonical_interface(&live, INTERFACE), expected, "live introspection:\n{live}");

    // The activation file names the bus name and the systemd unit.
    let service =
        read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("dbus").join(format!("{BUS_NAME}.service")));
    let keys: BTreeMap<&str, &str> = service.lines().filter_map(|l| l.split_once('=')).collect();
    assert!(service.contains("[D-BUS Service]"));
    assert_eq!(keys.get("Name"), Some(&BUS_NAME));
    assert_eq!(keys.get("SystemdService"), Some(&"looker-agent.service"));
    assert!(keys.get("Exec").is_some_and(|e| e.starts_with('/')), "Exec= must be absolute");
}

#[test]
fn herd_of_200_concurrent_gettoken_calls_makes_one_login() {
    let bus = PrivateBus::start();
    let f = fixture(&bus, &[], "info");
    f.emu.emu().set_faults(looker_emulator::Faults {
        login_delay: Duration::from_millis(300),
        ..Default::default()
    });
    let rt = runtime();
    let tokens = rt.block_on(async {
        let mut proxies = Vec::new();
        for _ in 0..4 {
            let conn = bus.connect().await;
            assert!(
                bus.wait_owner(&conn, true, Duration::from_secs(10)).await,
                "log:\n{}",
                f.agent.log_text()
            );
            proxies.push(proxy(&conn).await);
        }
        let calls = (0..200).map(|i| {
            let p = proxies[i % proxies.len()].clone();
            let profile = f.profile.clone();
            async move { p.get_token(&profile, "", 0).await.map(|(t, _, _)| t) }
        });
        futures_util::future::join_all(calls).await
    });
    assert_eq!(tokens.len(), 200);
    let tokens: Vec<String> = tokens.into_iter().map(|r| r.unwrap()).collect();
    assert!(tokens.iter().all(|t| t == &tokens[0]));
    assert!(f.emu.emu().is_live(&tokens[0]));
    assert_eq!(f.emu.emu().counters().logins, 1);
}

#[test]
fn no_dbus_flag_never_owns_the_name() {
    let bus = PrivateBus::start();
    let rt = runtime();
    let _in_rt = rt.enter();
    let conn = rt.block_on(bus.connect());
    // Watch the name before the agent starts, so not even a brief ownership is missed.
    let dbus = rt.block_on(zbus::fdo::DBusProxy::new(&conn)).unwrap();
    let mut changes = rt.block_on(dbus.receive_name_owner_changed_with_args(&[(0, BUS_NAME)])).unwrap();

    let mut f = fixture(&bus, &["--no-dbus"], "info");
    assert!(f.env.ctl(&["token", &f.profile], None).status.success());
    std::thread::sleep(Duration::from_millis(500));
    assert!(!rt.block_on(dbus.name_has_owner(BUS_NAME.try_into().unwrap())).unwrap());
    let (st, _) = f.agent.stop_with(15);
    assert!(st.success());
    let seen = rt.block_on(async { tokio::time::timeout(Duration::from_millis(300), changes.next()).await });
    assert!(
        seen.is_err(),
        "the name changed owner: {:?}",
        seen.unwrap().map(|s| s.args().map(|a| format!("{a:?}")))
    );
    assert!(f.agent.log_text().contains("D-Bus off (--no-dbus)"), "log:\n{}", f.agent.log_text());
}

#[test]
fn without_a_session_bus_the_socket_still_serves() {
    let id = unique("id-");
    let emu = BgEmulator::start(Duration::from_secs(3600), &[(&id, "s3cret")]);
    let env = env_on(None);
    env.add_profile("p", &emu.url(), &[("c", &id, "s3cret")]);

    // No address at all (and no $XDG_RUNTIME_DIR/bus), then an address where nothing listens.
    let nowhere = format!("unix:path={}", env.dir.path().join("no-bus-here").display());
    for (remove, extra_env) in [(true, None), (false, Some(nowhere))] {
        let mut env_vars = env.vars.clone();
        if let Some(a) = &extra_env {
            env_vars.insert("DBUS_SESSION_BUS_ADDRESS".into(), a.clone());
        }
        let e2 = TestEnv {
            dir: tempfile::tempdir().unwrap(),
            vars: env_vars,
            socket: env.socket.clone(),
            config: env.config.clone(),
        };
        let removed: &[&str] = if remove { &["DBUS_SESSION_BUS_ADDRESS"] } else { &[] };
        let mut agent = e2.start_agent_without(&[], removed);
        let token = env.ctl_ok(&["token", "p"], None);
        assert!(emu.emu().is_live(token.trim()));
        std::thread::sleep(Duration::from_millis(300));
        let (st, _) = agent.stop_with(15);
        assert!(st.success());
        let log = agent.log_text();
        assert_eq!(log.matches("D-Bus off").count(), 1, "log:\n{log}");
    }
}

#[test]
fn a_lost_bus_is_survived_and_rejoined() {
    // A bus at a fixed path, so a new one can take its place.
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("bus");
    let addr = format!("--address=unix:path={}", path.display());
    let mut bus = PrivateBus::start_with(&["--session", &addr]);
    // Without the `,guid=…` dbus-daemon prints, as systemd's address is: a new bus has a new guid.
    bus.address = format!("unix:path={}", path.display());
    let mut f = fixture(&bus, &[], "info");
    let rt = runtime();
    rt.block_on(async {
        let conn = bus.connect().await;
        assert!(bus.wait_owner(&conn, true, Duration::from_secs(10)).await, "log:\n{}", f.agent.log_text());
    });

    bus.kill();
    let start = Instant::now();
    while !f.agent.log_text().contains("lost the session bus connection") {
        assert!(start.elapsed() < Duration::from_secs(10), "loss not logged:\n{}", f.agent.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    let token = f.env.ctl_ok(&["token", &f.profile], None);
    assert!(f.emu.emu().is_live(token.trim()));

    // A new bus at the same address: the agent comes back on it.
    let _ = std::fs::remove_file(&path);
    let mut bus2 = PrivateBus::start_with(&["--session", &addr]);
    bus2.address = bus.address.clone();
    rt.block_on(async {
        let conn = bus2.connect().await;
        assert!(
            bus2.wait_owner(&conn, true, Duration::from_secs(20)).await,
            "not back; log:\n{}",
            f.agent.log_text()
        );
        let (t, _, _) = proxy(&conn).await.get_token(&f.profile, "", 0).await.unwrap();
        assert_eq!(t, token.trim());
    });
    let (st, _) = f.agent.stop_with(15);
    assert!(st.success());
    assert!(f.agent.log_text().contains("back on the session bus"));
}

#[test]
fn lookerctl_falls_back_to_dbus_and_says_when_neither_answers() {
    let bus = PrivateBus::start();
    let f = fixture(&bus, &[], "info");
    rt_wait_owner(&bus, &f);
    // The socket file gone (the agent still listens on the unlinked socket): D-Bus answers.
    std::fs::remove_file(&f.env.socket).unwrap();
    let token = f.env.ctl_ok(&["token", &f.profile], None);
    assert!(f.emu.emu().is_live(token.trim()));
    let json: serde_json::Value =
        serde_json::from_str(&f.env.ctl_ok(&["token", &f.profile, "--format", "json"], None)).unwrap();
    assert_eq!(json["access_token"], token.trim());
    assert_eq!(json["base_url"], f.emu.url());
    assert!(json["expires_in"].as_u64().unwrap() > 3000);
    let out = f.env.ctl(&["token", "nope"], None);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));

    // Neither the socket nor D-Bus: exit 3 and a message that says both.
    drop(f);
    let env = env_on(Some(&bus));
    let out = env.ctl(&["token", "p"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("nothing answers on the socket")
            && err.contains("nor on D-Bus")
            && err.contains("start it"),
        "{err}"
    );
}

async fn next_refresh(
    s: &mut looker_agent::client_bus::TokenRefreshedStream,
) -> looker_agent::client_bus::TokenRefreshed {
    tokio::time::timeout(Duration::from_secs(10), s.next()).await.expect("no TokenRefreshed").unwrap()
}

fn rt_wait_owner(bus: &PrivateBus, f: &Fixture) {
    runtime().block_on(async {
        let conn = bus.connect().await;
        assert!(bus.wait_owner(&conn, true, Duration::from_secs(10)).await, "log:\n{}", f.agent.log_text());
    });
}

#[test]
fn callers_of_another_user_are_refused() {
    if current_uid() != 0 {
        eprintln!("skipped: needs root to call as another user");
        return;
    }
    require_tool("setpriv", "util-linux");
    let (bus, _dir) = bus_for_every_user();
    let f = fixture(&bus, &[], "info");
    rt_wait_owner(&bus, &f);
    let method = format!("{METHOD_PREFIX}GetToken");
    let out = run(Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "dbus-send", "--session", "--print-reply"])
        .arg(format!("--dest={BUS_NAME}"))
        .args([OBJECT_PATH, &method, "string:", "string:", "uint32:0"])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("io.github.lookeragent.Agent1.Error.AccessDenied"), "{}", text(&out));
    assert!(f.agent.log_text().contains("refused a D-Bus caller of another user"));
    // The agent's own user is still served.
    let out = busctl(&bus, &["call", BUS_NAME, OBJECT_PATH, INTERFACE, "ListProfiles"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(f.emu.emu().counters().logins, 0);
}

/// A bus that lets any user connect, in a folder anyone can reach.
fn bus_for_every_user() -> (PrivateBus, tempfile::TempDir) {
    // A bus that lets any user connect, in a folder anyone can reach.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = dir.path().join("bus.conf");
    std::fs::write(
        &conf,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
            dir.path().display()
        ),
    )
    .unwrap();
    let bus = PrivateBus::start_with(&[&format!("--config-file={}", conf.display())]);
    (bus, dir)
}

fn current_uid() -> u32 {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Issue 11, point 6 over D-Bus: a bus connection is judged by the program that made
/// it, read at its first call, not by whatever runs under its pid later. python calls
/// once, forks, and execs an allowed program (`sleep`); the child, on the same bus
/// connection, asks for a token of the allow-listed profile.
const BUS_FORK_EXEC: &str = r#"
import dbus, os, sys, time
profile, sleep = sys.argv[1], sys.argv[2]
bus = dbus.bus.BusConnection(os.environ["DBUS_SESSION_BUS_ADDRESS"])
agent = dbus.Interface(bus.get_object("io.github.lookeragent.Agent1", "/io/github/lookeragent/Agent1"),
                       "io.github.lookeragent.Agent1")
assert profile in [str(p) for p in agent.ListProfiles()]
parent = os.getpid()
if os.fork() == 0:
    while os.readlink(f"/proc/{parent}/exe") != sleep:
        time.sleep(0.01)
    try:
        token, _, _ = agent.GetToken(profile, "", 0)
        print("TOKEN", len(token) > 0, flush=True)
    except dbus.exceptions.DBusException as e:
        print("ERROR", e.get_dbus_name(), e.get_dbus_message(), flush=True)
    os._exit(0)
os.dup2(os.open("/dev/null", os.O_WRONLY), 1)
os.execv(sleep, [sleep, "30"])
"#;

#[test]
fn a_bus_connection_is_judged_by_the_program_that_made_it() {
    let python = Path::new("/usr/bin/python3");
    let has_dbus = Command::new(python).args(["-c", "import dbus"]).status().is_ok_and(|s| s.success());
    if !has_dbus {
        eprintln!("skipped: needs /usr/bin/python3 with dbus-python (python3-dbus)");
        return;
    }
    let bus = PrivateBus::start();
    let id = unique("id-");
    let secret = unique("secret-");
    let emu = BgEmulator::start(Duration::from_secs(3600), &[(&id, &secret)]);
    let env = env_on(Some(&bus));
    let profile = unique("p");
    env.add_profile(&profile, &emu.url(), &[("c1", &id, &secret)]);
    let sleep = std::fs::canonicalize("/usr/bin/sleep").unwrap().display().to_string();
    let cfg = read(&env.config).replace(
        &format!("[profiles.{profile}]\n"),
        &format!("[profiles.{profile}]\nallowed_executables = [{sleep:?}]\n"),
    );
    assert!(cfg.contains("allowed_executables"), "{cfg}");
    std::fs::write(&env.config, cfg).unwrap();
    let agent = env.start_agent(&[]);
    runtime().block_on(async {
        let conn = bus.connect().await;
        assert!(bus.wait_owner(&conn, true, Duration::from_secs(10)).await, "log:\n{}", agent.log_text());
    });

    let mut child = Command::new(python)
        .args(["-c", BUS_FORK_EXEC, &profile, &sleep])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut answer).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(answer.starts_with("ERROR io.github.lookeragent.Agent1.Error.AccessDenied"), "{answer}");
    assert!(answer.contains("python"), "the refusal names the program that connected: {answer}");
    assert_eq!(emu.emu().counters().logins, 0);
}

/// A fake agent on the bus: owns the agent's name and hands out a planted token.
const FAKE_BUS_AGENT: &str = r#"
import os, dbus, dbus.service, dbus.mainloop.glib
from gi.repository import GLib
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection(os.environ["DBUS_SESSION_BUS_ADDRESS"])
name = dbus.service.BusName("io.github.lookeragent.Agent1", bus)
class Fake(dbus.service.Object):
    @dbus.service.method("io.github.lookeragent.Agent1", in_signature="ssu", out_signature="sxs")
    def GetToken(self, profile, credential, min_ttl):
        return ("planted-token", 4102444800, "https://attacker.example")
Fake(bus, "/io/github/lookeragent/Agent1")
print("ready", flush=True)
GLib.MainLoop().run()
"#;

/// Issue 11, point 5 over D-Bus: lookerctl's fallback takes a token only from a name
/// owner of its own user.
#[test]
fn lookerctl_refuses_an_agent_name_owned_by_another_user() {
    let python = Path::new("/usr/bin/python3");
    let usable = Command::new(python)
        .args(["-c", "import dbus, gi.repository.GLib"])
        .status()
        .is_ok_and(|s| s.success());
    if current_uid() != 0 || !usable {
        eprintln!("skipped: needs root and /usr/bin/python3 with dbus-python and gi");
        return;
    }
    require_tool("setpriv", "util-linux");
    let (bus, _dir) = bus_for_every_user();
    let mut fake = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(python)
        .args(["-c", FAKE_BUS_AGENT])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(fake.stdout.take().unwrap()), &mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    // No agent socket: lookerctl turns to the bus, where the other user's process answers.
    let env = env_on(Some(&bus));
    let out = env.ctl(&["token", "prod", "--format", "env"], None);
    let _ = fake.kill();
    let _ = fake.wait();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{stdout} / {stderr}");
    assert!(!stdout.contains("planted-token") && !stdout.contains("attacker.example"), "{stdout}");
    assert!(stderr.contains("runs as uid 65534") && stderr.contains("not your agent"), "{stderr}");
}
