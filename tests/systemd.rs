//! The systemd integration, through systemd's own protocols and tools: socket activation
//! with `systemd-socket-activate`, `Type=notify` with a datagram socket as NOTIFY_SOCKET,
//! `$CREDENTIALS_DIRECTORY`, the offline checks of the unit files (scripts/check-units.sh),
//! and the shipped units under a real `systemd --user` (tests/common/user_manager.rs).

mod common;

use common::user_manager::UserManager;
use common::{agent_bin, ctl_bin, looker_user, unsafe_kill, wait_for, BgEmulator, TestEnv};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SIGHUP: i32 = 1;
const SIGTERM: i32 = 15;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Collects sd_notify datagrams until one contains `want`; returns every message seen.
fn recv_until(sock: &UnixDatagram, want: &str, seen: &mut Vec<String>) {
    let start = Instant::now();
    let mut buf = vec![0u8; 4096];
    while !seen.iter().any(|m| m.lines().any(|l| l == want || (want.ends_with('=') && l.starts_with(want)))) {
        assert!(start.elapsed() < Duration::from_secs(20), "no {want:?} from the agent; got {seen:?}");
        match sock.recv(&mut buf) {
            Ok(n) => seen.push(String::from_utf8_lossy(&buf[..n]).to_string()),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
            }
            Err(e) => panic!("recv on NOTIFY_SOCKET: {e}"),
        }
    }
}

#[test]
fn socket_activation_serves_a_token_through_the_passed_socket() {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("id-sa", "secret-sa")]);
    let mut env = TestEnv::new("file");
    env.add_profile("prod", &emu.url(), &[("default", "id-sa", "secret-sa")]);

    // A socket path of systemd's choosing, not the agent's default.
    let sock = env.dir.path().join("activated.sock");
    let log = env.dir.path().join("socket-activate.log");
    let mut cmd = Command::new("systemd-socket-activate");
    // And the gateway's TCP door on a port of systemd's choosing (a second ListenStream=).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    cmd.arg("-l").arg(&sock).arg("-l").arg(format!("127.0.0.1:{port}"));
    // systemd-socket-activate passes the child only what -E names (plus PATH, HOME...).
    for (k, v) in &env.vars {
        cmd.arg("-E").arg(format!("{k}={v}"));
    }
    cmd.arg(agent_bin()).stdin(Stdio::null()).stdout(Stdio::null());
    cmd.stderr(std::fs::File::create(&log).unwrap());
    let mut child =
        cmd.spawn().expect("systemd-socket-activate (from the systemd package) must be installed");
    wait_for("the activation socket", Duration::from_secs(10), || sock.exists());

    // The first connection starts the agent, which must take over the listening socket.
    env.vars.insert("LOOKER_AGENT_SOCKET".into(), sock.display().to_string());
    let out = env.ctl(&["token", "prod"], None);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success(),
        "lookerctl token: {}\nagent log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        log_text()
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(looker_user(&emu.url(), &token).0, 200);
    assert!(log_text().contains("socket passed by systemd"), "{}", log_text());
    // Agent's own default socket was never bound.
    assert!(!env.socket.exists());
    // The passed TCP socket is the gateway's door.
    let status: serde_json::Value = serde_json::from_str(&env.ctl_ok(&["status", "--json"], None)).unwrap();
    assert_eq!(status["gateway"]["url"], format!("http://127.0.0.1:{port}"), "{}", log_text());

    unsafe_kill(child.id() as i32, SIGTERM);
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "agent did not stop; log:\n{}", log_text());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit {status}; log:\n{}", log_text());
    // The socket belongs to systemd: the agent leaves it in place.
    assert!(sock.exists(), "the agent removed the socket systemd passed");
    // And it revoked its token on the way out.
    assert_eq!(looker_user(&emu.url(), &token).0, 401);
}

