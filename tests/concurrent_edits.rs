//! Issue 11, points 1-3 and the disk-full message of 13: config edits by many
//! `lookerctl` processes at once lose nothing, a failed `credential add` leaves the
//! working credential working, and the secret store holds exactly the items the
//! config names. Real binaries, the real file store and the real gnome-keyring
//! (`scripts/test.sh` provides it; LOOKER_AGENT_SKIP_SECRET_SERVICE=1 skips those).

mod common;

use common::*;
use looker_agent::config::Config;
use looker_agent::store::file::FileStore;
use looker_agent::store::secret_service::SecretServiceStore;
use looker_agent::store::{SecretKey, SecretStore, StoreError};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// Starts every command at once (each fed its stdin), then collects every output.
fn run_at_once(env: &TestEnv, cmds: &[(Vec<String>, String)]) -> Vec<Output> {
    let children: Vec<_> = cmds
        .iter()
        .map(|(args, stdin)| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut cmd = env.ctl_command(&args, &[], None);
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
            let mut child = cmd.spawn().unwrap();
            child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
            child
        })
        .collect();
    children.into_iter().map(|c| c.wait_with_output().unwrap()).collect()
}

fn file_store(env: &TestEnv) -> FileStore {
    FileStore::new(env.dir.path().join("data/looker-agent"))
}

/// The file store's secret files of a profile: (credential, client_id file name).
fn files_of(env: &TestEnv, profile: &str) -> Vec<(String, String)> {
    let pdir = env.dir.path().join("data/looker-agent/secrets").join(profile);
    let mut out = Vec::new();
    for cred in std::fs::read_dir(&pdir).into_iter().flatten() {
        let cred = cred.unwrap();
        let name = cred.file_name().to_string_lossy().into_owned();
        let Some(cname) = name.strip_suffix(".d") else {
            out.push((name, "(0.1 layout file)".into()));
            continue;
        };
        for f in std::fs::read_dir(cred.path()).unwrap() {
            out.push((cname.to_string(), f.unwrap().file_name().to_string_lossy().into_owned()));
        }
    }
    out.sort();
    out
}

/// `secret-tool search --all application looker-agent profile P`: how many items.
fn keyring_items(profile: &str) -> usize {
    let out = Command::new("secret-tool")
        .args(["search", "--all", "application", "looker-agent", "profile", profile])
        .output()
        .expect("secret-tool is installed by scripts/test.sh");
    text(&out.stdout).lines().filter(|l| l.starts_with("[/")).count()
}

/// The keyring store, or `None` when the Secret Service tests are skipped.
fn keyring() -> Option<SecretServiceStore> {
    if !require_secret_service() {
        return None;
    }
    assert!(
        std::env::var("LOOKER_AGENT_TEST_KEYRING").is_ok_and(|v| v == "1"),
        "refusing to write test items into the keyring of your own session: run with scripts/test.sh"
    );
    Some(block_on(SecretServiceStore::connect()).unwrap())
}

/// Which store a test runs against: its `--secret-store` name, how to open it
/// in-process for the environment, and how many items it holds for a profile.
struct Backend {
    name: &'static str,
    open: fn(&TestEnv) -> Box<dyn SecretStore>,
    items: fn(&TestEnv, &str) -> usize,
}

const FILE: Backend = Backend {
    name: "file",
    open: |env| Box::new(file_store(env)),
    items: |env, profile| files_of(env, profile).len(),
};

/// The keyring backend, or `None` when the Secret Service tests are skipped.
fn keyring_backend() -> Option<Backend> {
    keyring()?;
    Some(Backend {
        name: "secret-service",
        open: |_| Box::new(keyring().unwrap()),
        items: |_, profile| keyring_items(profile),
    })
}

/// Runs store calls on one runtime for the whole binary: a Secret Service
/// connection lives on the runtime that opened it.
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    })
    .block_on(f)
}

