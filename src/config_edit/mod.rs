//! Edits of the config file that keep the user's comments, order and layout.
//!
//! `lookerctl profile add/remove`, `credential add/remove` and `import` go through a
//! [`ConfigEditor`]: it opens the file with the same safety checks as
//! [`Config::load`], refuses to touch a file that does not load, edits the TOML
//! document in place (toml_edit), and [`ConfigEditor::save`]s it atomically
//! (temporary file in the same folder, fsync, rename, fsync of the folder), mode 0600.
//! A daemon watching the file therefore sees either the old or the new file, never half.
//!
//! Every edit is a locked read-modify-write: [`ConfigEditor::open`] takes an exclusive
//! `flock(2)` on `.NAME.lock` next to the config (next to the file a symlinked config
//! points to) before it reads, and the editor holds it until it is dropped. Two
//! `lookerctl` edits at once therefore run one after the other, each on the file the
//! other saved; one that cannot get the lock within [`LOCK_WAIT`] fails saying so.
//! Callers keep the editor (and so the lock) across the secret store work that goes
//! with an edit, so a config entry and its secret change together. The lock file is
//! left in place: removing it would let a third editor lock a new file while a
//! second still waits on the old one.
//!
//! Only non-default settings are written: `verify_tls = false` appears only when
//! false, `timeout` only when set, as a DURATION string such as `"45s"`.

mod comments;
mod lock;
mod values;

pub use lock::{lock_path, LOCK_WAIT};

use crate::config::{self, Config, ConfigError, Credential, Profile};
use crate::files::atomic::AtomicFile;
use crate::files::private_dir;
use comments::{keep_detached_comments, keep_header_above, remove_root_value, Seg};
use lock::{parent_or_dot, resolve_symlinks, EditLock};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml_edit::{ArrayOfTables, DocumentMut, InlineTable, Item, Table, TableLike, Value};
use values::{set_value, settings_values, update_client_id};

/// The settings of a profile, as `lookerctl profile add` or `import` gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileSettings {
    /// Base URL; normalised with [`config::normalize_base_url`] before it is written.
    pub base_url: String,
    /// Verify the server certificate (written only when false).
    pub verify_tls: bool,
    /// Extra CA certificate; a relative path is made absolute against the current folder.
    pub ca_file: Option<PathBuf>,
    /// Request timeout (written only when set; at least one second).
    pub timeout: Option<Duration>,
    /// Allow plain http to a non-loopback host (written only when true).
    pub allow_insecure_http: bool,
}

impl ProfileSettings {
    /// Settings with every default: TLS verified, default timeout, https only.
    pub fn new(base_url: impl Into<String>) -> ProfileSettings {
        ProfileSettings {
            base_url: base_url.into(),
            verify_tls: true,
            ca_file: None,
            timeout: None,
            allow_insecure_http: false,
        }
    }
}

/// What [`ConfigEditor::add_credential`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialChange {
    /// A new credential set was appended (it is tried after the existing ones).
    Added,
    /// A credential set of that name existed; its client_id was replaced in place.
    Updated,
    /// A credential set of that name existed with that client_id already.
    Unchanged,
}

/// Why an edit was refused. Every message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// No profile of that name in the config.
    #[error("no profile named {profile:?}; `lookerctl profile list` shows the profiles, `lookerctl profile add` adds one")]
    UnknownProfile {
        /// The profile asked for.
        profile: String,
    },
    /// The profile has no credential set of that name.
    #[error("profile {profile:?} has no credential named {credential:?}; `lookerctl credential list {profile}` shows its credentials")]
    UnknownCredential {
        /// The profile.
        profile: String,
        /// The credential asked for.
        credential: String,
    },
    /// `add_profile` of a name already taken.
    #[error("profile {profile:?} already exists; remove it first (`lookerctl profile remove {profile}`) or choose another name")]
    ProfileExists {
        /// The profile.
        profile: String,
    },
    /// A name, URL, path or duration that cannot be written.
    #[error("{0}")]
    Invalid(String),
    /// The config file itself (unreadable, unsafe, broken).
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// An open config file being edited, locked against other edits until dropped.
/// Nothing reaches the disk before [`ConfigEditor::save`].
#[derive(Debug)]
pub struct ConfigEditor {
    path: PathBuf,
    doc: DocumentMut,
    /// The text as read (`None`: no file), to notice a change by hand before saving.
    original: Option<String>,
    _lock: EditLock,
}

