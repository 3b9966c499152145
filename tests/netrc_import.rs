//! `lookerctl import --netrc` (issue 14, point 4): the real lookerctl reads a netrc
//! under a temporary HOME as looker-cli (gzr) writes it, stores the password as the
//! client secret, and with `--remove-secret` takes the password out of the file,
//! atomically, with nothing else in it changed.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);
const SECRET: &str = "n3trc-Secr\"et#;=";
const OTHER_SECRET: &str = "github-token-123";

fn ok(o: Output, what: &str) -> String {
    assert!(o.status.success(), "{what} failed: {}\n{}", o.status, err(&o));
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// A netrc with a default entry, a macro, another host and the Looker one spread over lines.
fn sample(host: &str) -> String {
    format!(
        "# hosts\n\
         machine github.com login me password {OTHER_SECRET}\n\
         macdef init\n\
         machine not-a-machine login x password y\n\
         \n\
         machine {host}\n\
         \tlogin netrc-id\n\
         \tpassword {SECRET}\n\
         \n\
         default login anonymous password guest@\n"
    )
}

#[test]
fn import_from_netrc_then_remove_the_password() {
    let emu = BgEmulator::start(HOUR, &[("netrc-id", SECRET)]);
    let env = TestEnv::new("file");
    let home = env.dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let home_s = home.to_str().unwrap();
    let host = emu.url().trim_start_matches("http://").to_string();
    let netrc = home.join(".netrc");
    let original = sample(&host);
    std::fs::write(&netrc, &original).unwrap();
    std::fs::set_permissions(&netrc, std::fs::Permissions::from_mode(0o600)).unwrap();
    let vars = [("HOME", home_s)];

    // Several machines and none named: the user is told which there are.
    let out = env.ctl_with(&["import", "--netrc"], None, &vars, None);
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));
    assert!(err(&out).contains("github.com") && err(&out).contains("--machine"), "{}", err(&out));
    assert!(!err(&out).contains("not-a-machine"), "a macro body was read as entries: {}", err(&out));
    // An unknown machine lists them; `default` is never one.
    let out = env.ctl_with(&["import", "--netrc", "--machine", "default"], None, &vars, None);
    assert_eq!(out.status.code(), Some(4), "{}", err(&out));

    // ~/.netrc by default; the profile named after the host's first label.
    let out = env.ctl_with(&["import", "--netrc", "--machine", &host, "--json"], None, &vars, None);
    let stdout = ok(out.clone(), "import --netrc");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["source"], "netrc");
    assert_eq!(v["profile"], "127");
    assert_eq!(v["base_url"], format!("https://{host}"));
    assert_eq!(v["client_id"], "netrc-id");
    assert_eq!(v["file_still_holds_secret"], true);
    let warning = err(&out);
    assert!(warning.contains("plain text") && warning.contains("--netrc"), "{warning}");
    assert!(!warning.contains(SECRET) && !stdout.contains(SECRET));
    assert_eq!(read(&netrc), original, "without --remove-secret the file stays as it was");
    let config = read(&env.config);
    assert!(!config.contains(SECRET) && config.contains("netrc-id"), "{config}");

    // The password is the secret Looker accepts (the emulator speaks plain http on
    // loopback, so the profile is pointed there by hand for this check).
    std::fs::write(&env.config, config.replace("https://", "http://")).unwrap();
    let verified = ok(env.ctl(&["credential", "verify", "127"], None), "verify");
    assert!(verified.contains("logs in"), "{verified}");
    std::fs::write(&env.config, config).unwrap();

    // --remove-secret, with an explicit path this time: only `password SECRET` goes.
    let netrc_s = netrc.to_str().unwrap();
    let out = env.ctl_with(
        &["import", "--netrc", netrc_s, "--machine", &host, "--remove-secret", "--json"],
        None,
        &vars,
        None,
    );
    let v: serde_json::Value = serde_json::from_str(&ok(out, "import --remove-secret")).unwrap();
    assert_eq!(v["secret_removed_from_file"], true);
    assert_eq!(v["credential_change"], "unchanged");
    let expected = original.replace(&format!("\tpassword {SECRET}\n"), "");
    assert_eq!(read(&netrc), expected, "only the password line may go");
    assert!(read(&netrc).contains(OTHER_SECRET));
    assert_eq!(std::fs::metadata(&netrc).unwrap().permissions().mode() & 0o7777, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(&home)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n != ".netrc")
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // Without a password in the file, the secret is read from stdin, like looker.ini.
    let out = env.ctl_with(
        &["import", "--netrc", "--machine", &host, "--profile", "again"],
        Some(SECRET),
        &vars,
        None,
    );
    ok(out, "import with the secret on stdin");
}

#[test]
fn netrc_on_one_line_and_errors() {
    let env = TestEnv::new("file");
    let home = env.dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let vars = [("HOME", home.to_str().unwrap())];

    // No ~/.netrc: the error says how to name one.
    let out = env.ctl_with(&["import", "--netrc"], None, &vars, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(err(&out).contains("--netrc PATH"), "{}", err(&out));

    // The only machine is taken; an entry on one line loses just its pair.
    let netrc = home.join(".netrc");
    std::fs::write(&netrc, "machine mycompany.cloud.looker.com login one-id password s1 account x\n")
        .unwrap();
    let out = env.ctl_with(&["import", "--netrc", "--remove-secret"], None, &vars, None);
    let stdout = ok(out, "import one-line netrc");
    assert!(stdout.contains("profile mycompany") && stdout.contains("one-id"), "{stdout}");
    assert_eq!(read(&netrc), "machine mycompany.cloud.looker.com login one-id account x\n");

    // A broken file names the line, never the value; --section is for a looker.ini.
    std::fs::write(&netrc, "machine h login\n").unwrap();
    let out = env.ctl_with(&["import", "--netrc"], None, &vars, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(err(&out).contains("line 1") && err(&out).contains("login"), "{}", err(&out));
    let out = env.ctl_with(&["import", "--netrc", "--section", "x"], None, &vars, None);
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));
}
