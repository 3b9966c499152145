//! Issue 11, points 5, 6, 10, 11 and 13: nobody fooled, nothing dropped.
//!
//! Real binaries over the real socket, a real second uid (65534, through `setpriv`
//! or a process that drops to it), a real fork/exec, a real descriptor limit
//! (`ulimit -n` in a `sh -c` wrapper) and a real Looker emulator.

mod common;

use common::{agent_bin, read, AgentProc, BgEmulator, TestEnv};
use looker_emulator::Faults;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The other user of these tests.
const NOBODY: &str = "65534";

/// The system's python (not a per-user shim): uid 65534 must be able to run it.
const PYTHON: &str = "/usr/bin/python3";

fn root_with_python() -> bool {
    if rustix::process::geteuid().as_raw() != 0 || !Path::new(PYTHON).exists() {
        eprintln!("skipped: needs root and {PYTHON} to act as a second uid (CI has both)");
        return false;
    }
    true
}

fn as_nobody(program: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([&format!("--reuid={NOBODY}"), &format!("--regid={NOBODY}"), "--clear-groups", program]);
    cmd
}

/// A fake agent: answers every request with a planted token for https://attacker.example.
/// With `drop`, it binds as root, then becomes uid 65534 before listen(2) (which is
/// when the kernel records the credentials a client's SO_PEERCRED sees).
const FAKE_AGENT: &str = r#"
import os, socket, sys
path, drop = sys.argv[1], sys.argv[2] == "drop"
s = socket.socket(socket.AF_UNIX)
s.bind(path)
os.chmod(path, 0o777)
if drop:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
s.listen(16)
print("ready", flush=True)
body = b'{"access_token":"planted-token","token_type":"Bearer","expires_in":3600,"expires_at":"2099-01-01T00:00:00Z","profile":"prod","credential":"c","base_url":"https://attacker.example"}'
while True:
    c, _ = s.accept()
    try:
        c.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    except Exception:
        pass
    c.close()
"#;

/// A running fake agent; killed on drop.
struct Fake(Child);

