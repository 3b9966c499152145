//! lookerctl for real work (issue 6): `exec`, every token format, `import` from a
//! looker.ini and from LOOKERSDK_* variables, `credential verify`, completions, the
//! man page, `--help` examples, `--json` everywhere, no terminal escapes, aligned
//! tables, and the Python example (examples/python/) against the emulator.

mod common;

use common::*;
use looker_emulator::EmulatorUser;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const HOUR: Duration = Duration::from_secs(3600);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn err(o: &Output) -> String {
    text(&o.stderr)
}

fn parse_json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}):\n{s}"))
}

/// Output that must have succeeded; returns stdout.
fn ok(o: Output, what: &str) -> String {
    assert!(o.status.success(), "{what} failed: {}\n{}", o.status, err(&o));
    text(&o.stdout)
}

fn no_escapes(what: &str, s: &str) {
    assert!(!s.contains('\u{1b}'), "{what} contains an escape sequence:\n{s:?}");
}

/// Waits for a child, killing it after `limit`.
fn wait_for(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ----- exec -----

#[test]
fn exec_passes_env_and_exit_status() {
    let emu = BgEmulator::start(HOUR, &[("x-id", "x-secret")]);
    let env = TestEnv::new("file");
    env.add_profile("prod", &emu.url(), &[("c", "x-id", "x-secret")]);
    let _agent = env.start_agent(&[]);

    let script =
        r#"printf '%s\n' "$LOOKERSDK_BASE_URL" "$LOOKER_ACCESS_TOKEN" "$LOOKER_TOKEN_EXPIRES_AT"; exit 7"#;
    let out = env.ctl(&["exec", "prod", "--direct", "--", "sh", "-c", script], None);
    assert_eq!(out.status.code(), Some(7), "{}", err(&out));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[0], emu.url());
    assert!(emu.emu().is_live(lines[1]), "the child got a token Looker does not know");
    assert!(lines[2].ends_with('Z') && lines[2].contains('T'), "expires_at {:?}", lines[2]);
    // The same token the agent hands everyone else.
    assert_eq!(env.ctl_ok(&["token", "prod"], None).trim(), lines[1]);
    // Without --direct the child is pointed at the gateway, with nothing real.
    let out = env.ctl(&["exec", "prod", "--", "sh", "-c", script], None);
    assert_eq!(out.status.code(), Some(7), "{}", err(&out));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let status: serde_json::Value = serde_json::from_str(&env.ctl_ok(&["status", "--json"], None)).unwrap();
    assert_eq!(lines[0], status["gateway"]["url"].as_str().unwrap(), "{stdout}");
    assert!(!emu.emu().is_live(lines[1]), "the child got a real token");

    // Arguments reach the command untouched; the default profile works.
    let out = env.ctl(&["exec", "--", "sh", "-c", "printf '%s|' \"$@\"", "sh", "a b", "", "$HOME"], None);
    assert_eq!(text(&out.stdout), "a b||$HOME|");

    // Other statuses pass through too, 0 included.
    assert_eq!(env.ctl(&["exec", "prod", "--", "true"], None).status.code(), Some(0));
    assert_eq!(env.ctl(&["exec", "prod", "--", "sh", "-c", "exit 200"], None).status.code(), Some(200));

    // A command that cannot run: 127 as in shells, and the message says so.
    let out = env.ctl(&["exec", "prod", "--", "/nonexistent/command"], None);
    assert_eq!(out.status.code(), Some(127));
    assert!(err(&out).contains("cannot run /nonexistent/command"), "{}", err(&out));

    // lookerctl makes itself undumpable (it holds secrets); the command it runs is
    // dumpable again (execve resets the flag) and keeps the caller's core-size limit.
    let probe = "python3 -c 'import ctypes; print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))'; ulimit -c";
    let out = env.ctl(&["exec", "prod", "--", "sh", "-c", probe], None);
    let own_limit = std::process::Command::new("sh").args(["-c", "ulimit -c"]).output().unwrap();
    assert_eq!(text(&out.stdout), format!("1\n{}", text(&own_limit.stdout)), "{}", err(&out));

    // No command: a usage error.
    assert_eq!(env.ctl(&["exec", "prod"], None).status.code(), Some(2));
    // Errors getting the token keep their exit statuses.
    assert_eq!(env.ctl(&["exec", "nope", "--", "true"], None).status.code(), Some(4));
}

