//! Changing the store on disk: private folders, atomic writes and removals, each
//! followed by a sync of its folder so that a crash leaves the old state or the new.

use super::super::StoreError;
use super::checks::check_dir;
use super::io_err;
use crate::files::atomic::AtomicFile;
use crate::files::private_dir::{self, Created};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Creates `path` as a 0700 folder, or checks and tightens an existing one we own.
fn ensure_private_dir(path: &Path, follow_symlink: bool) -> Result<(), StoreError> {
    match private_dir::create(path, follow_symlink).map_err(io_err(path))? {
        Created::New => Ok(()),
        Created::Existing(meta) => check_dir(path, &meta),
    }
}

pub(super) fn sync_dir(path: &Path) -> Result<(), StoreError> {
    private_dir::sync_dir(path).map_err(io_err(path))
}

/// Creates the store's folder (following a symlink to it) and the private folders
/// `inner` inside it, each 0700.
pub(super) fn ensure_dirs(dir: &Path, inner: &[PathBuf]) -> Result<(), StoreError> {
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    ensure_private_dir(dir, true)?;
    for d in inner {
        ensure_private_dir(d, false)?;
    }
    Ok(())
}

/// A full file system said once, with what to do about it.
fn explain_write(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => io::Error::new(
            e.kind(),
            "no space left on its file system (or over quota); free some space and run the command again",
        ),
        _ => e,
    }
}

/// [`explain_write`] for tempfile's errors, whose messages add the temporary path.
fn explain_create(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => explain_write(e),
        kind => io::Error::new(kind, format!("cannot create a temporary file in it ({kind})")),
    }
}

/// Writes `body` to `path` (in the private folder `folder`) atomically, mode 0600.
pub(super) fn write_atomically(folder: &Path, path: &Path, body: &[u8]) -> Result<(), StoreError> {
    // Names never start with '.', so a temporary file cannot collide with an entry.
    let mut tmp =
        AtomicFile::in_folder(folder, ".tmp-", "").map_err(|e| io_err(folder)(explain_create(e)))?;
    tmp.write_synced(body).map_err(|e| io_err(path)(explain_write(e)))?;
    tmp.rename_to(path).map_err(io_err(path))?.sync().map_err(io_err(folder))
}

/// Removes a file (then syncs its folder); `Ok(false)` when it was not there.
pub(super) fn remove_if_there(path: &Path, folder: &Path) -> Result<bool, StoreError> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(folder).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(path)(e)),
    }
}

pub(super) fn is_older_than(item: &fs::DirEntry, age: std::time::Duration) -> bool {
    item.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|a| a > age)
}