impl Fake {
    fn start(mut cmd: Command, socket: &Path, drop: bool) -> Fake {
        let mut child = cmd
            .args(["-c", FAKE_AGENT])
            .arg(socket)
            .arg(if drop { "drop" } else { "stay" })
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the fake agent did not start");
        Fake(child)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Removes the planted fallback folder (as root) when the test ends, however it ends.
struct Planted(PathBuf);

impl Drop for Planted {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits (bounded) for `child` to exit on its own; kills it and fails if it does not.
fn wait_exit(mut child: Child, what: &str) -> (std::process::ExitStatus, String) {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return (st, err);
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} kept running (it should have refused to start)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_planted_fallback_folder_is_refused_by_lookerctl_and_by_the_agent() {
    if !root_with_python() {
        return;
    }
    // XDG_RUNTIME_DIR unset (cron, su, ssh without pam_systemd): /tmp/looker-agent-UID.
    let uid = rustix::process::getuid().as_raw();
    let fallback = PathBuf::from(format!("/tmp/looker-agent-{uid}"));
    if let Ok(meta) = std::fs::symlink_metadata(&fallback) {
        use std::os::unix::fs::MetadataExt;
        if meta.uid().to_string() != NOBODY {
            eprintln!("skipped: {} exists and is not a leftover of this test", fallback.display());
            return;
        }
        std::fs::remove_dir_all(&fallback).unwrap();
    }
    let _cleanup = Planted(fallback.clone());
    let env = TestEnv::new("file");

    // The other user creates the folder first; the agent must not build its own inside.
    let st = as_nobody("mkdir").args(["-m", "0755"]).arg(&fallback).status().unwrap();
    assert!(st.success());
    let mut cmd = Command::new(agent_bin());
    cmd.envs(&env.vars)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("LOOKER_AGENT_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let (st, err) = wait_exit(cmd.spawn().unwrap(), "looker-agent in a planted folder");
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(err.contains(&fallback.display().to_string()) && err.contains("owned by uid 65534"), "{err}");
    assert!(!fallback.join("looker-agent").exists(), "the agent created its folder in someone else's");

    // Now with a fake agent behind it: lookerctl must not take its token or its base URL.
    let inner = fallback.join("looker-agent");
    assert!(as_nobody("mkdir").args(["-m", "0755"]).arg(&inner).status().unwrap().success());
    let _fake = Fake::start(as_nobody(PYTHON), &inner.join("agent.sock"), false);
    let extra: [(&str, &str); 0] = [];
    for args in [
        &["token", "prod", "--format", "env"][..],
        &["exec", "prod", "--", "/bin/sh", "-c", "printf %s \"$LOOKERSDK_BASE_URL\""][..],
    ] {
        let mut cmd = env.ctl_command(args, &extra, None);
        cmd.env_remove("XDG_RUNTIME_DIR").stdin(Stdio::null());
        let out = cmd.output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(3), "lookerctl {args:?}: {stdout} / {stderr}");
        assert!(!stdout.contains("attacker.example") && !stdout.contains("planted-token"), "{stdout}");
        assert!(stderr.contains("owned by uid 65534") && stderr.contains("XDG_RUNTIME_DIR"), "{stderr}");
    }
}

#[test]
fn a_socket_served_by_another_user_is_refused() {
    if !root_with_python() {
        return;
    }
    // The folder is ours and private; only the process behind the socket is not.
    let env = TestEnv::new("file");
    let dir = env.socket.parent().unwrap();
    std::fs::create_dir(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let _fake = Fake::start(Command::new(PYTHON), &env.socket, true);
    let out = env.ctl(&["token", "prod"], None);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{stdout} / {stderr}");
    assert!(!stdout.contains("planted-token"), "{stdout}");
    assert!(stderr.contains("served by uid 65534") && stderr.contains("not your agent"), "{stderr}");
    // Nor does any other command talk to it.
    let out = env.ctl(&["status"], None);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Connects, shows the agent who it is (a first request, so the connection is
/// accepted), forks, and execs an allowed program (`sleep`); the child, still holding
/// the connection, then asks for a token of the allow-listed profile.
const FORK_EXEC: &str = r#"
import os, socket, sys, time
path, sleep = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX)
s.connect(path)
def ask(req):
    s.sendall(req)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    head, _, rest = data.partition(b"\r\n\r\n")
    n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(rest) < n:
        rest += s.recv(4096)
    return (head + b"\r\n\r\n" + rest).decode()
first = ask(b"GET /v1/health HTTP/1.1\r\nHost: a\r\n\r\n")
assert first.startswith("HTTP/1.1 200"), first
parent = os.getpid()
if os.fork() == 0:
    while os.readlink(f"/proc/{parent}/exe") != sleep:
        time.sleep(0.01)
    sys.stdout.write(ask(b"GET /v1/profiles/locked/token HTTP/1.1\r\nHost: a\r\n\r\n"))
    sys.stdout.flush()
    os._exit(0)
devnull = os.open("/dev/null", os.O_WRONLY)
os.dup2(devnull, 1)
os.execv(sleep, [sleep, "30"])
"#;

#[test]
fn a_connection_is_judged_by_the_program_that_opened_it() {
    if !Path::new(PYTHON).exists() {
        eprintln!("skipped: needs {PYTHON}");
        return;
    }
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("fx-id", "fx-secret")]);
    let env = TestEnv::new("file");
    env.add_profile("locked", &emu.url(), &[("c", "fx-id", "fx-secret")]);
    let canon = |p: &str| std::fs::canonicalize(p).unwrap().display().to_string();
    let (sleep, curl) = (canon("/usr/bin/sleep"), canon("/usr/bin/curl"));
    let cfg = read(&env.config).replace(
        "[profiles.locked]\n",
        &format!("[profiles.locked]\nallowed_executables = [{sleep:?}, {curl:?}]\n"),
    );
    std::fs::write(&env.config, cfg).unwrap();
    let agent = env.start_agent(&[]);

    // python connected; that sleep runs under its pid by the time of the request changes nothing.
    let mut child = Command::new(PYTHON)
        .args(["-c", FORK_EXEC])
        .arg(&env.socket)
        .arg(&sleep)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut answer = String::new();
    child.stdout.take().unwrap().read_to_string(&mut answer).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1.1 403") && answer.contains("\"forbidden\""), "{answer}");
    assert!(!answer.contains("access_token"), "{answer}");
    assert!(answer.contains("python"), "the refusal names the program that connected: {answer}");
    assert_eq!(emu.emu().counters().logins, 0);
    assert!(agent.log_text().contains("token refused: caller not in the profile's allowed_executables"));

    // An allowed program that connects itself is served.
    let out = Command::new(&curl)
        .args(["-s", "--unix-socket"])
        .arg(&env.socket)
        .arg("http://agent/v1/profiles/locked/token")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(emu.emu().is_live(v["access_token"].as_str().unwrap()), "{v}");
}

/// One request on `s`, its answer read to the end of its body (keep-alive).
fn ask(s: &mut UnixStream, req: &[u8]) -> Result<String, String> {
    s.write_all(req).map_err(|e| format!("write: {e}"))?;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if data.len() >= end + 4 + len {
                return Ok(String::from_utf8_lossy(&data).into_owned());
            }
        }
        match s.read(&mut buf) {
            Ok(0) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&data))),
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read: {e} after {:?}", String::from_utf8_lossy(&data))),
        }
    }
}

