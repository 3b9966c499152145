//! The README's quick start, as a new user runs it: `looker-agent --dev` (nothing
//! installed or configured), then every command it prints for "another terminal",
//! pasted into a shell as they are, then Ctrl-C. Checked against what its embedded
//! Looker saw, as the agent reports it when it stops.

mod common;

use common::{agent_bin, ctl_bin, TestEnv};
use serde_json::Value;
use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The dev agent's standard output, line by line, as it comes.
fn lines_of(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next line, or a failure naming what was awaited.
fn next(lines: &mpsc::Receiver<String>, what: &str) -> String {
    lines.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("dev mode printed no {what}"))
}

#[test]
fn the_printed_quick_start_works_as_pasted_and_ctrl_c_revokes_every_token() {
    let env = TestEnv::new("memory");
    let log = std::fs::File::create(env.dir.path().join("dev.log")).unwrap();
    let mut cmd = Command::new(agent_bin());
    common::isolated::isolate(&mut cmd, &env.vars);
    let mut agent = cmd.arg("--dev").stdout(Stdio::piped()).stderr(log).spawn().unwrap();
    let lines = lines_of(&mut agent);

    // The banner, then the commands up to the blank line after them.
    let banner = next(&lines, "banner");
    assert!(banner.contains("Looker emulator at http://127.0.0.1:"), "{banner}");
    while !next(&lines, "instructions").ends_with("In another terminal:") {}
    assert_eq!(next(&lines, "blank line"), "");
    let mut commands = Vec::new();
    loop {
        let line = next(&lines, "commands");
        if line.is_empty() {
            break;
        }
        commands.push(line);
    }
    assert!(commands[0].starts_with("export LOOKER_AGENT_SOCKET="), "{commands:?}");
    assert!(
        commands.iter().any(|c| c.starts_with("lookerctl exec dev -- ")),
        "the gateway is shown: {commands:?}"
    );

    // Pasted into one shell, lookerctl on the PATH, each command's output on its own line.
    let script = commands.iter().map(|c| format!("{c}\necho")).collect::<Vec<_>>().join("\n");
    let bin_dir = ctl_bin().parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut sh = Command::new("sh");
    common::isolated::isolate(&mut sh, &env.vars);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy().to_ascii_lowercase();
        if k.starts_with("looker") || k.ends_with("_proxy") {
            sh.env_remove(&key);
        }
    }
    let out = sh.args(["-ec", &script]).env("PATH", path).current_dir(env.dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let outputs: Vec<&str> = stdout.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(outputs.len(), commands.len() - 1, "one output per command after export: {stdout}");

    // `lookerctl token dev` and the socket's token agree: one login serves both.
    let token = outputs[0].trim();
    let over_socket: Value = serde_json::from_str(outputs[1]).unwrap();
    assert_eq!(over_socket["access_token"], token, "{}", outputs[1]);
    // Through the gateway, curl reads the user with a session token of its own.
    let user: Value = serde_json::from_str(outputs[2]).unwrap_or_else(|e| panic!("{e}: {}", outputs[2]));
    assert_eq!(user["display_name"], "Dev User", "{user}");
    assert!(!stdout.contains("client_secret"), "{stdout}");

    // Ctrl-C: the agent stops cleanly, and its Looker saw one login and has no token left.
    common::unsafe_kill(agent.id() as i32, 2);
    let stopped = loop {
        let line = next(&lines, "stop summary");
        if line.starts_with("stopped:") {
            break line;
        }
    };
    assert!(agent.wait().unwrap().success());
    assert!(stopped.contains("saw 1 login(s)") && stopped.contains(" 0 live token(s) left"), "{stopped}");
}
