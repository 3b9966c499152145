//! Issue 11 point 4: agents sharing one secret store (another `--socket`) leave each
//! other's journaled tokens alone, and still revoke those of an agent that was killed.
//! Real binaries, the emulator, the real file store and the real gnome-keyring.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Starts an agent of `env` serving `socket` (what the "use another --socket" advice
/// leads to) and waits until it answers there.
fn start_agent_on(env: &TestEnv, socket: &Path) -> AgentProc {
    let mut cmd = Command::new(agent_bin());
    for k in ["LOOKER_AGENT_SOCKET", "LOOKER_AGENT_CONFIG", "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID"] {
        cmd.env_remove(k);
    }
    cmd.envs(&env.vars);
    let log = env.dir.path().join(format!("agent-{}.log", unique("")));
    let logf = std::fs::File::create(&log).unwrap();
    cmd.arg("--socket").arg(socket).stdin(Stdio::null()).stdout(Stdio::null()).stderr(logf);
    let proc = AgentProc { child: Some(cmd.spawn().unwrap()), log, socket: socket.to_path_buf() };
    wait_until("the agent's socket", Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(socket).is_ok()
    });
    proc
}

/// Waits until `agent` has finished looking at the journal it found at start.
fn wait_recovery_done(agent: &AgentProc) {
    wait_until("the start-up journal check", Duration::from_secs(10), || {
        let log = agent.log_text();
        log.contains("leaving journaled tokens of running agents alone")
            || log.contains("revoked tokens left by an earlier run")
    });
}

fn token_on(env: &TestEnv, socket: &Path, profile: &str) -> String {
    let s = socket.to_str().unwrap();
    env.ctl_ok(&["--socket", s, "token", profile], None).trim().to_string()
}

fn other_socket(env: &TestEnv, name: &str) -> PathBuf {
    env.dir.path().join("run").join(name)
}

fn second_agent_keeps_the_first_ones_tokens(store: &str) {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("own1", "s1")]);
    let env = TestEnv::new(store);
    let profile = unique("own");
    env.add_profile(&profile, &emu.url(), &[("c", "own1", "s1")]);
    let mut first = env.start_agent(&[]);
    let t1 = token_on(&env, &env.socket, &profile);

    // A second agent on the same store, as the "already serving" message suggests.
    let other = other_socket(&env, "other.sock");
    let second = start_agent_on(&env, &other);
    wait_recovery_done(&second);
    assert!(emu.emu().is_live(&t1), "the second agent revoked the first one's token");
    // The first agent keeps handing out the same token, and Looker still takes it.
    assert_eq!(token_on(&env, &env.socket, &profile), t1);
    assert_eq!(looker_user(&emu.url(), &t1).0, 200);
    let t2 = token_on(&env, &other, &profile);
    assert_ne!(t1, t2);

    // The first agent is killed: the next agent to start revokes its token, and only it.
    first.stop_with(9);
    assert!(emu.emu().is_live(&t1));
    let third = start_agent_on(&env, &other_socket(&env, "third.sock"));
    wait_until("the dead agent's token revoked", Duration::from_secs(10), || !emu.emu().is_live(&t1));
    wait_recovery_done(&third);
    assert!(emu.emu().is_live(&t2), "the third agent revoked the living second agent's token");
    assert_eq!(token_on(&env, &other, &profile), t2);
    assert!(!third.log_text().contains(&t1) && !second.log_text().contains(&t1));

    if store == "file" {
        // The dead agent's lock file is cleaned up; the two living agents keep theirs.
        let owners = env.dir.path().join("data/looker-agent/owners");
        wait_until("the dead owner's lock removed", Duration::from_secs(5), || {
            std::fs::read_dir(&owners).unwrap().filter(|e| e.as_ref().is_ok()).count() == 2
        });
    }
}

#[test]
fn a_second_agent_on_the_file_store_leaves_the_first_ones_tokens_alone() {
    second_agent_keeps_the_first_ones_tokens("file");
}

#[test]
fn a_second_agent_on_the_keyring_leaves_the_first_ones_tokens_alone() {
    if !require_secret_service() {
        return;
    }
    second_agent_keeps_the_first_ones_tokens("secret-service");
}
