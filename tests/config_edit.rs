//! Config editing as `lookerctl profile/credential/import` use it: layout kept,
//! atomic 0600 saves, broken or unsafe files refused, looker.ini import.

use looker_agent::config::{Config, ConfigError};
use looker_agent::config_edit::{ConfigEditor, CredentialChange, EditError, ProfileSettings};
use looker_agent::looker_ini;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

const COMMENTED: &str = r#"# looker-agent config, edited by hand
# (keep this header)

default_profile = "prod"   # the one I use most

# Production: the big one
[profiles.prod]
base_url = "https://prod.example.com"
timeout = "1m"   # slow dashboards

# Reporting robot
[[profiles.prod.credentials]]
name = "reporting"
client_id = "AAA"

[[profiles.prod.credentials]]
name = "backup"   # only when reporting is locked
client_id = "BBB"


# Staging, rarely used
[profiles.staging]
base_url = "https://staging.example.com"
verify_tls = false

# trailing notes stay at the end
"#;

fn setup(text: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("looker-agent").join("config.toml");
    if let Some(text) = text {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
    }
    (dir, path)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn comments_blank_lines_and_other_tables_survive_add_and_remove() {
    let (_d, path) = setup(Some(COMMENTED));
    let mut ed = ConfigEditor::open(&path).unwrap();
    let dev = ProfileSettings {
        timeout: Some(Duration::from_secs(45)),
        ..ProfileSettings::new("http://localhost:9999/api/4.0")
    };
    ed.add_profile("dev", &dev).unwrap();
    assert_eq!(ed.add_credential("dev", "default", "CCC").unwrap(), CredentialChange::Added);
    assert_eq!(ed.add_credential("staging", "ci", "DDD").unwrap(), CredentialChange::Added);
    ed.save().unwrap();

    let added = std::fs::read_to_string(&path).unwrap();
    let expected = COMMENTED.replace(
        "verify_tls = false\n",
        "verify_tls = false\n\n[[profiles.staging.credentials]]\nname = \"ci\"\nclient_id = \"DDD\"\n\n\
         [profiles.dev]\nbase_url = \"http://localhost:9999\"\ntimeout = \"45s\"\n\n\
         [[profiles.dev.credentials]]\nname = \"default\"\nclient_id = \"CCC\"\n",
    );
    assert_eq!(added, expected);
    drop(ed); // the next editor waits for this one's lock

    // Removing what was added gives back the original, byte for byte.
    let mut ed = ConfigEditor::open(&path).unwrap();
    let removed = ed.remove_profile("dev").unwrap();
    assert_eq!(removed.base_url, "http://localhost:9999");
    assert_eq!(removed.credentials[0].client_id, "CCC");
    assert_eq!(ed.remove_credential("staging", "ci").unwrap().client_id, "DDD");
    ed.save().unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), COMMENTED);
}

#[test]
fn removing_a_profile_keeps_the_rest_and_clears_the_default() {
    let (_d, path) = setup(Some(COMMENTED));
    let mut ed = ConfigEditor::open(&path).unwrap();
    let prod = ed.remove_profile("prod").unwrap();
    assert_eq!(prod.timeout, Some(Duration::from_secs(60)));
    assert_eq!(prod.credentials.len(), 2);
    ed.save().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        r#"# looker-agent config, edited by hand
# (keep this header)

# Staging, rarely used
[profiles.staging]
base_url = "https://staging.example.com"
verify_tls = false

# trailing notes stay at the end
"#
    );
    let cfg = Config::load(&path).unwrap();
    assert_eq!(cfg.default_profile, None);
    assert_eq!(cfg.resolve_profile(None), Some("staging"));
    assert!(matches!(ed.remove_profile("prod"), Err(EditError::UnknownProfile { .. })));
}

#[test]
fn header_comment_above_the_first_table_survives_its_removal() {
    let text = "# my profiles\n\n# first\n[profiles.a]\nbase_url = \"https://a.example\"\n\n\
                # second\n[profiles.b]\nbase_url = \"https://b.example\"\n";
    let (_d, path) = setup(Some(text));
    let mut ed = ConfigEditor::open(&path).unwrap();
    ed.remove_profile("a").unwrap();
    assert_eq!(
        ed.to_toml_string(),
        "# my profiles\n\n# second\n[profiles.b]\nbase_url = \"https://b.example\"\n"
    );
    ed.remove_profile("b").unwrap();
    assert_eq!(ed.to_toml_string(), "# my profiles\n\n");
    assert!(ed.config().unwrap().profiles.is_empty());
}

