//! `lookerctl credential rotate` (issue 14, point 2), with the real lookerctl (and
//! agent), the emulator's `credentials_api3`, the file store and the real Secret
//! Service:
//!
//! - a rotation makes Looker create one key and delete one; the old key no longer
//!   logs in, a fresh login with the new one works (`credential verify`), the config
//!   names the new client_id, the store holds only the new secret, and that secret
//!   is in no output, log, config or rotation record;
//! - with a running agent (Secret Service): the agent's old token is revoked by its
//!   reload, its next token comes from the new key;
//! - a refused rotation (self-service off, not an admin) changes nothing;
//! - a fault between each step (Looker refusing or losing the answer to a create,
//!   a delete or a login; the store or the config unwritable; lookerctl killed with
//!   SIGKILL while Looker holds a request) leaves a working credential, and the next
//!   run ends with exactly one key at Looker, the one the config names.

mod common;

use common::*;
use looker_agent::store::file::FileStore;
use looker_agent::store::{SecretKey, SecretStore};
use looker_emulator::{Api3Counters, Faults, OneShotFault};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);
const OLD_ID: &str = "old-key-id-0001";
const OLD_SECRET: &str = "old-Rot-Secret-7Hq2";
/// The user `start_emulator` gives the first credential.
const USER: &str = "10";

struct Setup {
    env: TestEnv,
    emu: BgEmulator,
    profile: String,
}

impl Setup {
    fn new(store: &str, profile: &str) -> Setup {
        let env = TestEnv::new(store);
        let emu = BgEmulator::start(HOUR, &[(OLD_ID, OLD_SECRET)]);
        env.add_profile(profile, &emu.url(), &[("main", OLD_ID, OLD_SECRET)]);
        Setup { env, emu, profile: profile.to_string() }
    }

    fn rotate(&self) -> Output {
        self.env.ctl(&["credential", "rotate", &self.profile], None)
    }

