//! Client secrets as 0600 files under `$XDG_DATA_HOME/looker-agent/`.
//!
//! Layout, every folder 0700 and every file 0600:
//!
//! ```text
//! looker-agent/
//!   secrets/
//!     <profile>/
//!       <credential>.d/
//!         <client_id>.json    {"client_id": "...", "client_secret": "..."}
//!   journal/
//!     <id>.json               {"profile": "...", "credential": "...", "base_url": "...",
//!                              "token": "...", "expires_at_unix": 1700000000,
//!                              "owner": "<agent instance>"}
//!     .tmp-<id>               the same, while it is being written
//!   owners/
//!     <owner>.lock            flock()ed by the running agent instance <owner>
//! ```
//!
//! A credential set can hold secrets for several client_ids at once, one file each,
//! only while `lookerctl credential add` replaces one client_id with another: the new
//! secret is written, the config saved, and only then the old one removed (or, if
//! the config could not be saved, the new one), so the credential set the config
//! names keeps working whatever fails. A read asks for the config's client_id and
//! gets that file or nothing. In a file name, every byte of the client_id other than
//! `[A-Za-z0-9_-]` is written `%XX`.
//!
//! Version 0.1 kept one file per credential set, `secrets/<profile>/<credential>.json`
//! (same content). Such a file is still read when its client_id is the one asked
//! for, and removed once a secret for the same client_id is written in the new
//! layout, or once the config names another client_id.
//!
//! The token journal is the one place where access tokens rest on disk, in plain
//! text, and only with this store: each file lives from the moment the agent obtains a
//! token until it is revoked or expires, so a restart after a crash can revoke it.
//! A journal entry is written under `.tmp-<id>` and renamed to `<id>.json`; an agent
//! killed between the two leaves a complete entry under the temporary name, which the
//! journal still lists (and removes), so the token it names is revoked all the same.
//!
//! Each entry names its owner, the agent instance that obtained the token. A running
//! agent holds an exclusive `flock` on `owners/<owner>.lock` for its whole life (the
//! file is locked before it gets its name, so no one sees it unlocked); the kernel
//! drops the lock however the agent dies. Another agent on the same store (another
//! `--socket`) revokes only entries whose owner's lock is free or gone. The locks sit
//! in the store's own folder because that folder is what such agents share.
//!
//! Writes are atomic: a temporary file in the same folder, written, synced, renamed
//! over the old one, then the folder synced, so a crash leaves the old or the new
//! secret, never half of one. Reads refuse, like ssh refuses a loose private key, a
//! file that is a symbolic link or not a regular file, belongs to another user, or
//! grants any permission to group or others, and say how to fix it.

mod checks;
mod journal;
mod layout;
mod owners;
mod secrets;
mod write;

use super::{JournalEntry, OwnerLock, SecretKey, SecretStore, StoreError};
use crate::secret::Secret;
use async_trait::async_trait;
use journal::{list_journal, remove_journal, write_journal};
use layout::{checked_journal_id, checked_name, credential_dir, entry_file_name, journal_dir, profile_dir};
use owners::{lock_owner, owner_alive, sweep_owners};
use secrets::{delete_entries, read_entry, write_entry, Which};
use std::io;
use std::path::{Path, PathBuf};

/// Secrets in 0600 files, one per credential set (see the module documentation).
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// A store rooted at `dir` (normally `$XDG_DATA_HOME/looker-agent/`). Nothing is
    /// created until the first secret is written.
    pub fn new(dir: PathBuf) -> Self {
        FileStore { dir }
    }

    /// The folder the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds, or would hold, the secret of `key` for `client_id`. Fails
    /// for names that break [`crate::name::Name`]'s rule, so no name can leave the
    /// store's folder, and for a client_id too long for a file name.
    pub fn path_of(&self, key: &SecretKey, client_id: &str) -> Result<PathBuf, StoreError> {
        Ok(credential_dir(&self.dir, key)?.join(entry_file_name(&self.dir, client_id)?))
    }

    /// The file version 0.1 kept the secret of `key` in (see the module documentation).
    pub fn legacy_path_of(&self, key: &SecretKey) -> Result<PathBuf, StoreError> {
        Ok(profile_dir(&self.dir, key)?
            .join(format!("{}.json", checked_name(&self.dir, "credential", &key.credential)?)))
    }

    /// The file that holds, or would hold, the journal entry `id`. Fails for ids that
    /// are not `[A-Za-z0-9_-]{1,64}`, so no id can leave the journal's folder.
    pub fn journal_path_of(&self, id: &str) -> Result<PathBuf, StoreError> {
        Ok(journal_dir(&self.dir).join(format!("{}.json", checked_journal_id(&self.dir, id)?)))
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    {
        tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Io {
            path: self.dir.clone(),
            source: io::Error::other(format!("file store task failed: {e}")),
        })?
    }
}

