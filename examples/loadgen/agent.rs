//! The agents the `herd`, `memory`, `shutdown` and `ready` modes start, and their Looker.
//!
//! Started the way the test harness starts them (`tests/common/isolated.rs`): temporary
//! XDG folders, none of the caller's variables, stderr to a log. Configured by writing
//! the config file and a `$CREDENTIALS_DIRECTORY` rather than through lookerctl, and run
//! with `--secret-store memory --no-dbus`.

use crate::isolated::{self, AgentProc, BgEmulator, XdgDirs};
use crate::Res;
use looker_emulator::{Emulator, EmulatorConfig};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// An emulator on its own runtime with one credential per `(client_id, secret)`.
pub fn emulator(creds: &[(String, String)]) -> Res<BgEmulator> {
    let creds: Vec<(&str, &str)> = creds.iter().map(|(id, s)| (id.as_str(), s.as_str())).collect();
    BgEmulator::try_start(EmulatorConfig::default(), &creds).map_err(|e| format!("emulator: {e}"))
}

/// The emulator a [`BgEmulator`] runs (there until it is dropped).
pub fn running(bg: &BgEmulator) -> Res<&Emulator> {
    bg.emu.as_ref().ok_or_else(|| "the emulator has stopped".to_string())
}

/// Waits until a server we started answers on `path`.
pub fn wait_socket(path: &Path, limit: Duration) -> Res<()> {
    if isolated::poll_until(limit, Duration::from_millis(2), || isolated::answers(path)) {
        Ok(())
    } else {
        Err(format!("nothing answers on {} after {limit:?}", path.display()))
    }
}

/// One profile: its name and credential sets (name, client_id, secret).
pub struct ProfileSpec {
    pub name: String,
    pub creds: Vec<(String, String, String)>,
}

/// A `looker-agent` process in its own temporary environment; SIGKILLed on drop.
pub struct Agent {
    proc: AgentProc,
    _dir: tempfile::TempDir,
}

impl Agent {
    /// Writes the config and the credentials folder and starts `bin` with every profile
    /// on `base_url`; `notify` sets NOTIFY_SOCKET. Does not wait for the socket.
    pub fn spawn(bin: &Path, base_url: &str, profiles: &[ProfileSpec], notify: Option<&Path>) -> Res<Agent> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let d = dir.path();
        let xdg = XdgDirs::create(d).map_err(|e| format!("{}: {e}", d.display()))?;
        let creds = d.join("creds");
        for p in [&xdg.config.join("looker-agent"), &creds] {
            isolated::private_dir(p).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        let mut cfg = String::new();
        for p in profiles {
            cfg.push_str(&format!("[profiles.{}]\nbase_url = \"{base_url}\"\n", p.name));
            for (name, id, secret) in &p.creds {
                cfg.push_str(&format!(
                    "[[profiles.{}.credentials]]\nname = \"{name}\"\nclient_id = \"{id}\"\n",
                    p.name
                ));
                let f = creds.join(format!("looker-agent.{}.{name}", p.name));
                std::fs::write(&f, secret).map_err(|e| e.to_string())?;
                std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| e.to_string())?;
            }
        }
        let config = xdg.config.join("looker-agent/config.toml");
        std::fs::write(&config, cfg).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        let socket = xdg.runtime.join("agent.sock");
        let mut cmd = Command::new(bin);
        isolated::isolate(&mut cmd, &xdg.vars());
        // Not a journal: the agent's warnings go to its log file as text.
        cmd.env_remove("JOURNAL_STREAM")
            .env("CREDENTIALS_DIRECTORY", &creds)
            .env("RUST_LOG", "warn")
            .args(["--secret-store", "memory", "--no-dbus", "--config"])
            .arg(&config)
            .arg("--socket")
            .arg(&socket);
        if let Some(n) = notify {
            cmd.env("NOTIFY_SOCKET", n);
        }
        let proc = AgentProc::spawn(&mut cmd, d.join("agent.log"), socket)
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        Ok(Agent { proc, _dir: dir })
    }

    /// The agent's socket.
    pub fn socket(&self) -> &Path {
        &self.proc.socket
    }

    fn pid(&self) -> u32 {
        self.proc.child.as_ref().map_or(0, |c| c.id())
    }

    /// Waits until the agent answers on its socket.
    pub fn wait_ready(&self) -> Res<()> {
        let limit = Duration::from_secs(20);
        if self.proc.wait_socket(limit, Duration::from_millis(2)) {
            Ok(())
        } else {
            Err(format!(
                "nothing answers on {} after {limit:?}; agent log:\n{}",
                self.socket().display(),
                self.log()
            ))
        }
    }

    /// What the agent has logged so far.
    pub fn log(&self) -> String {
        self.proc.log_text()
    }

    /// VmRSS and VmHWM in KiB.
    pub fn rss_kib(&self) -> Res<(u64, u64)> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).map_err(|e| e.to_string())?;
        let field = |k: &str| {
            s.lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok((field("VmRSS:"), field("VmHWM:")))
    }

    /// Sends SIGTERM and waits for the exit; returns the time it took and whether it was a clean exit.
    pub fn terminate(&mut self) -> Res<(Duration, bool)> {
        let mut child = self.proc.child.take().ok_or("agent already stopped")?;
        let pid = rustix::process::Pid::from_raw(child.id() as i32).ok_or("bad pid")?;
        let t = Instant::now();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).map_err(|e| e.to_string())?;
        let st = child.wait().map_err(|e| e.to_string())?;
        Ok((t.elapsed(), st.success()))
    }
}
