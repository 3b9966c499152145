//! The Secret Service store against a real gnome-keyring on a private session bus.
//!
//! `scripts/test.sh` provides both (and sets `LOOKER_AGENT_TEST_KEYRING=1`); these
//! tests refuse to touch any other keyring, such as your desktop's. Set
//! `LOOKER_AGENT_SKIP_SECRET_SERVICE=1` to skip them.
//!
//! Tests in this file run in parallel and share the keyring, so each uses its own
//! profile name; the test that locks the `login` collection takes [`KEYRING`] for
//! writing, every other one for reading.

use looker_agent::secret::Secret;
use looker_agent::store::secret_service::SecretServiceStore;
use looker_agent::store::{JournalEntry, SecretKey, SecretStore, StoreError};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::sync::{RwLock, RwLockReadGuard};
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};

static KEYRING: RwLock<()> = RwLock::const_new(());

fn skipped() -> bool {
    if std::env::var("LOOKER_AGENT_SKIP_SECRET_SERVICE").is_ok_and(|v| v == "1") {
        eprintln!("skipped: LOOKER_AGENT_SKIP_SECRET_SERVICE=1");
        return true;
    }
    false
}

/// The store on the test keyring, or `None` when skipped; fails loudly otherwise.
async fn store() -> Option<SecretServiceStore> {
    if skipped() {
        return None;
    }
    assert!(
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some(),
        "DBUS_SESSION_BUS_ADDRESS is not set: run these tests with `scripts/test.sh`, which starts a \
         private session bus and gnome-keyring (or set LOOKER_AGENT_SKIP_SECRET_SERVICE=1 to skip them)"
    );
    assert!(
        std::env::var("LOOKER_AGENT_TEST_KEYRING").is_ok_and(|v| v == "1"),
        "refusing to write test items into the keyring of your own session bus: run these tests with \
         `scripts/test.sh`, which starts a private one (or set LOOKER_AGENT_SKIP_SECRET_SERVICE=1 to skip them)"
    );
    match SecretServiceStore::connect().await {
        Ok(s) => Some(s),
        Err(e) => panic!("{e}\nrun these tests with `scripts/test.sh`, which starts gnome-keyring"),
    }
}

/// A profile name no other test (or earlier run) uses.
fn profile(test: &str) -> String {
    format!("t{}-{test}", std::process::id())
}

/// What a test that shares the keyring starts from: the store, the test's own
/// profile name, and a read hold on [`KEYRING`] that the test keeps to its end (so
/// the locking test cannot lock the collection under it). `None` when skipped.
async fn shared_store(test: &str) -> Option<(SecretServiceStore, String, RwLockReadGuard<'static, ()>)> {
    let s = store().await?;
    Some((s, profile(test), KEYRING.read().await))
}

