//! The 0600-file secret store, on a real file system in a temporary folder.

use looker_agent::secret::Secret;
use looker_agent::store::file::FileStore;
use looker_agent::store::{JournalEntry, SecretKey, SecretStore, StoreError};
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

const SECRET: &str = "s3cr3t-Value-that-must-not-leak";

fn store() -> (tempfile::TempDir, FileStore) {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::new(tmp.path().join("data/looker-agent"));
    (tmp, store)
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn assert_no_leak(e: &StoreError) {
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(SECRET), "secret leaked into {shown}");
}

#[tokio::test]
async fn round_trip_replace_and_delete() {
    let (_tmp, s) = store();
    let k = SecretKey::new("prod", "reporting");
    assert!(matches!(s.get(&k, "client-1").await, Err(StoreError::NotFound { .. })));
    assert!(!s.delete(&k).await.unwrap());

    s.set(&k, "client-1", &Secret::new(SECRET)).await.unwrap();
    assert_eq!(s.get(&k, "client-1").await.unwrap().expose(), SECRET);
    s.set(&k, "client-1", &Secret::new("again")).await.unwrap();
    assert_eq!(s.get(&k, "client-1").await.unwrap().expose(), "again");
    // Another client_id is another secret, until the old one is cleaned up.
    s.set(&k, "client-2", &Secret::new("second")).await.unwrap();
    assert_eq!(s.get(&k, "client-2").await.unwrap().expose(), "second");
    assert_eq!(s.get(&k, "client-1").await.unwrap().expose(), "again");
    assert!(matches!(s.get(&k, "client-3").await, Err(StoreError::NotFound { .. })));
    assert_eq!(s.delete_other_client_ids(&k, "client-2").await.unwrap(), 1);
    assert!(matches!(s.get(&k, "client-1").await, Err(StoreError::NotFound { .. })));
    assert_eq!(s.get(&k, "client-2").await.unwrap().expose(), "second");
    assert!(!s.delete_client_id(&k, "client-1").await.unwrap());

    let other = SecretKey::new("prod", "admin");
    assert!(matches!(s.get(&other, "client-2").await, Err(StoreError::NotFound { .. })));

    s.set(&k, "client-3", &Secret::new("third")).await.unwrap();
    assert!(s.delete(&k).await.unwrap());
    assert!(!s.delete(&k).await.unwrap());
    assert!(!s.dir().join("secrets/prod").exists());
    let e = s.get(&k, "client-3").await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("lookerctl credential add prod reporting"), "{e}");
    assert!(s.describe().starts_with("file ("), "{}", s.describe());
}

#[tokio::test]
async fn files_are_0600_in_0700_folders_with_the_client_id_alongside() {
    let (_tmp, s) = store();
    let k = SecretKey::new("prod", "reporting");
    s.set(&k, "the-client-id", &Secret::new(SECRET)).await.unwrap();

    let file = s.path_of(&k, "the-client-id").unwrap();
    assert_eq!(file, s.dir().join("secrets/prod/reporting.d/the-client-id.json"));
    assert_eq!(mode(&file), 0o600);
    for d in [
        s.dir().to_path_buf(),
        s.dir().join("secrets"),
        s.dir().join("secrets/prod"),
        s.dir().join("secrets/prod/reporting.d"),
    ] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
    let json: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    assert_eq!(json["client_id"], "the-client-id");
    assert_eq!(json["client_secret"], SECRET);
}

#[tokio::test]
async fn a_loose_existing_folder_is_tightened_on_write() {
    let (_tmp, s) = store();
    fs::create_dir_all(s.dir()).unwrap();
    fs::set_permissions(s.dir(), fs::Permissions::from_mode(0o755)).unwrap();
    s.set(&SecretKey::new("p", "c"), "id", &Secret::new(SECRET)).await.unwrap();
    assert_eq!(mode(s.dir()), 0o700);
}

