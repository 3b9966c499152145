//! The token journal: one entry file per access token the agent holds, written
//! under a temporary name and renamed, so that a restart after a crash can revoke it.

use super::super::{JournalEntry, StoreError};
use super::checks::{check_dirs, open_checked, read_capped, Holds};
use super::layout::{journal_dir, valid_journal_id, JOURNAL_TMP_PREFIX, STALE_TMP_AGE};
use super::write::{ensure_dirs, is_older_than, sync_dir};
use super::{io_err, FileStore};
use crate::files::atomic::AtomicFile;
use crate::store::record::{parse_json, JournalToken};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::Path;
use zeroize::Zeroizing;

/// A journal entry as written. No `Debug`: it holds the token.
#[derive(Serialize)]
struct JournalOut<'a> {
    profile: &'a str,
    credential: &'a str,
    base_url: &'a str,
    token: &'a str,
    expires_at_unix: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<&'a str>,
}

/// A journal entry as read back (its id is the file's name). No `Debug`: it holds the token.
#[derive(Deserialize)]
struct JournalIn {
    profile: String,
    credential: String,
    base_url: String,
    token: String,
    expires_at_unix: i64,
    /// Absent in entries of versions before owners existed.
    #[serde(default)]
    owner: Option<String>,
}

pub(super) fn write_journal(dir: &Path, entry: &JournalEntry) -> Result<(), StoreError> {
    let path = FileStore::new(dir.to_path_buf()).journal_path_of(&entry.id)?;
    let jdir = journal_dir(dir);
    ensure_dirs(dir, std::slice::from_ref(&jdir))?;
    let body = serde_json::to_vec_pretty(&JournalOut {
        profile: &entry.profile,
        credential: &entry.credential,
        base_url: &entry.base_url,
        token: entry.token.expose(),
        expires_at_unix: entry.expires_at_unix,
        owner: entry.owner.as_deref(),
    })
    .map(Zeroizing::new)
    .map_err(|_| StoreError::Corrupt { what: path.display().to_string(), reason: "cannot encode".into() })?;
    // Written under a temporary name that carries the id, then renamed: a crash
    // before the rename leaves a complete entry that `list_journal` still finds and
    // `remove_journal` still removes, so its token is revoked all the same.
    let tmp = jdir.join(format!("{JOURNAL_TMP_PREFIX}{}", entry.id));
    let written = AtomicFile::named(&tmp).and_then(|mut file| {
        file.write_synced(&body)?;
        file.rename_to(&path)
    });
    written.map_err(io_err(&path))?.sync().map_err(io_err(&jdir))
}

pub(super) fn remove_journal(dir: &Path, id: &str) -> Result<(), StoreError> {
    let path = FileStore::new(dir.to_path_buf()).journal_path_of(id)?;
    let tmp = journal_dir(dir).join(format!("{JOURNAL_TMP_PREFIX}{id}"));
    let mut removed = false;
    for p in [&path, &tmp] {
        match fs::remove_file(p) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(p)(e)),
        }
    }
    if removed {
        sync_dir(&journal_dir(dir))?;
    }
    Ok(())
}

/// Every trustworthy, readable entry; the others are skipped with a warning (never
/// their content), so one bad file cannot stop the revocation of the rest.
pub(super) fn list_journal(dir: &Path) -> Result<Vec<JournalEntry>, StoreError> {
    let jdir = journal_dir(dir);
    let listing = match fs::read_dir(&jdir) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&jdir)(e)),
    };
    // A folder others could write into could hold entries anyone planted: trust none.
    check_dirs(dir, std::slice::from_ref(&jdir))?;

    let mut entries = Vec::new();
    for item in listing {
        let item = item.map_err(io_err(&jdir))?;
        let name = item.file_name();
        let path = item.path();
        let name = name.to_str().unwrap_or("");
        let entry_id = name.strip_suffix(".json").filter(|id| valid_journal_id(id));
        // A temporary file is an entry being written, or one whose rename a crash cut
        // off (older versions named them `.tmp-<random>`: the same rules apply).
        let tmp_id = name.strip_prefix(JOURNAL_TMP_PREFIX).filter(|id| valid_journal_id(id));
        let Some(id) = entry_id.or(tmp_id) else {
            if !name.starts_with('.') {
                tracing::warn!(path = %path.display(), "ignoring a file in the token journal folder that is not an entry");
            }
            continue;
        };
        match read_journal_entry(&path, id) {
            Ok(Some(entry)) => entries.push(entry),
            Ok(None) => {} // removed since the listing
            Err(_) if tmp_id.is_some() => {
                // Incomplete: a write in progress, or one a crash cut short mid-way, whose
                // token cannot be revoked (it is not whole). Only the latter is removed.
                if is_older_than(&item, STALE_TMP_AGE) {
                    let _ = fs::remove_file(&path);
                }
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "skipping a token journal entry");
            }
        }
    }
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    // A listing taken during a rename may show an entry under both names.
    entries.dedup_by(|a, b| a.id == b.id);
    Ok(entries)
}

fn read_journal_entry(path: &Path, id: &str) -> Result<Option<JournalEntry>, StoreError> {
    let Some(file) = open_checked(path, Holds::Token)? else { return Ok(None) };
    let buf = read_capped(file, path)?;
    let corrupt = |reason: String| StoreError::Corrupt { what: path.display().to_string(), reason };
    let entry: JournalIn =
        parse_json(&buf, "profile, credential, base_url, token and expires_at_unix").map_err(corrupt)?;
    let token =
        JournalToken { base_url: entry.base_url, token: entry.token, expires_at_unix: entry.expires_at_unix };
    token.into_entry(id.to_owned(), entry.profile, entry.credential, entry.owner).map(Some).map_err(corrupt)
}