impl ConfigEditor {
    /// Locks the config at `path` (see the module documentation; waits up to
    /// [`LOCK_WAIT`]) and opens it for editing; a missing file is an empty document.
    ///
    /// The file must pass [`Config::load`]'s checks (safe owner and mode, valid
    /// TOML, valid model), so a broken or foreign file is never rewritten.
    pub fn open(path: &Path) -> Result<ConfigEditor, ConfigError> {
        ConfigEditor::open_waiting(path, LOCK_WAIT)
    }

    /// [`ConfigEditor::open`], waiting at most `wait` for the lock.
    pub fn open_waiting(path: &Path, wait: Duration) -> Result<ConfigEditor, ConfigError> {
        // Checked before the lock too: nothing is created next to a file that is refused.
        config::read_trusted(path)?;
        let lock = EditLock::take(path, wait)?;
        let original = config::read_trusted(path)?;
        let text = original.as_deref().unwrap_or("");
        Config::parse(path, text)?;
        let doc = text.parse::<DocumentMut>().map_err(|e| {
            let (line, column) = e.span().map(|s| config::line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError::Parse { path: path.to_path_buf(), line, column, message: e.message().to_string() }
        })?;
        Ok(ConfigEditor { path: path.to_path_buf(), doc, original, _lock: lock })
    }

    /// Whether the document differs from the file as read (a save would change it).
    pub(crate) fn is_changed(&self) -> bool {
        self.original.as_deref() != Some(self.doc.to_string().as_str())
    }

    /// The document as it would be saved.
    pub fn to_toml_string(&self) -> String {
        self.doc.to_string()
    }

    /// The validated model of the edited document.
    pub fn config(&self) -> Result<Config, ConfigError> {
        Config::parse(&self.path, &self.doc.to_string())
    }

    /// Adds a profile; [`EditError::ProfileExists`] if the name is taken.
    pub fn add_profile(&mut self, name: &str, settings: &ProfileSettings) -> Result<(), EditError> {
        if self.profile_table(name).is_some() {
            return Err(EditError::ProfileExists { profile: name.to_string() });
        }
        self.set_profile(name, settings).map(|_| ())
    }

    /// Creates a profile, or updates the settings of an existing one in place
    /// (keeping its credentials and comments). Returns true when it was created.
    pub fn set_profile(&mut self, name: &str, settings: &ProfileSettings) -> Result<bool, EditError> {
        config::validate_name("profile", name).map_err(EditError::Invalid)?;
        let values = settings_values(name, settings)?;
        let created = self.profile_table(name).is_none();
        let inline = matches!(self.doc.get("profiles"), Some(Item::Value(_)));
        let profiles = self.profiles_mut()?;
        if created {
            if inline {
                profiles.insert(name, Item::Value(Value::InlineTable(InlineTable::new())));
            } else {
                profiles.insert(name, Item::Table(Table::new()));
            }
        }
        let table = profiles.get_mut(name).and_then(Item::as_table_like_mut).ok_or_else(|| {
            EditError::Invalid(format!("profiles.{name} is not a table; fix the config file"))
        })?;
        for (key, value) in values {
            match value {
                Some(v) => set_value(table, key, v),
                None => {
                    table.remove(key);
                }
            }
        }
        Ok(created)
    }

    /// Removes a profile and returns it (the caller deletes its secrets).
    /// Clears `default_profile` if it named this profile.
    pub fn remove_profile(&mut self, name: &str) -> Result<Profile, EditError> {
        let removed = self
            .config()?
            .profiles
            .remove(name)
            .ok_or_else(|| EditError::UnknownProfile { profile: name.to_string() })?;
        let prefix = vec![Seg::Key("profiles".into()), Seg::Key(name.into())];
        keep_detached_comments(&mut self.doc, |p| p.starts_with(&prefix));
        if let Some(profiles) = self.doc.get_mut("profiles").and_then(Item::as_table_like_mut) {
            profiles.remove(name);
        }
        if self.doc.get("default_profile").and_then(Item::as_str) == Some(name) {
            remove_root_value(&mut self.doc, "default_profile");
        }
        Ok(removed)
    }

    /// Adds a credential set at the end of a profile's list, or, if one of that
    /// name exists, replaces its client_id in place.
    pub fn add_credential(
        &mut self,
        profile: &str,
        name: &str,
        client_id: &str,
    ) -> Result<CredentialChange, EditError> {
        config::validate_name("credential", name).map_err(EditError::Invalid)?;
        if client_id.is_empty() {
            return Err(EditError::Invalid("empty client_id: give the API key's client_id".into()));
        }
        if client_id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EditError::Invalid(
                "client_id contains spaces or control characters; check for a pasted newline".into(),
            ));
        }
        let table = self.profile_table_mut(profile)?;
        let mut new = Table::new();
        new.insert("name", toml_edit::value(name));
        new.insert("client_id", toml_edit::value(client_id));
        match table.get_mut("credentials") {
            None => {
                let mut aot = ArrayOfTables::new();
                aot.push(new);
                table.insert("credentials", Item::ArrayOfTables(aot));
                Ok(CredentialChange::Added)
            }
            Some(Item::ArrayOfTables(aot)) => {
                for t in aot.iter_mut() {
                    if t.get("name").and_then(Item::as_str) == Some(name) {
                        return Ok(update_client_id(t, client_id));
                    }
                }
                aot.push(new);
                Ok(CredentialChange::Added)
            }
            Some(Item::Value(Value::Array(arr))) => {
                for v in arr.iter_mut() {
                    if let Some(t) = v.as_inline_table_mut() {
                        if t.get("name").and_then(Value::as_str) == Some(name) {
                            return Ok(update_client_id(t, client_id));
                        }
                    }
                }
                arr.push(Value::InlineTable(new.into_inline_table()));
                Ok(CredentialChange::Added)
            }
            Some(_) => Err(EditError::Invalid(format!(
                "profiles.{profile}.credentials is not a list of tables; fix the config file"
            ))),
        }
    }

    /// Sets (or with `None` removes) the `source` command of an existing credential set;
    /// returns whether anything changed.
    pub fn set_credential_source(
        &mut self,
        profile: &str,
        name: &str,
        source: Option<&[String]>,
    ) -> Result<bool, EditError> {
        if let Some(argv) = source {
            crate::secret_source::SecretSource::check(argv).map_err(EditError::Invalid)?;
        }
        let entry = self.credential_entry_mut(profile, name)?;
        let current: Option<Vec<String>> = entry
            .get("source")
            .and_then(Item::as_array)
            .map(|a| a.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect());
        if current.as_deref() == source {
            return Ok(false);
        }
        match source {
            Some(argv) => set_value(entry, "source", Value::Array(argv.iter().map(String::as_str).collect())),
            None => {
                entry.remove("source");
            }
        }
        Ok(true)
    }

    /// Sets the `kind` of an existing credential set (the default, an API key, is
    /// written as no `kind` at all); returns whether anything changed.
    pub fn set_credential_kind(
        &mut self,
        profile: &str,
        name: &str,
        kind: config::CredentialKind,
    ) -> Result<bool, EditError> {
        let entry = self.credential_entry_mut(profile, name)?;
        let current =
            entry.get("kind").and_then(Item::as_str).unwrap_or(config::CredentialKind::ApiKey.as_str());
        if current == kind.as_str() {
            return Ok(false);
        }
        match kind {
            config::CredentialKind::ApiKey => {
                entry.remove("kind");
            }
            k => set_value(entry, "kind", Value::from(k.as_str())),
        }
        Ok(true)
    }

    /// Sets (or with `None` removes) `rotate_after` of an existing credential set,
    /// written in days when it is whole days (`"90d"`); returns whether anything changed.
    pub fn set_credential_rotate_after(
        &mut self,
        profile: &str,
        name: &str,
        after: Option<Duration>,
    ) -> Result<bool, EditError> {
        if after.is_some_and(|d| d < config::MIN_ROTATE_AFTER) {
            return Err(EditError::Invalid(
                "rotate_after must be at least a day (e.g. 90d); a bare number is seconds".into(),
            ));
        }
        let text = after.map(|d| match d.as_secs() {
            s if s % 86_400 == 0 => format!("{}d", s / 86_400),
            _ => crate::duration::format(d),
        });
        let entry = self.credential_entry_mut(profile, name)?;
        if entry.get("rotate_after").and_then(Item::as_str) == text.as_deref() {
            return Ok(false);
        }
        match text {
            Some(t) => set_value(entry, "rotate_after", Value::from(t)),
            None => {
                entry.remove("rotate_after");
            }
        }
        Ok(true)
    }

    /// The table of one credential set, array-of-tables or inline.
    fn credential_entry_mut(&mut self, profile: &str, name: &str) -> Result<&mut dyn TableLike, EditError> {
        let unknown =
            || EditError::UnknownCredential { profile: profile.to_string(), credential: name.to_string() };
        let table = self.profile_table_mut(profile)?;
        let named = |t: &dyn TableLike| t.get("name").and_then(Item::as_str) == Some(name);
        match table.get_mut("credentials") {
            Some(Item::ArrayOfTables(aot)) => {
                aot.iter_mut().find(|t| named(*t)).map(|t| t as &mut dyn TableLike).ok_or_else(unknown)
            }
            Some(Item::Value(Value::Array(arr))) => arr
                .iter_mut()
                .filter_map(Value::as_inline_table_mut)
                .find(|t| named(*t))
                .map(|t| t as &mut dyn TableLike)
                .ok_or_else(unknown),
            _ => Err(unknown()),
        }
    }

    /// Removes a credential set from a profile and returns it (the caller deletes its secret).
    pub fn remove_credential(&mut self, profile: &str, name: &str) -> Result<Credential, EditError> {
        let unknown =
            || EditError::UnknownCredential { profile: profile.to_string(), credential: name.to_string() };
        let model = self.config()?;
        let p = model
            .profiles
            .get(profile)
            .ok_or_else(|| EditError::UnknownProfile { profile: profile.to_string() })?;
        let index = p.credentials.iter().position(|c| c.name == name).ok_or_else(unknown)?;
        let removed = p.credentials[index].clone();
        let path = vec![
            Seg::Key("profiles".into()),
            Seg::Key(profile.into()),
            Seg::Key("credentials".into()),
            Seg::Index(index),
        ];
        keep_detached_comments(&mut self.doc, |p| p.starts_with(&path));
        let table = self.profile_table_mut(profile)?;
        let now_empty = match table.get_mut("credentials") {
            Some(Item::ArrayOfTables(aot)) if index < aot.len() => {
                aot.remove(index);
                aot.is_empty()
            }
            Some(Item::Value(Value::Array(arr))) if index < arr.len() => {
                arr.remove(index);
                arr.is_empty()
            }
            _ => return Err(unknown()),
        };
        if now_empty {
            table.remove("credentials");
        }
        Ok(removed)
    }

    /// Sets (or with `None` removes) `default_profile`.
    pub fn set_default_profile(&mut self, name: Option<&str>) -> Result<(), EditError> {
        match name {
            None => remove_root_value(&mut self.doc, "default_profile"),
            Some(name) => {
                if self.profile_table(name).is_none() {
                    return Err(EditError::UnknownProfile { profile: name.to_string() });
                }
                let first_root_value = !self.doc.iter().any(|(_, item)| item.is_value());
                set_value(self.doc.as_table_mut(), "default_profile", Value::from(name));
                if first_root_value {
                    keep_header_above(&mut self.doc, "default_profile");
                }
            }
        }
        Ok(())
    }

    /// Validates the document and writes it atomically with mode 0600.
    ///
    /// The parent folder is created (0700) when missing. A symlinked config is
    /// written through: the link's target is replaced, the link stays. If the file
    /// changed on disk since [`ConfigEditor::open`] (an edit by hand: lookerctl edits
    /// wait for the lock), nothing is written and the error says to run the command again.
    pub fn save(&mut self) -> Result<(), ConfigError> {
        let text = self.doc.to_string();
        Config::parse(&self.path, &text)?;
        let write_err = |source| ConfigError::Write { path: self.path.clone(), source };
        if config::read_trusted(&self.path)? != self.original {
            return Err(write_err(std::io::Error::other(
                "the file changed on disk since it was read (edited by hand?); run the command again",
            )));
        }
        let target = resolve_symlinks(&self.path).map_err(write_err)?;
        let dir = parent_or_dot(&target);
        private_dir::create_all(&dir).map_err(write_err)?;
        let file_name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut tmp = AtomicFile::in_folder(&dir, &format!(".{file_name}."), ".tmp")
            .map_err(|e| write_err(explain_write(e, true)))?;
        tmp.set_mode(0o600).map_err(write_err)?;
        tmp.write_synced(text.as_bytes()).map_err(|e| write_err(explain_write(e, false)))?;
        tmp.rename_to(&target).map_err(write_err)?.sync().map_err(write_err)?;
        self.original = Some(text);
        Ok(())
    }

    fn profile_table(&self, name: &str) -> Option<&dyn TableLike> {
        self.doc.get("profiles").and_then(Item::as_table_like)?.get(name).and_then(Item::as_table_like)
    }

    fn profile_table_mut(&mut self, name: &str) -> Result<&mut dyn TableLike, EditError> {
        self.doc
            .get_mut("profiles")
            .and_then(Item::as_table_like_mut)
            .and_then(|p| p.get_mut(name))
            .and_then(Item::as_table_like_mut)
            .ok_or_else(|| EditError::UnknownProfile { profile: name.to_string() })
    }

    fn profiles_mut(&mut self) -> Result<&mut dyn TableLike, EditError> {
        if !self.doc.contains_key("profiles") {
            let mut t = Table::new();
            t.set_implicit(true);
            self.doc.insert("profiles", Item::Table(t));
        }
        self.doc
            .get_mut("profiles")
            .and_then(Item::as_table_like_mut)
            .ok_or_else(|| EditError::Invalid("`profiles` is not a table; fix the config file".into()))
    }
}

