//! Client secrets: one entry file per client_id of a credential set, and the
//! version 0.1 file beside them (see the parent module's documentation).

use super::super::{SecretKey, StoreError};
use super::checks::{add_again, check_dirs, check_file, open_checked, read_capped, Holds};
use super::layout::{client_id_of_file_name, credential_dir, profile_dir, secrets_dir};
use super::write::{ensure_dirs, remove_if_there, sync_dir, write_atomically};
use super::{io_err, FileStore};
use crate::secret::Secret;
use crate::store::record::parse_json;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// What is written. No `Debug`: it holds the secret.
#[derive(Serialize)]
struct EntryOut<'a> {
    client_id: &'a str,
    client_secret: &'a str,
}

/// What is read back. No `Debug`: it holds the secret.
#[derive(Deserialize)]
struct EntryIn {
    client_id: String,
    client_secret: String,
}

/// Reads one entry file after checking the folders `inner` lead to it through;
/// `None` when the file does not exist.
fn read_entry_file(
    dir: &Path,
    inner: &[PathBuf],
    path: &Path,
    key: &SecretKey,
) -> Result<Option<(String, Secret)>, StoreError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    check_file(path, &meta, Holds::Secret(key))?;
    check_dirs(dir, inner)?;

    let Some(file) = open_checked(path, Holds::Secret(key))? else { return Ok(None) };
    let buf = read_capped(file, path)?;
    let corrupt = |reason: String| StoreError::Corrupt { what: path.display().to_string(), reason };
    let entry: EntryIn = parse_json(&buf, "client_id and client_secret")
        .map_err(|m| corrupt(format!("{m}; store the secret again with `{}`", add_again(key))))?;
    let secret = Secret::new(entry.client_secret);
    if secret.is_empty() {
        return Err(corrupt(format!("the client_secret is empty; store it again with `{}`", add_again(key))));
    }
    Ok(Some((entry.client_id, secret)))
}

pub(super) fn read_entry(dir: &Path, key: &SecretKey, client_id: &str) -> Result<Secret, StoreError> {
    let store = FileStore::new(dir.to_path_buf());
    let (pdir, cdir) = (profile_dir(dir, key)?, credential_dir(dir, key)?);
    let path = store.path_of(key, client_id)?;
    if let Some((stored_id, secret)) =
        read_entry_file(dir, &[secrets_dir(dir), pdir.clone(), cdir], &path, key)?
    {
        if stored_id != client_id {
            return Err(StoreError::Corrupt {
                what: path.display().to_string(),
                reason: format!(
                    "it holds the secret of another client_id than its name says; remove it and store the \
                     secret again with `{}`",
                    add_again(key)
                ),
            });
        }
        return Ok(secret);
    }
    let legacy = store.legacy_path_of(key)?;
    match read_entry_file(dir, &[secrets_dir(dir), pdir], &legacy, key)? {
        Some((stored_id, secret)) if stored_id == client_id => Ok(secret),
        _ => Err(StoreError::NotFound { profile: key.profile.clone(), credential: key.credential.clone() }),
    }
}

pub(super) fn write_entry(
    dir: &Path,
    key: &SecretKey,
    client_id: &str,
    secret: &Secret,
) -> Result<(), StoreError> {
    let (pdir, cdir) = (profile_dir(dir, key)?, credential_dir(dir, key)?);
    let path = FileStore::new(dir.to_path_buf()).path_of(key, client_id)?;
    ensure_dirs(dir, &[secrets_dir(dir), pdir, cdir.clone()])?;

    let body = serde_json::to_vec_pretty(&EntryOut { client_id, client_secret: secret.expose() })
        .map(Zeroizing::new)
        .map_err(|_| StoreError::Corrupt {
            what: path.display().to_string(),
            reason: "cannot encode".into(),
        })?;
    write_atomically(&cdir, &path, &body)?;
    // A 0.1 file for the same client_id is now replaced. One that cannot be read stays:
    // the write itself succeeded, and the stale-item clean-up reports it.
    if let Err(error) = delete_legacy_if(dir, key, |id| id == client_id) {
        tracing::warn!(%error, "could not remove the secret file of looker-agent 0.1");
    }
    Ok(())
}

/// Removes the 0.1 file of `key` when `stale` says so of its client_id; whether it did.
fn delete_legacy_if(dir: &Path, key: &SecretKey, stale: impl Fn(&str) -> bool) -> Result<bool, StoreError> {
    let pdir = profile_dir(dir, key)?;
    let legacy = FileStore::new(dir.to_path_buf()).legacy_path_of(key)?;
    match read_entry_file(dir, &[secrets_dir(dir), pdir.clone()], &legacy, key)? {
        Some((id, _)) if stale(&id) => remove_if_there(&legacy, &pdir),
        _ => Ok(false),
    }
}

/// Which secrets of a credential set a delete removes.
#[derive(Clone, Copy)]
pub(super) enum Which<'a> {
    /// Every one, readable or not.
    All,
    /// The one of this client_id.
    Only(&'a str),
    /// Every one but the one of this client_id.
    AllBut(&'a str),
}

impl Which<'_> {
    fn doomed(self, client_id: &str) -> bool {
        match self {
            Which::All => true,
            Which::Only(id) => client_id == id,
            Which::AllBut(id) => client_id != id,
        }
    }
}

/// Removes the secrets of `key` that `which` selects (in both layouts), then the
/// credential's and profile's folders if that left them empty; how many.
pub(super) fn delete_entries(dir: &Path, key: &SecretKey, which: Which<'_>) -> Result<usize, StoreError> {
    let (pdir, cdir) = (profile_dir(dir, key)?, credential_dir(dir, key)?);
    let mut deleted = 0;
    match fs::read_dir(&cdir) {
        Ok(listing) => {
            for item in listing {
                let item = item.map_err(io_err(&cdir))?;
                let name = item.file_name();
                let Some(id) = name.to_str().and_then(client_id_of_file_name) else { continue };
                if which.doomed(&id) && remove_if_there(&item.path(), &cdir)? {
                    deleted += 1;
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&cdir)(e)),
    }
    let legacy = FileStore::new(dir.to_path_buf()).legacy_path_of(key)?;
    let legacy_gone = match which {
        // Even one that cannot be read: the whole credential set goes.
        Which::All => remove_if_there(&legacy, &pdir)?,
        _ if fs::symlink_metadata(&legacy).is_ok() => delete_legacy_if(dir, key, |id| which.doomed(id))?,
        _ => false,
    };
    if legacy_gone {
        deleted += 1;
    }
    // Drop folders once their last secret is gone; failure (not empty, absent) is fine.
    if fs::remove_dir(&cdir).is_ok() {
        sync_dir(&pdir)?;
    }
    if fs::remove_dir(&pdir).is_ok() {
        sync_dir(&secrets_dir(dir))?;
    }
    Ok(deleted)
}
