//! A private `dbus-daemon` per test: the agent's D-Bus API without touching a
//! shared bus. One implementation for every test file; dbus-daemon is a real
//! part the test script installs, so a missing one fails the test, it does not skip.

use looker_agent::daemon::bus::BUS_NAME;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A dbus-daemon of our own; killed on drop.
pub struct PrivateBus {
    /// Its D-Bus address (for `DBUS_SESSION_BUS_ADDRESS`).
    pub address: String,
    /// Its pid (0 once killed).
    pub pid: i32,
    _dir: tempfile::TempDir,
}

/// Fails the test unless `tool` is on PATH, naming the Debian package that has it.
pub fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(found, "`{tool}` is missing: install the Debian package {package}");
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

impl PrivateBus {
    /// `dbus-daemon` with `extra` arguments (e.g. `--session`, `--config-file=…`).
    pub fn start_with(extra: &[&str]) -> PrivateBus {
        require_tool("dbus-daemon", "dbus-daemon");
        let dir = tempfile::tempdir().unwrap();
        let addr_file = dir.path().join("address");
        let pid_file = dir.path().join("pid");
        let script =
            r#"exec dbus-daemon --fork --nopidfile --print-address=3 --print-pid=4 "$@" 3>"$ADDR" 4>"$PID""#;
        let st = Command::new("sh")
            .args(["-c", script, "sh"])
            .args(extra)
            .env("ADDR", &addr_file)
            .env("PID", &pid_file)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "dbus-daemon did not start");
        let start = Instant::now();
        loop {
            let address = read(&addr_file).trim().to_string();
            let pid = read(&pid_file).trim().parse::<i32>().ok();
            if let (false, Some(pid)) = (address.is_empty(), pid) {
                return PrivateBus { address, pid, _dir: dir };
            }
            assert!(start.elapsed() < Duration::from_secs(10), "dbus-daemon printed no address");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The stock session bus configuration, on a fresh address.
    pub fn start() -> PrivateBus {
        PrivateBus::start_with(&["--session"])
    }

    /// Kills the bus now (a lost bus, as the agent sees it).
    pub fn kill(&mut self) {
        if self.pid > 0 {
            let _ = Command::new("kill").arg(self.pid.to_string()).stderr(Stdio::null()).status();
            self.pid = 0;
        }
    }

    /// SIGSTOP: from now on the bus reads nothing and answers nothing.
    pub fn stall(&self) {
        let pid = self.pid.to_string();
        assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
        // Stopped for sure before the test goes on (state `T` in /proc/PID/stat).
        let stat = format!("/proc/{pid}/stat");
        let stopped =
            || std::fs::read_to_string(&stat).unwrap().rsplit(") ").next().unwrap().starts_with('T');
        while !stopped() {
            std::thread::yield_now();
        }
    }

    /// A zbus connection to this bus.
    pub async fn connect(&self) -> zbus::Connection {
        zbus::connection::Builder::address(self.address.as_str()).unwrap().build().await.unwrap()
    }

    /// Waits until the agent's name has an owner (`owned`) or not (or the timeout
    /// passes); returns whether it got there.
    pub async fn wait_owner(&self, conn: &zbus::Connection, owned: bool, timeout: Duration) -> bool {
        let dbus = zbus::fdo::DBusProxy::new(conn).await.unwrap();
        let start = Instant::now();
        loop {
            let has = dbus.name_has_owner(BUS_NAME.try_into().unwrap()).await.unwrap();
            if has == owned {
                return true;
            }
            if start.elapsed() > timeout {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        if self.pid > 0 {
            // A stalled bus ignores SIGTERM until continued.
            let _ =
                Command::new("kill").args(["-KILL", &self.pid.to_string()]).stderr(Stdio::null()).status();
        }
    }
}