/// An error of writing the config, said once and with what to do: a full file system
/// (the common case), or, from tempfile (whose messages add the temporary path), the kind alone.
fn explain_write(e: std::io::Error, from_tempfile: bool) -> std::io::Error {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => std::io::Error::new(
            e.kind(),
            "no space left on its file system (or over quota); the file is unchanged: free some space \
             and run the command again",
        ),
        kind if from_tempfile => {
            std::io::Error::new(kind, format!("cannot create a temporary file next to it ({kind})"))
        }
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn editor(text: &str) -> (tempfile::TempDir, ConfigEditor) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        let ed = ConfigEditor::open(&path).unwrap();
        (dir, ed)
    }

    #[test]
    fn only_non_defaults_are_written() {
        let (_d, mut ed) = editor("");
        ed.add_profile("a", &ProfileSettings::new("https://a.example/api/4.0/")).unwrap();
        let s = ProfileSettings {
            verify_tls: false,
            timeout: Some(Duration::from_secs(45)),
            ..ProfileSettings::new("https://b.example")
        };
        ed.add_profile("b", &s).unwrap();
        assert_eq!(
            ed.to_toml_string(),
            "[profiles.a]\nbase_url = \"https://a.example\"\n\n\
             [profiles.b]\nbase_url = \"https://b.example\"\nverify_tls = false\ntimeout = \"45s\"\n"
        );
        let cfg = ed.config().unwrap();
        assert_eq!(cfg.profiles["b"].timeout(), Duration::from_secs(45));
        assert!(matches!(
            ed.add_profile("a", &ProfileSettings::new("https://x.example")),
            Err(EditError::ProfileExists { .. })
        ));
    }

    #[test]
    fn set_profile_updates_in_place_and_back_to_default() {
        let (_d, mut ed) = editor(
            "[profiles.a]\n# where\nbase_url = \"https://a.example\" # prod\nverify_tls = false\n\n\
             [[profiles.a.credentials]]\nname = \"c\"\nclient_id = \"1\"\n",
        );
        let created = ed.set_profile("a", &ProfileSettings::new("https://b.example")).unwrap();
        assert!(!created);
        assert_eq!(
            ed.to_toml_string(),
            "[profiles.a]\n# where\nbase_url = \"https://b.example\" # prod\n\n\
             [[profiles.a.credentials]]\nname = \"c\"\nclient_id = \"1\"\n"
        );
    }

    #[test]
    fn refuses_bad_input() {
        let (_d, mut ed) = editor("");
        let bad = |r: Result<(), EditError>| match r {
            Err(EditError::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(bad(ed.add_profile("-x", &ProfileSettings::new("https://a.example"))).contains("name"));
        assert!(bad(ed.add_profile("a", &ProfileSettings::new("ftp://a"))).contains("https"));
        assert!(bad(ed.add_profile("a", &ProfileSettings::new("http://a.example"))).contains("plain http"));
        ed.add_profile("local", &ProfileSettings::new("http://127.0.0.1:9999")).unwrap();
        let insecure =
            ProfileSettings { allow_insecure_http: true, ..ProfileSettings::new("http://a.example") };
        ed.add_profile("lan", &insecure).unwrap();
        let zero = ProfileSettings { timeout: Some(Duration::ZERO), ..ProfileSettings::new("https://a.b") };
        assert!(bad(ed.add_profile("z", &zero)).contains("timeout"));
        assert!(bad(ed.add_credential("local", "c", "ab cd").map(|_| ())).contains("newline"));
        assert!(bad(ed.add_credential("local", "c", "").map(|_| ())).contains("client_id"));
        assert!(matches!(ed.add_credential("nope", "c", "x"), Err(EditError::UnknownProfile { .. })));
        assert!(ed.config().unwrap().profiles["lan"].allow_insecure_http);
    }

    #[test]
    fn relative_ca_file_becomes_absolute() {
        let (_d, mut ed) = editor("");
        // verify_tls = false: the file (which does not exist) is not read.
        let s = ProfileSettings {
            ca_file: Some("ca.pem".into()),
            verify_tls: false,
            ..ProfileSettings::new("https://a.b")
        };
        ed.add_profile("a", &s).unwrap();
        let ca = ed.config().unwrap().profiles["a"].ca_file.clone().unwrap().path().to_path_buf();
        assert!(ca.is_absolute() && ca.ends_with("ca.pem"), "{ca:?}");
    }

    #[test]
    fn a_ca_file_that_cannot_be_used_is_refused_when_added() {
        let (d, mut ed) = editor("");
        let missing = d.path().join("missing.pem");
        let s = ProfileSettings { ca_file: Some(missing), ..ProfileSettings::new("https://a.b") };
        let e = ed.add_profile("a", &s).unwrap_err();
        assert!(matches!(&e, EditError::Invalid(m) if m.contains("cannot read ca_file")), "{e}");
        assert!(ed.config().unwrap().profiles.is_empty());
    }

    #[test]
    fn inline_credentials_are_edited_too() {
        let (_d, mut ed) = editor(
            "[profiles.a]\nbase_url = \"https://a.example\"\ncredentials = [{ name = \"x\", client_id = \"1\" }]\n",
        );
        assert_eq!(ed.add_credential("a", "y", "2").unwrap(), CredentialChange::Added);
        assert_eq!(ed.add_credential("a", "x", "3").unwrap(), CredentialChange::Updated);
        let cfg = ed.config().unwrap();
        let creds = &cfg.profiles["a"].credentials;
        assert_eq!((creds[0].name.as_str(), creds[0].client_id.as_str()), ("x", "3"));
        assert_eq!(creds[1].name, "y");
        assert_eq!(ed.remove_credential("a", "x").unwrap().client_id, "3");
        assert_eq!(ed.config().unwrap().profiles["a"].credentials.len(), 1);
    }

    #[test]
    fn new_default_profile_goes_below_the_file_header() {
        let (_d, mut ed) = editor("# header\n\n# first\n[profiles.a]\nbase_url = \"https://a.b\"\n");
        ed.set_default_profile(Some("a")).unwrap();
        assert_eq!(
            ed.to_toml_string(),
            "# header\n\ndefault_profile = \"a\"\n\n# first\n[profiles.a]\nbase_url = \"https://a.b\"\n"
        );
        ed.set_default_profile(None).unwrap();
        assert_eq!(ed.to_toml_string(), "# header\n\n# first\n[profiles.a]\nbase_url = \"https://a.b\"\n");

        let (_d, mut ed) = editor("[profiles.a]\nbase_url = \"https://a.b\"\n");
        ed.set_default_profile(Some("a")).unwrap();
        assert_eq!(
            ed.to_toml_string(),
            "default_profile = \"a\"\n\n[profiles.a]\nbase_url = \"https://a.b\"\n"
        );
    }
}
