//! End-to-end checks of the core issue: the real binaries over the real socket,
//! against the Looker emulator, with the file store and the real Secret Service.

mod common;

use common::*;
use looker_agent::client::AgentClient;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

fn end_to_end(store: &str) {
    let id = unique("id-");
    let secret = unique("very-secret-");
    let emu = BgEmulator::start(Duration::from_secs(3600), &[(&id, &secret)]);
    let env = TestEnv::new(store);
    let profile = unique("p");
    env.add_profile(&profile, &emu.url(), &[("reporting", &id, &secret)]);

    // The secret is in the store, never in the config.
    let config = read(&env.config);
    assert!(config.contains(&id) && !config.contains(&secret), "config:\n{config}");
    assert_eq!(std::fs::metadata(&env.config).unwrap().permissions().mode() & 0o077, 0);

    if store == "secret-service" {
        let out = Command::new("secret-tool")
            .args(["search", "--all", "application", "looker-agent"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains(&format!("attribute.profile = {profile}")), "secret-tool output:\n{text}");
        assert!(
            text.contains("attribute.credential = reporting")
                && text.contains(&format!("attribute.client_id = {id}"))
        );
        // Nothing under XDG_DATA_HOME holds the secret in this mode.
        let data = env.dir.path().join("data");
        let grep = Command::new("grep").args(["-r", "-l", &secret]).arg(&data).output().unwrap();
        assert!(grep.stdout.is_empty(), "secret found on disk");
    }

    let mut agent = env.start_agent(&[]);
    let token = env.ctl_ok(&["token", &profile], None);
    let token = token.trim();
    assert_eq!(token.lines().count(), 1);
    let (status, body) = looker_user(&emu.url(), token);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("bot@example.com"), "{body}");

    // The same token again: served from cache.
    assert_eq!(env.ctl_ok(&["token", &profile], None).trim(), token);
    assert_eq!(emu.emu().counters().logins, 1);

    // Neither the secret nor the token reach the log.
    let (st, _) = agent.stop_with(15);
    assert!(st.success());
    let log = agent.log_text();
    assert!(!log.contains(&secret) && !log.contains(token), "log leaks:\n{log}");
    assert_eq!(emu.emu().counters().live_tokens, 0);
    assert!(!emu.emu().is_live(token));

    if store == "secret-service" {
        env.ctl_ok(&["profile", "remove", &profile], None);
        let out =
            Command::new("secret-tool").args(["search", "--all", "profile", &profile]).output().unwrap();
        assert!(!String::from_utf8_lossy(&out.stdout).contains(&profile), "item left behind");
    }
}

#[test]
fn end_to_end_with_file_store() {
    end_to_end("file");
}

#[test]
fn end_to_end_with_secret_service() {
    if require_secret_service() {
        end_to_end("secret-service");
    }
}

