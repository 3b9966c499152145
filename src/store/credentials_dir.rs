//! A read-only secret source for headless servers: systemd credentials.
//!
//! systemd passes a service its `LoadCredential=` / `LoadCredentialEncrypted=`
//! credentials as files in the folder named by `$CREDENTIALS_DIRECTORY`, decrypted
//! (see `systemd-creds encrypt`), readable only by the service's user and gone when
//! it stops. One credential holds the client secret of one credential set, named
//!
//! ```text
//! looker-agent.PROFILE.CREDENTIAL          e.g. looker-agent.prod.reporting
//! ```
//!
//! and containing the client secret alone (one trailing newline is ignored). The
//! client_id stays in the config file, like for every other store; a credential
//! names no client_id, so it answers for whichever one the config names (whoever
//! writes the unit vouches that the two belong together). A name with more
//! than two dots is read as written: with a profile `eu.prod` and a credential `x` it
//! is `looker-agent.eu.prod.x`, so avoid a second profile `eu` with a credential `prod.x`.
//!
//! [`LayeredStore`] puts this source in front of the configured store: a secret found
//! in the credentials folder wins; anything else (other credential sets, writes,
//! deletes, the token journal) goes to the configured store. [`layer_from_env`] does
//! that when `$CREDENTIALS_DIRECTORY` is set.

use super::{JournalEntry, OwnerLock, SecretKey, SecretStore, SharedStore, StoreError};
use crate::files::rules::{Finding, Kind, Owners, Rule};
use crate::secret::Secret;
use async_trait::async_trait;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

/// The environment variable systemd sets to the service's credentials folder.
pub(crate) const ENV: &str = "CREDENTIALS_DIRECTORY";

/// The first part of every credential name this store reads.
pub(crate) const NAME_PREFIX: &str = "looker-agent";

/// No client secret comes near this; a bigger file is not read.
const MAX_LEN: u64 = 64 * 1024;

/// The credential name (file name) that holds the secret of `key`:
/// `looker-agent.PROFILE.CREDENTIAL`.
pub(crate) fn credential_name(key: &SecretKey) -> String {
    format!("{NAME_PREFIX}.{}.{}", key.profile, key.credential)
}

/// Client secrets from a systemd credentials folder (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct CredentialsDirStore {
    dir: PathBuf,
}

impl CredentialsDirStore {
    /// A store reading `dir`.
    pub(crate) fn new(dir: PathBuf) -> Self {
        CredentialsDirStore { dir }
    }

    /// The store for `$CREDENTIALS_DIRECTORY`, when it is set to an absolute path.
    pub(crate) fn from_env() -> Option<Self> {
        let dir = PathBuf::from(std::env::var_os(ENV)?);
        dir.is_absolute().then(|| CredentialsDirStore::new(dir))
    }

    /// The folder read.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The names of the `looker-agent.*` credentials present (for the start-up log).
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.starts_with(&format!("{NAME_PREFIX}.")))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn read(&self, key: &SecretKey) -> Result<Secret, StoreError> {
        let not_found =
            || StoreError::NotFound { profile: key.profile.clone(), credential: key.credential.clone() };
        // Profile and credential names follow `Name`'s rule; anything else
        // (a `/`, a `..`) must not reach the file system.
        for name in [&key.profile, &key.credential] {
            if !crate::name::Name::is_valid(name) {
                return Err(not_found());
            }
        }
        let path = self.dir.join(credential_name(key));
        let nofollow = (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32;
        let io_err = |source| StoreError::Io { path: path.clone(), source };
        let mut file = match OpenOptions::new().read(true).custom_flags(nofollow).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found()),
            Err(e) => return Err(io_err(e)),
        };
        check_dir(
            &self.dir,
            &fs::metadata(&self.dir).map_err(|source| StoreError::Io { path: self.dir.clone(), source })?,
        )?;
        check_file(&path, &file.metadata().map_err(io_err)?)?;
        let mut buf = Zeroizing::new(Vec::new());
        (&mut file).take(MAX_LEN + 1).read_to_end(&mut buf).map_err(io_err)?;
        let corrupt =
            |reason: &str| StoreError::Corrupt { what: path.display().to_string(), reason: reason.into() };
        if buf.len() as u64 > MAX_LEN {
            return Err(corrupt("larger than 64 KiB; a credential holds the client secret only"));
        }
        let mut text: &[u8] = &buf;
        if let Some(t) = text.strip_suffix(b"\n") {
            text = t.strip_suffix(b"\r").unwrap_or(t);
        }
        let text = std::str::from_utf8(text).map_err(|_| corrupt("not UTF-8 text"))?;
        if text.is_empty() {
            return Err(corrupt("empty; it should hold the client secret"));
        }
        if text.contains(['\n', '\0']) {
            return Err(corrupt("more than one line; it should hold the client secret alone"));
        }
        Ok(Secret::new(text))
    }
}