#[test]
fn credentials_update_in_place_and_keep_their_order() {
    let (_d, path) = setup(Some(COMMENTED));
    let mut ed = ConfigEditor::open(&path).unwrap();
    assert_eq!(ed.add_credential("prod", "backup", "NEW").unwrap(), CredentialChange::Updated);
    assert_eq!(ed.add_credential("prod", "backup", "NEW").unwrap(), CredentialChange::Unchanged);
    let text = ed.to_toml_string();
    assert!(
        text.contains("name = \"backup\"   # only when reporting is locked\nclient_id = \"NEW\"\n"),
        "{text}"
    );
    ed.remove_credential("prod", "reporting").unwrap();
    let cfg = ed.config().unwrap();
    let names: Vec<_> = cfg.profiles["prod"].credentials.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["backup"]);
    assert!(matches!(ed.remove_credential("prod", "reporting"), Err(EditError::UnknownCredential { .. })));
    let msg = ed.remove_credential("nope", "x").unwrap_err().to_string();
    assert!(msg.contains("lookerctl profile list"), "{msg}");
}

#[test]
fn default_profile_is_checked() {
    let (_d, path) = setup(Some(COMMENTED));
    let mut ed = ConfigEditor::open(&path).unwrap();
    assert!(matches!(ed.set_default_profile(Some("nope")), Err(EditError::UnknownProfile { .. })));
    ed.set_default_profile(Some("staging")).unwrap();
    assert!(ed.to_toml_string().contains("default_profile = \"staging\"   # the one I use most\n"));
    ed.set_default_profile(None).unwrap();
    assert_eq!(ed.config().unwrap().default_profile, None);
}

#[test]
fn save_is_atomic_private_and_leaves_no_temp_files() {
    let (d, path) = setup(None);
    let mut ed = ConfigEditor::open(&path).unwrap();
    ed.add_profile("a", &ProfileSettings::new("https://a.example")).unwrap();
    ed.save().unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700, "a created folder is private");
    let mut names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [".config.toml.lock", "config.toml"], "the lock file stays, nothing else");
    assert_eq!(mode(&path.parent().unwrap().join(".config.toml.lock")), 0o600);

    // A hand-made 0644 file becomes 0600; a second save on the same editor works.
    chmod(&path, 0o644);
    drop(ed);
    let mut ed = ConfigEditor::open(&path).unwrap();
    ed.add_credential("a", "c", "ID").unwrap();
    ed.save().unwrap();
    ed.add_credential("a", "d", "ID2").unwrap();
    ed.save().unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(Config::load(&path).unwrap().profiles["a"].credentials.len(), 2);
    assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 2);
    drop(d);
}

#[test]
fn a_change_by_hand_since_open_is_not_overwritten() {
    let (_d, path) = setup(Some(COMMENTED));
    let mut ed = ConfigEditor::open(&path).unwrap();
    ed.add_profile("two", &ProfileSettings::new("https://two.example")).unwrap();
    // An editor that takes no lock saves meanwhile.
    let by_hand = format!("{COMMENTED}\n[profiles.one]\nbase_url = \"https://one.example\"\n");
    std::fs::write(&path, &by_hand).unwrap();
    let e = ed.save().unwrap_err();
    assert!(e.to_string().contains("run the command again"), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), by_hand);
}

#[test]
fn a_second_editor_waits_for_the_first_then_sees_its_save() {
    let (_d, path) = setup(Some(COMMENTED));
    let mut first = ConfigEditor::open(&path).unwrap();
    // While the first holds the lock, a second gives up after its wait, saying why.
    let e = ConfigEditor::open_waiting(&path, Duration::from_millis(50)).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("another edit") && msg.contains("run the command again"), "{msg}");
    assert!(msg.contains(".config.toml.lock"), "{msg}");

    // One waiting meanwhile gets the lock when the first is done, and edits its result.
    let waiter = {
        let path = path.clone();
        std::thread::spawn(move || {
            let mut second = ConfigEditor::open(&path).unwrap();
            second.add_profile("two", &ProfileSettings::new("https://two.example")).unwrap();
            second.save().unwrap();
        })
    };
    first.add_profile("one", &ProfileSettings::new("https://one.example")).unwrap();
    first.save().unwrap();
    drop(first);
    waiter.join().unwrap();
    let cfg = Config::load(&path).unwrap();
    assert!(cfg.profiles.contains_key("one") && cfg.profiles.contains_key("two"), "{cfg:?}");
}

#[test]
fn a_symlinked_config_is_locked_next_to_its_target() {
    let (d, path) = setup(Some(COMMENTED));
    let link = d.path().join("link.toml");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let lock = looker_agent::config_edit::lock_path(&link).unwrap();
    assert_eq!(lock, path.parent().unwrap().join(".config.toml.lock"));
    let _held = ConfigEditor::open(&path).unwrap();
    assert!(ConfigEditor::open_waiting(&link, Duration::from_millis(20)).is_err());
}