#[test]
fn exec_forwards_signals() {
    let emu = BgEmulator::start(HOUR, &[("s-id", "s-secret")]);
    let env = TestEnv::new("file");
    env.add_profile("prod", &emu.url(), &[("c", "s-id", "s-secret")]);
    let _agent = env.start_agent(&[]);

    for (sig, name, code) in [(15, "TERM", 42), (1, "HUP", 43), (2, "INT", 44)] {
        let ready = env.dir.path().join(format!("ready-{name}"));
        let script =
            format!("trap 'exit {code}' {name}; touch '{}'; while :; do sleep 0.05; done", ready.display());
        let mut cmd = env.ctl_command(&["exec", "prod", "--", "sh", "-c", &script], &[], None);
        // A shell cannot trap a signal that was ignored when it started (POSIX), and a
        // test run started in the background of a shell has SIGINT ignored: give the
        // command the default dispositions a terminal would.
        // SAFETY: between fork and exec only `signal`, which is async-signal-safe, runs.
        unsafe {
            cmd.pre_exec(|| {
                for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT] {
                    libc::signal(sig, libc::SIG_DFL);
                }
                Ok(())
            });
        }
        let mut child =
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let start = Instant::now();
        while !ready.exists() {
            assert!(start.elapsed() < Duration::from_secs(20), "the command never started");
            if let Some(st) = child.try_wait().unwrap() {
                panic!("lookerctl exec ended early: {st}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // The signal goes to lookerctl's pid; the command traps it.
        unsafe_kill(child.id() as i32, sig);
        let st = wait_for(&mut child, Duration::from_secs(20));
        assert_eq!(st.code(), Some(code), "SIG{name} was not passed on");
    }
}

#[test]
fn exec_asks_for_a_token_that_lasts_minutes() {
    // Tokens that live 5 minutes cannot satisfy exec's default min_ttl (10 minutes).
    let emu = BgEmulator::start(Duration::from_secs(300), &[("t-id", "t-secret")]);
    let env = TestEnv::new("file");
    env.add_profile("short", &emu.url(), &[("c", "t-id", "t-secret")]);
    let _agent = env.start_agent(&[]);
    let out = env.ctl(&["exec", "short", "--direct", "--", "true"], None);
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));
    assert!(err(&out).contains("min_ttl 600s"), "{}", err(&out));
    assert_eq!(
        env.ctl(&["exec", "short", "--direct", "--min-ttl", "2m", "--", "true"], None).status.code(),
        Some(0)
    );
    // Through the gateway no token is handed over at all, so short ones do not matter.
    assert_eq!(env.ctl(&["exec", "short", "--", "true"], None).status.code(), Some(0));
    // `token` keeps its short default.
    assert!(env.ctl(&["token", "short"], None).status.success());
}

// ----- token formats -----

#[test]
fn token_formats() {
    let emu = BgEmulator::start(HOUR, &[("f-id", "f-secret")]);
    let env = TestEnv::new("file");
    env.add_profile("fmt", &emu.url(), &[("main", "f-id", "f-secret")]);
    let _agent = env.start_agent(&[]);

    let plain = env.ctl_ok(&["token", "fmt"], None);
    assert!(plain.ends_with('\n') && plain.lines().count() == 1, "{plain:?}");
    let token = plain.trim().to_string();
    assert!(emu.emu().is_live(&token));

    let header = env.ctl_ok(&["token", "fmt", "--format", "header"], None);
    assert_eq!(header, format!("Authorization: token {token}\n"));
    let (status, _) = looker_user(&emu.url(), &token);
    assert_eq!(status, 200);

    // `env` is shell: evaluate it.
    let exports = env.ctl_ok(&["token", "fmt", "--format", "env"], None);
    let out = Command::new("sh")
        .args(["-c", "eval \"$(cat)\"; printf '%s|%s|%s' \"$LOOKERSDK_BASE_URL\" \"$LOOKER_ACCESS_TOKEN\" \"$LOOKER_TOKEN_EXPIRES_AT\""])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(exports.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let evaluated = text(&out.stdout);
    let parts: Vec<&str> = evaluated.split('|').collect();
    assert_eq!(parts[..2], [emu.url().as_str(), token.as_str()], "{exports}");
    assert!(parts[2].ends_with('Z'));

    for args in
        [&["token", "fmt", "--format", "json"][..], &["token", "fmt", "--json"], &["--json", "token", "fmt"]]
    {
        let v = parse_json(&env.ctl_ok(args, None));
        assert_eq!(v["access_token"], token.as_str());
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["profile"], "fmt");
        assert_eq!(v["credential"], "main");
        assert_eq!(v["base_url"], emu.url().as_str());
        assert!(v["expires_in"].as_u64().unwrap() > 3000);
        assert!(v["expires_at"].as_str().unwrap().ends_with('Z'));
    }

    // LOOKER_AGENT_PROFILE names the profile when the command does not.
    let out = env.ctl_with(&["token"], None, &[("LOOKER_AGENT_PROFILE", "fmt")], None);
    assert_eq!(ok(out, "token via LOOKER_AGENT_PROFILE").trim(), token);
    // --min-ttl is honoured and checked.
    assert_eq!(env.ctl(&["token", "fmt", "--min-ttl", "5m"], None).status.code(), Some(0));
    assert_eq!(env.ctl(&["token", "fmt", "--format", "yaml"], None).status.code(), Some(2));
}