impl CredentialsDirStore {
    fn read_only(&self, key: &SecretKey) -> StoreError {
        StoreError::Unavailable {
            reason: format!(
                "{} is read-only; change the credential {} in the unit's LoadCredential= lines instead",
                self.describe(),
                credential_name(key)
            ),
        }
    }
}

/// systemd writes credentials 0400, owned by the service's user; for a system service
/// with `User=` it may write them root-owned with an ACL for the user, which shows in
/// the group bits. Anything readable or writable by others is refused.
const CREDENTIAL_FILE: Rule = Rule {
    kind: Kind::File,
    owners: Owners::YouOrRoot,
    // Everything but the owner's bits (setuid and sticky too); root's may let the group read.
    refused: 0o7777 & !0o700,
    refused_if_root: 0o7777 & !0o740,
    sticky_ok: false,
};

fn check_file(path: &Path, meta: &fs::Metadata) -> Result<(), StoreError> {
    let insecure = |problem: String| StoreError::Insecure {
        path: path.to_path_buf(),
        problem,
        fix: format!(
            "let systemd provide it with LoadCredential=/LoadCredentialEncrypted=, or `chmod 400 {}`; \
             consider rotating the client secret if others could read it",
            path.display()
        ),
    };
    match CREDENTIAL_FILE.check(meta) {
        Ok(()) => Ok(()),
        Err(Finding::Symlink | Finding::WrongKind { .. }) => Err(insecure("not a regular file".into())),
        Err(Finding::Owner { owner, me }) => {
            Err(insecure(format!("owned by uid {owner}, neither you (uid {me}) nor root")))
        }
        Err(Finding::Mode { mode }) => Err(insecure(format!("accessible to other users (mode {mode:04o})"))),
    }
}

/// The credentials folder: yours or root's, and nobody else can change its entries.
fn check_dir(path: &Path, meta: &fs::Metadata) -> Result<(), StoreError> {
    let insecure = |problem: String| StoreError::Insecure {
        path: path.to_path_buf(),
        problem,
        fix: format!("${ENV} must be a folder only you (or root) can change, as systemd makes it"),
    };
    match Rule::TRUSTED_DIR.check(meta) {
        Ok(()) => Ok(()),
        Err(Finding::Symlink | Finding::WrongKind { .. }) => Err(insecure("not a directory".into())),
        Err(Finding::Owner { owner, me }) => {
            Err(insecure(format!("owned by uid {owner}, neither you (uid {me}) nor root")))
        }
        Err(Finding::Mode { mode }) => Err(insecure(format!("writable by other users (mode {mode:04o})"))),
    }
}

#[async_trait]
impl SecretStore for CredentialsDirStore {
    fn describe(&self) -> String {
        format!("systemd credentials ({})", self.dir.display())
    }

    async fn get(&self, key: &SecretKey, _client_id: &str) -> Result<Secret, StoreError> {
        let (store, key) = (self.clone(), key.clone());
        tokio::task::spawn_blocking(move || store.read(&key)).await.map_err(|e| StoreError::Io {
            path: self.dir.clone(),
            source: io::Error::other(format!("credentials task failed: {e}")),
        })?
    }

    async fn set(&self, key: &SecretKey, _client_id: &str, _secret: &Secret) -> Result<(), StoreError> {
        Err(self.read_only(key))
    }

    async fn delete(&self, key: &SecretKey) -> Result<bool, StoreError> {
        Err(self.read_only(key))
    }

    async fn delete_client_id(&self, key: &SecretKey, _client_id: &str) -> Result<bool, StoreError> {
        Err(self.read_only(key))
    }

    async fn delete_other_client_ids(&self, key: &SecretKey, _keep: &str) -> Result<usize, StoreError> {
        Err(self.read_only(key))
    }
}

/// A read-only source in front of a writable store: reads try `first`, then `rest`;
/// everything else goes to `rest`.
pub(crate) struct LayeredStore {
    first: CredentialsDirStore,
    rest: SharedStore,
}

impl LayeredStore {
    /// `first` in front of `rest`.
    pub(crate) fn new(first: CredentialsDirStore, rest: SharedStore) -> Self {
        LayeredStore { first, rest }
    }
}

#[async_trait]
impl SecretStore for LayeredStore {
    fn describe(&self) -> String {
        format!("{}, then {}", self.first.describe(), self.rest.describe())
    }

    async fn get(&self, key: &SecretKey, client_id: &str) -> Result<Secret, StoreError> {
        match self.first.get(key, client_id).await {
            Err(StoreError::NotFound { .. }) => self.rest.get(key, client_id).await,
            other => other,
        }
    }

    async fn set(&self, key: &SecretKey, client_id: &str, secret: &Secret) -> Result<(), StoreError> {
        self.rest.set(key, client_id, secret).await
    }

    async fn delete(&self, key: &SecretKey) -> Result<bool, StoreError> {
        self.rest.delete(key).await
    }

    async fn delete_client_id(&self, key: &SecretKey, client_id: &str) -> Result<bool, StoreError> {
        self.rest.delete_client_id(key, client_id).await
    }