/// Twenty `credential add` of different names at once: every one succeeds, is in the
/// config, and the store holds exactly the config's items, each with its own secret.
fn twenty_concurrent_adds(b: &Backend) {
    let env = TestEnv::new(b.name);
    let profile = unique("c");
    env.ctl_ok(&["profile", "add", &profile, "--base-url", "https://looker.example.com"], None);
    let cmds: Vec<_> = (0..20)
        .map(|i| {
            let args = ["credential", "add", &profile, &format!("c{i}"), "--client-id", &format!("id{i}")];
            (args.map(String::from).to_vec(), format!("secret-{i}"))
        })
        .collect();
    let outs = run_at_once(&env, &cmds);

    let cfg = Config::load(&env.config).unwrap();
    let creds = &cfg.profiles[&profile].credentials;
    for (i, out) in outs.iter().enumerate() {
        assert!(out.status.success(), "add c{i} failed: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("stored"), "{}", text(&out.stdout));
        let c = creds.iter().find(|c| c.name == format!("c{i}"));
        assert_eq!(c.map(|c| c.client_id.clone()), Some(format!("id{i}")), "c{i} said stored");
    }
    assert_eq!(creds.len(), 20);
    let store = (b.open)(&env);
    for c in creds {
        let key = SecretKey::new(profile.as_str(), c.name.as_str());
        let got = block_on(store.get(&key, &c.client_id)).unwrap();
        assert_eq!(got.expose(), format!("secret-{}", &c.name[1..]));
    }
    assert_eq!((b.items)(&env, &profile), 20, "one item per credential of the config, no more");
    env.ctl_ok(&["profile", "remove", &profile], None);
    assert_eq!((b.items)(&env, &profile), 0);
}

#[test]
fn twenty_concurrent_credential_adds_all_land_in_the_file_store() {
    twenty_concurrent_adds(&FILE);
}

#[test]
fn twenty_concurrent_credential_adds_all_land_in_the_keyring() {
    let Some(b) = keyring_backend() else { return };
    twenty_concurrent_adds(&b);
}

#[test]
fn ten_concurrent_imports_all_land() {
    let env = TestEnv::new("file");
    let cmds: Vec<_> = (0..10)
        .map(|i| {
            let ini = env.dir.path().join(format!("looker{i}.ini"));
            std::fs::write(
                &ini,
                format!(
                    "[Looker]\nbase_url=https://l{i}.example.com\nclient_id=imp{i}\nclient_secret=isecret-{i}\n"
                ),
            )
            .unwrap();
            let args = ["import", &ini.display().to_string(), "--profile", &format!("p{i}")];
            (args.map(String::from).to_vec(), String::new())
        })
        .collect();
    let outs = run_at_once(&env, &cmds);
    for (i, out) in outs.iter().enumerate() {
        assert!(out.status.success(), "import {i} failed: {}", text(&out.stderr));
    }
    let cfg = Config::load(&env.config).unwrap();
    assert_eq!(cfg.profiles.len(), 10, "{:?}", cfg.profiles.keys().collect::<Vec<_>>());
    let store = file_store(&env);
    for i in 0..10 {
        let p = &cfg.profiles[&format!("p{i}")];
        assert_eq!(p.base_url, format!("https://l{i}.example.com"));
        assert_eq!(p.credentials[0].client_id, format!("imp{i}"));
        let key = SecretKey::new(format!("p{i}"), "default");
        assert_eq!(block_on(store.get(&key, &format!("imp{i}"))).unwrap().expose(), format!("isecret-{i}"));
        assert_eq!(files_of(&env, &format!("p{i}")), [("default".to_string(), format!("imp{i}.json"))]);
    }
}

/// Five `credential add` of one credential with five client_ids at once: each
/// succeeds in turn; one item is left, for the client_id the config names.
fn five_adds_of_one_credential(b: &Backend) {
    let env = TestEnv::new(b.name);
    let profile = unique("five");
    env.ctl_ok(&["profile", "add", &profile, "--base-url", "https://looker.example.com"], None);
    let cmds: Vec<_> = (0..5)
        .map(|i| {
            let args = ["credential", "add", &profile, "same", "--client-id", &format!("id{i}")];
            (args.map(String::from).to_vec(), format!("secret-id{i}"))
        })
        .collect();
    let outs = run_at_once(&env, &cmds);
    for (i, out) in outs.iter().enumerate() {
        assert!(out.status.success(), "add {i} failed: {}", text(&out.stderr));
    }
    let cfg = Config::load(&env.config).unwrap();
    let creds = &cfg.profiles[&profile].credentials;
    assert_eq!(creds.len(), 1);
    let id = creds[0].client_id.clone();
    assert_eq!((b.items)(&env, &profile), 1, "exactly one item for the credential");
    let key = SecretKey::new(profile.as_str(), "same");
    assert_eq!(block_on((b.open)(&env).get(&key, &id)).unwrap().expose(), format!("secret-{id}"));
    env.ctl_ok(&["profile", "remove", &profile], None);
    assert_eq!((b.items)(&env, &profile), 0);
}

#[test]
fn five_concurrent_adds_of_one_credential_leave_one_item_in_the_keyring() {
    let Some(b) = keyring_backend() else { return };
    five_adds_of_one_credential(&b);
}

#[test]
fn five_concurrent_adds_of_one_credential_leave_one_file() {
    five_adds_of_one_credential(&FILE);
}

/// A tmpfs mounted on a temporary folder, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (with the reason printed) when this process may not mount.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                eprintln!("skipped: cannot mount a tmpfs (needs root): {}", text(&o.stderr).trim());
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes zeros until the file system says it is full.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.path().join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        assert_eq!(f.write(b"x").map_err(|e| e.raw_os_error()), Err(Some(28)), "the tmpfs is not full");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// With the config's file system full, `credential add` of an existing credential
/// with a new client_id fails, says so once with what to do, and changes nothing:
/// the old credential still logs in, and no secret of the new client_id is left.
fn a_failed_add_keeps_the_old_credential(b: &Backend) {
    let Some(fs) = Tmpfs::mount("256k") else { return };
    let emu = BgEmulator::start(HOUR, &[("idA", "secret-A"), ("idB", "secret-B")]);
    let mut env = TestEnv::new(b.name);
    let config = fs.path().join("config.toml");
    env.vars.insert("LOOKER_AGENT_CONFIG".into(), config.display().to_string());
    env.config = config.clone();
    let profile = unique("full");
    env.add_profile(&profile, &emu.url(), &[("a", "idA", "secret-A")]);
    let before = std::fs::read_to_string(&config).unwrap();
    fs.fill();

    let out = env.ctl(&["credential", "add", &profile, "a", "--client-id", "idB"], Some("secret-B"));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches(&fs.path().display().to_string()).count(), 1, "the path, once: {err}");
    assert!(err.contains("no space left") && err.contains("free some space"), "{err}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before, "the config is unchanged");

    let store = (b.open)(&env);
    let key = SecretKey::new(profile.as_str(), "a");
    assert_eq!(block_on(store.get(&key, "idA")).unwrap().expose(), "secret-A");
    let orphan = block_on(store.get(&key, "idB"));
    assert!(matches!(orphan, Err(StoreError::NotFound { .. })), "the new secret was left behind");
    assert_eq!((b.items)(&env, &profile), 1, "no orphan item");

    // And it still logs in.
    let agent = env.start_agent(&[]);
    let out = env.ctl(&["token", &profile], None);
    assert!(out.status.success(), "{}\n{}", text(&out.stderr), agent.log_text());
    assert!(emu.emu().is_live(text(&out.stdout).trim()), "the old credential no longer logs in");
    block_on(store.delete(&key)).unwrap();
}

#[test]
fn a_failed_add_on_a_full_disk_keeps_the_old_credential_in_the_file_store() {
    a_failed_add_keeps_the_old_credential(&FILE);
}

#[test]
fn a_failed_add_on_a_full_disk_keeps_the_old_credential_in_the_keyring() {
    let Some(b) = keyring_backend() else { return };
    a_failed_add_keeps_the_old_credential(&b);
}

#[test]
fn a_full_file_store_fails_the_add_with_the_config_unchanged() {
    let Some(fs) = Tmpfs::mount("256k") else { return };
    let mut env = TestEnv::new("file");
    env.vars.insert("XDG_DATA_HOME".into(), fs.path().display().to_string());
    env.ctl_ok(&["profile", "add", "prod", "--base-url", "https://looker.example.com"], None);
    env.ctl_ok(&["credential", "add", "prod", "a", "--client-id", "idA"], Some("secret-A"));
    let before = std::fs::read_to_string(&env.config).unwrap();
    fs.fill();

    let out = env.ctl(&["credential", "add", "prod", "a", "--client-id", "idB"], Some("secret-B"));
    let err = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert_eq!(err.matches(&fs.path().display().to_string()).count(), 1, "the path, once: {err}");
    assert!(err.contains("no space left") && err.contains("free some space"), "{err}");
    assert!(!err.contains("secret-B"), "{err}");
    assert_eq!(std::fs::read_to_string(&env.config).unwrap(), before, "the config is unchanged");
    let store = FileStore::new(fs.path().join("looker-agent"));
    let key = SecretKey::new("prod", "a");
    assert_eq!(block_on(store.get(&key, "idA")).unwrap().expose(), "secret-A");
    assert!(matches!(block_on(store.get(&key, "idB")), Err(StoreError::NotFound { .. })));
}
