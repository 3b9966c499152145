//! Where things live in the file store: the folders and file names of secrets,
//! journal entries and owner locks, every name checked so that none can leave its
//! folder.

use super::super::{valid_owner, SecretKey, StoreError};
use std::io;
use std::path::{Path, PathBuf};

/// A name that cannot become a file name in `folder`, and why.
fn refused(folder: PathBuf, why: String) -> StoreError {
    StoreError::Io { path: folder, source: io::Error::new(io::ErrorKind::InvalidInput, why) }
}

/// Re-checks a name even though config validation already did: it becomes a path.
pub(super) fn checked_name<'a>(dir: &Path, what: &'static str, name: &'a str) -> Result<&'a str, StoreError> {
    crate::name::Name::check(what, name).map_err(|e| refused(dir.to_path_buf(), e.to_string()))
}

pub(super) fn valid_journal_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
}

/// Journal ids become file names: nothing but `[A-Za-z0-9_-]{1,64}`.
pub(super) fn checked_journal_id<'a>(dir: &Path, id: &'a str) -> Result<&'a str, StoreError> {
    valid_journal_id(id).then_some(id).ok_or_else(|| {
        refused(
            journal_dir(dir),
            format!("invalid token journal id {id:?}: use 1 to 64 letters, digits, '_' and '-'"),
        )
    })
}

pub(super) fn journal_dir(dir: &Path) -> PathBuf {
    dir.join("journal")
}

/// Where running agents keep their owner locks.
pub(super) fn owners_dir(dir: &Path) -> PathBuf {
    dir.join("owners")
}

/// A journal entry's name while it is being written (ids never start with '.').
pub(super) const JOURNAL_TMP_PREFIX: &str = ".tmp-";

/// Temporary files older than this were cut short by a crash (a live write renames
/// its file within milliseconds).
pub(super) const STALE_TMP_AGE: std::time::Duration = std::time::Duration::from_secs(600);

pub(super) fn secrets_dir(dir: &Path) -> PathBuf {
    dir.join("secrets")
}

pub(super) fn profile_dir(dir: &Path, key: &SecretKey) -> Result<PathBuf, StoreError> {
    Ok(secrets_dir(dir).join(checked_name(dir, "profile", &key.profile)?))
}

/// `<credential>.d`: cannot collide with a 0.1 `<credential>.json` file of any name.
pub(super) fn credential_dir(dir: &Path, key: &SecretKey) -> Result<PathBuf, StoreError> {
    Ok(profile_dir(dir, key)?.join(format!("{}.d", checked_name(dir, "credential", &key.credential)?)))
}

/// Longest encoded client_id in a file name (most file systems allow 255 bytes).
const MAX_CLIENT_ID_FILE_NAME: usize = 200;

/// `<client_id>.json`, every byte but `[A-Za-z0-9_-]` as `%XX`: never `.`-led, never a path.
pub(super) fn entry_file_name(dir: &Path, client_id: &str) -> Result<String, StoreError> {
    let mut name = String::with_capacity(client_id.len() + 5);
    for b in client_id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') {
            name.push(char::from(b));
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    if name.is_empty() || name.len() > MAX_CLIENT_ID_FILE_NAME {
        let why = format!(
            "a client_id of {} bytes cannot name a secret file; check the client_id",
            client_id.len()
        );
        return Err(refused(dir.to_path_buf(), why));
    }
    name.push_str(".json");
    Ok(name)
}

/// The client_id an entry file name stands for; `None` for anything else (temporary files).
pub(super) fn client_id_of_file_name(name: &str) -> Option<String> {
    let stem = name.strip_suffix(".json")?;
    let mut out = Vec::with_capacity(stem.len());
    let mut bytes = stem.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') => out.push(b),
            _ => return None,
        }
    }
    String::from_utf8(out).ok().filter(|s| !s.is_empty())
}

fn checked_owner<'a>(dir: &Path, owner: &'a str) -> Result<&'a str, StoreError> {
    valid_owner(owner)
        .then_some(owner)
        .ok_or_else(|| refused(owners_dir(dir), format!("invalid agent instance id {owner:?}")))
}

pub(super) fn owner_lock_path(dir: &Path, owner: &str) -> Result<PathBuf, StoreError> {
    Ok(owners_dir(dir).join(format!("{}.lock", checked_owner(dir, owner)?)))
}

#[cfg(test)]
mod tests {
    use super::super::FileStore;
    use super::*;

    #[test]
    fn client_ids_become_file_names_and_back() {
        for id in ["AbC123", "a.b", "../x", "a/b", "%41", "é", "-", "x".repeat(40).as_str()] {
            let name = entry_file_name(Path::new("/x"), id).unwrap();
            assert!(!name.starts_with('.') && !name.contains('/'), "{name}");
            assert_eq!(client_id_of_file_name(&name).as_deref(), Some(id), "{name}");
        }
        assert_eq!(entry_file_name(Path::new("/x"), "a.b/c").unwrap(), "a%2Eb%2Fc.json");
        assert!(entry_file_name(Path::new("/x"), &"é".repeat(60)).is_err());
        for not_an_entry in [".tmp-abc", "x.txt", "%4.json", "%zz.json", ".json", "a.b.json"] {
            assert_eq!(client_id_of_file_name(not_an_entry), None, "{not_an_entry}");
        }
    }

    #[test]
    fn journal_ids_that_could_escape_are_refused() {
        let long = "a".repeat(65);
        for bad in ["", ".", "..", "../x", "a/b", ".tmp-x", "a.b", "a\0b", "é", long.as_str()] {
            assert!(!valid_journal_id(bad), "{bad:?}");
        }
        let longest = "z".repeat(64);
        for good in ["a", "0", "-x", "A_b-9", longest.as_str()] {
            assert!(valid_journal_id(good), "{good:?}");
        }
        let s = FileStore::new("/x".into());
        assert!(s.journal_path_of("../secrets/p/c").is_err());
        assert_eq!(s.journal_path_of("abc").unwrap(), Path::new("/x/journal/abc.json"));
    }
}