#[test]
fn herd_of_200_cold_requests_makes_one_login() {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("herd-id", "herd-secret")]);
    emu.emu().set_faults(looker_emulator::Faults {
        login_delay: Duration::from_millis(200),
        ..Default::default()
    });
    let env = TestEnv::new("file");
    env.add_profile("herd", &emu.url(), &[("c", "herd-id", "herd-secret")]);
    let _agent = env.start_agent(&[]);
    let client = AgentClient::new(&env.socket);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let tokens: Vec<String> = rt.block_on(async {
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let c = client.clone();
                tokio::spawn(
                    async move { c.token(Some("herd"), None, None).await.unwrap().access_token.clone() },
                )
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    assert_eq!(tokens.len(), 200);
    assert!(tokens.iter().all(|t| t == &tokens[0]));
    assert_eq!(emu.emu().counters().logins, 1);
}

#[test]
fn exit_codes_and_messages() {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("good-id", "good-secret")]);
    let env = TestEnv::new("file");

    // No agent running: 3, and the message says how to start it.
    env.add_profile("prod", &emu.url(), &[("c", "good-id", "wrong-secret")]);
    let out = env.ctl(&["token", "prod"], None);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("start it"));

    // Port 9 on loopback: nothing listens, so Looker is unreachable.
    env.add_profile("down", "http://127.0.0.1:9", &[("c", "x", "y")]);
    let _agent = env.start_agent(&[]);

    let out = env.ctl(&["token", "prod"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("\"prod\"") && err.contains("Not found") && err.contains("404"), "{err}");

    let out = env.ctl(&["token", "down"], None);
    assert_eq!(out.status.code(), Some(6), "{}", String::from_utf8_lossy(&out.stderr));

    let out = env.ctl(&["token", "nope"], None);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown profile"));

    let out = env.ctl(&["token", "prod", "--credential", "nope"], None);
    assert_eq!(out.status.code(), Some(4));

    let out = env.ctl(&["token", "prod", "--min-ttl", "soon"], None);
    assert_eq!(out.status.code(), Some(2));
    let out = env.ctl(&["token", "prod", "--min-ttl", "48h"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sigterm_revokes_every_token_and_removes_the_socket() {
    let creds = [("a-id", "a-secret"), ("b-id", "b-secret"), ("c-id", "c-secret")];
    let emu = BgEmulator::start(Duration::from_secs(3600), &creds);
    // Revocation has to be concurrent: each logout takes 1 s, the deadline is 5 s.
    emu.emu().set_faults(looker_emulator::Faults {
        logout_delay: Duration::from_millis(1000),
        ..Default::default()
    });
    let env = TestEnv::new("file");
    env.add_profile("one", &emu.url(), &[("a", "a-id", "a-secret"), ("b", "b-id", "b-secret")]);
    env.add_profile("two", &emu.url(), &[("c", "c-id", "c-secret")]);
    let mut agent = env.start_agent(&[]);
    env.ctl_ok(&["token", "one", "--credential", "a"], None);
    env.ctl_ok(&["token", "one", "--credential", "b"], None);
    env.ctl_ok(&["token", "two"], None);
    assert_eq!(emu.emu().counters().live_tokens, 3);
    let (status, took) = agent.stop_with(15);
    assert_eq!(status.code(), Some(0), "{}", agent.log_text());
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(emu.emu().counters().live_tokens, 0);
    assert!(!env.socket.exists());
}

#[test]
fn socket_is_private() {
    let env = TestEnv::new("file");
    let _agent = env.start_agent(&[]);
    let dir = env.socket.parent().unwrap();
    assert_eq!(std::fs::metadata(dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&env.socket).unwrap().permissions().mode() & 0o777, 0o600);
    let out = env.ctl_ok(&["status", "--json"], None);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn another_uid_gets_no_token() {
    if rustix::process::getuid().as_raw() != 0 {
        eprintln!("skipped: needs root to run a client as another uid (CI runs as root)");
        return;
    }
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("u-id", "u-secret")]);
    let env = TestEnv::new("file");
    env.add_profile("prod", &emu.url(), &[("c", "u-id", "u-secret")]);
    let _agent = env.start_agent(&[]);
    // Open everything up, as a careless admin might: the uid check must still hold.
    for p in
        [env.dir.path().to_path_buf(), env.dir.path().join("run"), env.socket.parent().unwrap().to_path_buf()]
    {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    std::fs::set_permissions(&env.socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "curl",
            "-s",
            "-w",
            "\n%{http_code}",
            "--unix-socket",
        ])
        .arg(&env.socket)
        .arg("http://agent/v1/profiles/prod/token")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("403"), "{text} / {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("forbidden") && !text.contains("access_token"), "{text}");
    assert_eq!(emu.emu().counters().logins, 0);
}

fn raw(socket: &std::path::Path, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

fn healthy(socket: &std::path::Path) {
    let r = raw(socket, b"GET /v1/health HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200") && r.contains("\"status\":\"ok\""), "{r}");
}

#[test]
fn hostile_clients_do_not_stop_the_daemon() {
    let env = TestEnv::new("file");
    let agent = env.start_agent(&[]);

    // A 10 MiB body is refused without being buffered.
    let mut s = UnixStream::connect(&env.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"POST /v1/revoke HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n").unwrap();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..10 {
        if s.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut resp = [0u8; 512];
    let n = s.read(&mut resp).unwrap_or(0);
    let head = String::from_utf8_lossy(&resp[..n]);
    assert!(head.is_empty() || head.starts_with("HTTP/1.1 400"), "{head}");
    drop(s);
    healthy(&env.socket);

    // A garbage request line gets a 400 and a closed connection.
    let r = raw(&env.socket, b"\x00\x01garbage\xff\r\n\r\n");
    assert!(r.is_empty() || r.starts_with("HTTP/1.1 400"), "{r}");
    // Headers far too large.
    let mut big = b"GET /v1/health HTTP/1.1\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 100_000));
    big.extend(b"\r\n\r\n");
    let r = raw(&env.socket, &big);
    assert!(r.is_empty() || r.starts_with("HTTP/1.1 431") || r.starts_with("HTTP/1.1 400"), "{r}");
    healthy(&env.socket);

    // Malformed JSON and bad queries are clear 400s.
    let r = raw(
        &env.socket,
        b"POST /v1/revoke HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 5\r\n\r\n{nope",
    );
    assert!(r.starts_with("HTTP/1.1 400") && r.contains("bad_request"), "{r}");
    let r = raw(
        &env.socket,
        b"GET /v1/profiles/x/token?min_ttl=abc HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let r = raw(&env.socket, b"GET /v1/nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");

    // 1,000 idle connections do not starve others.
    let idle: Vec<UnixStream> = (0..1000).map(|_| UnixStream::connect(&env.socket).unwrap()).collect();
    healthy(&env.socket);
    drop(idle);
    healthy(&env.socket);
    assert!(!agent.log_text().contains("panicked"));
}

#[test]
fn broken_config_refuses_to_start() {
    let env = TestEnv::new("file");
    std::fs::create_dir_all(env.config.parent().unwrap()).unwrap();
    std::fs::write(&env.config, "[profiles.prod]\nbase_url = \"https://x.example.com\"\nverfy_tls = false\n")
        .unwrap();
    let mut cmd = Command::new(agent_bin());
    cmd.envs(&env.vars).env_remove("LOOKER_AGENT_CONFIG").env_remove("LOOKER_AGENT_SOCKET");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.toml:3:") && err.contains("verify_tls"), "{err}");
    assert!(!env.socket.exists());
}

#[test]
fn running_agent_sees_management_changes_at_once() {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("m1", "s1"), ("m2", "s2")]);
    let env = TestEnv::new("file");
    let _agent = env.start_agent(&[]);
    // Added while the agent runs: usable at once.
    env.add_profile("late", &emu.url(), &[("first", "m1", "s1")]);
    let t1 = env.ctl_ok(&["token", "late"], None);
    assert!(emu.emu().is_live(t1.trim()));
    // Removing the credential revokes its token.
    env.ctl_ok(&["credential", "add", "late", "second", "--client-id", "m2"], Some("s2"));
    env.ctl_ok(&["credential", "remove", "late", "first"], None);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while emu.emu().is_live(t1.trim()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!emu.emu().is_live(t1.trim()), "token of a removed credential still live");
    let json = env.ctl_ok(&["token", "late", "--format", "json"], None);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["credential"], "second");
    // Explicit revoke through the API.
    let out = env.ctl_ok(&["revoke", "late", "--json"], None);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["revoked"], 1);
    assert_eq!(emu.emu().counters().live_tokens, 0);
}