    fn rotate_ok(&self) -> String {
        let out = self.rotate();
        assert!(out.status.success(), "rotate failed: {}\n{}", out.status, err(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn config_text(&self) -> String {
        read(&self.env.config)
    }

    /// The client_id the config names for `main`.
    fn client_id(&self) -> String {
        let cfg: toml::Value = toml::from_str(&self.config_text()).unwrap();
        cfg["profiles"][&self.profile]["credentials"][0]["client_id"].as_str().unwrap().to_string()
    }

    fn keys(&self) -> Vec<String> {
        self.emu.emu().api3_keys(USER).into_iter().map(|k| k.client_id).collect()
    }

    fn counters(&self) -> Api3Counters {
        self.emu.emu().api3_counters()
    }

    fn data_dir(&self) -> PathBuf {
        self.env.dir.path().join("data").join("looker-agent")
    }

    fn record(&self) -> PathBuf {
        self.env.dir.path().join("state/looker-agent/rotations").join(&self.profile).join("main.json")
    }

    /// The secret the file store holds for `client_id`.
    fn stored(&self, client_id: &str) -> Option<String> {
        let store = FileStore::new(self.data_dir());
        let key = SecretKey::new(self.profile.as_str(), "main");
        self.emu.rt.block_on(store.get(&key, client_id)).ok().map(|s| s.expose().to_string())
    }

    /// Checks the end state of a successful rotation: exactly one key at Looker, the
    /// config's, which logs in afresh; the old key refused; the new secret stored.
    fn assert_rotated(&self) -> String {
        let new_id = self.client_id();
        assert_ne!(new_id, OLD_ID, "the config names a new client_id");
        assert_eq!(self.keys(), vec![new_id.clone()], "exactly the config's key is left at Looker");
        assert_eq!(login_status(&self.emu.url(), OLD_ID, OLD_SECRET), 404, "the old key no longer logs in");
        let verified = self.env.ctl_ok(&["credential", "verify", &self.profile], None);
        assert!(verified.contains(&new_id), "verify logs in with the new key: {verified}");
        assert!(!self.record().exists(), "no rotation record is left");
        new_id
    }
}

/// `POST /api/4.0/login` through curl, the form on stdin (never argv); the status.
fn login_status(base_url: &str, id: &str, secret: &str) -> u16 {
    let mut child = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "@-"])
        .args(["-H", "Content-Type: application/x-www-form-urlencoded"])
        .arg(format!("{base_url}/api/4.0/login"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("client_id={id}&client_secret={secret}").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Makes a folder unwritable (even for root: `chattr +i`) until dropped.
struct Frozen(PathBuf);

impl Frozen {
    fn new(dir: &Path) -> Frozen {
        let root = rustix::process::getuid().is_root();
        let st = if root {
            Command::new("chattr").arg("+i").arg(dir).status().unwrap()
        } else {
            Command::new("chmod").arg("0500").arg(dir).status().unwrap()
        };
        assert!(st.success(), "cannot freeze {}", dir.display());
        Frozen(dir.to_path_buf())
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
        let _ = Command::new("chmod").arg("0700").arg(&self.0).status();
    }
}

#[test]
fn rotation_replaces_the_key_at_looker_and_everywhere_else() {
    let s = Setup::new("file", "prod");
    let out = s.rotate();
    assert!(out.status.success(), "{}", err(&out));
    assert_eq!(s.counters(), Api3Counters { created: 1, deleted: 1 });
    let new_id = s.assert_rotated();
    let new_secret = s.stored(&new_id).expect("the new secret is in the store");
    assert_eq!(s.stored(OLD_ID), None, "the old secret is deleted");
    assert!(!s.config_text().contains(OLD_ID));
    assert!(!s.config_text().contains(&new_secret), "no secret in the config");
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), err(&out));
    assert!(printed.contains(&new_id) && !printed.contains(&new_secret), "{printed}");
    // --json names both keys, never a secret.
    let again = s.env.ctl_ok(&["credential", "rotate", "prod", "main", "--json"], None);
    let v: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(v["old_client_id"], new_id.as_str());
    assert_eq!(v["new_client_id"], s.client_id().as_str());
    assert_eq!(s.counters(), Api3Counters { created: 2, deleted: 2 });
    assert!(!again.contains("secret\":"), "{again}");
}

#[test]
fn a_running_agent_moves_to_the_new_key_and_its_old_token_is_revoked() {
    if !require_secret_service() {
        return;
    }
    let profile = unique("rot");
    let s = Setup::new("secret-service", &profile);
    let mut agent = s.env.start_agent(&[]);
    let old_token = s.env.ctl_ok(&["token", &profile], None).trim().to_string();
    assert!(s.emu.emu().is_live(&old_token));
    let out = s.rotate();
    assert!(out.status.success(), "{}", err(&out));
    let new_id = s.assert_rotated();
    // The reload revoked the agent's token of the old key, and the next one is the new key's.
    wait_for("the agent to revoke the old key's token", Duration::from_secs(10), || {
        !s.emu.emu().is_live(&old_token)
    });
    let token = s.env.ctl_ok(&["token", &profile], None).trim().to_string();
    let info = s.emu.emu().token_info(&token).expect("a live token");
    assert_eq!(info.kind, looker_emulator::TokenKind::ApiLogin { client_id: new_id.clone() });
    // The Secret Service holds the new key's secret only; it is in no log or config.
    let lookup = |id: &str| {
        let out = Command::new("secret-tool")
            .args(["lookup", "application", "looker-agent", "profile", &profile, "credential", "main"])
            .args(["client_id", id])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let new_secret = lookup(&new_id);
    assert!(!new_secret.is_empty(), "the new secret is in the Secret Service");
    assert_eq!(lookup(OLD_ID), "", "the old secret is gone");
    agent.stop_with(15);
    let log = agent.log_text();
    assert!(log.contains("reloaded"), "{log}");
    for (what, text) in [("agent log", log), ("config", s.config_text())] {
        assert!(!text.contains(&new_secret), "the new secret is in the {what}");
    }
    for (path, body) in files_under(s.env.dir.path()) {
        assert!(
            !String::from_utf8_lossy(&body).contains(&new_secret),
            "the new secret is in {}",
            path.display()
        );
    }
    let _ = Command::new("secret-tool")
        .args(["clear", "application", "looker-agent", "profile", &profile])
        .status();
}

#[test]
fn a_refused_rotation_changes_nothing() {
    let s = Setup::new("file", "prod");
    s.emu.emu().set_api3_self_service(false);
    let (config, store) = (s.config_text(), files_under(&s.data_dir()));
    let out = s.rotate();
    assert_eq!(out.status.code(), Some(5), "{}", err(&out));
    let msg = err(&out);
    assert!(
        msg.contains(&format!("Looker refused to list the API keys of user {USER} (HTTP 403)"))
            && msg.contains("self-service API keys are off and this user is not an admin")
            && msg.contains("ask an admin, or rotate in Looker's admin panel"),
        "{msg}"
    );
    assert_eq!(s.config_text(), config);
    assert_eq!(files_under(&s.data_dir()), store);
    assert_eq!(s.keys(), vec![OLD_ID.to_string()]);
    assert_eq!(s.counters(), Api3Counters::default());
    assert!(!s.record().exists());
    assert_eq!(login_status(&s.emu.url(), OLD_ID, OLD_SECRET), 200);
}

#[test]
fn a_refused_create_changes_nothing() {
    let s = Setup::new("file", "prod");
    s.emu.emu().fail_next_api3_create(OneShotFault::Status(403));
    let (config, store) = (s.config_text(), files_under(&s.data_dir()));
    let out = s.rotate();
    assert_eq!(out.status.code(), Some(5), "{}", err(&out));
    assert!(err(&out).contains(&format!("Looker refused to create an API key for user {USER} (HTTP 403)")));
    assert_eq!((s.config_text(), files_under(&s.data_dir())), (config, store));
    assert_eq!(s.keys(), vec![OLD_ID.to_string()]);
    assert!(!s.record().exists());
}

/// A one-shot fault, one failed rotation that leaves the old key working, then a
/// rotation that ends with one key.
fn fault_then_recover(arm: impl FnOnce(&Setup), expect_after_fault: Api3Counters, config_switched: bool) {
    let s = Setup::new("file", "prod");
    arm(&s);
    let out = s.rotate();
    assert!(!out.status.success(), "the fault stops the rotation");
    assert_eq!(s.counters(), expect_after_fault, "{}", err(&out));
    // The credential works whatever happened.
    s.env.ctl_ok(&["credential", "verify", "prod"], None);
    assert_eq!(s.client_id() != OLD_ID, config_switched, "{}", err(&out));
    s.emu.emu().clear_one_shot_faults();
    s.rotate_ok();
    s.assert_rotated();
    let c = s.counters();
    assert_eq!(c.created - c.deleted, 0, "every key created but one was deleted: {c:?}");
}

#[test]
fn looker_failing_the_first_login_changes_nothing() {
    fault_then_recover(
        |s| s.emu.emu().fail_next_login(OLD_ID, OneShotFault::Status(503)),
        Api3Counters::default(),
        false,
    );
}

#[test]
fn a_failed_create_changes_nothing() {
    fault_then_recover(
        |s| s.emu.emu().fail_next_api3_create(OneShotFault::Status(503)),
        Api3Counters::default(),
        false,
    );
}

#[test]
fn a_create_whose_answer_is_lost_is_found_by_its_tag_and_deleted() {
    fault_then_recover(
        |s| s.emu.emu().fail_next_api3_create(OneShotFault::DropAfterApplying),
        Api3Counters { created: 1, deleted: 1 },
        false,
    );
}

#[test]
fn a_store_that_cannot_write_gets_the_new_key_deleted_again() {
    let s = Setup::new("file", "prod");
    let secrets = s.data_dir().join("secrets/prod/main.d");
    assert!(secrets.is_dir());
    {
        let _frozen = Frozen::new(&secrets);
        let out = s.rotate();
        assert_eq!(out.status.code(), Some(1), "{}", err(&out));
        assert!(err(&out).contains("secret store"), "{}", err(&out));
        assert_eq!(s.counters(), Api3Counters { created: 1, deleted: 1 });
        assert_eq!(s.keys(), vec![OLD_ID.to_string()]);
        assert_eq!(s.client_id(), OLD_ID);
        assert!(!s.record().exists());
    }
    s.rotate_ok();
    s.assert_rotated();
}

#[test]
fn a_config_that_cannot_be_saved_is_switched_by_the_next_run() {
    let s = Setup::new("file", "prod");
    let dir = s.env.config.parent().unwrap().to_path_buf();
    {
        let _frozen = Frozen::new(&dir);
        let out = s.rotate();
        assert!(!out.status.success());
        assert!(err(&out).contains("next `lookerctl credential rotate prod main` finishes"), "{}", err(&out));
        assert_eq!(s.client_id(), OLD_ID, "the config still names the old key");
        assert_eq!(s.counters(), Api3Counters { created: 1, deleted: 0 });
        assert!(s.record().exists(), "the record stays for the next run");
        s.env.ctl_ok(&["credential", "verify", "prod"], None);
    }
    let out = s.rotate_ok();
    assert!(out.contains("finishing an interrupted rotation"), "{out}");
    assert_eq!(
        s.counters(),
        Api3Counters { created: 1, deleted: 1 },
        "the stored new key was used, not a third"
    );
    s.assert_rotated();
}

#[test]
fn a_failed_delete_is_finished_by_the_next_run() {
    fault_then_recover(
        |s| s.emu.emu().fail_next_api3_delete(OneShotFault::Status(503)),
        Api3Counters { created: 1, deleted: 0 },
        true,
    );
}

#[test]
fn a_delete_whose_answer_is_lost_is_finished_by_the_next_run() {
    let s = Setup::new("file", "prod");
    s.emu.emu().fail_next_api3_delete(OneShotFault::DropAfterApplying);
    let out = s.rotate();
    assert!(!out.status.success());
    assert_eq!(s.counters(), Api3Counters { created: 1, deleted: 1 });
    assert!(err(&out).contains("uses the new key"), "{}", err(&out));
    let out = s.rotate_ok();
    assert!(out.contains("finishing an interrupted rotation"), "{out}");
    assert_eq!(s.counters(), Api3Counters { created: 1, deleted: 1 });
    s.assert_rotated();
}

/// Starts a rotation as a child process.
fn spawn_rotate(s: &Setup) -> std::process::Child {
    s.env
        .ctl_command(&["credential", "rotate", &s.profile], &[], None)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn kill9(mut child: std::process::Child) {
    child.kill().unwrap();
    let st = child.wait().unwrap();
    assert!(!st.success(), "killed, not finished");
}

#[test]
fn killed_after_the_new_key_logged_in_the_next_run_switches_to_it() {
    let s = Setup::new("file", "prod");
    // The first logout is that of the new key's check token: hold it there.
    s.emu.emu().set_faults(Faults { logout_delay: HOUR, ..Faults::default() });
    let child = spawn_rotate(&s);
    wait_for("the new key's login", Duration::from_secs(20), || s.emu.emu().counters().logins == 2);
    kill9(child);
    s.emu.emu().set_faults(Faults::default());
    assert_eq!(s.client_id(), OLD_ID);
    assert_eq!(s.counters(), Api3Counters { created: 1, deleted: 0 });
    s.env.ctl_ok(&["credential", "verify", "prod"], None);
    let out = s.rotate_ok();
    assert!(out.contains("finishing an interrupted rotation"), "{out}");
    assert_eq!(s.counters(), Api3Counters { created: 1, deleted: 1 });
    s.assert_rotated();
}

#[test]
fn killed_after_the_config_switched_the_next_run_deletes_the_old_key() {
    let s = Setup::new("file", "prod");
    // Hold the check token's logout for 2 s; meanwhile hold every later API call (the
    // delete of the old key) for an hour, then kill once the config names the new key.
    s.emu.emu().set_faults(Faults { logout_delay: Duration::from_secs(2), ..Faults::default() });
    let child = spawn_rotate(&s);
    wait_for("the new key's login", Duration::from_secs(20), || s.emu.emu().counters().logins == 2);
    s.emu.emu().set_faults(Faults { api_delay: HOUR, ..Faults::default() });
    wait_for("the config switch", Duration::from_secs(20), || s.client_id() != OLD_ID);
    kill9(child);
    s.emu.emu().set_faults(Faults::default());
    assert_eq!(s.counters(), Api3Counters { created: 1, deleted: 0 });
    s.env.ctl_ok(&["credential", "verify", "prod"], None);
    let out = s.rotate_ok();
    assert!(out.contains("finishing an interrupted rotation"), "{out}");
    assert_eq!(s.counters(), Api3Counters { created: 1, deleted: 1 });
    s.assert_rotated();
}

#[test]
fn a_key_created_before_a_kill_is_found_by_its_tag() {
    // The state a kill right after Looker applied the create leaves: a record at step
    // `creating` and a key carrying its tag, whose secret nobody holds.
    let s = Setup::new("file", "prod");
    let tag = "looker-agent rotation killedTag01";
    let token = old_key_login(&s.emu.url());
    let created = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .args(["-H", &format!("Authorization: token {token}"), "-H", "Content-Type: application/json"])
        .args(["-d", &format!("{{\"purpose\":\"{tag}\"}}")])
        .arg(format!("{}/api/4.0/users/{USER}/credentials_api3", s.emu.url()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&created.stdout), "200");
    let old_key_id = s.emu.emu().api3_keys(USER).iter().find(|k| k.client_id == OLD_ID).unwrap().id.clone();
    std::fs::create_dir_all(s.record().parent().unwrap()).unwrap();
    std::fs::write(
        s.record(),
        serde_json::json!({
            "step": "creating", "user_id": USER, "old_client_id": OLD_ID, "old_key_id": old_key_id,
            "tag": tag, "started_at_unix": 1,
        })
        .to_string(),
    )
    .unwrap();
    assert_eq!(s.keys().len(), 2);
    s.rotate_ok();
    // The tagged orphan and the old key deleted, one new key made.
    assert_eq!(s.counters(), Api3Counters { created: 2, deleted: 2 });
    s.assert_rotated();
}

/// Logs in with the old key through curl; the token.
fn old_key_login(base_url: &str) -> String {
    let mut child = Command::new("curl")
        .args(["-s", "--data-binary", "@-", "-H", "Content-Type: application/x-www-form-urlencoded"])
        .arg(format!("{base_url}/api/4.0/login"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("client_id={OLD_ID}&client_secret={OLD_SECRET}").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------
// Key age in status, and `rotate_after`: the running agent rotates by itself.
// ---------------------------------------------------------------------------

const DAY: Duration = Duration::from_secs(86_400);

impl Setup {
    /// Makes Looker say the current key was created `age` ago.
    fn age_key(&self, age: Duration) {
        assert!(self
            .emu
            .emu()
            .set_api3_key_created_at(&self.client_id(), std::time::SystemTime::now() - age));
    }

    /// Adds `rotate_after = "…"` to the credential `main` by hand, as a person would.
    fn set_rotate_after(&self, value: &str) {
        let text = self.config_text();
        let line = format!("client_id = \"{}\"", self.client_id());
        assert!(text.contains(&line), "{text}");
        std::fs::write(&self.env.config, text.replace(&line, &format!("{line}\nrotate_after = \"{value}\"")))
            .unwrap();
    }

    fn main_status(&self) -> serde_json::Value {
        let st: serde_json::Value =
            serde_json::from_str(&self.env.ctl_ok(&["status", "--json"], None)).unwrap();
        let p =
            st["profiles"].as_array().unwrap().iter().find(|p| p["name"] == self.profile.as_str()).cloned();
        p.unwrap()["credentials"].as_array().unwrap().iter().find(|c| c["name"] == "main").cloned().unwrap()
    }
}

#[test]
fn status_shows_the_age_of_each_key() {
    let s = Setup::new("file", "prod");
    s.age_key(40 * DAY);
    let _agent = s.env.start_agent(&[]);
    s.env.ctl_ok(&["token", "prod"], None);
    wait_for("the agent to learn the key's age", Duration::from_secs(20), || {
        s.main_status()["key_age_seconds"].as_u64().is_some()
    });
    let st = s.main_status();
    let age = st["key_age_seconds"].as_u64().unwrap();
    assert!((40 * DAY.as_secs()..40 * DAY.as_secs() + 120).contains(&age), "{st}");
    assert!(st["key_created_at"].as_str().is_some(), "{st}");
    assert_eq!(st["rotate_after_seconds"], serde_json::Value::Null, "{st}");
    let human = s.env.ctl_ok(&["status"], None);
    let row = human.lines().find(|l| l.starts_with("prod ") && l.contains(" main ")).unwrap_or_default();
    assert!(row.contains(" 40d"), "the KEY AGE column: {human}");
    assert_eq!(s.counters(), Api3Counters { created: 0, deleted: 0 }, "no rotate_after: nothing rotated");
}

#[test]
fn rotate_after_makes_the_running_agent_rotate_an_old_key() {
    let s = Setup::new("file", "prod");
    s.age_key(40 * DAY);
    let _agent = s.env.start_agent(&[]);
    // Edited by hand right after the start: the agent's file watcher picks it up.
    s.set_rotate_after("30d");
    wait_for("the agent to reload the config", Duration::from_secs(20), || {
        s.main_status()["rotate_after_seconds"].as_u64() == Some(30 * DAY.as_secs())
    });
    // Its first token is its first login: the agent learns the key is 40 days old.
    let first = s.env.ctl_ok(&["token", "prod"], None).trim().to_string();
    wait_for("the agent to rotate the key", Duration::from_secs(30), || s.client_id() != OLD_ID);
    wait_for("the old key to be deleted", Duration::from_secs(30), || s.counters().deleted == 1);
    assert_eq!(s.counters(), Api3Counters { created: 1, deleted: 1 });
    let new_id = s.client_id();
    assert_eq!(s.keys(), vec![new_id.clone()], "exactly the config's key is left at Looker");
    assert_eq!(login_status(&s.emu.url(), OLD_ID, OLD_SECRET), 404, "the old key no longer logs in");
    assert!(s.config_text().contains("rotate_after = \"30d\""), "the setting stays: {}", s.config_text());
    // Tokens keep working, and new ones come from the new key.
    wait_for("the agent to serve the new key's token", Duration::from_secs(20), || {
        let out = s.env.ctl(&["token", "prod"], None);
        let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
        out.status.success()
            && token != first
            && s.emu
                .emu()
                .token_info(&token)
                .is_some_and(|i| i.kind == looker_emulator::TokenKind::ApiLogin { client_id: new_id.clone() })
    });
    let st = s.main_status();
    assert!(st["key_age_seconds"].as_u64().is_some_and(|a| a < 3600), "the new key is young: {st}");
    assert!(st["next_rotation_at"].as_str().is_some(), "{st}");
    assert_eq!(st["rotation_error"], serde_json::Value::Null, "{st}");
}

#[test]
fn a_fresh_key_is_not_rotated_and_status_says_when_it_will_be() {
    let s = Setup::new("file", "prod");
    s.set_rotate_after("30d");
    let _agent = s.env.start_agent(&[]);
    s.env.ctl_ok(&["token", "prod"], None);
    wait_for("the agent to learn the key's age", Duration::from_secs(20), || {
        s.main_status()["key_age_seconds"].as_u64().is_some()
    });
    let st = s.main_status();
    let next = st["next_rotation_at"].as_str().expect("a next rotation time").to_string();
    let next = humantime::parse_rfc3339(&next).unwrap();
    let in_days = next.duration_since(std::time::SystemTime::now()).unwrap().as_secs() / DAY.as_secs();
    assert_eq!(in_days, 29, "due 30 days after creation: {st}");
    assert_eq!(s.counters(), Api3Counters { created: 0, deleted: 0 });
    assert_eq!(s.client_id(), OLD_ID);
    let human = s.env.ctl_ok(&["status"], None);
    assert!(human.contains("rotate_after 30d: next rotation"), "{human}");
}

#[test]
fn a_refused_automatic_rotation_is_reported_and_not_retried_in_a_loop() {
    let s = Setup::new("file", "prod");
    s.age_key(40 * DAY);
    s.set_rotate_after("30d");
    s.emu.emu().fail_next_api3_create(looker_emulator::OneShotFault::Status(403));
    let _agent = s.env.start_agent(&[]);
    s.env.ctl_ok(&["token", "prod"], None);
    wait_for("the failure to show in status", Duration::from_secs(30), || {
        s.main_status()["rotation_error"].as_str().is_some()
    });
    let st = s.main_status();
    let e = st["rotation_error"].as_str().unwrap();
    assert!(e.contains("403") && e.contains("Nothing was changed"), "{st}");
    // The next attempt is a day away, whatever tokens are asked for meanwhile.
    let next = humantime::parse_rfc3339(st["next_rotation_at"].as_str().unwrap()).unwrap();
    assert!(
        next.duration_since(std::time::SystemTime::now()).unwrap() > DAY - Duration::from_secs(120),
        "{st}"
    );
    for _ in 0..5 {
        s.env.ctl_ok(&["revoke", "prod"], None);
        s.env.ctl_ok(&["token", "prod"], None);
    }
    assert_eq!(s.counters(), Api3Counters { created: 0, deleted: 0 }, "changed nothing at Looker");
    assert_eq!(s.client_id(), OLD_ID, "the config still names the old key");
    assert_eq!(s.keys(), vec![OLD_ID.to_string()]);
    let human = s.env.ctl_ok(&["status"], None);
    assert!(human.contains("the last rotation failed"), "{human}");
}

#[test]
fn rotate_after_is_checked_on_load() {
    let s = Setup::new("file", "prod");
    s.set_rotate_after("90");
    let out = s.env.ctl(&["credential", "list"], None);
    assert!(!out.status.success());
    assert!(err(&out).contains("at least a day"), "{}", err(&out));
}

#[test]
fn credential_add_writes_rotate_after() {
    let s = Setup::new("file", "prod");
    s.env.ctl_ok(
        &["credential", "add", "prod", "main", "--client-id", OLD_ID, "--rotate-after", "90d"],
        Some(OLD_SECRET),
    );
    assert!(s.config_text().contains("rotate_after = \"90d\""), "{}", s.config_text());
    let short = s.env.ctl(
        &["credential", "add", "prod", "main", "--client-id", OLD_ID, "--rotate-after", "90"],
        Some(OLD_SECRET),
    );
    assert!(!short.status.success());
    assert!(err(&short).contains("at least a day"), "{}", err(&short));
    assert!(s.config_text().contains("rotate_after = \"90d\""), "a refused edit changes nothing");
    let listed = s.env.ctl_ok(&["credential", "list", "prod"], None);
    let header = listed.lines().next().unwrap_or_default();
    assert!(header.contains("ROTATE AFTER"), "{listed}");
    let row = listed.lines().find(|l| l.contains(OLD_ID)).unwrap_or_else(|| panic!("{listed}"));
    assert!(row.trim_end().ends_with("90d"), "{listed}");
    let json: serde_json::Value =
        serde_json::from_str(&s.env.ctl_ok(&["credential", "list", "prod", "--json"], None)).unwrap();
    assert_eq!(json[0]["rotate_after_seconds"], 90 * 86_400, "{json}");
    let with_source = s.env.ctl(
        &[
            "credential",
            "add",
            "prod",
            "x",
            "--client-id",
            "y",
            "--rotate-after",
            "90d",
            "--source",
            "--",
            "true",
        ],
        None,
    );
    assert_eq!(with_source.status.code(), Some(2), "{}", err(&with_source));
}

#[test]
fn an_automatic_rotation_waits_for_a_manual_one_of_the_same_key() {
    use std::os::unix::fs::DirBuilderExt;
    let s = Setup::new("file", "prod");
    s.age_key(40 * DAY);
    s.set_rotate_after("30d");
    // A `lookerctl credential rotate` at work holds the key's rotation lock; the test
    // takes that same lock, as that run does.
    let dir = s.env.dir.path().join("state/looker-agent/rotations/prod");
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).unwrap();
    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("main.lock"))
        .unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let agent = s.env.start_agent(&[]);
    s.env.ctl_ok(&["token", "prod"], None);
    wait_for("the agent to put its rotation off", Duration::from_secs(30), || {
        agent.log_text().contains("another rotation of this key is running")
    });
    let st = s.main_status();
    assert_eq!(st["rotation_error"], serde_json::Value::Null, "a running rotation is no failure: {st}");
    assert_eq!(s.counters(), Api3Counters { created: 0, deleted: 0 });
    // That run ends (here without rotating): the agent's own rotation follows soon, not
    // after a failure's hour.
    drop(held);
    wait_for("the agent to rotate the key", Duration::from_secs(60), || s.client_id() != OLD_ID);
    wait_for("the old key to be deleted", Duration::from_secs(30), || s.counters().deleted == 1);
    assert_eq!(s.counters(), Api3Counters { created: 1, deleted: 1 });
    assert_eq!(s.keys(), vec![s.client_id()], "exactly the config's key is left at Looker");
}

#[test]
fn a_rotation_decided_on_a_key_the_config_no_longer_names_changes_nothing() {
    // The agent decides from what it saw before it takes the lock; another run may have
    // rotated the key in between. Under the lock, the config's key is checked again.
    let s = Setup::new("file", "prod");
    let cfg = looker_agent::config::Config::load(&s.env.config).unwrap();
    let api = looker_agent::looker::client::LookerClient::new(&cfg.profiles["prod"]).unwrap();
    let store: std::sync::Arc<dyn SecretStore> = std::sync::Arc::new(FileStore::new(s.data_dir()));
    let state_dir = s.env.dir.path().join("state/looker-agent");
    let rotator = looker_agent::rotation::Rotator {
        config_path: &s.env.config,
        state_dir: &state_dir,
        store: &store,
        api: &api,
    };
    let e =
        s.emu.rt.block_on(rotator.rotate_key("prod", Some("main"), Some("a-key-rotated-away"))).unwrap_err();
    assert!(matches!(e, looker_agent::rotation::RotateError::Superseded { .. }), "{e}");
    assert!(e.to_string().contains(OLD_ID) && e.to_string().contains("nothing was changed"), "{e}");
    assert_eq!(s.counters(), Api3Counters { created: 0, deleted: 0 });
    assert_eq!(s.client_id(), OLD_ID);
    // The key it names is rotated as ever.
    let done = s.emu.rt.block_on(rotator.rotate_key("prod", Some("main"), Some(OLD_ID))).unwrap();
    assert_eq!(done.old_client_id, OLD_ID);
    s.assert_rotated();
}
