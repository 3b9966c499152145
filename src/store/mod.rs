//! Where client secrets live: one trait, several backends.
//!
//! - [`secret_service`]: the freedesktop Secret Service (gnome-keyring, KWallet...);
//! - [`file`](mod@file): 0600 files under `$XDG_DATA_HOME/looker-agent/`;
//! - [`memory`]: for tests and `--dev`;
//! - [`credentials_dir`]: read-only systemd credentials (`$CREDENTIALS_DIRECTORY`), layered
//!   in front of the chosen store by the daemon.
//!
//! [`open`] turns a [`StoreChoice`] into a store, `auto` included.

pub(crate) mod credentials_dir;
pub mod file;
pub mod memory;
mod record;
pub mod secret_service;

use crate::secret::Secret;
use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::Arc;

/// Which backend to use, as named by `--secret-store` / `LOOKER_AGENT_SECRET_STORE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreChoice {
    /// The Secret Service when the session bus offers one, else the file store.
    Auto,
    /// The freedesktop Secret Service.
    SecretService,
    /// 0600 files under `$XDG_DATA_HOME/looker-agent/`.
    File,
    /// Process memory (lost at exit).
    Memory,
}

impl std::fmt::Display for StoreChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoreChoice::Auto => "auto",
            StoreChoice::SecretService => "secret-service",
            StoreChoice::File => "file",
            StoreChoice::Memory => "memory",
        })
    }
}

/// Identifies a credential set in a store; with a client_id, one stored client secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretKey {
    /// Profile name.
    pub profile: String,
    /// Credential set name.
    pub credential: String,
}

impl SecretKey {
    /// Builds a key.
    pub fn new(profile: impl Into<String>, credential: impl Into<String>) -> Self {
        SecretKey { profile: profile.into(), credential: credential.into() }
    }
}

/// What went wrong in a secret store. The variants drive what the user is told.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No secret stored for this credential set.
    #[error("no client secret stored for credential {credential:?} of profile {profile:?}: add it with `lookerctl credential add {profile} {credential} --client-id ID`")]
    NotFound {
        /// Profile name.
        profile: String,
        /// Credential set name.
        credential: String,
    },
    /// The keyring collection is locked and could not be unlocked.
    #[error("the Secret Service collection {collection:?} is locked: unlock it (e.g. log in to the desktop, or `gnome-keyring-daemon --unlock`) and try again")]
    Locked {
        /// Collection label or path.
        collection: String,
    },
    /// The Secret Service is not reachable or misbehaved.
    #[error("the Secret Service is unavailable: {reason}; start a provider such as gnome-keyring, or choose `--secret-store file`")]
    Unavailable {
        /// What failed.
        reason: String,
    },
    /// A secret file's mode, owner or type is too loose to trust.
    #[error("refusing {path}: it is {problem}; {fix}")]
    Insecure {
        /// The file.
        path: PathBuf,
        /// What is wrong (mode, owner, not a regular file).
        problem: String,
        /// What the user should do about it, e.g. run `chmod 600` on the file.
        fix: String,
    },
    /// Reading or writing a secret file failed.
    #[error("secret file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The store holds something it cannot read back.
    #[error("corrupt secret store entry {what}: {reason}")]
    Corrupt {
        /// Which entry.
        what: String,
        /// Why it is unreadable.
        reason: String,
    },
}

/// A token the agent obtained, journaled in the secret store until it is revoked
/// or expires, so a restart after a crash can revoke what the dead agent held.
#[derive(Debug, Clone)]
pub struct JournalEntry {
    /// Unique id of the entry (random, not derived from the token).
    pub id: String,
    /// Profile the token belongs to.
    pub profile: String,
    /// Credential set that obtained it.
    pub credential: String,
    /// Where to revoke it (`{base_url}/api/4.0/logout`).
    pub base_url: String,
    /// The token itself (needed to revoke it).
    pub token: Secret,
    /// Unix time after which Looker no longer accepts it (nothing to revoke then).
    pub expires_at_unix: i64,
    /// The agent instance that obtained it ([`OwnerLock`]). Only entries whose owner
    /// is gone may be revoked by another agent; `None` (entries of versions before
    /// owners existed) counts as gone.
    pub owner: Option<String>,
}

/// Proof that an agent instance is alive, held for its whole life: while it is held,
/// other agents sharing the store leave the instance's journal entries alone.
/// The lock ends when it is dropped or, at the latest, when the process ends,
/// however it ends (the kernel drops the `flock`, the bus drops the name).
pub struct OwnerLock {
    owner: String,
    _held: Option<Box<dyn Send + Sync>>,
}

impl OwnerLock {
    /// A lock for `owner` that lasts as long as `held` (a locked file, a bus connection).
    pub(crate) fn new(owner: &str, held: Box<dyn Send + Sync>) -> Self {
        OwnerLock { owner: owner.to_string(), _held: Some(held) }
    }