#[tokio::test]
async fn a_file_readable_by_others_is_refused_with_the_fix() {
    let (_tmp, s) = store();
    let k = SecretKey::new("prod", "reporting");
    s.set(&k, "id", &Secret::new(SECRET)).await.unwrap();
    let file = s.path_of(&k, "id").unwrap();
    for loose in [0o644, 0o640, 0o604, 0o660] {
        fs::set_permissions(&file, fs::Permissions::from_mode(loose)).unwrap();
        let e = s.get(&k, "id").await.unwrap_err();
        assert!(matches!(e, StoreError::Insecure { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains(&format!("chmod 600 {}", file.display())), "{msg}");
        assert!(msg.contains(&format!("{loose:04o}")), "{msg}");
        assert_no_leak(&e);
    }
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(s.get(&k, "id").await.unwrap().expose(), SECRET);
    // 0400 is stricter than needed, not looser: fine.
    fs::set_permissions(&file, fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(s.get(&k, "id").await.unwrap().expose(), SECRET);
}

#[tokio::test]
async fn a_symlink_is_refused_even_to_a_0600_file() {
    let (tmp, s) = store();
    let k = SecretKey::new("prod", "reporting");
    s.set(&k, "id", &Secret::new("placeholder")).await.unwrap();
    let file = s.path_of(&k, "id").unwrap();

    let elsewhere = tmp.path().join("elsewhere.json");
    fs::write(&elsewhere, format!(r#"{{"client_id":"x","client_secret":"{SECRET}"}}"#)).unwrap();
    fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_file(&file).unwrap();
    symlink(&elsewhere, &file).unwrap();

    let e = s.get(&k, "id").await.unwrap_err();
    assert!(matches!(e, StoreError::Insecure { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("symbolic link"), "{msg}");
    assert!(msg.contains(&format!("rm {}", file.display())), "{msg}");
    assert!(msg.contains("lookerctl credential add prod reporting"), "{msg}");
    assert_no_leak(&e);

    // Writing replaces the link itself and never writes through it.
    s.set(&k, "id", &Secret::new("new")).await.unwrap();
    assert!(fs::symlink_metadata(&file).unwrap().file_type().is_file());
    assert!(fs::read_to_string(&elsewhere).unwrap().contains(SECRET));
    assert_eq!(s.get(&k, "id").await.unwrap().expose(), "new");
}

#[tokio::test]
async fn a_file_of_another_user_is_refused() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("skipped: needs root to give a file away");
        return;
    }
    let (_tmp, s) = store();
    let k = SecretKey::new("prod", "reporting");
    s.set(&k, "id", &Secret::new(SECRET)).await.unwrap();
    let file = s.path_of(&k, "id").unwrap();
    std::os::unix::fs::chown(&file, Some(54321), None).unwrap();
    let e = s.get(&k, "id").await.unwrap_err();
    assert!(matches!(e, StoreError::Insecure { .. }), "{e}");
    assert!(e.to_string().contains("owned by uid 54321"), "{e}");
    assert_no_leak(&e);
}

#[tokio::test]
async fn a_folder_others_can_write_is_refused() {
    let (_tmp, s) = store();
    let k = SecretKey::new("prod", "reporting");
    s.set(&k, "id", &Secret::new(SECRET)).await.unwrap();
    let pdir = s.dir().join("secrets/prod");
    fs::set_permissions(&pdir, fs::Permissions::from_mode(0o777)).unwrap();
    let e = s.get(&k, "id").await.unwrap_err();
    assert!(matches!(e, StoreError::Insecure { .. }), "{e}");
    assert!(e.to_string().contains(&format!("chmod 700 {}", pdir.display())), "{e}");
}

#[tokio::test]
async fn replacing_is_atomic_and_leaves_no_temporary_files() {
    let (_tmp, s) = store();
    let s = Arc::new(s);
    let k = SecretKey::new("prod", "reporting");
    s.set(&k, "id", &Secret::new("v0")).await.unwrap();

    // Readers racing with writers always see a whole old or new value.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (s, k) = (s.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            s.set(&k, "id", &Secret::new(format!("v{i}"))).await.unwrap();
            let got = s.get(&k, "id").await.unwrap();
            assert!(got.expose().starts_with('v') && got.expose()[1..].parse::<u32>().is_ok(), "{got:?}");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    let names = |d: &str| -> Vec<String> {
        fs::read_dir(s.dir().join(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(names("secrets/prod"), ["reporting.d"]);
    assert_eq!(names("secrets/prod/reporting.d"), ["id.json"]);
}

#[tokio::test]
async fn names_cannot_escape_the_store() {
    let (tmp, s) = store();
    for (p, c) in
        [("..", "x"), ("../../evil", "x"), ("p", "../../../evil"), ("p", "a/b"), ("", "c"), (".p", "c")]
    {
        let k = SecretKey::new(p, c);
        assert!(s.set(&k, "id", &Secret::new(SECRET)).await.is_err(), "{p:?}/{c:?}");
        assert!(s.get(&k, "id").await.is_err());
        assert!(s.delete(&k).await.is_err());
    }
    assert!(!tmp.path().join("evil").exists() && !tmp.path().join("data/evil").exists());
}

#[tokio::test]
async fn names_are_capped_at_64_bytes_as_in_the_config() {
    // The store once took names of up to 128 bytes that no config could hold.
    let (tmp, s) = store();
    let longest = "p".repeat(64);
    let k = SecretKey::new(&longest, "c");
    s.set(&k, "id", &Secret::new(SECRET)).await.unwrap();
    assert_eq!(s.get(&k, "id").await.unwrap().expose(), SECRET);
    for (p, c) in [("p".repeat(65), "c".to_string()), ("p".into(), "c".repeat(65))] {
        let k = SecretKey::new(&p, &c);
        let e = s.set(&k, "id", &Secret::new(SECRET)).await.unwrap_err();
        assert!(e.to_string().contains("at most 64"), "{e}");
        assert!(s.path_of(&k, "id").is_err());
    }
    assert!(!tmp.path().join("data/looker-agent/secrets").join("p".repeat(65)).exists());
}

#[tokio::test]
async fn a_corrupt_file_is_reported_without_its_content() {
    let (_tmp, s) = store();
    let k = SecretKey::new("prod", "reporting");
    s.set(&k, "id", &Secret::new("x")).await.unwrap();
    let file = s.path_of(&k, "id").unwrap();
    fs::write(&file, format!(r#"{{"client_id":"id","client_secret":{SECRET}}}"#)).unwrap();
    let e = s.get(&k, "id").await.unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
    assert_no_leak(&e);

    fs::write(&file, r#"{"client_id":"id","client_secret":""}"#).unwrap();
    assert!(matches!(s.get(&k, "id").await, Err(StoreError::Corrupt { .. })));
}

#[tokio::test]
async fn deleting_the_last_secret_of_a_profile_removes_its_folder() {
    let (_tmp, s) = store();
    let (a, b) = (SecretKey::new("prod", "a"), SecretKey::new("prod", "b"));
    s.set(&a, "id", &Secret::new("1")).await.unwrap();
    s.set(&b, "id", &Secret::new("2")).await.unwrap();
    assert!(s.delete(&a).await.unwrap());
    assert!(s.dir().join("secrets/prod").is_dir());
    assert_eq!(s.get(&b, "id").await.unwrap().expose(), "2");
    assert!(s.delete(&b).await.unwrap());
    assert!(!s.dir().join("secrets/prod").exists());
}

/// A secret file as version 0.1 wrote it: one per credential set, `<credential>.json`.
fn write_legacy(s: &FileStore, key: &SecretKey, client_id: &str, secret: &str) -> std::path::PathBuf {
    let path = s.legacy_path_of(key).unwrap();
    assert_eq!(path, s.dir().join(format!("secrets/{}/{}.json", key.profile, key.credential)));
    for d in [s.dir().to_path_buf(), s.dir().join("secrets"), path.parent().unwrap().to_path_buf()] {
        fs::create_dir_all(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
    }
    fs::write(&path, format!(r#"{{"client_id":"{client_id}","client_secret":"{secret}"}}"#)).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[tokio::test]
async fn secrets_of_version_0_1_are_read_for_their_client_id_and_migrated() {
    let (_tmp, s) = store();
    let k = SecretKey::new("prod", "reporting");
    let legacy = write_legacy(&s, &k, "old-id", SECRET);
    assert_eq!(s.get(&k, "old-id").await.unwrap().expose(), SECRET);
    assert!(matches!(s.get(&k, "new-id").await, Err(StoreError::NotFound { .. })));

    // A new client_id sits next to it until the config names it; then the old goes.
    s.set(&k, "new-id", &Secret::new("new")).await.unwrap();
    assert!(legacy.exists());
    assert_eq!(s.get(&k, "old-id").await.unwrap().expose(), SECRET);
    assert_eq!(s.delete_other_client_ids(&k, "new-id").await.unwrap(), 1);
    assert!(!legacy.exists());
    assert_eq!(s.get(&k, "new-id").await.unwrap().expose(), "new");

    // Storing the same client_id replaces the old file.
    let legacy = write_legacy(&s, &k, "new-id", "older");
    s.set(&k, "new-id", &Secret::new("newest")).await.unwrap();
    assert!(!legacy.exists());
    assert_eq!(s.get(&k, "new-id").await.unwrap().expose(), "newest");

    // Rolling back a new client_id leaves the old file alone; deleting the credential
    // removes it, even when it cannot be read.
    let legacy = write_legacy(&s, &k, "old-id", SECRET);
    assert!(s.delete_client_id(&k, "new-id").await.unwrap());
    assert_eq!(s.get(&k, "old-id").await.unwrap().expose(), SECRET);
    fs::write(&legacy, "not json").unwrap();
    assert!(s.delete(&k).await.unwrap());
    assert!(!legacy.exists() && !s.dir().join("secrets/prod").exists());
}

const TOKEN: &str = "tok-Value-that-must-not-leak";

fn entry(id: &str, profile: &str, token: &str) -> JournalEntry {
    JournalEntry {
        id: id.into(),
        profile: profile.into(),
        credential: "reporting".into(),
        base_url: "https://example.looker.com".into(),
        token: Secret::new(token),
        expires_at_unix: 1_900_000_000,
        owner: None,
    }
}

fn ids(entries: &[JournalEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.id.as_str()).collect()
}

#[tokio::test]
async fn journal_round_trip_and_unknown_ids() {
    let (_tmp, s) = store();
    assert!(s.journal_list().await.unwrap().is_empty());
    assert!(!s.dir().exists(), "listing must not create the store");
    s.journal_remove("never-added").await.unwrap();

    s.journal_add(&entry("b-2", "prod", "second")).await.unwrap();
    s.journal_add(&entry("a_1", "prod", TOKEN)).await.unwrap();
    let listed = s.journal_list().await.unwrap();
    assert_eq!(ids(&listed), ["a_1", "b-2"]);
    let a = &listed[0];
    assert_eq!((a.profile.as_str(), a.credential.as_str()), ("prod", "reporting"));
    assert_eq!(a.base_url, "https://example.looker.com");
    assert_eq!(a.token.expose(), TOKEN);
    assert_eq!(a.expires_at_unix, 1_900_000_000);
    assert!(!format!("{listed:?}").contains(TOKEN), "Debug leaked the token");

    // Adding an id again replaces the entry.
    s.journal_add(&entry("a_1", "prod", "replaced")).await.unwrap();
    let listed = s.journal_list().await.unwrap();
    assert_eq!(ids(&listed), ["a_1", "b-2"]);
    assert_eq!(listed[0].token.expose(), "replaced");

    s.journal_remove("a_1").await.unwrap();
    s.journal_remove("a_1").await.unwrap();
    assert_eq!(ids(&s.journal_list().await.unwrap()), ["b-2"]);
    s.journal_remove("b-2").await.unwrap();
    assert!(s.journal_list().await.unwrap().is_empty());
}

#[tokio::test]
async fn journal_entries_survive_a_new_store() {
    let (_tmp, s) = store();
    s.journal_add(&entry("crash-1", "prod", TOKEN)).await.unwrap();
    let reopened = FileStore::new(s.dir().to_path_buf());
    let listed = reopened.journal_list().await.unwrap();
    assert_eq!(ids(&listed), ["crash-1"]);
    assert_eq!(listed[0].token.expose(), TOKEN);
    reopened.journal_remove("crash-1").await.unwrap();
    assert!(s.journal_list().await.unwrap().is_empty());
}

#[tokio::test]
async fn journal_files_are_0600_in_a_0700_folder() {
    let (_tmp, s) = store();
    s.journal_add(&entry("j1", "prod", TOKEN)).await.unwrap();
    let file = s.journal_path_of("j1").unwrap();
    assert_eq!(file, s.dir().join("journal/j1.json"));
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&s.dir().join("journal")), 0o700);
    assert_eq!(mode(s.dir()), 0o700);
    let json: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    assert_eq!(json["token"], TOKEN);
    assert_eq!(json["profile"], "prod");
    assert_eq!(json["expires_at_unix"], 1_900_000_000);
    let names: Vec<String> = fs::read_dir(s.dir().join("journal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["j1.json"], "no temporary file is left behind");

    // A loose journal folder is tightened on the next write.
    fs::set_permissions(s.dir().join("journal"), fs::Permissions::from_mode(0o755)).unwrap();
    s.journal_add(&entry("j2", "prod", TOKEN)).await.unwrap();
    assert_eq!(mode(&s.dir().join("journal")), 0o700);
}

#[tokio::test]
async fn journal_list_skips_corrupt_and_insecure_entries() {
    let (tmp, s) = store();
    s.journal_add(&entry("good", "prod", TOKEN)).await.unwrap();
    for id in ["corrupt", "empty-token", "loose", "link", "huge"] {
        s.journal_add(&entry(id, "prod", TOKEN)).await.unwrap();
    }
    let path = |id: &str| s.journal_path_of(id).unwrap();
    fs::write(path("corrupt"), format!(r#"{{"profile":"prod","token":{TOKEN}"#)).unwrap();
    fs::write(
        path("empty-token"),
        r#"{"profile":"p","credential":"c","base_url":"u","token":"","expires_at_unix":1}"#,
    )
    .unwrap();
    fs::write(path("huge"), vec![b' '; 100 * 1024]).unwrap();
    fs::set_permissions(path("loose"), fs::Permissions::from_mode(0o644)).unwrap();
    let elsewhere = tmp.path().join("elsewhere.json");
    fs::copy(path("link"), &elsewhere).unwrap();
    fs::remove_file(path("link")).unwrap();
    symlink(&elsewhere, path("link")).unwrap();
    // Files that are not entries are ignored, temporary ones silently.
    fs::write(s.dir().join("journal/notes.txt"), "hello").unwrap();
    fs::write(s.dir().join("journal/.tmp-abc"), "partial").unwrap();

    let listed = s.journal_list().await.unwrap();
    assert_eq!(ids(&listed), ["good"]);
    assert_eq!(listed[0].token.expose(), TOKEN);

    // Nothing was deleted: a person may want to look at them.
    assert!(path("corrupt").exists() && path("loose").exists());
    fs::set_permissions(path("loose"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(ids(&s.journal_list().await.unwrap()), ["good", "loose"]);
}

#[tokio::test]
async fn a_journal_folder_others_can_write_is_refused() {
    let (_tmp, s) = store();
    s.journal_add(&entry("j1", "prod", TOKEN)).await.unwrap();
    let jdir = s.dir().join("journal");
    fs::set_permissions(&jdir, fs::Permissions::from_mode(0o777)).unwrap();
    let e = s.journal_list().await.unwrap_err();
    assert!(matches!(e, StoreError::Insecure { .. }), "{e}");
    assert!(e.to_string().contains(&format!("chmod 700 {}", jdir.display())), "{e}");
    fs::set_permissions(&jdir, fs::Permissions::from_mode(0o700)).unwrap();
}

#[tokio::test]
async fn journal_ids_cannot_escape_the_folder() {
    let (tmp, s) = store();
    let long = "x".repeat(65);
    for id in ["", "..", "../evil", "../../evil", "a/b", "a.b", ".hidden", "é", long.as_str()] {
        let e = s.journal_add(&entry(id, "prod", TOKEN)).await.unwrap_err();
        assert!(!format!("{e} {e:?}").contains(TOKEN), "{e}");
        assert!(s.journal_remove(id).await.is_err(), "{id:?}");
    }
    assert!(!tmp.path().join("evil").exists() && !tmp.path().join("data/evil").exists());
    assert!(!s.dir().join("evil.json").exists());
    assert!(s.journal_list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_complete_entry_under_its_temporary_name_is_listed_and_removed() {
    let (_tmp, s) = store();
    s.journal_add(&entry("crashed", "prod", TOKEN)).await.unwrap();
    let jdir = s.dir().join("journal");
    // Cut off between the write and the rename, by this version and by older ones
    // (`.tmp-` and a random suffix).
    fs::rename(jdir.join("crashed.json"), jdir.join(".tmp-crashed")).unwrap();
    s.journal_add(&entry("old", "prod", "older-version")).await.unwrap();
    fs::rename(jdir.join("old.json"), jdir.join(".tmp-Ab3xYz")).unwrap();
    let listed = s.journal_list().await.unwrap();
    assert_eq!(ids(&listed), ["Ab3xYz", "crashed"]);
    assert_eq!(listed[1].token.expose(), TOKEN);
    for id in ["Ab3xYz", "crashed"] {
        s.journal_remove(id).await.unwrap();
    }
    assert!(s.journal_list().await.unwrap().is_empty());
    assert_eq!(fs::read_dir(&jdir).unwrap().count(), 0);
}

#[tokio::test]
async fn owner_locks_tell_running_agents_from_dead_ones() {
    let (_tmp, s) = store();
    let other = FileStore::new(s.dir().to_path_buf());
    let lock = s.journal_lock("agentA1").await.unwrap();
    assert_eq!(lock.owner(), "agentA1");
    let lock_file = s.dir().join("owners/agentA1.lock");
    assert_eq!(mode(&lock_file), 0o600);
    assert_eq!(mode(&s.dir().join("owners")), 0o700);
    // Seen alive by any store on the same folder (another agent), and a sweep keeps it.
    assert!(other.journal_owner_alive("agentA1").await.unwrap());
    other.journal_sweep_owners().await.unwrap();
    assert!(lock_file.exists());
    assert!(other.journal_owner_alive("agentA1").await.unwrap());
    assert!(!other.journal_owner_alive("neverSeen").await.unwrap());
    assert!(!other.journal_owner_alive("../escape").await.unwrap());
    // A clean exit removes it.
    drop(lock);
    assert!(!lock_file.exists());
    assert!(!other.journal_owner_alive("agentA1").await.unwrap());
    // A killed agent leaves its file unlocked: dead, and swept away.
    fs::write(s.dir().join("owners/agentB2.lock"), "").unwrap();
    assert!(!other.journal_owner_alive("agentB2").await.unwrap());
    other.journal_sweep_owners().await.unwrap();
    assert!(!s.dir().join("owners/agentB2.lock").exists());
}

#[tokio::test]
async fn entries_name_their_owner() {
    let (_tmp, s) = store();
    let mut e = entry("owned", "prod", TOKEN);
    e.owner = Some("agentA1".into());
    s.journal_add(&e).await.unwrap();
    s.journal_add(&entry("legacy", "prod", TOKEN)).await.unwrap();
    let listed = s.journal_list().await.unwrap();
    assert_eq!(ids(&listed), ["legacy", "owned"]);
    assert_eq!(listed[0].owner, None);
    assert_eq!(listed[1].owner.as_deref(), Some("agentA1"));
}
