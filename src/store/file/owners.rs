//! Owner locks: a running agent holds an exclusive `flock` on
//! `owners/<owner>.lock` for its whole life, so that another agent on the same store
//! revokes only the journal entries of agents that are gone.

use super::super::{valid_owner, StoreError};
use super::checks::check_dirs;
use super::io_err;
use super::layout::{owner_lock_path, owners_dir, STALE_TMP_AGE};
use super::write::{ensure_dirs, is_older_than, sync_dir};
use crate::files::lock;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// A running agent's owner lock: the locked file, removed when the agent exits cleanly.
pub(super) struct FileOwner {
    path: PathBuf,
    _file: File,
}

impl Drop for FileOwner {
    fn drop(&mut self) {
        // Removed while still locked, so nobody can take it for a dead owner's and
        // find it locked. Entries left behind (failed revocations) then have no
        // owner lock at all: the next start revokes them.
        let _ = fs::remove_file(&self.path);
    }
}

/// Creates and locks `owners/<owner>.lock`. The file is locked under a temporary
/// name and then renamed, so nobody ever sees it under its real name unlocked.
pub(super) fn lock_owner(dir: &Path, owner: &str) -> Result<FileOwner, StoreError> {
    let path = owner_lock_path(dir, owner)?;
    let odir = owners_dir(dir);
    ensure_dirs(dir, std::slice::from_ref(&odir))?;
    let fresh = odir.join(format!(".new-{owner}"));
    let file = lock::create_new(&fresh).map_err(io_err(&fresh))?;
    let locked = lock::try_exclusive(&file)
        .and_then(|got| if got { Ok(()) } else { Err(io::Error::from_raw_os_error(libc::EWOULDBLOCK)) })
        .and_then(|()| fs::rename(&fresh, &path));
    if let Err(e) = locked {
        let _ = fs::remove_file(&fresh);
        return Err(io_err(&path)(e));
    }
    sync_dir(&odir)?;
    Ok(FileOwner { path, _file: file })
}

/// Whether `owner` holds its lock. A missing lock file means a dead owner (it exited,
/// or a sweep removed its free lock); so does a lock we can share.
pub(super) fn owner_alive(dir: &Path, owner: &str) -> Result<bool, StoreError> {
    if !valid_owner(owner) {
        return Ok(false);
    }
    let path = owner_lock_path(dir, owner)?;
    let file = match lock::open_existing(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err(&path)(e)),
    };
    check_dirs(dir, std::slice::from_ref(&owners_dir(dir)))?;
    lock::held_by_other(&file).map_err(io_err(&path))
}

/// Removes the lock files of dead owners (and locks a crash left half made).
pub(super) fn sweep_owners(dir: &Path) -> Result<(), StoreError> {
    let odir = owners_dir(dir);
    let listing = match fs::read_dir(&odir) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(&odir)(e)),
    };
    check_dirs(dir, std::slice::from_ref(&odir))?;
    for item in listing {
        let item = item.map_err(io_err(&odir))?;
        let path = item.path();
        let name = item.file_name();
        let name = name.to_str().unwrap_or("");
        if name.strip_suffix(".lock").is_some_and(valid_owner) {
            let Ok(file) = lock::open_existing(&path) else { continue };
            // Removed while we hold it: its owner is gone, and nobody else can hold it now.
            if lock::try_exclusive(&file).unwrap_or(false) {
                let _ = fs::remove_file(&path);
            }
        } else if name.starts_with(".new-") && is_older_than(&item, STALE_TMP_AGE) {
            let _ = fs::remove_file(&path);
        }
    }
    Ok(())
}
