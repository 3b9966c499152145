//! Shared test harness: temp XDG dirs, the real binaries, the emulator.
#![allow(dead_code)]

use looker_emulator::{Emulator, EmulatorConfig};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A real `systemd --user` for a throw-away user (tests/systemd.rs).
pub mod user_manager;

/// The isolated agent and emulator, shared with examples/loadgen.
pub mod broker;
pub mod bus;
pub mod isolated;
#[allow(unused_imports)]
pub use bus::{require_tool, PrivateBus};
pub use isolated::{AgentProc, BgEmulator};

/// The built daemon binary.
pub fn agent_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_looker-agent"))
}

/// The built lookerctl binary.
pub fn ctl_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lookerctl"))
}

/// One isolated environment: its own XDG dirs and socket.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub vars: BTreeMap<String, String>,
    pub socket: PathBuf,
    pub config: PathBuf,
}

impl TestEnv {
    /// A fresh environment using `store` (file, memory, secret-service, auto).
    pub fn new(store: &str) -> TestEnv {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let xdg = isolated::XdgDirs::create(p).unwrap();
        let runtime = xdg.runtime.clone();
        let mut vars = xdg.vars();
        vars.insert("LOOKER_AGENT_SECRET_STORE".into(), store.into());
        vars.insert("RUST_LOG".into(), "info".into());
        // Agents under test stay off the shared session bus, so lookerctl's D-Bus
        // fallback can never reach another test's agent. D-Bus tests opt back in.
        vars.insert("LOOKER_AGENT_NO_DBUS".into(), "1".into());
        let socket = runtime.join("looker-agent").join("agent.sock");
        let config = p.join("config").join("looker-agent").join("config.toml");
        TestEnv { dir, vars, socket, config }
    }

    fn apply(&self, cmd: &mut Command) {
        isolated::isolate(cmd, &self.vars);
    }

