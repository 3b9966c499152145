//! An isolated looker-agent and its Looker: temporary XDG folders, the real binary started
//! with nothing of the caller's setup, its socket waited for, an emulator on a runtime of
//! its own.
//!
//! Shared by the test harness (`tests/common/mod.rs` re-exports it) and the benchmarks
//! (`examples/loadgen` includes this file by path), so both start agents the same way.
//! Nothing here panics: the tests unwrap, loadgen reports the error.

use looker_emulator::{Emulator, EmulatorConfig, EmulatorUser};
use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Variables that would point an agent or lookerctl at another setup than the isolated one:
/// a socket or config elsewhere, a default profile, a systemd notification or socket.
pub const FOREIGN_VARS: [&str; 6] = [
    "LOOKER_AGENT_SOCKET",
    "LOOKER_AGENT_CONFIG",
    "LOOKER_AGENT_PROFILE",
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
];

/// The XDG base folders of one isolated environment.
pub struct XdgDirs {
    pub config: PathBuf,
    pub data: PathBuf,
    pub state: PathBuf,
    pub runtime: PathBuf,
}

impl XdgDirs {
    /// Creates `config`, `data`, `state` and `run` under `root`; the runtime folder 0700,
    /// as the agent requires of the folder its socket lives in.
    pub fn create(root: &Path) -> io::Result<XdgDirs> {
        let runtime = root.join("run");
        private_dir(&runtime)?;
        let dirs = XdgDirs {
            config: root.join("config"),
            data: root.join("data"),
            state: root.join("state"),
            runtime,
        };
        for d in [&dirs.config, &dirs.data, &dirs.state] {
            std::fs::create_dir_all(d)?;
        }
        Ok(dirs)
    }

    /// The `XDG_*_HOME` and `XDG_RUNTIME_DIR` variables naming these folders.
    pub fn vars(&self) -> BTreeMap<String, String> {
        [
            ("XDG_CONFIG_HOME", &self.config),
            ("XDG_DATA_HOME", &self.data),
            ("XDG_STATE_HOME", &self.state),
            ("XDG_RUNTIME_DIR", &self.runtime),
        ]
        .into_iter()
        .map(|(k, d)| (k.to_string(), d.display().to_string()))
        .collect()
    }
}

/// Creates `dir` (and its parents) and sets it to 0700.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Takes [`FOREIGN_VARS`] out of `cmd`'s environment and sets `vars`.
pub fn isolate(cmd: &mut Command, vars: &BTreeMap<String, String>) {
    for k in FOREIGN_VARS {
        cmd.env_remove(k);
    }
    cmd.envs(vars);
}

/// Checks `cond` every `every` until it holds or `limit` has passed; whether it held.
pub fn poll_until(limit: Duration, every: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(every);
    }
    false
}

/// Whether something accepts connections on `socket`.
pub fn answers(socket: &Path) -> bool {
    UnixStream::connect(socket).is_ok()
}

/// A running daemon process; SIGKILLed on drop if still running.
pub struct AgentProc {
    pub child: Option<Child>,
    pub log: PathBuf,
    pub socket: PathBuf,
}

impl AgentProc {
    /// Starts `cmd` (an isolated agent listening on `socket`) with no input or output and
    /// its stderr in a new file `log`. Does not wait for the socket.
    pub fn spawn(cmd: &mut Command, log: PathBuf, socket: PathBuf) -> io::Result<AgentProc> {
        let logf = std::fs::File::create(&log)?;
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(logf).spawn()?;
        Ok(AgentProc { child: Some(child), log, socket })
    }

    /// Waits until the agent answers on its socket, checking every `every`, at most `limit`.
    pub fn wait_socket(&self, limit: Duration, every: Duration) -> bool {
        poll_until(limit, every, || answers(&self.socket))
    }

    /// What the agent has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An emulator started with `config`, with one credential per `(client_id, secret)`.
pub async fn start_emulator(config: EmulatorConfig, creds: &[(&str, &str)]) -> io::Result<Emulator> {
    let e = Emulator::start(config).await?;
    for (i, (id, secret)) in creds.iter().enumerate() {
        e.add_credential(
            id,
            secret,
            EmulatorUser::new(&format!("{}", i + 10), "Report Bot", "bot@example.com"),
        );
    }
    Ok(e)
}

/// An emulator on its own runtime, so the caller's thread can block freely.
pub struct BgEmulator {
    pub emu: Option<Emulator>,
    pub rt: tokio::runtime::Runtime,
}

impl BgEmulator {
    /// [`start_emulator`] on a new two-thread runtime.
    pub fn try_start(config: EmulatorConfig, creds: &[(&str, &str)]) -> io::Result<BgEmulator> {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let emu = rt.block_on(start_emulator(config, creds))?;
        Ok(BgEmulator { emu: Some(emu), rt })
    }
}

impl Drop for BgEmulator {
    fn drop(&mut self) {
        if let Some(e) = self.emu.take() {
            self.rt.block_on(e.shutdown());
        }
    }
}