    /// For stores no other agent can share (process memory): nothing to hold.
    pub(crate) fn unshared(owner: &str) -> Self {
        OwnerLock { owner: owner.to_string(), _held: None }
    }

    /// The instance it marks alive.
    pub fn owner(&self) -> &str {
        &self.owner
    }
}

impl std::fmt::Debug for OwnerLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerLock").field("owner", &self.owner).finish_non_exhaustive()
    }
}

/// Owner ids become file and bus names: `[A-Za-z0-9]{1,64}` only.
pub(crate) fn valid_owner(owner: &str) -> bool {
    (1..=64).contains(&owner.len()) && owner.bytes().all(|c| c.is_ascii_alphanumeric())
}

/// A place for client secrets. Implementations must never log secret values.
#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// A short description for logs and `lookerctl status` (e.g. `secret-service (gnome-keyring)`).
    fn describe(&self) -> String;

    /// Reads the client secret stored for `client_id` in a credential set.
    ///
    /// Only an item stored for that very client_id answers: after a failed or
    /// interrupted `credential add`, a secret stored for another client_id must not be
    /// sent with the configured one. [`StoreError::NotFound`] when there is none.
    async fn get(&self, key: &SecretKey, client_id: &str) -> Result<Secret, StoreError>;

    /// Stores (or replaces) the client secret of a credential set for `client_id`.
    ///
    /// Replaces only the item stored for that client_id; items of other client_ids
    /// stay until [`delete_other_client_ids`](Self::delete_other_client_ids) removes
    /// them once the config names the new one (or [`delete_client_id`](Self::delete_client_id)
    /// removes the new one when saving the config fails).
    async fn set(&self, key: &SecretKey, client_id: &str, secret: &Secret) -> Result<(), StoreError>;

    /// Deletes every stored secret of a credential set, whatever its client_id;
    /// `Ok(false)` when there was none.
    async fn delete(&self, key: &SecretKey) -> Result<bool, StoreError>;

    /// Deletes the secret stored for `client_id` only; `Ok(false)` when there was none.
    async fn delete_client_id(&self, key: &SecretKey, client_id: &str) -> Result<bool, StoreError>;

    /// Deletes the secrets of a credential set stored for any client_id but `keep`;
    /// returns how many were deleted.
    async fn delete_other_client_ids(&self, key: &SecretKey, keep: &str) -> Result<usize, StoreError>;

    /// Records a token the agent obtained (crash-safe revocation).
    async fn journal_add(&self, entry: &JournalEntry) -> Result<(), StoreError> {
        let _ = entry;
        Err(StoreError::Unavailable { reason: format!("{} keeps no token journal", self.describe()) })
    }

    /// Forgets a journaled token (revoked or expired). Unknown ids are not an error.
    async fn journal_remove(&self, id: &str) -> Result<(), StoreError> {
        let _ = id;
        Ok(())
    }

    /// Every journaled token, e.g. those a crashed agent left behind.
    async fn journal_list(&self) -> Result<Vec<JournalEntry>, StoreError> {
        Ok(Vec::new())
    }

    /// Marks the agent instance `owner` alive for as long as the returned lock is
    /// kept, where every agent sharing this store can see it. Taken once at start,
    /// before the instance journals anything.
    async fn journal_lock(&self, owner: &str) -> Result<OwnerLock, StoreError> {
        Ok(OwnerLock::unshared(owner))
    }

    /// Whether the agent instance `owner` is alive (holds its [`OwnerLock`]).
    async fn journal_owner_alive(&self, owner: &str) -> Result<bool, StoreError> {
        let _ = owner;
        Ok(false)
    }

    /// Removes what dead owners left besides their entries (lock files).
    async fn journal_sweep_owners(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A shared handle to a store.
pub(crate) type SharedStore = Arc<dyn SecretStore>;

/// Opens the store a [`StoreChoice`] names. `data_dir` is where the file store keeps
/// its files. For `auto`, the returned string says which one was chosen and why.
pub(crate) async fn open(
    choice: StoreChoice,
    data_dir: PathBuf,
) -> Result<(SharedStore, String), StoreError> {
    match choice {
        StoreChoice::Memory => Ok((Arc::new(memory::MemoryStore::new()), "memory".into())),
        StoreChoice::File => {
            let s = file::FileStore::new(data_dir);
            let d = s.describe();
            Ok((Arc::new(s), d))
        }
        StoreChoice::SecretService => {
            let s = secret_service::SecretServiceStore::connect().await?;
            let d = s.describe();
            Ok((Arc::new(s), d))
        }
        StoreChoice::Auto => match secret_service::SecretServiceStore::connect().await {
            Ok(s) => {
                let d = format!("{} (auto: the session bus offers a Secret Service)", s.describe());
                Ok((Arc::new(s), d))
            }
            Err(e) => {
                let s = file::FileStore::new(data_dir);
                let d = format!("{} (auto: no Secret Service: {e})", s.describe());
                Ok((Arc::new(s), d))
            }
        },
    }
}