    async fn delete_other_client_ids(&self, key: &SecretKey, keep: &str) -> Result<usize, StoreError> {
        self.rest.delete_other_client_ids(key, keep).await
    }

    async fn journal_add(&self, entry: &JournalEntry) -> Result<(), StoreError> {
        self.rest.journal_add(entry).await
    }

    async fn journal_remove(&self, id: &str) -> Result<(), StoreError> {
        self.rest.journal_remove(id).await
    }

    async fn journal_list(&self) -> Result<Vec<JournalEntry>, StoreError> {
        self.rest.journal_list().await
    }

    async fn journal_lock(&self, owner: &str) -> Result<OwnerLock, StoreError> {
        self.rest.journal_lock(owner).await
    }

    async fn journal_owner_alive(&self, owner: &str) -> Result<bool, StoreError> {
        self.rest.journal_owner_alive(owner).await
    }

    async fn journal_sweep_owners(&self) -> Result<(), StoreError> {
        self.rest.journal_sweep_owners().await
    }
}

/// Puts `$CREDENTIALS_DIRECTORY` (when set) in front of `store`, logging which
/// credentials it offers; returns the store and its description unchanged otherwise.
pub(crate) fn layer_from_env(store: SharedStore, description: String) -> (SharedStore, String) {
    let Some(creds) = CredentialsDirStore::from_env() else {
        return (store, description);
    };
    let names = creds.names();
    tracing::info!(dir = %creds.dir().display(), credentials = ?names,
        "systemd credentials folder: its looker-agent.PROFILE.CREDENTIAL files take precedence");
    let description = format!("{}, then {description}", creds.describe());
    (Arc::new(LayeredStore::new(creds, store)), description)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, name: &str, body: &str, mode: u32) {
        let p = dir.join(name);
        fs::write(&p, body).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[tokio::test]
    async fn reads_one_secret_per_file() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "looker-agent.prod.reporting", "s3cret\n", 0o400);
        write(d.path(), "looker-agent.prod.crlf", "s3cret\r\n", 0o400);
        write(d.path(), "looker-agent.prod.empty", "\n", 0o400);
        write(d.path(), "looker-agent.prod.two", "a\nb\n", 0o400);
        write(d.path(), "looker-agent.prod.loose", "x", 0o644);
        let s = CredentialsDirStore::new(d.path().to_path_buf());
        assert_eq!(s.get(&SecretKey::new("prod", "reporting"), "any-id").await.unwrap().expose(), "s3cret");
        assert_eq!(s.get(&SecretKey::new("prod", "crlf"), "id").await.unwrap().expose(), "s3cret");
        assert!(matches!(
            s.get(&SecretKey::new("prod", "empty"), "id").await,
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(s.get(&SecretKey::new("prod", "two"), "id").await, Err(StoreError::Corrupt { .. })));
        let e = s.get(&SecretKey::new("prod", "loose"), "id").await.unwrap_err();
        assert!(matches!(e, StoreError::Insecure { .. }), "{e}");
        assert!(matches!(
            s.get(&SecretKey::new("prod", "none"), "id").await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(s.get(&SecretKey::new("..", "x"), "id").await, Err(StoreError::NotFound { .. })));
        assert!(s.set(&SecretKey::new("prod", "x"), "id", &Secret::new("v")).await.is_err());
        assert_eq!(s.names().len(), 5);
    }

    #[tokio::test]
    async fn errors_never_show_the_secret() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "looker-agent.p.c", "hunter2\nhunter3", 0o400);
        let s = CredentialsDirStore::new(d.path().to_path_buf());
        let e = s.get(&SecretKey::new("p", "c"), "id").await.unwrap_err();
        assert!(!format!("{e} {e:?}").contains("hunter"));
    }

    #[tokio::test]
    async fn layered_prefers_credentials_and_falls_back() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "looker-agent.prod.reporting", "from-creds", 0o400);
        let mem = Arc::new(MemoryStore::new());
        mem.set(&SecretKey::new("prod", "reporting"), "id", &Secret::new("from-mem")).await.unwrap();
        mem.set(&SecretKey::new("prod", "other"), "id", &Secret::new("other-mem")).await.unwrap();
        let l = LayeredStore::new(CredentialsDirStore::new(d.path().to_path_buf()), mem.clone());
        assert_eq!(l.get(&SecretKey::new("prod", "reporting"), "id").await.unwrap().expose(), "from-creds");
        assert_eq!(l.get(&SecretKey::new("prod", "other"), "id").await.unwrap().expose(), "other-mem");
        assert!(matches!(
            l.get(&SecretKey::new("prod", "none"), "id").await,
            Err(StoreError::NotFound { .. })
        ));
        l.set(&SecretKey::new("dev", "x"), "id", &Secret::new("v")).await.unwrap();
        assert_eq!(mem.get(&SecretKey::new("dev", "x"), "id").await.unwrap().expose(), "v");
        assert!(l.delete(&SecretKey::new("dev", "x")).await.unwrap());
        assert!(l.describe().starts_with("systemd credentials"));
    }
}
