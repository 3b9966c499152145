//! A real `systemd --user` for the tests: a throw-away user whose user manager runs in a
//! private mount namespace, with a journald of its own. The recipe, and what fails without
//! each step, is in docs/systemd.md ("How the units are tested").
//!
//! Needs root, systemd (the manager, journald, `systemctl`, `journalctl`), util-linux
//! (`unshare`, `nsenter`, `setpriv`), `useradd` and dbus-user-session (the session bus
//! as a user unit). Without them [`UserManager::start`] skips (returns `None`), except
//! under `CI=true`, where it fails. Every step waits for its condition with a deadline and
//! fails with the manager's journal; `Drop` takes everything down, whatever the test did.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// PATH for what runs as root (the namespace setup, journald, nsenter, journalctl).
const ROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Where useradd and userdel live (not always on a PATH).
const SBIN: &[&str] = &["/usr/sbin", "/sbin"];
/// How often a condition is checked while waiting for it.
const POLL: Duration = Duration::from_millis(20);
/// The cgroup hierarchies a user manager needs a delegated group in (whichever exist:
/// hybrid hosts have the first two, pure cgroup v2 hosts the last).
const CGROUP_ROOTS: [&str; 3] = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup"];
/// Set up inside the new mount namespace, then exec'd into journald (which holds the
/// namespace for as long as it runs). Why each mount: docs/systemd.md.
const NAMESPACE_SETUP: &str = r#"set -e
mountpoint -q /run || mount --bind /run /run
mount -t tmpfs -o mode=0755 looker-agent-test /run/systemd
mkdir /run/systemd/system /run/systemd/journald.conf.d
mkdir -m 0700 /run/systemd/unit-root
mount -t tmpfs -o mode=0755 looker-agent-test /run/log
printf '[Journal]\nStorage=volatile\nReadKMsg=no\nForwardToWall=no\nForwardToConsole=no\nForwardToSyslog=no\n' \
    >/run/systemd/journald.conf.d/looker-agent-test.conf
# No audit capabilities: journald then leaves the host's audit settings alone.
exec setpriv --bounding-set=-audit_read,-audit_control,-audit_write -- "$0"
"#;
/// Moves itself into the delegated cgroups ($DELEGATED_CGROUPS, `:`-separated), then
/// becomes its arguments (setpriv … systemd --user).
const MANAGER_SETUP: &str = r#"set -e
IFS=:
for g in $DELEGATED_CGROUPS; do echo $$ >"$g/cgroup.procs"; done
unset IFS
exec "$@"
"#;

/// One throw-away user with a running `systemd --user` (and its session bus, on demand).
pub struct UserManager {
    /// The user's name (`la-sd-…`).
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    /// Its home folder.
    pub home: PathBuf,
    /// `/run/user/UID`, its XDG_RUNTIME_DIR.
    pub runtime_dir: PathBuf,
    /// Variables set for the manager (so for every unit) and for [`UserManager::command`].
    env: Vec<(String, String)>,
    logs: tempfile::TempDir,
    user_created: bool,
    runtime_created: bool,
    /// Cgroup folders we created, parents first.
    cgroups_created: Vec<PathBuf>,
    /// The delegated `user@UID.service` groups.
    delegated: Vec<PathBuf>,
    journald: Option<Child>,
    manager: Option<Child>,
}

fn find_program(name: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':').chain(extra_dirs.iter().copied()).map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

/// Why this machine cannot run a user manager, if it cannot.
fn missing_prerequisite() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root (a throw-away user, cgroups and mounts need it)".into());
    }
    let lib = ["/lib/systemd", "/usr/lib/systemd"];
    for (prog, dirs) in [
        ("systemd", &lib[..]),
        ("systemd-journald", &lib[..]),
        ("systemctl", &[][..]),
        ("journalctl", &[][..]),
        ("unshare", &[][..]),
        ("nsenter", &[][..]),
        ("setpriv", &[][..]),
        ("mountpoint", &[][..]),
        ("useradd", SBIN),
        ("userdel", SBIN),
    ] {
        if find_program(prog, dirs).is_none() {
            return Some(format!("no {prog} (packages systemd, util-linux, passwd)"));
        }
    }
    if !["/usr/lib/systemd/user/dbus.socket", "/lib/systemd/user/dbus.socket"]
        .iter()
        .any(|p| Path::new(p).exists())
    {
        return Some("no dbus.socket user unit (package dbus-user-session)".into());
    }
    if !CGROUP_ROOTS.iter().any(|r| Path::new(r).join("cgroup.procs").exists()) {
        return Some("no cgroup hierarchy under /sys/fs/cgroup".into());
    }
    None
}