#[test]
fn notify_socket_gets_ready_status_reloading_and_stopping() {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("id-n", "secret-n")]);
    let mut env = TestEnv::new("file");
    env.add_profile("prod", &emu.url(), &[("default", "id-n", "secret-n")]);

    let notify_path = env.dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    env.vars.insert("NOTIFY_SOCKET".into(), notify_path.display().to_string());

    let mut agent = env.start_agent(&[]);
    let mut seen = Vec::new();
    recv_until(&notify, "READY=1", &mut seen);
    recv_until(&notify, "STATUS=", &mut seen);
    let status = seen.iter().flat_map(|m| m.lines()).find(|l| l.starts_with("STATUS=")).unwrap().to_string();
    assert!(status.contains("1 profile") && status.contains("0 tokens live"), "{status}");

    // A login shows in the status line.
    env.ctl_ok(&["token", "prod"], None);
    recv_until(&notify, "STATUS=serving 1 profile (1 credential set); 1 token live", &mut seen);

    // SIGHUP: RELOADING=1 (with the time, for systemd 253+), then READY=1 again.
    seen.clear();
    unsafe_kill(agent.pid(), SIGHUP);
    recv_until(&notify, "RELOADING=1", &mut seen);
    assert!(seen.iter().any(|m| m.contains("MONOTONIC_USEC=")), "{seen:?}");
    recv_until(&notify, "READY=1", &mut seen);

    seen.clear();
    let (st, _) = agent.stop_with(SIGTERM);
    recv_until(&notify, "STOPPING=1", &mut seen);
    assert!(st.success(), "{st}; log:\n{}", common::read(&agent.log));
    for m in &seen {
        assert!(!m.contains("secret-n"), "a notification carried the secret: {m}");
    }
}

/// Writes the config by hand, as a headless server would (no secret goes through lookerctl).
fn write_config(env: &TestEnv, base_url: &str, creds: &[(&str, &str)]) {
    let mut text = format!("[profiles.prod]\nbase_url = \"{base_url}\"\n");
    for (name, id) in creds {
        text.push_str(&format!("\n[[profiles.prod.credentials]]\nname = \"{name}\"\nclient_id = \"{id}\"\n"));
    }
    std::fs::create_dir_all(env.config.parent().unwrap()).unwrap();
    std::fs::write(&env.config, text).unwrap();
}

fn credentials_dir(parent: &Path, files: &[(&str, &str)]) -> PathBuf {
    let dir = parent.join("credentials");
    std::fs::create_dir(&dir).unwrap();
    for (name, body) in files {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
    }
    // As systemd leaves it: read-only.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    dir
}