fn connect(socket: &Path) -> UnixStream {
    let s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

const HEALTH: &[u8] = b"GET /v1/health HTTP/1.1\r\nHost: a\r\n\r\n";

/// Starts the agent through `sh -c '<limits> && exec looker-agent'`.
fn start_limited(env: &TestEnv, limits: &str) -> AgentProc {
    let log = env.dir.path().join("agent-limited.log");
    let child = Command::new("sh")
        .args(["-c", &format!("{limits} && exec \"$0\""), agent_bin().to_str().unwrap()])
        .envs(&env.vars)
        .env_remove("LOOKER_AGENT_SOCKET")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let agent = AgentProc { child: Some(child), log, socket: env.socket.clone() };
    let start = Instant::now();
    while UnixStream::connect(&env.socket).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "agent did not start: {}", agent.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    agent
}

/// Opens connections, each asking for its health once, until `n` have been tried;
/// keeps those served (200, kept alive). Returns them and the over-the-cap answers.
fn flood(socket: &Path, n: usize) -> (Vec<UnixStream>, Vec<String>) {
    let mut held = Vec::new();
    let mut refused = Vec::new();
    for i in 0..n {
        let mut s = connect(socket);
        let r = ask(&mut s, HEALTH).unwrap_or_else(|e| panic!("connection {i} got no answer: {e}"));
        if r.starts_with("HTTP/1.1 200") {
            held.push(s);
        } else {
            refused.push(r);
        }
    }
    (held, refused)
}

#[test]
fn out_of_descriptors_the_agent_answers_503_and_logs_once_per_episode() {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("fd-id", "fd-secret")]);
    let env = TestEnv::new("file");
    env.add_profile("prod", &emu.url(), &[("c", "fd-id", "fd-secret")]);
    let mut agent = start_limited(&env, "ulimit -n 64");
    let token = b"GET /v1/profiles/prod/token HTTP/1.1\r\nHost: a\r\n\r\n";

    for episode in 1..=2 {
        // More connections than descriptors: those over the cap are told so, none is lost.
        let (held, refused) = flood(&env.socket, 80);
        assert!(!held.is_empty() && !refused.is_empty(), "{} served, {} refused", held.len(), refused.len());
        for r in &refused {
            assert!(r.starts_with("HTTP/1.1 503") && r.contains("\"upstream_unavailable\""), "{r}");
        }
        let mut s = connect(&env.socket);
        let r = ask(&mut s, token).unwrap();
        assert!(r.starts_with("HTTP/1.1 503") && r.contains("limit of"), "{r}");
        let log = agent.log_text();
        assert_eq!(log.matches("connection limit reached").count(), episode, "{log}");
        assert!(!log.contains("accept failed"), "{log}");
        drop(held);

        // Once connections close, requests are served again, store and login included.
        let start = Instant::now();
        loop {
            let mut s = connect(&env.socket);
            let r = ask(&mut s, token).unwrap();
            if r.starts_with("HTTP/1.1 200") {
                assert!(r.contains("access_token"), "{r}");
                break;
            }
            assert!(r.starts_with("HTTP/1.1 503") && r.contains("limit of"), "{r}");
            assert!(start.elapsed() < Duration::from_secs(10), "slots never freed: {r}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let (st, _) = agent.stop_with(15);
    assert!(st.success(), "{}", agent.log_text());
    assert!(!agent.log_text().contains("Too many open files"), "{}", agent.log_text());
}

#[test]
fn a_revoke_finishes_when_its_client_hangs_up() {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("rv-id", "rv-secret")]);
    let env = TestEnv::new("file");
    env.add_profile("prod", &emu.url(), &[("c", "rv-id", "rv-secret")]);
    let agent = env.start_agent(&[]);
    let out = env.ctl_ok(&["token", "prod"], None);
    let token = out.trim().to_string();
    assert!(emu.emu().is_live(&token));
    let journal = env.dir.path().join("data").join("looker-agent").join("journal");
    let entries = || {
        std::fs::read_dir(&journal)
            .map(|d| {
                d.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "json")).count()
            })
            .unwrap_or(0)
    };
    assert_eq!(entries(), 1, "the live token is journaled");

    // Looker takes its time; the client sends its revoke and hangs up at once.
    emu.emu().set_faults(Faults { logout_delay: Duration::from_millis(500), ..Faults::default() });
    let mut s = connect(&env.socket);
    s.write_all(b"POST /v1/revoke HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}").unwrap();
    drop(s);

    let start = Instant::now();
    while emu.emu().is_live(&token) || entries() != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the revoke was dropped: live {}, journal entries {}; log:\n{}",
            emu.emu().is_live(&token),
            entries(),
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(emu.emu().counters().logouts, 1);
}