#[test]
fn broken_file_is_refused_with_its_line_and_left_alone() {
    let broken =
        "default_profile = \"a\"\n[profiles.a]\nbase_url = \"https://a.example\"\nverify_tls = maybe\n";
    let (_d, path) = setup(Some(broken));
    match ConfigEditor::open(&path) {
        Err(ConfigError::Parse { line, .. }) => assert_eq!(line, 4),
        other => panic!("{other:?}"),
    }
    let e = ConfigEditor::open(&path).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:4:", path.display())), "{e}");

    // Valid TOML that breaks a rule is refused too.
    std::fs::write(&path, "default_profile = \"ghost\"\n").unwrap();
    assert!(matches!(ConfigEditor::open(&path), Err(ConfigError::Invalid { .. })));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "default_profile = \"ghost\"\n");
}

#[test]
fn writable_config_is_not_edited() {
    let (_d, path) = setup(Some(COMMENTED));
    chmod(&path, 0o666);
    let e = ConfigEditor::open(&path).unwrap_err();
    assert!(matches!(e, ConfigError::Insecure { .. }), "{e}");
    assert!(e.to_string().contains("chmod go-w"), "{e}");
    chmod(&path, 0o644);
    assert!(ConfigEditor::open(&path).is_ok());
}

#[test]
fn a_symlinked_config_is_written_through() {
    let (d, path) = setup(Some(COMMENTED));
    let link = d.path().join("link.toml");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let mut ed = ConfigEditor::open(&link).unwrap();
    ed.remove_profile("staging").unwrap();
    ed.save().unwrap();
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert!(!Config::load(&path).unwrap().profiles.contains_key("staging"));
}

const LOOKER_INI: &str = r#"; looker.ini for the SDKs
[Looker]
# API version is ignored by the agent
api_version=4.0
base_url=https://example.looker.com:19999/api/4.0/
client_id=AbCdEf123
# the secret has '=' and '#' in it, and quotes around it
client_secret="s3c=r#t;x"
verify_ssl=True

[Staging]
base_url : 'https://staging.example.com'
CLIENT_ID : XyZ
client_secret : 'plain'
verify_ssl : false
timeout : 300
"#;

#[test]
fn import_from_looker_ini() {
    let sections = looker_ini::parse(LOOKER_INI).unwrap();
    assert_eq!(sections.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["Looker", "Staging"]);
    let (_d, path) = setup(Some(COMMENTED));
    let mut ed = ConfigEditor::open(&path).unwrap();
    let mut secrets = Vec::new();
    for mut section in sections {
        let name = section.suggested_profile_name();
        let settings = section.profile_settings().unwrap();
        // [Looker] is new; [Staging] updates the existing profile in place.
        assert_eq!(ed.set_profile(&name, &settings).unwrap(), name == "looker");
        ed.add_credential(&name, "default", section.client_id().unwrap().unwrap()).unwrap();
        assert!(!format!("{section:?}").contains("s3c=r"));
        secrets.push(section.take_secret().unwrap());
    }
    ed.save().unwrap();
    assert_eq!(secrets[0].expose(), "s3c=r#t;x");
    assert_eq!(secrets[1].expose(), "plain");

    let cfg = Config::load(&path).unwrap();
    let looker = &cfg.profiles["looker"];
    assert_eq!(looker.base_url, "https://example.looker.com:19999");
    assert!(looker.verify_tls);
    assert_eq!(looker.credentials[0].client_id, "AbCdEf123");
    let staging = &cfg.profiles["staging"];
    assert!(!staging.verify_tls);
    assert_eq!(staging.timeout(), Duration::from_secs(300));
    assert_eq!(staging.credentials[0].client_id, "XyZ");
    // The user's comments are still there, the existing profile was updated in place.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# looker-agent config, edited by hand\n"), "{text}");
    assert!(text.contains("# Staging, rarely used\n[profiles.staging]\nbase_url = \"https://staging.example.com\"\nverify_tls = false\ntimeout = \"5m\"\n\n[[profiles.staging.credentials]]\n"), "{text}");
}

#[test]
fn remove_secret_from_looker_ini_keeps_the_rest_identical() {
    let section = looker_ini::select(looker_ini::parse(LOOKER_INI).unwrap(), Some("Looker")).unwrap();
    let out = looker_ini::remove_key(LOOKER_INI, section.secret_section().unwrap(), "client_secret");
    assert_eq!(out, LOOKER_INI.replace("client_secret=\"s3c=r#t;x\"\n", ""));
    let again = looker_ini::parse(&out).unwrap();
    assert!(again[0].secret().is_none());
    assert_eq!(again[1].secret().unwrap().expose(), "plain");
    assert_eq!(again[0].get("client_id"), Some("AbCdEf123"));
}