#[test]
fn credentials_directory_serves_a_token_without_any_stored_secret() {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("id-c", "secret-c"), ("id-f", "secret-f")]);
    let mut env = TestEnv::new("file");
    write_config(&env, &emu.url(), &[("default", "id-c"), ("fallback", "id-f")]);
    // `default` lives only in the credentials folder (as systemd-creds output would,
    // with a trailing newline); `fallback` only in the file store.
    let creds = credentials_dir(env.dir.path(), &[("looker-agent.prod.default", "secret-c\n")]);
    let out = env.ctl(&["credential", "add", "prod", "fallback", "--client-id", "id-f"], Some("secret-f"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    env.vars.insert("CREDENTIALS_DIRECTORY".into(), creds.display().to_string());
    assert!(!env.dir.path().join("data/looker-agent/secrets/prod/default.d").exists());

    let mut agent = env.start_agent(&[]);
    let token = env.ctl_ok(&["token", "prod", "--credential", "default"], None).trim().to_string();
    assert_eq!(looker_user(&emu.url(), &token).0, 200, "{}", common::read(&agent.log));
    let token_f = env.ctl_ok(&["token", "prod", "--credential", "fallback"], None).trim().to_string();
    assert_eq!(looker_user(&emu.url(), &token_f).0, 200);

    let status = env.ctl_ok(&["status", "--json"], None);
    assert!(status.contains("systemd credentials"), "{status}");
    let log = common::read(&agent.log);
    assert!(log.contains("looker-agent.prod.default"), "{log}");
    assert!(!log.contains("secret-c") && !status.contains("secret-c"), "the secret leaked:\n{log}\n{status}");
    let (st, _) = agent.stop_with(SIGTERM);
    assert!(st.success());
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn unit_files_pass_systemd_analyze() {
    let out = Command::new("bash")
        .arg(repo().join("scripts/check-units.sh"))
        .arg(agent_bin())
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "scripts/check-units.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn journal_stream_decides_between_journald_and_text() {
    use std::os::unix::fs::MetadataExt;
    let env = TestEnv::new("file");
    let run = |journal_stream: &dyn Fn(&std::fs::Metadata) -> String| {
        let log = env.dir.path().join(format!("journal-{}.log", common::unique("")));
        let f = std::fs::File::create(&log).unwrap();
        let value = journal_stream(&f.metadata().unwrap());
        let mut cmd = Command::new(agent_bin());
        cmd.envs(&env.vars).env("JOURNAL_STREAM", value).env_remove("NOTIFY_SOCKET").arg("--check");
        let st = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(f).status().unwrap();
        assert!(st.success());
        std::fs::read_to_string(&log).unwrap()
    };
    // Inherited from a parent whose stderr went to the journal: ours does not, so text.
    let text = run(&|m| format!("{}:{}", m.dev(), m.ino() + 1));
    assert!(text.contains("secret store"), "{text}");
    // Our stderr is the stream named: journald, or text plus a warning without one.
    let journal = run(&|m| format!("{}:{}", m.dev(), m.ino()));
    if Path::new("/run/systemd/journal/socket").exists() {
        assert!(!journal.contains("secret store"), "{journal}");
    } else {
        assert!(journal.contains("does not answer") && journal.contains("secret store"), "{journal}");
    }
}

/// The exposure ceiling scripts/check-units.sh enforces (LOOKER_AGENT_MAX_EXPOSURE, else
/// the script's default), so the offline and the live check cannot drift apart.
fn max_exposure() -> f64 {
    if let Ok(v) = std::env::var("LOOKER_AGENT_MAX_EXPOSURE") {
        return v.parse().expect("LOOKER_AGENT_MAX_EXPOSURE is a number");
    }
    let script = std::fs::read_to_string(repo().join("scripts/check-units.sh")).unwrap();
    let (_, rest) =
        script.split_once("${LOOKER_AGENT_MAX_EXPOSURE:-").expect("the default in check-units.sh");
    rest.split('}').next().unwrap().parse().expect("a number")
}

/// The profile names the running agent serves (`lookerctl status --json`, i.e. /v1/status).
fn served_profiles(um: &UserManager) -> Result<Vec<String>, String> {
    let out = um.run("lookerctl", &["status", "--json"]);
    if !out.status.success() {
        return Err(format!("lookerctl status: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let names = v["profiles"].as_array().ok_or("no profiles array")?;
    Ok(names.iter().filter_map(|p| p["name"].as_str().map(String::from)).collect())
}

/// Waits until `prop` of `unit` is `want`.
fn wait_property(um: &mut UserManager, unit: &str, prop: &str, want: &str) {
    um.wait_for(&format!("{unit} {prop}={want}"), Duration::from_secs(20), |um| {
        let got = um.property(unit, prop);
        if got == want {
            Ok(())
        } else {
            Err(format!("{prop}={got}"))
        }
    });
}

/// The units exactly as shipped (systemd/, dbus/), installed as docs/systemd.md says, with
/// the built binaries in ~/.cargo/bin, under a real `systemd --user`: socket activation,
/// Type=notify status, reload, stop with revocation, D-Bus activation, and the live
/// `systemd-analyze --user security` rating.
#[test]
fn shipped_units_work_under_a_real_user_manager() {
    const SERVICE: &str = "looker-agent.service";
    const SOCKET: &str = "looker-agent.socket";
    // Declared before the manager, so dropped after it: the agent revokes against it on the way out.
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("id-um", "secret-um")]);
    // The file store: the throw-away user has no keyring (and "auto" would ask the bus for one).
    let Some(mut um) = UserManager::start(&[("LOOKER_AGENT_SECRET_STORE", "file")]) else {
        return;
    };

    // Install as docs/systemd.md says; the binaries go where the unit's ExecStart= looks.
    um.install_program(&agent_bin(), ".cargo/bin/looker-agent");
    um.install_program(&ctl_bin(), ".cargo/bin/lookerctl");
    for unit in [SERVICE, SOCKET] {
        let text = std::fs::read(repo().join("systemd").join(unit)).unwrap();
        um.put(&format!(".config/systemd/user/{unit}"), &text, 0o644);
    }
    let activation = "io.github.lookeragent.Agent1.service";
    let text = std::fs::read(repo().join("dbus").join(activation)).unwrap();
    um.put(&format!(".local/share/dbus-1/services/{activation}"), &text, 0o644);
    // A profile and a credential set, by lookerctl as the user (no agent runs yet).
    um.run_ok("lookerctl", &["profile", "add", "prod", "--base-url", &emu.url()]);
    let args = ["credential", "add", "prod", "default", "--client-id", "id-um"];
    let out = um.run_with_stdin("lookerctl", &args, "secret-um");
    um.check_ok("lookerctl", &args, &out);
    um.systemctl_ok(&["daemon-reload"]);
    um.systemctl_ok(&["enable", "--now", SOCKET]);
    wait_property(&mut um, SOCKET, "SubState", "listening");
    if um.property(SERVICE, "ActiveState") != "inactive" {
        um.fail("looker-agent.service started before anyone connected");
    }

    // Socket activation: the first connection starts the agent, which serves on systemd's socket.
    let token = um.run_ok("lookerctl", &["token", "prod"]).trim().to_string();
    if !emu.emu().is_live(&token) {
        um.fail("the token from the socket-activated agent is not live at the emulator");
    }
    wait_property(&mut um, SERVICE, "ActiveState", "active");
    let log = um.unit_journal(SERVICE);
    if !log.contains("using the socket passed by systemd") {
        um.fail("the agent did not take the socket systemd passed");
    }

    // Type=notify: systemd shows the agent's own STATUS= line.
    if um.property(SERVICE, "Type") != "notify" {
        um.fail("looker-agent.service is not Type=notify");
    }
    wait_property(&mut um, SERVICE, "StatusText", "serving 1 profile (1 credential set); 1 token live");

    // Reload: systemctl's reload succeeds, and the same process re-read its config.
    let main_pid = um.property(SERVICE, "MainPID");
    let config = um.home.join(".config/looker-agent/config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("\n[profiles.second]\nbase_url = \"{}\"\n", emu.url()));
    std::fs::write(&config, text).unwrap();
    um.systemctl_ok(&["reload", SERVICE]);
    let profiles = um.wait_for("the reloaded config in /v1/status", Duration::from_secs(20), |um| {
        let names = served_profiles(um)?;
        if names.iter().any(|n| n == "second") {
            Ok(names)
        } else {
            Err(format!("profiles served: {names:?}"))
        }
    });
    if profiles != ["prod", "second"] {
        um.fail(&format!("after reload the agent serves {profiles:?}"));
    }
    um.wait_for("the agent to log the SIGHUP reload", Duration::from_secs(20), |um| {
        let log = um.unit_journal(SERVICE);
        if log.contains("SIGHUP received") {
            Ok(())
        } else {
            Err("no \"SIGHUP received\" in its journal".into())
        }
    });
    wait_property(&mut um, SERVICE, "StatusText", "serving 2 profiles (1 credential set); 1 token live");
    wait_property(&mut um, SERVICE, "ActiveState", "active");
    if um.property(SERVICE, "MainPID") != main_pid {
        um.fail("reload restarted the agent instead of reloading it");
    }
    if um.run_ok("lookerctl", &["token", "prod"]).trim() != token {
        um.fail("the cached token did not survive the reload");
    }

    // Restart: the gateway keeps its URL and its credentials (the sandboxed unit can
    // write its state file in its runtime folder).
    let minted: serde_json::Value = serde_json::from_str(
        &um.run_ok("lookerctl", &["gateway", "credential", "prod", "--json", "--ttl", "1h"]),
    )
    .unwrap();
    let gateway_login = |um: &UserManager| {
        let form = format!("client_id={}&client_secret={}", minted["client_id"], minted["client_secret"])
            .replace('"', "");
        let url = format!("{}/api/4.0/login", minted["base_url"].as_str().unwrap());
        let out = um.run(
            "curl",
            &["-s", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}", "-d", &form, &url],
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    if gateway_login(&um) != "200" {
        um.fail("a minted gateway credential does not log in");
    }
    um.systemctl_ok(&["restart", SERVICE]);
    wait_property(&mut um, SERVICE, "ActiveState", "active");
    if um.property(SERVICE, "MainPID") == main_pid {
        um.fail("systemctl restart did not start a new agent");
    }
    let status: serde_json::Value =
        serde_json::from_str(&um.run_ok("lookerctl", &["status", "--json"])).unwrap();
    if status["gateway"]["url"] != minted["base_url"] {
        um.fail(&format!(
            "after a restart the gateway is at {} (was {})",
            status["gateway"]["url"], minted["base_url"]
        ));
    }
    if gateway_login(&um) != "200" {
        um.fail("a gateway credential minted before the restart does not log in after it");
    }
    if um.unit_journal(SERVICE).contains("an agent restart would end them") {
        um.fail("the sandboxed agent cannot write its gateway state file");
    }
    let token = um.run_ok("lookerctl", &["token", "prod"]).trim().to_string();

    // Stop: the agent revokes what it obtained, then exits cleanly; the socket stays.
    um.systemctl_ok(&["stop", SERVICE]);
    let live = emu.emu().counters().live_tokens;
    if live != 0 || emu.emu().is_live(&token) {
        um.fail(&format!("{live} token(s) still live at the emulator after systemctl stop"));
    }
    for (prop, want) in [("ActiveState", "inactive"), ("Result", "success"), ("ExecMainStatus", "0")] {
        let got = um.property(SERVICE, prop);
        if got != want {
            um.fail(&format!("after stop, {prop}={got} (want {want})"));
        }
    }
    if um.property(SOCKET, "SubState") != "listening" {
        um.fail("stopping the service took the socket down");
    }

    // D-Bus activation: a call to the bus name (nothing touches the socket) starts the unit
    // through dbus/io.github.lookeragent.Agent1.service.
    let reply = um.run_ok(
        "busctl",
        &[
            "--user",
            "--timeout=30",
            "call",
            "io.github.lookeragent.Agent1",
            "/io/github/lookeragent/Agent1",
            "io.github.lookeragent.Agent1",
            "ListProfiles",
        ],
    );
    if reply.trim() != r#"as 2 "prod" "second""# {
        um.fail(&format!("ListProfiles over D-Bus answered {reply:?}"));
    }
    wait_property(&mut um, SERVICE, "ActiveState", "active");
    if um.property(SERVICE, "MainPID") == main_pid {
        um.fail("D-Bus activation did not start a new agent");
    }
    // The sandbox is really set up (not only rated): the agent has namespaces of its own.
    let pid = um.property(SERVICE, "MainPID");
    for ns in ["user", "mnt", "ipc", "uts"] {
        let agent = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).ok();
        if agent.is_none() || agent == std::fs::read_link(format!("/proc/self/ns/{ns}")).ok() {
            um.fail(&format!("the agent shares the {ns} namespace of the host ({agent:?})"));
        }
    }

    // The live unit's sandbox rating, from the running manager (not --offline).
    let out = um.run("systemd-analyze", &["--user", "security", "--no-pager", SERVICE]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let exposure: f64 = text
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for looker-agent.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| {
            um.fail(&format!(
                "systemd-analyze security printed no exposure level:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        });
    eprintln!("systemd-analyze --user security on the running unit: exposure {exposure}");
    if exposure > max_exposure() {
        um.fail(&format!("live exposure {exposure} is above {}:\n{text}", max_exposure()));
    }

    um.systemctl_ok(&["stop", SERVICE]);
    if um.property(SERVICE, "Result") != "success" {
        um.fail("the D-Bus-activated agent did not stop cleanly");
    }
}
