//! External secret sources (issue 14, point 3).
//!
//! - A credential whose secret comes from a real `pass show` (Debian `pass`, a
//!   throw-away gpg key generated unattended, the password store in the test's temp
//!   folder): a real looker-agent logs in to the emulator with it and `lookerctl
//!   token` works, while the secret is in no file under the test's folders, not in
//!   the agent's log and not in the argv of any process (`/proc/*/cmdline`, scanned
//!   the whole time the agent logs in).
//! - The command runs when a login needs the secret, not at every token request.
//! - A failing source's exit status and stderr reach `lookerctl token` and
//!   `lookerctl status`; the runner's edge cases (failure, timeout with the process
//!   group killed and reaped, no output, too much output, `\n` and `\r\n`) with real
//!   processes.

mod common;

use common::*;
use looker_agent::secret_source::{SecretSource, SourceError};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);
const PASS_SECRET: &str = "pass-Src-Secret-q8Zr2x";

fn source(argv: &[&str]) -> SecretSource {
    SecretSource::new(argv.iter().map(|s| s.to_string()).collect()).unwrap()
}

/// Runs a program that must succeed, with `vars` set; returns stdout.
fn run(program: &str, args: &[&str], vars: &[(&str, &Path)], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut cmd = Command::new(program);
    cmd.args(args).envs(vars.iter().map(|(k, v)| (*k, *v)));
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{program}: {e}"));
    {
        let mut sin = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            sin.write_all(s.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{program} {args:?} failed: {}\n{}", out.status, err(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Stops the throw-away gpg-agent however the test ends.
struct GpgHome(PathBuf);

impl Drop for GpgHome {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .args(["--kill", "gpg-agent"])
            .env("GNUPGHOME", &self.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Every regular file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                if let Ok(bytes) = std::fs::read(e.path()) {
                    if bytes.windows(needle.len()).any(|w| w == needle) {
                        hits.push(e.path());
                    }
                }
            }
        }
    }
    hits
}

/// Scans every process's argv for `needle` until stopped: (scans done, offending argvs).
struct ArgvWatch {
    stop: Arc<AtomicBool>,
    scans: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl ArgvWatch {
    fn start(needle: &str) -> ArgvWatch {
        let (stop, scans) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let needle = needle.as_bytes().to_vec();
        let (s, n) = (stop.clone(), scans.clone());
        let thread = std::thread::spawn(move || {
            let mut hits = Vec::new();
            while !s.load(Ordering::Relaxed) {
                for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    let Ok(argv) = std::fs::read(p.path().join("cmdline")) else { continue };
                    if argv.windows(needle.len()).any(|w| w == needle.as_slice()) {
                        hits.push(String::from_utf8_lossy(&argv).replace('\0', " "));
                    }
                }
                n.fetch_add(1, Ordering::Relaxed);
            }
            hits
        });
        ArgvWatch { stop, scans, thread: Some(thread) }
    }

    fn finish(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let hits = self.thread.take().unwrap().join().unwrap();
        (self.scans.load(Ordering::Relaxed), hits)
    }
}

#[test]
fn a_secret_from_pass_logs_in_and_leaks_nowhere() {
    require_tool("pass", "pass");
    require_tool("gpg", "gnupg");
    let emu = BgEmulator::start(HOUR, &[("pass-id", PASS_SECRET)]);
    let mut env = TestEnv::new("file");
    let gnupg = env.dir.path().join("gnupg");
    isolated::private_dir(&gnupg).unwrap();
    let _gpg = GpgHome(gnupg.clone());
    let store_dir = env.dir.path().join("password-store");
    let vars: [(&str, &Path); 2] = [("GNUPGHOME", &gnupg), ("PASSWORD_STORE_DIR", &store_dir)];
    let uid = "Looker Agent Test <agent-test@example.invalid>";
    run(
        "gpg",
        &["--batch", "--passphrase", "", "--quick-gen-key", uid, "default", "default", "never"],
        &vars,
        None,
    );
    run("pass", &["init", "agent-test@example.invalid"], &vars, None);
    run("pass", &["insert", "-m", "looker/emu"], &vars, Some(&format!("{PASS_SECRET}\n")));
    assert_eq!(run("pass", &["show", "looker/emu"], &vars, None), format!("{PASS_SECRET}\n"));
    for (k, v) in vars {
        env.vars.insert(k.into(), v.display().to_string());
    }

    env.ctl_ok(&["profile", "add", "prod", "--base-url", &emu.url()], None);
    let added = env.ctl_ok(
        &[
            "credential",
            "add",
            "prod",
            "vault",
            "--client-id",
            "pass-id",
            "--source",
            "--",
            "pass",
            "show",
            "looker/emu",
        ],
        None,
    );
    assert!(added.contains("`pass show looker/emu`"), "{added}");
    let config = read(&env.config);
    assert!(config.contains(r#"source = ["pass", "show", "looker/emu"]"#), "{config}");
    let listed = env.ctl_ok(&["credential", "list", "prod"], None);
    assert!(listed.contains("command `pass show looker/emu`"), "{listed}");

    // verify runs the source too (no agent needed).
    let verified = env.ctl_ok(&["credential", "verify", "prod"], None);
    assert!(verified.contains("logs in"), "{verified}");

    let watch = ArgvWatch::start(PASS_SECRET);
    let agent = env.start_agent(&[]);
    let token = env.ctl_ok(&["token", "prod"], None).trim().to_string();
    let (scans, hits) = watch.finish();
    assert!(scans > 0, "the argv watch never ran");
    assert!(hits.is_empty(), "the secret is in a process's argv: {hits:?}");
    assert_eq!(looker_user(&emu.url(), &token).0, 200, "the token from the pass secret does not work");
    assert_eq!(emu.emu().counters().logins, 2, "verify and the agent each logged in once");

    let status = env.ctl_ok(&["status"], None);
    assert!(
        status.contains("prod/vault: the secret comes from the command `pass show looker/emu`"),
        "{status}"
    );
    let json: serde_json::Value = serde_json::from_str(&env.ctl_ok(&["status", "--json"], None)).unwrap();
    assert_eq!(json["profiles"][0]["credentials"][0]["secret_source"], "pass show looker/emu");
    assert!(!status.contains(PASS_SECRET) && !json.to_string().contains(PASS_SECRET));

    // Nothing on disk: not the config, not the file store, not the log, not anywhere
    // under the test's folder (which holds the XDG dirs and the password store).
    let log = agent.log_text();
    assert!(log.contains("listening") || !log.is_empty(), "empty agent log");
    assert!(!log.contains(PASS_SECRET), "the secret is in the agent's log");
    let hits = files_containing(env.dir.path(), PASS_SECRET.as_bytes());
    assert!(hits.is_empty(), "the secret is in files: {hits:?}");
}

#[test]
fn the_source_runs_when_a_login_needs_it_and_its_failure_is_explained() {
    let emu = BgEmulator::start(HOUR, &[("src-id", "from-a-file-9")]);
    let env = TestEnv::new("file");
    let secret_file = env.dir.path().join("secret.txt");
    std::fs::write(&secret_file, "from-a-file-9\r\n").unwrap();
    let runs = env.dir.path().join("runs.log");
    let script = format!("echo run >> '{}'; cat '{}'", runs.display(), secret_file.display());
    env.ctl_ok(&["profile", "add", "prod", "--base-url", &emu.url()], None);
    env.ctl_ok(
        &["credential", "add", "prod", "cmd", "--client-id", "src-id", "--source", "--", "sh", "-c", &script],
        None,
    );
    let _agent = env.start_agent(&[]);
    for _ in 0..3 {
        let token = env.ctl_ok(&["token", "prod"], None);
        assert_eq!(looker_user(&emu.url(), token.trim()).0, 200);
    }
    assert_eq!(read(&runs), "run\n", "the source must run once for the one login, not per token request");

    // A failing source: its exit status and first stderr line, and what to do.
    let errors = env.dir.path().join("errors.txt");
    std::fs::write(&errors, "gpg: decryption failed: No secret key\nsecond line\n").unwrap();
    let failing = format!("echo fail >> '{}'; cat '{}' >&2; exit 1", runs.display(), errors.display());
    env.ctl_ok(
        &[
            "credential",
            "add",
            "prod",
            "cmd",
            "--client-id",
            "src-id",
            "--source",
            "--",
            "sh",
            "-c",
            &failing,
        ],
        None,
    );
    env.ctl_ok(&["revoke", "prod"], None);
    let out = env.ctl(&["token", "prod"], None);
    assert!(!out.status.success());
    let msg = err(&out);
    assert!(
        msg.contains(
            "exited 1: gpg: decryption failed: No secret key; check that the command prints the secret"
        ),
        "{msg}"
    );
    assert!(!msg.contains("second line"), "{msg}");
    let status = env.ctl_ok(&["status"], None);
    assert!(status.contains("decryption failed"), "{status}");
    // A failing source is not rerun at every request: it rests (5 s, doubling), and
    // the clients meanwhile get its last error at once.
    let again = env.ctl(&["token", "prod"], None);
    assert!(!again.status.success());
    assert!(err(&again).contains("runs the secret source again in"), "{}", err(&again));
    assert_eq!(read(&runs), "run\nfail\n", "the failing source ran once");
    assert!(env.ctl_ok(&["status"], None).contains("backing_off"));

    // Back to the store: `credential add` without --source drops the source.
    env.ctl_ok(&["credential", "add", "prod", "cmd", "--client-id", "src-id"], Some("from-a-file-9"));
    assert!(!read(&env.config).contains("source"), "{}", read(&env.config));
    let listed = env.ctl_ok(&["credential", "list"], None);
    assert!(listed.contains("secret store"), "{listed}");
    // The change ends the rest at once.
    let token = env.ctl_ok(&["token", "prod"], None);
    assert_eq!(looker_user(&emu.url(), token.trim()).0, 200);
}

#[test]
fn credential_add_refuses_a_bad_source() {
    let env = TestEnv::new("file");
    env.ctl_ok(&["profile", "add", "prod", "--base-url", "https://x.example.com"], None);
    let add = |argv: &[&str]| {
        let mut args = vec!["credential", "add", "prod", "c", "--client-id", "id", "--source", "--"];
        args.extend_from_slice(argv);
        env.ctl(&args, None)
    };
    let out = add(&["no-such-program-xyz", "show"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(err(&out).contains("is not on PATH"), "{}", err(&out));
    let out = add(&["./relative/pass"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(err(&out).contains("relative path"), "{}", err(&out));
    let out = env.ctl(&["credential", "add", "prod", "c", "--client-id", "id", "--source"], None);
    assert_eq!(out.status.code(), Some(2), "--source without a command");
    assert!(!read(&env.config).contains("credentials"), "nothing may be written: {}", read(&env.config));
    // A hand-written empty source is refused when the config loads.
    std::fs::write(
        &env.config,
        "[profiles.p]\nbase_url = \"https://x.example.com\"\n[[profiles.p.credentials]]\nname = \"c\"\nclient_id = \"i\"\nsource = []\n",
    )
    .unwrap();
    let out = env.ctl(&["credential", "list"], None);
    assert!(!out.status.success() && err(&out).contains("source is empty"), "{}", err(&out));
}

#[tokio::test]
async fn newlines_one_trimmed() {
    let s = source(&["printf", "s3cret\\n"]).fetch().await.unwrap();
    assert_eq!(s.expose(), "s3cret");
    let s = source(&["printf", "s3cret\\r\\n"]).fetch().await.unwrap();
    assert_eq!(s.expose(), "s3cret");
    let s = source(&["printf", "s3cret\\n\\n"]).fetch().await.unwrap();
    assert_eq!(s.expose(), "s3cret\n", "exactly one newline goes");
    let s = source(&["printf", "s3cret"]).fetch().await.unwrap();
    assert_eq!(s.expose(), "s3cret");
}

#[tokio::test]
async fn failures_are_typed_and_never_echo_the_output() {
    let e = source(&["sh", "-c", "echo 'gpg: decryption failed: No secret key' >&2; exit 1"])
        .fetch()
        .await
        .unwrap_err();
    assert!(matches!(e, SourceError::Failed { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "`sh -c 'echo '\\''gpg: decryption failed: No secret key'\\'' >&2; exit 1'` exited 1: gpg: decryption \
         failed: No secret key; check that the command prints the secret"
    );

    // It printed a secret, then failed repeating it on stderr: neither is shown.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s");
    std::fs::write(&f, "leaked-7\n").unwrap();
    let script = format!("cat '{f}'; printf 'oops: ' >&2; cat '{f}' >&2; exit 3", f = f.display());
    let e = source(&["sh", "-c", &script]).fetch().await.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("exited 3") && !msg.contains("leaked-7") && msg.contains("is not shown"), "{msg}");

    let e = source(&["sh", "-c", "kill -9 $$"]).fetch().await.unwrap_err();
    assert!(e.to_string().contains("was killed by signal 9 (SIGKILL)"), "{e}");

    for empty in [&["true"][..], &["printf", "\\n"][..]] {
        let e = source(empty).fetch().await.unwrap_err();
        assert!(matches!(e, SourceError::Empty { .. }), "{empty:?}: {e:?}");
        assert!(e.to_string().contains("printed no secret"), "{e}");
    }

    let e = source(&["head", "-c", "70000", "/dev/zero"]).fetch().await.unwrap_err();
    assert!(matches!(e, SourceError::TooLarge { .. }), "{e:?}");
    // A chatty stderr is drained, not a deadlock.
    let s = source(&["sh", "-c", "head -c 300000 /dev/zero >&2; printf ok"]).fetch().await.unwrap();
    assert_eq!(s.expose(), "ok");
}

/// The state letter of a process (`Z` zombie), `None` once it is gone.
fn proc_state(pid: &str) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next())
}

#[tokio::test]
async fn a_hanging_source_is_killed_with_its_children_and_reaped() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let script = format!(
        "sleep 600 & echo $! > '{p}.tmp'; echo $$ >> '{p}.tmp'; mv '{p}.tmp' '{p}'; wait",
        p = pids.display()
    );
    let hang = source(&["sh", "-c", &script]);
    let e = hang.fetch_within(Duration::from_secs(3)).await.unwrap_err();
    assert!(matches!(e, SourceError::TimedOut { .. }), "{e:?}");
    assert!(e.to_string().contains("did not finish within 3s and was killed"), "{e}");
    let written = std::fs::read_to_string(&pids).expect("the source never started");
    let mut lines = written.lines();
    let (child, leader) = (lines.next().unwrap().to_string(), lines.next().unwrap().to_string());
    // Our own child is reaped by the runner: gone, not a zombie.
    assert_eq!(proc_state(&leader), None, "the source process {leader} was not reaped");
    // Its child was killed with the group (init reaps it; a zombie at most for a moment).
    wait_for("the source's child to die", Duration::from_secs(10), || {
        matches!(proc_state(&child), None | Some('Z'))
    });
}