    /// Runs lookerctl with `args`, feeding `stdin`.
    pub fn ctl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(ctl_bin());
        self.apply(&mut cmd);
        cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        {
            let mut sin = child.stdin.take().unwrap();
            if let Some(s) = stdin {
                sin.write_all(s.as_bytes()).unwrap();
            }
        }
        child.wait_with_output().unwrap()
    }

    /// lookerctl that must succeed; returns stdout.
    pub fn ctl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.ctl(args, stdin);
        assert!(
            out.status.success(),
            "lookerctl {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Adds a profile for the emulator and one credential per `(name, client_id, secret)`.
    pub fn add_profile(&self, profile: &str, base_url: &str, creds: &[(&str, &str, &str)]) {
        self.ctl_ok(&["profile", "add", profile, "--base-url", base_url], None);
        for (name, id, secret) in creds {
            self.ctl_ok(&["credential", "add", profile, name, "--client-id", id], Some(secret));
        }
    }

    /// Starts the daemon and waits until it answers on its socket.
    pub fn start_agent(&self, extra: &[&str]) -> AgentProc {
        self.start_agent_without(extra, &[])
    }

    /// [`TestEnv::start_agent`] with the variables `remove` taken out of the daemon's
    /// environment (inherited or set in `vars`).
    pub fn start_agent_without(&self, extra: &[&str], remove: &[&str]) -> AgentProc {
        let mut cmd = Command::new(agent_bin());
        self.apply(&mut cmd);
        for k in remove {
            cmd.env_remove(k);
        }
        let log = self.dir.path().join(format!("agent-{}.log", rand_suffix()));
        cmd.args(extra);
        let proc = AgentProc::spawn(&mut cmd, log, self.socket.clone()).unwrap();
        proc.wait_ready();
        proc
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

impl AgentProc {
    fn wait_ready(&self) {
        if !self.wait_socket(Duration::from_secs(20), Duration::from_millis(20)) {
            panic!("agent did not start; log:\n{}", self.log_text());
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Sends `sig` and waits for exit (bounded); returns the status and how long it took.
    pub fn stop_with(&mut self, sig: i32) -> (std::process::ExitStatus, Duration) {
        let start = Instant::now();
        unsafe_kill(self.pid(), sig);
        let mut child = self.child.take().unwrap();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return (st, start.elapsed());
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!(
                    "agent did not exit after signal {sig}; log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// kill(2) through the `kill` command (keeps tests free of unsafe code).
pub fn unsafe_kill(pid: i32, sig: i32) {
    let st = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().unwrap();
    assert!(st.success());
}

/// An emulator with one credential per `(client_id, secret)`.
pub async fn emulator(lifetime: Duration, creds: &[(&str, &str)]) -> Emulator {
    isolated::start_emulator(EmulatorConfig { token_lifetime: lifetime, ..Default::default() }, creds)
        .await
        .unwrap()
}

/// True when a Secret Service is reachable on the session bus (scripts/test.sh provides one).
pub fn secret_service_available() -> bool {
    std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
        && Command::new("busctl")
            .args(["--user", "status", "org.freedesktop.secrets"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
}

/// Fails (or skips when LOOKER_AGENT_SKIP_SECRET_SERVICE=1) without a Secret Service.
pub fn require_secret_service() -> bool {
    if secret_service_available() {
        return true;
    }
    if std::env::var("LOOKER_AGENT_SKIP_SECRET_SERVICE").as_deref() == Ok("1") {
        eprintln!("skipped: no Secret Service (LOOKER_AGENT_SKIP_SECRET_SERVICE=1)");
        return false;
    }
    panic!("no Secret Service on the session bus: run the suite with scripts/test.sh (or set LOOKER_AGENT_SKIP_SECRET_SERVICE=1)");
}

/// Every regular file under `dir`, with its bytes, sorted by path.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(p),
                Ok(t) if t.is_file() => out.push((p.clone(), std::fs::read(&p).unwrap_or_default())),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// Fails when `secret` (named `what` in the message) is in any file under `dir`.
pub fn assert_nowhere_under(dir: &Path, secret: &str, what: &str) {
    for (path, body) in files_under(dir) {
        assert!(!String::from_utf8_lossy(&body).contains(secret), "the {what} is in {}", path.display());
    }
}

/// A finished command's standard error, as text.
pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Reads a file as text (empty when absent).
pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

impl BgEmulator {
    pub fn start(lifetime: Duration, creds: &[(&str, &str)]) -> BgEmulator {
        BgEmulator::try_start(EmulatorConfig { token_lifetime: lifetime, ..Default::default() }, creds)
            .unwrap()
    }

    pub fn emu(&self) -> &Emulator {
        self.emu.as_ref().unwrap()
    }

    pub fn url(&self) -> String {
        self.emu().base_url()
    }
}

/// A name unique across tests and runs (the keyring is shared by all tests).
pub fn unique(prefix: &str) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    format!("{prefix}{}", Alphanumeric.sample_string(&mut rand::rng(), 8).to_lowercase())
}

/// `GET /api/4.0/user` with `token` through curl; returns (status, body).
pub fn looker_user(base_url: &str, token: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "-H",
            &format!("Authorization: token {token}"),
            &format!("{base_url}/api/4.0/user"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

// ---------------------------------------------------------------------------
// Helpers for tests/cli.rs (lookerctl for real work).
// ---------------------------------------------------------------------------

impl TestEnv {
    /// A lookerctl command in this environment, with no LOOKERSDK_* variables
    /// inherited, `extra` variables set and the current folder `cwd`. Not started.
    pub fn ctl_command(&self, args: &[&str], extra: &[(&str, &str)], cwd: Option<&Path>) -> Command {
        let mut cmd = Command::new(ctl_bin());
        self.apply(&mut cmd);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("LOOKERSDK_") {
                cmd.env_remove(&k);
            }
        }
        cmd.envs(extra.iter().copied()).args(args);
        cmd.current_dir(cwd.unwrap_or(self.dir.path()));
        cmd
    }

    /// Runs lookerctl like [`TestEnv::ctl`], with extra variables and a current folder.
    pub fn ctl_with(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        extra: &[(&str, &str)],
        cwd: Option<&Path>,
    ) -> Output {
        let mut cmd = self.ctl_command(args, extra, cwd);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        {
            let mut sin = child.stdin.take().unwrap();
            if let Some(s) = stdin {
                sin.write_all(s.as_bytes()).unwrap();
            }
        }
        child.wait_with_output().unwrap()
    }
}

/// Polls `f` every 20 ms until it holds; fails the test naming `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, f: impl FnMut() -> bool) {
    assert!(isolated::poll_until(limit, Duration::from_millis(20), f), "timed out waiting for {what}");
}