// ----- import -----

const INI_SECRET_STAGING: &str = "s3=cr#t;x";
const INI_SECRET_PROD: &str = "prod=secret#1";

fn sample_ini(staging_url: &str) -> String {
    format!(
        "; exported by hand from the Looker admin panel\n\
         [DEFAULT]\n\
         timeout = 45\n\
         \n\
         [Looker]\n\
         # the production instance\n\
         base_url = https://prod.example.com/api/4.0\n\
         client_id = prod-id\n\
         client_secret = \"{INI_SECRET_PROD}\"\n\
         verify_ssl = True\n\
         \n\
         [Staging]\n\
         ; our staging instance, in fact the emulator\n\
         base_url=\"{staging_url}\"\n\
         client_id: stage-id\n\
         client_secret = \"{INI_SECRET_STAGING}\"\n\
         verify_ssl = false\n\
         # end\n"
    )
}

#[test]
fn import_from_a_looker_ini() {
    let emu = BgEmulator::start(HOUR, &[("stage-id", INI_SECRET_STAGING)]);
    let env = TestEnv::new("file");
    let ini = env.dir.path().join("looker.ini");
    let original = sample_ini(&emu.url());
    std::fs::write(&ini, &original).unwrap();
    std::fs::set_permissions(&ini, std::fs::Permissions::from_mode(0o640)).unwrap();
    let ini_s = ini.to_str().unwrap();

    // One section by name, under a profile name of our choosing.
    let out = env.ctl(&["import", ini_s, "--section", "Staging", "--profile", "staging"], None);
    let stdout = ok(out.clone(), "import --section Staging");
    assert!(stdout.contains("profile staging") && stdout.contains("stage-id"), "{stdout}");
    let warning = err(&out);
    assert!(warning.contains("plain text") && warning.contains("--remove-secret"), "{warning}");
    assert!(!warning.contains(INI_SECRET_STAGING) && !stdout.contains(INI_SECRET_STAGING));
    assert_eq!(read(&ini), original, "the file must stay as it was without --remove-secret");

    // The secret went to the store, with the `=`, `#` and `;` inside the quotes: Looker accepts it.
    let config = read(&env.config);
    assert!(config.contains("stage-id") && config.contains("verify_tls = false"), "{config}");
    assert!(config.contains("timeout = \"45s\""), "[DEFAULT] timeout not inherited:\n{config}");
    assert!(!config.contains(INI_SECRET_STAGING) && !config.contains("client_secret"), "{config}");
    let verified = env.ctl_ok(&["credential", "verify", "staging"], None);
    assert!(verified.contains("bot@example.com"), "{verified}");

    // The first section by default; its name gives the profile's; /api/4.0 is dropped.
    let v = parse_json(&env.ctl_ok(&["import", ini_s, "--json"], None));
    assert_eq!(v["profile"], "looker");
    assert_eq!(v["section"], "Looker");
    assert_eq!(v["base_url"], "https://prod.example.com");
    assert_eq!(v["client_id"], "prod-id");
    assert_eq!(v["profile_created"], true);
    assert_eq!(v["file_still_holds_secret"], true);
    assert!(!read(&env.config).contains(INI_SECRET_PROD));

    // Importing again is safe and changes nothing; --remove-secret then strips the line.
    let out = env.ctl(
        &["import", ini_s, "--section", "Staging", "--profile", "staging", "--remove-secret", "--json"],
        None,
    );
    let v = parse_json(&ok(out.clone(), "import --remove-secret"));
    assert_eq!(v["credential_change"], "unchanged");
    assert_eq!(v["profile_created"], false);
    assert_eq!(v["secret_removed_from_file"], true);
    assert!(!err(&out).contains("plain text"), "{}", err(&out));
    let rewritten = read(&ini);
    let expected = original.replace(&format!("client_secret = \"{INI_SECRET_STAGING}\"\n"), "");
    assert_eq!(rewritten, expected, "only the client_secret line may go");
    assert!(rewritten.contains(INI_SECRET_PROD), "another section's secret was touched");
    assert_eq!(std::fs::metadata(&ini).unwrap().permissions().mode() & 0o7777, 0o640, "mode not kept");
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".looker.ini"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    // The store still has it.
    ok(env.ctl(&["credential", "verify", "staging"], None), "verify after --remove-secret");

    // With the secret gone from the file, import reads it from stdin.
    let out = env
        .ctl(&["import", ini_s, "--section", "Staging", "--profile", "staging2"], Some(INI_SECRET_STAGING));
    ok(out, "import with the secret on stdin");
    ok(env.ctl(&["credential", "verify", "staging2"], None), "verify staging2");

    // A profile of that name for another instance is not overwritten.
    let out = env.ctl(&["import", ini_s, "--section", "Looker", "--profile", "staging"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(err(&out).contains("already exists") && err(&out).contains("--profile"), "{}", err(&out));
    // An unknown section lists the ones there are.
    let out = env.ctl(&["import", ini_s, "--section", "staging"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(err(&out).contains("[Looker], [Staging]"), "{}", err(&out));
    // A broken file: the line number, never a value.
    let broken = env.dir.path().join("broken.ini");
    std::fs::write(&broken, "[Looker]\nbase_url=https://x.example.com\nthis-is-my-secret\n").unwrap();
    let out = env.ctl(&["import", broken.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(err(&out).contains("line 3") && !err(&out).contains("this-is-my-secret"), "{}", err(&out));
    // A missing file says what to do.
    let out = env.ctl(&["import", "/nonexistent/looker.ini"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(err(&out).contains("LOOKERSDK_BASE_URL"), "{}", err(&out));
}

#[test]
fn import_from_the_environment() {
    let emu = BgEmulator::start(HOUR, &[("env-id", "env-secret"), ("file-id", "file-secret")]);
    let env = TestEnv::new("file");
    let empty = env.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let url = emu.url();
    let sdk_env = [
        ("LOOKERSDK_BASE_URL", url.as_str()),
        ("LOOKERSDK_CLIENT_ID", "env-id"),
        ("LOOKERSDK_CLIENT_SECRET", "env-secret"),
        ("LOOKERSDK_VERIFY_SSL", "false"),
        ("LOOKERSDK_TIMEOUT", "60"),
        // Names the default profile for other commands, not the one import creates.
        ("LOOKER_AGENT_PROFILE", "elsewhere"),
    ];
    let out = env.ctl_with(&["import", "--json"], None, &sdk_env, Some(&empty));
    let v = parse_json(&ok(out.clone(), "import from LOOKERSDK_*"));
    assert_eq!(v["source"], "environment");
    assert_eq!(v["profile"], "looker");
    assert_eq!(v["client_id"], "env-id");
    assert!(err(&out).contains("LOOKERSDK_CLIENT_SECRET") && err(&out).contains("unset"), "{}", err(&out));
    let config = read(&env.config);
    assert!(
        config.contains("env-id") && config.contains("timeout = \"1m\"") && !config.contains("env-secret")
    );
    ok(env.ctl(&["credential", "verify", "looker"], None), "verify the imported credential");

    // Without LOOKERSDK_CLIENT_SECRET the secret comes from stdin.
    let out =
        env.ctl_with(&["import", "--profile", "piped"], Some("env-secret\n"), &sdk_env[..2], Some(&empty));
    ok(out, "import with the secret piped");
    ok(env.ctl(&["credential", "verify", "piped"], None), "verify piped");

    // A file named on the command line wins over the environment.
    let ini = env.dir.path().join("other.ini");
    std::fs::write(&ini, format!("[Other]\nbase_url={url}\nclient_id=file-id\nclient_secret=file-secret\n"))
        .unwrap();
    let out = env.ctl_with(&["import", ini.to_str().unwrap(), "--json"], None, &sdk_env, Some(&empty));
    let v = parse_json(&ok(out, "import FILE with LOOKERSDK_* set"));
    assert_eq!((v["source"].as_str(), v["profile"].as_str()), (Some("file"), Some("other")));

    // With neither a file nor the variables: ./looker.ini.
    let here = env.dir.path().join("here");
    std::fs::create_dir_all(&here).unwrap();
    std::fs::write(here.join("looker.ini"), format!("[Here]\nbase_url={url}\nclient_id=file-id\n")).unwrap();
    let out = env.ctl_with(&["import", "--json"], Some("file-secret"), &[], Some(&here));
    let v = parse_json(&ok(out, "import ./looker.ini"));
    assert_eq!((v["profile"].as_str(), v["file"].as_str()), (Some("here"), Some("looker.ini")));

    // Nothing at all: say what to do.
    let out = env.ctl_with(&["import"], None, &[], Some(&empty));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err(&out).contains("LOOKERSDK_BASE_URL") && err(&out).contains("lookerctl import PATH"),
        "{}",
        err(&out)
    );
    // File-only options with the environment: a usage error.
    let out = env.ctl_with(&["import", "--remove-secret"], None, &sdk_env, Some(&empty));
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));
    // An incomplete environment.
    let out = env.ctl_with(&["import"], None, &[("LOOKERSDK_CLIENT_ID", "x")], Some(&empty));
    assert_eq!(out.status.code(), Some(2));
    assert!(err(&out).contains("LOOKERSDK_BASE_URL is not set"), "{}", err(&out));
}

// ----- verify -----

#[test]
fn credential_verify_reports_the_user_and_warns_about_admins() {
    let emu = BgEmulator::start(HOUR, &[]);
    emu.emu().add_credential(
        "admin-id",
        "admin-secret",
        EmulatorUser::admin("42", "Ada Lovelace", "ada@example.com"),
    );
    emu.emu().add_credential(
        "bot-id",
        "bot-secret",
        EmulatorUser::new("43", "Report Bot", "bot@example.com"),
    );
    let env = TestEnv::new("file");
    env.add_profile(
        "prod",
        &emu.url(),
        &[("root", "admin-id", "admin-secret"), ("bot", "bot-id", "bot-secret"), ("bad", "bot-id", "wrong")],
    );
    // No agent runs: verify talks to Looker itself.

    let out = env.ctl(&["credential", "verify", "prod"], None);
    let stdout = ok(out.clone(), "verify (first credential)");
    for needle in ["prod/root", "42", "Ada Lovelace", "ada@example.com", "Admin"] {
        assert!(stdout.contains(needle), "{needle} missing:\n{stdout}");
    }
    let warning = err(&out);
    assert!(
        warning.contains("warning") && warning.contains("admin") && warning.contains("service account"),
        "{warning}"
    );

    let out = env.ctl(&["credential", "verify", "prod", "bot"], None);
    let stdout = ok(out.clone(), "verify bot");
    assert!(
        stdout.contains("43") && stdout.contains("Report Bot") && stdout.contains("bot@example.com"),
        "{stdout}"
    );
    assert!(!err(&out).contains("warning"), "{}", err(&out));

    let v = parse_json(&env.ctl_ok(&["credential", "verify", "prod", "root", "--json"], None));
    assert_eq!(v["user"]["id"], "42");
    assert_eq!(v["user"]["email"], "ada@example.com");
    assert_eq!(v["admin"], true);
    assert_eq!(v["admin_source"], "roles");
    assert_eq!(v["logged_out"], true);
    assert_eq!(v["roles"][0]["name"], "Admin");
    let v = parse_json(&env.ctl_ok(&["--json", "credential", "verify", "prod", "bot"], None));
    assert_eq!((v["admin"].as_bool(), v["warnings"].as_array().map(Vec::len)), (Some(false), Some(0)));

    // Every token verify obtained was logged out again.
    let c = emu.emu().counters();
    assert_eq!((c.logins, c.logouts, c.live_tokens), (4, 4, 0), "{c:?}");

    // Rejected: 5, and what to do.
    let out = env.ctl(&["credential", "verify", "prod", "bad"], None);
    assert_eq!(out.status.code(), Some(5), "{}", err(&out));
    assert!(err(&out).contains("rejected") && err(&out).contains("credential add prod bad"), "{}", err(&out));
    assert!(!err(&out).contains("wrong"), "the secret leaked into the message");
    // Unreachable: 6.
    env.add_profile("down", "http://127.0.0.1:9", &[("c", "x", "y")]);
    let out = env.ctl(&["credential", "verify", "down"], None);
    assert_eq!(out.status.code(), Some(6), "{}", err(&out));
    // Unknown profile or credential: 4.
    assert_eq!(env.ctl(&["credential", "verify", "nope"], None).status.code(), Some(4));
    assert_eq!(env.ctl(&["credential", "verify", "prod", "nope"], None).status.code(), Some(4));
}

#[test]
fn hostile_text_from_looker_cannot_reach_the_terminal() {
    let emu = BgEmulator::start(HOUR, &[]);
    emu.emu().add_credential(
        "e-id",
        "e-secret",
        EmulatorUser::new("7", "Evil \u{1b}[2J\u{1b}[31mName", "e@example.com"),
    );
    let env = TestEnv::new("file");
    env.add_profile("p", &emu.url(), &[("c", "e-id", "e-secret")]);
    let out = env.ctl(&["credential", "verify", "p"], None);
    let stdout = ok(out.clone(), "verify");
    no_escapes("verify output", &stdout);
    no_escapes("verify stderr", &err(&out));
    assert!(stdout.contains("Evil ?[2J?[31mName"), "{stdout}");
    // JSON escapes it instead, and keeps the value.
    let v = parse_json(&env.ctl_ok(&["credential", "verify", "p", "--json"], None));
    assert_eq!(v["user"]["display_name"], "Evil \u{1b}[2J\u{1b}[31mName");
}

// ----- completions, man page, help -----

#[test]
fn completions_are_valid_scripts() {
    let env = TestEnv::new("file");
    let bash = env.ctl_ok(&["completions", "bash"], None);
    assert!(bash.contains("lookerctl") && bash.contains("import") && bash.contains("verify"));
    let file = env.dir.path().join("lookerctl.bash");
    std::fs::write(&file, &bash).unwrap();
    let out = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(out.status.success(), "bash -n rejects the completions: {}", err(&out));
    // Loading it registers the completion.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("source '{}' && complete -p lookerctl", file.display()))
        .output()
        .unwrap();
    assert!(text(&out.stdout).contains("lookerctl"), "{}", err(&out));

    for (shell, checker) in [("zsh", &["zsh", "-n"][..]), ("fish", &["fish", "--no-execute"][..])] {
        let script = env.ctl_ok(&["completions", shell], None);
        assert!(script.contains("lookerctl") && script.contains("credential"), "{shell}");
        let file = env.dir.path().join(format!("lookerctl.{shell}"));
        std::fs::write(&file, &script).unwrap();
        match Command::new(checker[0]).args(&checker[1..]).arg(&file).output() {
            Ok(out) => assert!(out.status.success(), "{shell} rejects its completions: {}", err(&out)),
            Err(_) => eprintln!("{shell} not installed: only generated, not parsed"),
        }
    }
    assert_eq!(env.ctl(&["completions", "tcsh"], None).status.code(), Some(2));
}

#[test]
fn man_pages() {
    let env = TestEnv::new("file");
    let page = env.ctl_ok(&["man"], None);
    assert!(page.starts_with(".ie") || page.contains(".TH lookerctl"), "{}", &page[..page.len().min(300)]);
    assert!(page.contains("import") && page.contains("completions"));
    let dir = env.dir.path().join("man1");
    env.ctl_ok(&["man", "--dir", dir.to_str().unwrap()], None);
    for name in [
        "lookerctl.1",
        "lookerctl-token.1",
        "lookerctl-exec.1",
        "lookerctl-import.1",
        "lookerctl-credential-verify.1",
    ] {
        let p = dir.join(name);
        assert!(read(&p).contains(".TH"), "{name} missing or empty");
    }
    // A tool for packagers: not in the help.
    assert!(!env.ctl_ok(&["--help"], None).contains("man "));
}

#[test]
fn help_has_examples_and_no_escapes() {
    let env = TestEnv::new("file");
    let commands: &[&[&str]] = &[
        &[],
        &["token"],
        &["exec"],
        &["status"],
        &["import"],
        &["profile", "add"],
        &["credential", "add"],
        &["credential", "verify"],
        &["completions"],
    ];
    for c in commands {
        let mut args = c.to_vec();
        args.push("--help");
        let help = env.ctl_ok(&args, None);
        assert!(
            help.contains("Examples:\n  ") && help.split("Examples:").nth(1).unwrap().contains("lookerctl "),
            "lookerctl {c:?} --help has no examples:\n{help}"
        );
        no_escapes("help", &help);
    }
    let import = env.ctl_ok(&["import", "--help"], None);
    for needle in ["LOOKERSDK_BASE_URL", "./looker.ini", "--remove-secret", "plain text"] {
        assert!(import.contains(needle), "import --help does not explain {needle}");
    }
    assert!(env.ctl_ok(&["exec", "--help"], None).contains("signal"));

    // Even on a terminal: no colour, NO_COLOR or not.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("`script` not installed: terminal check skipped");
        return;
    }
    for no_color in [None, Some("1")] {
        for args in ["--help", "token --help", "--bogus", "profile list"] {
            let mut cmd = Command::new("script");
            cmd.args(["-qec", &format!("{} {args}", ctl_bin().display()), "/dev/null"])
                .envs(&env.vars)
                .env("TERM", "xterm-256color")
                .env_remove("NO_COLOR")
                .env_remove("LOOKER_AGENT_CONFIG")
                .stdin(Stdio::null());
            if let Some(v) = no_color {
                cmd.env("NO_COLOR", v);
            }
            let out = cmd.output().unwrap();
            let shown = text(&out.stdout);
            assert!(shown.contains("lookerctl"), "script captured nothing for {args}: {shown:?}");
            no_escapes(&format!("lookerctl {args} on a terminal"), &shown);
        }
    }
}

// ----- names -----

#[test]
fn invalid_names_are_refused_before_anything_is_touched() {
    let env = TestEnv::new("file");
    let long = "p".repeat(65);
    for (args, what) in [
        (vec!["profile", "add", "../evil", "--base-url", "https://x.example.com"], "profile"),
        (vec!["profile", "add", long.as_str(), "--base-url", "https://x.example.com"], "profile"),
        (vec!["credential", "add", "prod", "a/b", "--client-id", "id"], "credential"),
        (vec!["credential", "add", ".p", "main", "--client-id", "id"], "profile"),
    ] {
        let o = env.ctl(&args, None);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", err(&o));
        let e = err(&o);
        assert!(e.contains(&format!("invalid {what} name")) && e.contains("at most 64"), "{args:?}: {e}");
    }
    // Refused by the argument parser: no config folder, no lock file was made.
    assert!(!env.config.parent().unwrap().exists(), "{}", env.config.display());
}

// ----- --json everywhere, tables -----

#[test]
fn every_json_output_parses() {
    let emu = BgEmulator::start(HOUR, &[("j-id", "j-secret")]);
    let env = TestEnv::new("file");
    let url = emu.url();
    let cases: Vec<(Vec<&str>, Option<&str>)> = vec![
        (vec!["profile", "add", "j", "--base-url", &url], None),
        (vec!["profile", "add", "k", "--base-url", "https://k.example.com", "--default"], None),
        (vec!["credential", "add", "j", "main", "--client-id", "j-id"], Some("j-secret")),
        (vec!["credential", "add", "k", "main", "--client-id", "k-id"], Some("k-secret")),
        (vec!["profile", "list"], None),
        (vec!["profile", "show", "j"], None),
        (vec!["credential", "list"], None),
        (vec!["credential", "list", "j"], None),
        (vec!["credential", "verify", "j"], None),
    ];
    for (args, stdin) in &cases {
        let mut a = args.clone();
        a.push("--json");
        parse_json(&env.ctl_ok(&a, *stdin));
    }
    let list = parse_json(&env.ctl_ok(&["profile", "list", "--json"], None));
    assert_eq!(list.as_array().unwrap().len(), 2);

    let _agent = env.start_agent(&[]);
    for args in [&["token", "j"][..], &["status"], &["revoke", "j"], &["revoke"]] {
        let mut a = args.to_vec();
        a.push("--json");
        parse_json(&env.ctl_ok(&a, None));
    }
    let status = parse_json(&env.ctl_ok(&["status", "--json"], None));
    assert_eq!(status["profiles"].as_array().unwrap().len(), 2);
    for args in [&["credential", "remove", "k", "main"][..], &["profile", "remove", "k"]] {
        let mut a = args.to_vec();
        a.push("--json");
        parse_json(&env.ctl_ok(&a, None));
    }
}

/// Checks that every row's cells start where the header's columns start.
fn assert_aligned(table: &str) {
    // Notes may follow the table, after a blank line.
    let mut lines = table.split("\n\n").next().unwrap_or_default().lines();
    let header = lines.next().unwrap();
    let starts: Vec<usize> = header
        .char_indices()
        .filter(|&(i, c)| c != ' ' && (i == 0 || header[..i].ends_with("  ")))
        .map(|(i, _)| i)
        .collect();
    assert!(starts.len() >= 2, "not a table:\n{table}");
    for row in lines {
        for &s in &starts[1..] {
            if row.len() > s {
                assert!(
                    row.as_bytes()[s - 1] == b' ' && row.as_bytes()[s] != b' ',
                    "column at {s} misaligned:\n{table}"
                );
            }
        }
    }
}

#[test]
fn tables_are_aligned() {
    let emu = BgEmulator::start(HOUR, &[("a-id", "a"), ("b-id", "b")]);
    let env = TestEnv::new("file");
    env.add_profile("a", &emu.url(), &[("one", "a-id", "a")]);
    env.add_profile(
        "a-much-longer-name",
        &emu.url(),
        &[("the-second-credential", "b-id", "b"), ("x", "a-id", "a")],
    );
    assert_aligned(&env.ctl_ok(&["profile", "list"], None));
    assert_aligned(&env.ctl_ok(&["credential", "list"], None));
    let _agent = env.start_agent(&[]);
    env.ctl_ok(&["token", "a"], None);
    let status = env.ctl_ok(&["status"], None);
    let table: String =
        status.lines().skip(1).take_while(|l| !l.starts_with("gateway:")).collect::<Vec<_>>().join("\n");
    assert!(status.contains("gateway: http://127.0.0.1:"), "{status}");
    assert_aligned(&table);
}

// ----- the Python example -----

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A python that can `import looker_sdk`: LOOKER_AGENT_PYTHON, else scripts/python-venv.sh.
fn find_python() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("LOOKER_AGENT_PYTHON").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let script = repo().join("scripts/python-venv.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed: {}", script.display(), err(&out)));
    }
    let path = text(&out.stdout).lines().last().unwrap_or("").trim().to_string();
    if path.is_empty() || !Path::new(&path).exists() {
        return Err(format!("{} printed no python path", script.display()));
    }
    Ok(PathBuf::from(path))
}

#[test]
fn python_example_uses_the_agents_token() {
    let python = match find_python() {
        Ok(p) => p,
        Err(why) if std::env::var("LOOKER_AGENT_SKIP_PYTHON").as_deref() == Ok("1") => {
            eprintln!("SKIPPED the Python example (LOOKER_AGENT_SKIP_PYTHON=1): {why}");
            return;
        }
        Err(why) => panic!("no Python with looker_sdk: {why} (or set LOOKER_AGENT_SKIP_PYTHON=1)"),
    };
    let emu = BgEmulator::start(HOUR, &[("py-id", "py-secret")]);
    let env = TestEnv::new("file");
    env.add_profile("py", &emu.url(), &[("main", "py-id", "py-secret")]);
    let _agent = env.start_agent(&[]);

    let mut cmd = Command::new(&python);
    cmd.arg("-I").arg(repo().join("examples/python/example.py")).arg("py");
    for (k, _) in std::env::vars_os() {
        let key = k.to_string_lossy().to_ascii_lowercase();
        if key.starts_with("lookersdk_") || key.ends_with("_proxy") {
            cmd.env_remove(&k);
        }
    }
    // No credentials anywhere the SDK could find them: only the agent's socket.
    cmd.env("LOOKER_AGENT_SOCKET", &env.socket)
        .env("NO_PROXY", "*")
        .current_dir(env.dir.path())
        .stdin(Stdio::null());
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "example.py failed: {}\n{}\n{}", out.status, text(&out.stdout), err(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("id: 10\n") && stdout.contains("email: bot@example.com"), "{stdout}");

    // The only login was the agent's, the SDK revoked nothing, and its calls
    // (two sdk.me()) were made with the token the agent hands out.
    let c = emu.emu().counters();
    assert_eq!((c.logins, c.failed_logins, c.logouts), (1, 0, 0), "{c:?}");
    assert!(emu.emu().api_calls() >= 2, "the example made no API call");
    let token = env.ctl_ok(&["token", "py"], None);
    assert!(emu.emu().is_live(token.trim()));
    assert_eq!(emu.emu().counters().logins, 1);
    let status = parse_json(&env.ctl_ok(&["status", "--json"], None));
    assert_eq!(status["profiles"][0]["credentials"][0]["logins"], 1);

    // No agent: a clear error, not a traceback.
    let mut cmd = Command::new(&python);
    cmd.arg("-I")
        .arg(repo().join("examples/python/example.py"))
        .env("LOOKER_AGENT_SOCKET", env.dir.path().join("nothing.sock"))
        .stdin(Stdio::null());
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(err(&out).contains("start looker-agent") && !err(&out).contains("Traceback"), "{}", err(&out));
}