#[async_trait]
impl SecretStore for FileStore {
    fn describe(&self) -> String {
        format!("file ({})", self.dir.display())
    }

    async fn get(&self, key: &SecretKey, client_id: &str) -> Result<Secret, StoreError> {
        let (dir, key, client_id) = (self.dir.clone(), key.clone(), client_id.to_owned());
        self.blocking(move || read_entry(&dir, &key, &client_id)).await
    }

    async fn set(&self, key: &SecretKey, client_id: &str, secret: &Secret) -> Result<(), StoreError> {
        let (dir, key, client_id, secret) =
            (self.dir.clone(), key.clone(), client_id.to_owned(), secret.clone());
        self.blocking(move || write_entry(&dir, &key, &client_id, &secret)).await
    }

    async fn delete(&self, key: &SecretKey) -> Result<bool, StoreError> {
        let (dir, key) = (self.dir.clone(), key.clone());
        self.blocking(move || delete_entries(&dir, &key, Which::All).map(|n| n > 0)).await
    }

    async fn delete_client_id(&self, key: &SecretKey, client_id: &str) -> Result<bool, StoreError> {
        let (dir, key, client_id) = (self.dir.clone(), key.clone(), client_id.to_owned());
        self.blocking(move || delete_entries(&dir, &key, Which::Only(&client_id)).map(|n| n > 0)).await
    }

    async fn delete_other_client_ids(&self, key: &SecretKey, keep: &str) -> Result<usize, StoreError> {
        let (dir, key, keep) = (self.dir.clone(), key.clone(), keep.to_owned());
        self.blocking(move || delete_entries(&dir, &key, Which::AllBut(&keep))).await
    }

    async fn journal_add(&self, entry: &JournalEntry) -> Result<(), StoreError> {
        let (dir, entry) = (self.dir.clone(), entry.clone());
        self.blocking(move || write_journal(&dir, &entry)).await
    }

    async fn journal_remove(&self, id: &str) -> Result<(), StoreError> {
        let (dir, id) = (self.dir.clone(), id.to_owned());
        self.blocking(move || remove_journal(&dir, &id)).await
    }

    async fn journal_list(&self) -> Result<Vec<JournalEntry>, StoreError> {
        let dir = self.dir.clone();
        self.blocking(move || list_journal(&dir)).await
    }

    async fn journal_lock(&self, owner: &str) -> Result<OwnerLock, StoreError> {
        let (dir, id) = (self.dir.clone(), owner.to_owned());
        let held = self.blocking(move || lock_owner(&dir, &id)).await?;
        Ok(OwnerLock::new(owner, Box::new(held)))
    }

    async fn journal_owner_alive(&self, owner: &str) -> Result<bool, StoreError> {
        let (dir, owner) = (self.dir.clone(), owner.to_owned());
        self.blocking(move || owner_alive(&dir, &owner)).await
    }

    async fn journal_sweep_owners(&self) -> Result<(), StoreError> {
        let dir = self.dir.clone();
        self.blocking(move || sweep_owners(&dir)).await
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_are_refused() {
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "-x", "a\0b", "é"] {
            assert!(!crate::name::Name::is_valid(bad), "{bad:?}");
        }
        for good in ["prod", "a", "A.b_c-d", "0"] {
            assert!(crate::name::Name::is_valid(good), "{good:?}");
        }
        let s = FileStore::new("/x".into());
        assert!(s.path_of(&SecretKey::new("..", "c"), "id").is_err());
        assert!(s.path_of(&SecretKey::new("p", "../../etc/passwd"), "id").is_err());
        assert!(s.path_of(&SecretKey::new("p", "c"), "").is_err());
        assert_eq!(
            s.path_of(&SecretKey::new("p", "c"), "id").unwrap(),
            Path::new("/x/secrets/p/c.d/id.json")
        );
        assert_eq!(s.legacy_path_of(&SecretKey::new("p", "c")).unwrap(), Path::new("/x/secrets/p/c.json"));
    }
}