/// `secret-tool search --all ATTR VALUE...`, as a user would run it.
fn secret_tool_search(attrs: &[&str]) -> String {
    let out = Command::new("secret-tool")
        .args(["search", "--all"])
        .args(attrs)
        .output()
        .expect("secret-tool is installed by scripts/test.sh");
    assert!(out.status.success() || out.stdout.is_empty(), "secret-tool failed: {out:?}");
    // secret-tool prints the label and secret on stdout, the attributes on stderr.
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn item_count(listing: &str) -> usize {
    listing.lines().filter(|l| l.starts_with("[/")).count()
}

/// `secret-tool`'s listing of the client secrets of one profile.
fn secret_items(profile: &str) -> String {
    secret_tool_search(&["application", "looker-agent", "profile", profile])
}

/// `secret-tool`'s listing of the token journal items of one profile.
fn journal_items(profile: &str) -> String {
    secret_tool_search(&["application", "looker-agent-journal", "profile", profile])
}

#[tokio::test]
async fn round_trip() {
    let Some((s, p, _shared)) = shared_store("round-trip").await else { return };
    let k = SecretKey::new(&p, "default");
    assert!(matches!(s.get(&k, "client-1").await, Err(StoreError::NotFound { .. })));
    s.set(&k, "client-1", &Secret::new("hunter2-round-trip")).await.unwrap();
    assert_eq!(s.get(&k, "client-1").await.unwrap().expose(), "hunter2-round-trip");
    // The connection is reused: many reads on one store.
    for _ in 0..20 {
        assert_eq!(s.get(&k, "client-1").await.unwrap().expose(), "hunter2-round-trip");
    }
    assert_eq!(s.describe(), "secret-service");
    assert!(s.delete(&k).await.unwrap());
}

#[tokio::test]
async fn secret_tool_finds_the_item_with_all_four_attributes() {
    let Some((s, p, _shared)) = shared_store("secret-tool").await else { return };
    let k = SecretKey::new(&p, "reporting");
    s.set(&k, "abc123clientid", &Secret::new("hunter2-secret-tool")).await.unwrap();

    // What the spec promises users: this finds the item...
    let all = secret_tool_search(&["application", "looker-agent"]);
    assert!(all.contains(&format!("attribute.profile = {p}\n")), "{all}");
    // ...with all four attributes. (secret-tool prints the label on stdout and the
    // attributes on stderr, so only a one-item listing can be read as one block.)
    let ours = secret_items(&p);
    assert_eq!(item_count(&ours), 1, "{ours}");
    for line in [
        format!("label = Looker API secret ({p}/reporting)"),
        "attribute.application = looker-agent".to_string(),
        format!("attribute.profile = {p}"),
        "attribute.credential = reporting".to_string(),
        "attribute.client_id = abc123clientid".to_string(),
    ] {
        assert!(ours.lines().any(|l| l == line), "{line:?} missing from:\n{ours}");
    }
    assert!(s.delete(&k).await.unwrap());
}

#[tokio::test]
async fn items_are_per_client_id_and_replaced_in_place() {
    let Some((s, p, _shared)) = shared_store("replace").await else { return };
    let k = SecretKey::new(&p, "default");
    let listing = || secret_items(&p);
    s.set(&k, "id-1", &Secret::new("first")).await.unwrap();
    s.set(&k, "id-1", &Secret::new("second")).await.unwrap();
    assert_eq!(item_count(&listing()), 1, "the same client_id replaces its item");
    assert_eq!(s.get(&k, "id-1").await.unwrap().expose(), "second");

    // A new client_id is a second item until the old one is cleaned up; a read
    // answers only for the client_id asked for.
    s.set(&k, "id-2", &Secret::new("third")).await.unwrap();
    assert_eq!(item_count(&listing()), 2);
    assert_eq!(s.get(&k, "id-1").await.unwrap().expose(), "second");
    assert_eq!(s.get(&k, "id-2").await.unwrap().expose(), "third");
    assert!(matches!(s.get(&k, "id-3").await, Err(StoreError::NotFound { .. })));
    assert_eq!(s.delete_other_client_ids(&k, "id-2").await.unwrap(), 1);
    let now = listing();
    assert_eq!(item_count(&now), 1, "{now}");
    assert!(now.contains("attribute.client_id = id-2"), "{now}");
    assert!(matches!(s.get(&k, "id-1").await, Err(StoreError::NotFound { .. })));
    assert_eq!(s.delete_other_client_ids(&k, "id-2").await.unwrap(), 0);

    // Another credential of the same profile is a separate item.
    let k2 = SecretKey::new(&p, "other");
    s.set(&k2, "id-3", &Secret::new("fourth")).await.unwrap();
    assert_eq!(item_count(&listing()), 2);
    assert!(!s.delete_client_id(&k, "id-3").await.unwrap(), "id-3 belongs to the other credential");
    assert!(s.delete_client_id(&k, "id-2").await.unwrap());
    assert!(matches!(s.get(&k, "id-2").await, Err(StoreError::NotFound { .. })));
    assert_eq!(s.get(&k2, "id-3").await.unwrap().expose(), "fourth");
    assert!(s.delete(&k2).await.unwrap());
    assert_eq!(item_count(&listing()), 0);
}

#[tokio::test]
async fn delete_removes_the_item() {
    let Some((s, p, _shared)) = shared_store("delete").await else { return };
    let k = SecretKey::new(&p, "default");
    assert!(!s.delete(&k).await.unwrap());
    s.set(&k, "id", &Secret::new("gone-soon")).await.unwrap();
    assert!(s.delete(&k).await.unwrap());
    assert!(matches!(s.get(&k, "id").await, Err(StoreError::NotFound { .. })));
    assert!(!s.delete(&k).await.unwrap());
    assert_eq!(item_count(&secret_items(&p)), 0);
}

fn journal_entry(id: &str, profile: &str, token: &str) -> JournalEntry {
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

/// The journal entries of one profile (the keyring is shared by parallel tests).
async fn journal_of(s: &SecretServiceStore, profile: &str) -> Vec<JournalEntry> {
    s.journal_list().await.unwrap().into_iter().filter(|e| e.profile == profile).collect()
}

fn ids(entries: &[JournalEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.id.as_str()).collect()
}

/// Journals one entry of `profile` holding `token`; its id is derived from the
/// profile, so it is as unique as the profile. Returns the id.
async fn journal_one(s: &SecretServiceStore, profile: &str, token: &str) -> String {
    let id = format!("{profile}-1");
    s.journal_add(&journal_entry(&id, profile, token)).await.unwrap();
    id
}

#[tokio::test]
async fn journal_round_trip() {
    let Some((s, p, _shared)) = shared_store("journal").await else { return };
    let (a, b) = (format!("{p}-a"), format!("{p}-b"));
    s.journal_remove(&format!("{p}-never-added")).await.unwrap();
    assert!(journal_of(&s, &p).await.is_empty());

    s.journal_add(&journal_entry(&b, &p, "tok-b")).await.unwrap();
    s.journal_add(&journal_entry(&a, &p, "tok-a-journal")).await.unwrap();
    let listed = journal_of(&s, &p).await;
    assert_eq!(ids(&listed), [a.as_str(), b.as_str()]);
    let first = &listed[0];
    assert_eq!(first.credential, "reporting");
    assert_eq!(first.base_url, "https://example.looker.com");
    assert_eq!(first.token.expose(), "tok-a-journal");
    assert_eq!(first.expires_at_unix, 1_900_000_000);
    assert!(!format!("{listed:?}").contains("tok-a-journal"), "Debug leaked the token");

    // Adding an id again replaces its item.
    s.journal_add(&journal_entry(&a, &p, "tok-a-again")).await.unwrap();
    let listed = journal_of(&s, &p).await;
    assert_eq!(ids(&listed), [a.as_str(), b.as_str()]);
    assert_eq!(listed[0].token.expose(), "tok-a-again");

    s.journal_remove(&a).await.unwrap();
    s.journal_remove(&a).await.unwrap();
    assert_eq!(ids(&journal_of(&s, &p).await), [b.as_str()]);
    s.journal_remove(&b).await.unwrap();
    assert!(journal_of(&s, &p).await.is_empty());
}

#[tokio::test]
async fn journal_entries_survive_a_new_connection() {
    let Some((s, p, _shared)) = shared_store("journal-reopen").await else { return };
    let id = journal_one(&s, &p, "tok-reopen").await;
    drop(s);

    let Some(again) = store().await else { return };
    let listed = journal_of(&again, &p).await;
    assert_eq!(ids(&listed), [id.as_str()]);
    assert_eq!(listed[0].token.expose(), "tok-reopen");
    again.journal_remove(&id).await.unwrap();
    assert!(journal_of(&again, &p).await.is_empty());
}

#[tokio::test]
async fn journal_items_are_apart_from_the_client_secrets() {
    let Some((s, p, _shared)) = shared_store("journal-secret-tool").await else { return };
    let id = journal_one(&s, &p, "tok-secret-tool").await;

    let secrets = secret_tool_search(&["application", "looker-agent"]);
    assert!(!secrets.contains(&p), "a journal item is listed among the client secrets:\n{secrets}");
    let ours = journal_items(&p);
    assert_eq!(item_count(&ours), 1, "{ours}");
    for line in [
        format!("label = looker-agent token journal ({p}/reporting)"),
        "attribute.application = looker-agent-journal".to_string(),
        format!("attribute.journal_id = {id}"),
        format!("attribute.profile = {p}"),
        "attribute.credential = reporting".to_string(),
    ] {
        assert!(ours.lines().any(|l| l == line), "{line:?} missing from:\n{ours}");
    }
    let secret = ours.lines().find_map(|l| l.strip_prefix("secret = ")).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(secret).unwrap();
    assert_eq!(json["token"], "tok-secret-tool");
    assert_eq!(json["base_url"], "https://example.looker.com");
    assert_eq!(json["expires_at_unix"], 1_900_000_000);

    s.journal_remove(&id).await.unwrap();
    assert_eq!(item_count(&journal_items(&p)), 0);
}

#[tokio::test]
async fn listing_while_entries_are_removed_never_fails() {
    let Some((s, p, _shared)) = shared_store("journal-churn").await else { return };
    let Some(other) = store().await else { return };
    let ids: Vec<String> = (0..40).map(|i| format!("{p}-{i}")).collect();
    for id in &ids {
        s.journal_add(&journal_entry(id, &p, "tok-churn")).await.unwrap();
    }
    // Each listing reads the items one by one while the other connection removes
    // them: an item gone between the search and the read is left out, not an error.
    let remove = async {
        for id in &ids {
            other.journal_remove(id).await.unwrap();
            tokio::task::yield_now().await;
        }
    };
    let list = async {
        for _ in 0..10 {
            for e in journal_of(&s, &p).await {
                assert_eq!(e.token.expose(), "tok-churn");
            }
        }
    };
    tokio::join!(remove, list);
    assert!(journal_of(&s, &p).await.is_empty());
}

#[tokio::test]
async fn a_corrupt_journal_item_is_skipped() {
    let Some((s, p, _shared)) = shared_store("journal-corrupt").await else { return };
    let (good, bad) = (format!("{p}-good"), format!("{p}-bad"));
    s.journal_add(&journal_entry(&good, &p, "tok-good")).await.unwrap();

    // Written as another program (or an older version) might: not our JSON.
    let mut child = Command::new("secret-tool")
        .args(["store", "--label=corrupt", "application", "looker-agent-journal", "journal_id", &bad])
        .args(["profile", &p, "credential", "reporting"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("secret-tool is installed by scripts/test.sh");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"{\"token\": not-json").unwrap();
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(item_count(&journal_items(&p)), 2);

    let listed = journal_of(&s, &p).await;
    assert_eq!(ids(&listed), [good.as_str()]);
    assert_eq!(listed[0].token.expose(), "tok-good");

    s.journal_remove(&bad).await.unwrap();
    s.journal_remove(&good).await.unwrap();
    assert_eq!(item_count(&journal_items(&p)), 0);
}

/// The default collection's object path, through the Secret Service API.
async fn default_collection(bus: &zbus::Connection) -> OwnedObjectPath {
    service_object(bus, "org.freedesktop.Secret.Service")
        .await
        .call("ReadAlias", &("default",))
        .await
        .unwrap()
}

/// A proxy for one interface of the Secret Service's root object.
async fn service_object<'a>(bus: &zbus::Connection, interface: &'a str) -> zbus::Proxy<'a> {
    zbus::Proxy::new(bus, "org.freedesktop.secrets", "/org/freedesktop/secrets", interface).await.unwrap()
}

/// `Lock` (no prompt needed) or unlock with the test keyring's password through
/// gnome-keyring's own interface, as headless there is no prompt to answer.
async fn set_locked(bus: &zbus::Connection, collection: &ObjectPath<'_>, locked: bool) {
    let service = service_object(bus, "org.freedesktop.Secret.Service").await;
    if locked {
        let (done, _prompt): (Vec<OwnedObjectPath>, OwnedObjectPath) =
            service.call("Lock", &(vec![collection],)).await.unwrap();
        assert_eq!(done.len(), 1, "Lock did not lock {collection}");
        return;
    }
    let password = std::env::var("LOOKER_AGENT_TEST_KEYRING_PASSWORD")
        .expect("LOOKER_AGENT_TEST_KEYRING_PASSWORD is set by scripts/test.sh");
    let (_, session): (OwnedValue, OwnedObjectPath) =
        service.call("OpenSession", &("plain", Value::from(""))).await.unwrap();
    let internal = service_object(bus, "org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface").await;
    let master = (session.clone(), Vec::<u8>::new(), password.into_bytes(), "text/plain");
    let _: () = internal.call("UnlockWithMasterPassword", &(collection, master)).await.unwrap();
    let session_proxy =
        zbus::Proxy::new(bus, "org.freedesktop.secrets", session, "org.freedesktop.Secret.Session")
            .await
            .unwrap();
    let _: () = session_proxy.call("Close", &()).await.unwrap();
}

#[tokio::test]
async fn a_locked_collection_is_reported_by_name_within_a_bounded_time() {
    let Some(s) = store().await else { return };
    let _exclusive = KEYRING.write().await;
    let p = profile("locked");
    let k = SecretKey::new(&p, "default");
    s.set(&k, "id", &Secret::new("behind-the-lock")).await.unwrap();

    let bus = zbus::Connection::session().await.unwrap();
    let login = default_collection(&bus).await;
    set_locked(&bus, &login, true).await;

    // Collect everything first and unlock before asserting, so a failure here
    // cannot leave the keyring locked for the other tests.
    let limit = s.unlock_timeout() + Duration::from_secs(5);
    let started = Instant::now();
    let got = s.get(&k, "id").await;
    let get_took = started.elapsed();
    let set = s.set(&SecretKey::new(&p, "new"), "id", &Secret::new("x")).await;
    let delete = s.delete(&k).await;
    let fresh = SecretServiceStore::connect().await.map(|_| ());
    let took = started.elapsed();

    set_locked(&bus, &login, false).await;

    eprintln!("locked: get answered in {get_took:?}, get+set+delete+connect in {took:?}");
    for (what, r) in [("get", got.map(|_| ())), ("set", set), ("delete", delete.map(|_| ()))] {
        match r {
            Err(StoreError::Locked { collection }) => {
                assert!(collection.to_lowercase().contains("login"), "{what}: {collection:?}")
            }
            other => panic!("{what} on a locked collection gave {other:?}"),
        }
    }
    assert!(get_took < limit, "get took {get_took:?}");
    assert!(took < limit * 3, "took {took:?}");
    // Connecting never needs the collection unlocked.
    fresh.unwrap();
    let e = StoreError::Locked { collection: "Login".into() };
    assert!(e.to_string().contains("Login"), "{e}");

    // Unlocked again, everything works.
    assert_eq!(s.get(&k, "id").await.unwrap().expose(), "behind-the-lock");
    assert!(s.delete(&k).await.unwrap());
}

/// Runs one `#[ignore]`d test of this binary in a child process with a changed
/// environment (the environment is process-wide; the other tests need theirs).
fn run_child(test: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--ignored", "--nocapture", "--test-threads=1"])
        .env("LOOKER_AGENT_TEST_CHILD", "1")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child {test} failed:\n{text}");
    text
}

/// In the child: `connect` must fail with `Unavailable`, quickly.
#[tokio::test]
#[ignore = "run by connect_fails_quickly_without_a_bus_or_a_keyring in a child process"]
async fn child_connect_is_unavailable() {
    assert_eq!(std::env::var("LOOKER_AGENT_TEST_CHILD").as_deref(), Ok("1"));
    let started = Instant::now();
    let r = SecretServiceStore::connect().await;
    let took = started.elapsed();
    match r {
        Err(e @ StoreError::Unavailable { .. }) => println!("UNAVAILABLE after {took:?}: {e}"),
        Err(e) => panic!("expected Unavailable, got {e:?}"),
        Ok(_) => panic!("connected to a Secret Service that should not be there"),
    }
    assert!(took < Duration::from_secs(6), "took {took:?}");
}

#[test]
fn connect_fails_quickly_without_a_bus_or_a_keyring() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime = tmp.path().to_str().unwrap();

    // No session bus at all (and none at $XDG_RUNTIME_DIR/bus either).
    let out = run_child(
        "child_connect_is_unavailable",
        &[("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus"), ("XDG_RUNTIME_DIR", runtime)],
    );
    assert!(out.contains("UNAVAILABLE"), "{out}");
    assert!(out.contains("session bus"), "{out}");

    if skipped() {
        return;
    }
    // A session bus on which nobody owns org.freedesktop.secrets.
    let conf = tmp.path().join("bus.conf");
    std::fs::write(
        &conf,
        format!(
            r#"<busconfig><type>session</type><listen>unix:path={runtime}/bus</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/>
<allow own="*"/></policy></busconfig>"#
        ),
    )
    .unwrap();
    let mut bus = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", conf.display()))
        .args(["--nofork", "--nopidfile"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dbus-daemon is installed by scripts/test.sh");
    let socket = tmp.path().join("bus");
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let address = format!("unix:path={}", socket.display());
    let out = std::panic::catch_unwind(|| {
        run_child("child_connect_is_unavailable", &[("DBUS_SESSION_BUS_ADDRESS", &address)])
    });
    let _ = bus.kill();
    let _ = bus.wait();
    let out = out.unwrap();
    assert!(out.contains("no program owns org.freedesktop.secrets"), "{out}");
}