#[test]
fn names_are_decoded_echoed_short_and_revoke_wants_an_object() {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("pc-id", "pc-secret")]);
    let env = TestEnv::new("file");
    env.add_profile("prod", &emu.url(), &[("c", "pc-id", "pc-secret")]);
    let _agent = env.start_agent(&[]);
    let get = |path: &str| {
        let mut s = connect(&env.socket);
        ask(&mut s, format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes()).unwrap()
    };
    let post = |path: &str, body: &str| {
        let mut s = connect(&env.socket);
        let req = format!("POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        ask(&mut s, req.as_bytes()).unwrap()
    };

    // Percent-encoded segments are decoded: pro%64 is prod.
    let r = get("/v1/profiles/pro%64/token?credential=%63");
    assert!(r.starts_with("HTTP/1.1 200") && r.contains("\"profile\":\"prod\""), "{r}");
    let token = r.split("\"access_token\":\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    assert!(emu.emu().is_live(&token));
    let r = get("/v1/profiles/pro%zz/token");
    assert!(r.starts_with("HTTP/1.1 400") && r.contains("\"bad_request\""), "{r}");

    // A 5,000-character name comes back cut short.
    let long = "a".repeat(5000);
    for (path, code) in [
        (format!("/v1/profiles/{long}/token"), "unknown_profile"),
        (format!("/v1/profiles/prod/token?credential={long}"), "unknown_credential"),
        (format!("/v1/{long}"), "not_found"),
    ] {
        let r = get(&path);
        assert!(r.contains(&format!("\"{code}\"")), "{}", &r[..r.len().min(300)]);
        let body = r.split("\r\n\r\n").nth(1).unwrap();
        assert!(
            body.len() < 600 && body.contains('…'),
            "{} bytes: {}",
            body.len(),
            &body[..body.len().min(300)]
        );
    }
    let r = post("/v1/revoke", &format!("{{\"{long}\":1}}"));
    let body = r.split("\r\n\r\n").nth(1).unwrap();
    assert!(r.starts_with("HTTP/1.1 400") && body.len() < 600, "{}", &body[..body.len().min(300)]);

    // `[]` (or anything but an object) is no "revoke everything".
    for body in ["[]", "[\"prod\"]", "null", "1", "\"prod\""] {
        let r = post("/v1/revoke", body);
        assert!(r.starts_with("HTTP/1.1 400") && r.contains("\"bad_request\""), "{body}: {r}");
    }
    assert!(emu.emu().is_live(&token), "a malformed revoke revoked");
    let r = post("/v1/revoke", "{}");
    assert!(r.starts_with("HTTP/1.1 200") && r.contains("\"revoked\":1"), "{r}");
    assert!(!emu.emu().is_live(&token));
}