fn output_text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn kill(pid: i32, sig: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Waits up to `timeout` for `child` to exit; true when it did.
fn wait_exit(child: &mut Child, timeout: Duration) -> bool {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if start.elapsed() >= timeout => return false,
            Ok(None) => std::thread::sleep(POLL),
        }
    }
}

impl UserManager {
    /// Creates the user and starts its manager, with `env` in the manager's environment
    /// (and so in every unit's, like a login session's). `None` (after saying why) when
    /// this machine cannot run one; under `CI=true` that is a failure instead.
    pub fn start(env: &[(&str, &str)]) -> Option<UserManager> {
        if let Some(why) = missing_prerequisite() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but this machine cannot run a real systemd --user: {why}");
            }
            eprintln!("skipped: cannot run a real systemd --user here: {why} (scripts/test.sh as root can)");
            return None;
        }
        let name = super::unique("la-sd-");
        let mut um = UserManager {
            home: PathBuf::from("/home").join(&name),
            name,
            uid: 0,
            gid: 0,
            runtime_dir: PathBuf::new(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            logs: tempfile::tempdir().expect("temp dir for the manager's logs"),
            user_created: false,
            runtime_created: false,
            cgroups_created: Vec::new(),
            delegated: Vec::new(),
            journald: None,
            manager: None,
        };
        um.create_user();
        um.delegate_cgroups();
        um.start_journald();
        um.start_manager();
        Some(um)
    }

    fn create_user(&mut self) {
        let out = Command::new(find_program("useradd", SBIN).expect("checked by missing_prerequisite"))
            .args(["-m", "-U", "-s", "/bin/sh", "-d"])
            .arg(&self.home)
            .arg(&self.name)
            .output()
            .expect("useradd");
        assert!(out.status.success(), "useradd {}: {}", self.name, output_text(&out));
        self.user_created = true;
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").arg(flag).arg(&self.name).output().expect("id");
            String::from_utf8_lossy(&out.stdout).trim().parse().expect("id printed a number")
        };
        self.uid = id("-u");
        self.gid = id("-g");

        // What pam_systemd would make: /run/user/UID, 0700, the user's.
        self.runtime_dir = PathBuf::from(format!("/run/user/{}", self.uid));
        std::fs::create_dir_all("/run/user").expect("/run/user");
        if self.runtime_dir.exists() {
            panic!("{} exists already: a leftover of another run?", self.runtime_dir.display());
        }
        std::fs::create_dir(&self.runtime_dir).expect("/run/user/UID");
        self.runtime_created = true;
        std::os::unix::fs::chown(&self.runtime_dir, Some(self.uid), Some(self.gid))
            .expect("chown /run/user/UID");
        std::fs::set_permissions(&self.runtime_dir, std::fs::Permissions::from_mode(0o700))
            .expect("chmod /run/user/UID");
    }

    /// What PID 1 gives a user manager: `user.slice/user-UID.slice/user@UID.service`,
    /// owned by the user, in every hierarchy that tracks processes.
    fn delegate_cgroups(&mut self) {
        for root in CGROUP_ROOTS {
            let root = Path::new(root);
            if !root.join("cgroup.procs").exists() {
                continue;
            }
            let mut dir = root.to_path_buf();
            for part in [
                "user.slice".to_string(),
                format!("user-{}.slice", self.uid),
                format!("user@{}.service", self.uid),
            ] {
                dir.push(part);
                if !dir.exists() {
                    self.cgroups_created.push(dir.clone());
                }
            }
            // Retried: another run's teardown may remove an empty user.slice meanwhile.
            let mut tries = 0;
            while let Err(e) = std::fs::create_dir_all(&dir) {
                tries += 1;
                if tries == 3 {
                    panic!("cannot create the cgroup {}: {e}", dir.display());
                }
            }
            let chown = |p: &Path| {
                std::os::unix::fs::chown(p, Some(self.uid), Some(self.gid))
                    .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()))
            };
            chown(&dir);
            for entry in std::fs::read_dir(&dir).expect("read the delegated cgroup") {
                chown(&entry.expect("cgroup entry").path());
            }
            self.delegated.push(dir);
        }
    }

    /// journald, exec'd at the end of [`NAMESPACE_SETUP`], is the namespace's first process.
    fn start_journald(&mut self) {
        let journald = find_program("systemd-journald", &["/lib/systemd", "/usr/lib/systemd"])
            .expect("checked by missing_prerequisite");
        let log = std::fs::File::create(self.logs.path().join("journald.log")).expect("journald log");
        let child = Command::new("unshare")
            .env_clear()
            .env("PATH", ROOT_PATH)
            .args(["-m", "--propagation", "slave", "--", "sh", "-c", NAMESPACE_SETUP])
            .arg(&journald)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup the journald log"))
            .stderr(log)
            .spawn()
            .expect("unshare");
        let pid = child.id();
        self.journald = Some(child);
        // Its socket, as seen inside the namespace; the name says the exec happened.
        let socket = PathBuf::from(format!("/proc/{pid}/root/run/systemd/journal/socket"));
        let comm = PathBuf::from(format!("/proc/{pid}/comm"));
        self.wait_for("journald to listen in the private mount namespace", Duration::from_secs(20), |um| {
            if let Some(Ok(Some(st))) = um.journald.as_mut().map(|c| c.try_wait()) {
                return Err(format!("the namespace setup or journald exited with {st}"));
            }
            let name = std::fs::read_to_string(&comm).unwrap_or_default();
            if name.trim() == "systemd-journal" && socket.exists() {
                Ok(())
            } else {
                Err(format!("comm {:?}, socket present: {}", name.trim(), socket.exists()))
            }
        });
    }

    fn start_manager(&mut self) {
        let systemd = find_program("systemd", &["/lib/systemd", "/usr/lib/systemd"])
            .expect("checked by missing_prerequisite");
        let log = std::fs::File::create(self.logs.path().join("manager.log")).expect("manager log");
        let mut cmd = self.nsenter();
        // The cgroup move needs root; then setpriv drops to the user and execs the manager.
        let mut exec: Vec<String> = self.setpriv_args();
        exec.push("SYSTEMD_LOG_TARGET=journal".into());
        exec.push(systemd.display().to_string());
        exec.push("--user".into());
        let groups: Vec<String> = self.delegated.iter().map(|d| d.display().to_string()).collect();
        cmd.env("DELEGATED_CGROUPS", groups.join(":")).args(["sh", "-c", MANAGER_SETUP, "sh"]).args(&exec);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup the manager log"))
            .stderr(log)
            .spawn()
            .expect("nsenter");
        self.manager = Some(child);
        self.wait_for("systemd --user to reach SystemState=running", Duration::from_secs(30), |um| {
            if let Some(Ok(Some(st))) = um.manager.as_mut().map(|c| c.try_wait()) {
                return Err(format!("the user manager exited with {st}"));
            }
            let out = um.systemctl(&["show", "-p", "SystemState", "--value"]);
            let state = output_text(&out).trim().to_string();
            if state == "running" {
                Ok(())
            } else {
                Err(format!("SystemState: {state}"))
            }
        });
    }

    /// `nsenter` into the manager's mount namespace (the rest of the command follows).
    fn nsenter(&self) -> Command {
        let pid = self.journald.as_ref().map(|c| c.id()).expect("journald runs");
        let mut cmd = Command::new("nsenter");
        // Nothing of the test's environment (its bus, XDG folders) leaks in.
        cmd.env_clear().env("PATH", ROOT_PATH);
        cmd.arg("-t").arg(pid.to_string()).args(["-m", "--"]);
        cmd.current_dir("/");
        cmd
    }

    /// `setpriv … env -i VARS`: the user, with a login-like environment and nothing of ours.
    fn setpriv_args(&self) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "setpriv".into(),
            format!("--reuid={}", self.uid),
            format!("--regid={}", self.gid),
            "--init-groups".into(),
            "--".into(),
            "env".into(),
            "-i".into(),
        ];
        let home = self.home.display();
        for v in [
            format!("HOME={home}"),
            format!("USER={}", self.name),
            format!("LOGNAME={}", self.name),
            "SHELL=/bin/sh".into(),
            "LANG=C.UTF-8".into(),
            format!("PATH={home}/.cargo/bin:/usr/local/bin:/usr/bin:/bin"),
            format!("XDG_RUNTIME_DIR={}", self.runtime_dir.display()),
            format!("DBUS_SESSION_BUS_ADDRESS=unix:path={}/bus", self.runtime_dir.display()),
        ] {
            args.push(v);
        }
        args.extend(self.env.iter().map(|(k, v)| format!("{k}={v}")));
        args
    }

    /// `program args` as the user, inside the manager's mount namespace, with the
    /// session's environment (not started).
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = self.nsenter();
        cmd.args(self.setpriv_args()).arg(program).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `program args` as the user; returns its output.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program, args)
            .output()
            .unwrap_or_else(|e| self.fail(&format!("cannot run {program}: {e}")))
    }

    /// Like [`UserManager::run`], feeding `stdin`.
    pub fn run_with_stdin(&self, program: &str, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut cmd = self.command(program, args);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| self.fail(&format!("cannot run {program}: {e}")));
        if let Some(mut sin) = child.stdin.take() {
            let _ = sin.write_all(stdin.as_bytes());
        }
        child.wait_with_output().unwrap_or_else(|e| self.fail(&format!("{program}: {e}")))
    }

    /// Runs `program args` as the user; fails the test (with the journal) unless it
    /// succeeds. Returns its stdout.
    pub fn run_ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.run(program, args);
        self.check_ok(program, args, &out)
    }

    /// Fails the test (with the journal) unless `out` is a success; returns its stdout.
    pub fn check_ok(&self, program: &str, args: &[&str], out: &Output) -> String {
        if !out.status.success() {
            self.fail(&format!(
                "`{program} {}` failed ({}):\n{}",
                args.join(" "),
                out.status,
                output_text(out)
            ));
        }
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// `systemctl --user args` as the user.
    pub fn systemctl(&self, args: &[&str]) -> Output {
        let mut all = vec!["--user", "--no-pager"];
        all.extend_from_slice(args);
        self.run("systemctl", &all)
    }

    /// `systemctl --user args` that must succeed; returns its stdout.
    pub fn systemctl_ok(&self, args: &[&str]) -> String {
        let out = self.systemctl(args);
        self.check_ok("systemctl --user", args, &out)
    }

    /// One property of `unit` (`systemctl --user show -p PROP --value`).
    pub fn property(&self, unit: &str, prop: &str) -> String {
        self.systemctl_ok(&["show", unit, "-p", prop, "--value"]).trim_end_matches('\n').to_string()
    }

    /// The journal of the whole namespace (manager, units, bus) as text, or of the
    /// entries matching `filter` (journalctl arguments, e.g. `--user-unit=NAME`).
    pub fn journal(&self, filter: &[&str]) -> String {
        let mut cmd = self.nsenter();
        cmd.args(["journalctl", "--no-pager", "-q", "-o", "short-monotonic"]).args(filter);
        match cmd.output() {
            Ok(out) => output_text(&out),
            Err(e) => format!("(journalctl failed: {e})"),
        }
    }

    /// The journal of the user unit `unit`: what it logged, and what the manager logged
    /// about it. (`journalctl --user-unit` would match only entries of the caller's uid,
    /// root's here.)
    pub fn unit_journal(&self, unit: &str) -> String {
        self.journal(&[&format!("_SYSTEMD_USER_UNIT={unit}"), "+", &format!("USER_UNIT={unit}")])
    }

    /// What a failure message carries: the journal and the manager's own output.
    pub fn diagnostics(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.logs.path().join(name)).unwrap_or_default();
        let journal = if self.journald.is_some() { self.journal(&[]) } else { String::new() };
        // The last lines are the ones that tell.
        let tail: Vec<&str> = journal.lines().rev().take(300).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "--- journal (last {} lines) ---\n{}\n--- manager stderr ---\n{}\n--- journald stderr ---\n{}",
            tail.len(),
            tail.join("\n"),
            read("manager.log"),
            read("journald.log")
        )
    }

    /// Fails the test with `msg` and the diagnostics.
    pub fn fail(&self, msg: &str) -> ! {
        panic!("{msg}\n{}", self.diagnostics())
    }

    /// Polls `check` until it returns `Ok`, for at most `timeout`; then fails with its
    /// last error and the diagnostics.
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&mut UserManager) -> Result<T, String>,
    ) -> T {
        let start = Instant::now();
        loop {
            match check(self) {
                Ok(v) => return v,
                Err(last) if start.elapsed() >= timeout => {
                    self.fail(&format!("timed out after {timeout:?} waiting for {what}; last: {last}"))
                }
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }

    /// Creates the folders of `rel` (relative to the home) that are missing, owned by the user.
    fn make_parents(&self, rel: &Path) -> PathBuf {
        let mut dir = self.home.clone();
        if let Some(parent) = rel.parent() {
            for part in parent.components() {
                dir.push(part);
                if !dir.exists() {
                    std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
                    std::os::unix::fs::chown(&dir, Some(self.uid), Some(self.gid)).expect("chown");
                }
            }
        }
        self.home.join(rel)
    }

    /// Writes `contents` to `rel` under the home, owned by the user, with `mode`.
    pub fn put(&self, rel: &str, contents: &[u8], mode: u32) -> PathBuf {
        let path = self.make_parents(Path::new(rel));
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        std::os::unix::fs::chown(&path, Some(self.uid), Some(self.gid)).expect("chown");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    /// Puts the program `src` at `rel` under the home: a hard link when it can (the debug
    /// binaries are big), else a copy. Either way the user can run it but not change it.
    pub fn install_program(&self, src: &Path, rel: &str) -> PathBuf {
        let path = self.make_parents(Path::new(rel));
        if std::fs::hard_link(src, &path).is_err() {
            std::fs::copy(src, &path)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), path.display()));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        path
    }

    /// Every process left in the user's cgroups.
    fn leftover_pids(&self) -> Vec<i32> {
        fn walk(dir: &Path, out: &mut Vec<i32>) {
            if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
            if let Ok(entries) = std::fs::read_dir(dir) {
                for e in entries.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        walk(&e.path(), out);
                    }
                }
            }
        }
        let mut pids = Vec::new();
        for d in &self.delegated {
            walk(d, &mut pids);
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

impl Drop for UserManager {
    fn drop(&mut self) {
        use rustix::process::Signal;
        // The manager stops its units (the agent revokes its tokens) and exits.
        if self.manager.as_mut().is_some_and(|m| matches!(m.try_wait(), Ok(None))) {
            let _ = self
                .command("systemctl", &["--user", "exit"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if let Some(mut m) = self.manager.take() {
            if !wait_exit(&mut m, Duration::from_secs(20)) {
                let _ = m.kill();
                let _ = m.wait();
            }
        }
        // Whatever is still in the user's cgroups, by pid.
        let start = Instant::now();
        loop {
            let pids = self.leftover_pids();
            if pids.is_empty() || start.elapsed() > Duration::from_secs(10) {
                break;
            }
            for pid in pids {
                kill(pid, Signal::KILL);
            }
            std::thread::sleep(POLL);
        }
        for d in &self.delegated {
            remove_cgroup_tree(d);
        }
        for d in self.cgroups_created.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        // journald last: it holds the namespace (and its tmpfs mounts) until it exits.
        if let Some(mut j) = self.journald.take() {
            kill(j.id() as i32, Signal::TERM);
            if !wait_exit(&mut j, Duration::from_secs(10)) {
                let _ = j.kill();
                let _ = j.wait();
            }
        }
        if self.runtime_created {
            let _ = std::fs::remove_dir_all(&self.runtime_dir);
        }
        if self.user_created {
            // -r: its home (the hard links in it are links only) and mail; its group goes too.
            let _ = Command::new(find_program("userdel", SBIN).unwrap_or_else(|| "userdel".into()))
                .args(["-r", "-f"])
                .arg(&self.name)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