#[test]
fn executable_allow_list_is_enforced_and_denials_logged() {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("al-id", "al-secret")]);
    let env = TestEnv::new("file");
    env.add_profile("locked", &emu.url(), &[("c", "al-id", "al-secret")]);
    // Only curl may have this profile's tokens.
    let curl = std::fs::canonicalize(
        String::from_utf8(Command::new("sh").args(["-c", "command -v curl"]).output().unwrap().stdout)
            .unwrap()
            .trim(),
    )
    .unwrap();
    let cfg = read(&env.config).replace(
        "[profiles.locked]\n",
        &format!("[profiles.locked]\nallowed_executables = [{:?}]\n", curl.display().to_string()),
    );
    std::fs::write(&env.config, cfg).unwrap();
    let agent = env.start_agent(&[]);
    // lookerctl is not curl: refused (403 -> exit 1) with a message naming the program.
    let out = env.ctl(&["token", "locked"], None);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("allowed_executables"));
    // curl is allowed.
    let out = Command::new("curl")
        .args(["-s", "--unix-socket"])
        .arg(&env.socket)
        .arg("http://agent/v1/profiles/locked/token")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(emu.emu().is_live(v["access_token"].as_str().unwrap()));
    assert!(agent.log_text().contains("token refused: caller not in the profile's allowed_executables"));
    assert!(agent.log_text().contains("lookerctl"), "the denial names the caller");
}
