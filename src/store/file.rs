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

use super::{valid_owner, JournalEntry, OwnerLock, SecretKey, SecretStore, StoreError};
use crate::files::atomic::AtomicFile;
use crate::files::lock;
use crate::files::private_dir::{self, Created};
use crate::files::rules::{Finding, Rule};
use crate::secret::Secret;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// No legitimate entry comes near this; a bigger file is not read into memory.
const MAX_ENTRY_LEN: u64 = 64 * 1024;

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

/// Re-checks a name even though config validation already did: it becomes a path.
fn checked_name<'a>(dir: &Path, what: &'static str, name: &'a str) -> Result<&'a str, StoreError> {
    crate::name::Name::check(what, name).map_err(|e| StoreError::Io {
        path: dir.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, e.to_string()),
    })
}

fn valid_journal_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
}

/// Journal ids become file names: nothing but `[A-Za-z0-9_-]{1,64}`.
fn checked_journal_id<'a>(dir: &Path, id: &'a str) -> Result<&'a str, StoreError> {
    if valid_journal_id(id) {
        Ok(id)
    } else {
        Err(StoreError::Io {
            path: journal_dir(dir),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid token journal id {id:?}: use 1 to 64 letters, digits, '_' and '-'"),
            ),
        })
    }
}

fn journal_dir(dir: &Path) -> PathBuf {
    dir.join("journal")
}

/// Where running agents keep their owner locks.
fn owners_dir(dir: &Path) -> PathBuf {
    dir.join("owners")
}

/// A journal entry's name while it is being written (ids never start with '.').
const JOURNAL_TMP_PREFIX: &str = ".tmp-";

/// Temporary files older than this were cut short by a crash (a live write renames
/// its file within milliseconds).
const STALE_TMP_AGE: std::time::Duration = std::time::Duration::from_secs(600);

fn secrets_dir(dir: &Path) -> PathBuf {
    dir.join("secrets")
}

fn profile_dir(dir: &Path, key: &SecretKey) -> Result<PathBuf, StoreError> {
    Ok(secrets_dir(dir).join(checked_name(dir, "profile", &key.profile)?))
}

/// `<credential>.d`: cannot collide with a 0.1 `<credential>.json` file of any name.
fn credential_dir(dir: &Path, key: &SecretKey) -> Result<PathBuf, StoreError> {
    Ok(profile_dir(dir, key)?.join(format!("{}.d", checked_name(dir, "credential", &key.credential)?)))
}

/// Longest encoded client_id in a file name (most file systems allow 255 bytes).
const MAX_CLIENT_ID_FILE_NAME: usize = 200;

/// `<client_id>.json`, every byte but `[A-Za-z0-9_-]` as `%XX`: never `.`-led, never a path.
fn entry_file_name(dir: &Path, client_id: &str) -> Result<String, StoreError> {
    let mut name = String::with_capacity(client_id.len() + 5);
    for b in client_id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') {
            name.push(char::from(b));
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    if name.is_empty() || name.len() > MAX_CLIENT_ID_FILE_NAME {
        return Err(StoreError::Io {
            path: dir.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a client_id of {} bytes cannot name a secret file; check the client_id",
                    client_id.len()
                ),
            ),
        });
    }
    name.push_str(".json");
    Ok(name)
}

/// The client_id an entry file name stands for; `None` for anything else (temporary files).
fn client_id_of_file_name(name: &str) -> Option<String> {
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

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

fn add_again(key: &SecretKey) -> String {
    format!("lookerctl credential add {} {} --client-id ID", key.profile, key.credential)
}

/// What a file holds, for the advice when it is refused.
#[derive(Clone, Copy)]
enum Holds<'a> {
    /// The client secret of a credential set.
    Secret(&'a SecretKey),
    /// A journaled access token.
    Token,
}

impl Holds<'_> {
    /// What to do once the file is removed, appended to "remove it".
    fn after_removal(self) -> String {
        match self {
            Holds::Secret(key) => format!(" and store the secret again with `{}`", add_again(key)),
            Holds::Token => "; the token it names, if any, expires on its own".into(),
        }
    }

    /// The advice for a file other users could read.
    fn loose_fix(self, path: &Path) -> String {
        match self {
            Holds::Secret(_) => format!(
                "fix it with `chmod 600 {}`, and consider rotating the client secret, since others could read it",
                path.display()
            ),
            Holds::Token => format!(
                "fix it with `chmod 600 {}` if you trust it (the agent then revokes the token at its next start), or remove it",
                path.display()
            ),
        }
    }
}

/// Refuses a file that someone else could have written or read.
fn check_file(path: &Path, meta: &fs::Metadata, holds: Holds<'_>) -> Result<(), StoreError> {
    let insecure =
        |problem: String, fix: String| StoreError::Insecure { path: path.to_path_buf(), problem, fix };
    let finding = match Rule::PRIVATE_FILE.check(meta) {
        Ok(()) => return Ok(()),
        Err(f) => f,
    };
    if finding == Finding::Symlink {
        return Err(insecure(
            "a symbolic link".into(),
            format!(
                "the store only trusts regular files it wrote itself: remove the link (`rm {}`){}",
                path.display(),
                holds.after_removal()
            ),
        ));
    }
    Err(match finding {
        Finding::Symlink | Finding::WrongKind { .. } => {
            insecure("not a regular file".into(), format!("remove it{}", holds.after_removal()))
        }
        Finding::Owner { owner, me } => insecure(
            format!("owned by uid {owner} instead of you (uid {me})"),
            format!(
                "if the file really is yours, run `chown $(id -u) {p} && chmod 600 {p}`; otherwise remove it{}",
                holds.after_removal(),
                p = path.display()
            ),
        ),
        Finding::Mode { mode } => {
            insecure(format!("accessible to other users (mode {mode:04o})"), holds.loose_fix(path))
        }
    })
}

/// Refuses a folder of the store that another user owns or could write into (and so
/// swap a secret file in it).
fn check_dir(path: &Path, meta: &fs::Metadata) -> Result<(), StoreError> {
    let insecure =
        |problem: String, fix: String| StoreError::Insecure { path: path.to_path_buf(), problem, fix };
    match Rule::PRIVATE_DIR.check(meta) {
        Ok(()) => Ok(()),
        Err(Finding::Symlink | Finding::WrongKind { .. }) => Err(insecure(
            "not a directory".into(),
            format!("move it away; the secret store keeps its files in {}", path.display()),
        )),
        Err(Finding::Owner { owner, me }) => Err(insecure(
            format!("a directory owned by uid {owner} instead of you (uid {me})"),
            format!("if it really is yours, run `chown $(id -u) {p} && chmod 700 {p}`", p = path.display()),
        )),
        Err(Finding::Mode { mode }) => Err(insecure(
            format!("a directory other users can write into (mode {mode:04o})"),
            format!("fix it with `chmod 700 {}`", path.display()),
        )),
    }
}

/// Checks the folders from the store's own down to `inner` (the store's folder may be
/// reached through a symlink, a moved home; the folders inside it may not).
fn check_dirs(dir: &Path, inner: &[PathBuf]) -> Result<(), StoreError> {
    check_dir(dir, &fs::metadata(dir).map_err(io_err(dir))?)?;
    for d in inner {
        check_dir(d, &fs::symlink_metadata(d).map_err(io_err(d))?)?;
    }
    Ok(())
}

/// Opens a file of the store for reading, checked; `None` when it does not exist.
///
/// O_NOFOLLOW and fstat: the file checked is the file read, even if it was swapped
/// since an earlier check. O_NONBLOCK: a FIFO cannot make us hang.
fn open_checked(path: &Path, holds: Holds<'_>) -> Result<Option<File>, StoreError> {
    let nofollow = (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32;
    let file = match OpenOptions::new().read(true).custom_flags(nofollow).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            let m = fs::symlink_metadata(path).map_err(io_err(path))?;
            check_file(path, &m, holds)?;
            return Err(io_err(path)(e));
        }
        Err(e) => return Err(io_err(path)(e)),
    };
    check_file(path, &file.metadata().map_err(io_err(path))?, holds)?;
    Ok(Some(file))
}

/// Reads a whole (checked) file, refusing more than [`MAX_ENTRY_LEN`] bytes.
fn read_capped(mut file: File, path: &Path) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let mut buf = Zeroizing::new(Vec::new());
    (&mut file).take(MAX_ENTRY_LEN + 1).read_to_end(&mut buf).map_err(io_err(path))?;
    if buf.len() as u64 > MAX_ENTRY_LEN {
        return Err(StoreError::Corrupt {
            what: path.display().to_string(),
            reason: format!("larger than {MAX_ENTRY_LEN} bytes"),
        });
    }
    Ok(buf)
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
    // serde_json's messages can quote the input, so only the position is reported.
    let entry: EntryIn = serde_json::from_slice(&buf).map_err(|e| {
        corrupt(format!(
            "not a JSON object with client_id and client_secret (line {}, column {}); store the secret again with `{}`",
            e.line(),
            e.column(),
            add_again(key)
        ))
    })?;
    let secret = Secret::new(entry.client_secret);
    if secret.is_empty() {
        return Err(corrupt(format!("the client_secret is empty; store it again with `{}`", add_again(key))));
    }
    Ok(Some((entry.client_id, secret)))
}

fn read_entry(dir: &Path, key: &SecretKey, client_id: &str) -> Result<Secret, StoreError> {
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

/// Creates `path` as a 0700 folder, or checks and tightens an existing one we own.
fn ensure_private_dir(path: &Path, follow_symlink: bool) -> Result<(), StoreError> {
    match private_dir::create(path, follow_symlink).map_err(io_err(path))? {
        Created::New => Ok(()),
        Created::Existing(meta) => check_dir(path, &meta),
    }
}

fn sync_dir(path: &Path) -> Result<(), StoreError> {
    private_dir::sync_dir(path).map_err(io_err(path))
}

/// Creates the store's folder (following a symlink to it) and the private folders
/// `inner` inside it, each 0700.
fn ensure_dirs(dir: &Path, inner: &[PathBuf]) -> Result<(), StoreError> {
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
fn write_atomically(folder: &Path, path: &Path, body: &[u8]) -> Result<(), StoreError> {
    // Names never start with '.', so a temporary file cannot collide with an entry.
    let mut tmp =
        AtomicFile::in_folder(folder, ".tmp-", "").map_err(|e| io_err(folder)(explain_create(e)))?;
    tmp.write_synced(body).map_err(|e| io_err(path)(explain_write(e)))?;
    tmp.rename_to(path).map_err(io_err(path))?.sync().map_err(io_err(folder))
}

fn write_entry(dir: &Path, key: &SecretKey, client_id: &str, secret: &Secret) -> Result<(), StoreError> {
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

/// Removes a file (then syncs its folder); `Ok(false)` when it was not there.
fn remove_if_there(path: &Path, folder: &Path) -> Result<bool, StoreError> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(folder).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Which secrets of a credential set a delete removes.
#[derive(Clone, Copy)]
enum Which<'a> {
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
fn delete_entries(dir: &Path, key: &SecretKey, which: Which<'_>) -> Result<usize, StoreError> {
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

fn write_journal(dir: &Path, entry: &JournalEntry) -> Result<(), StoreError> {
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

fn remove_journal(dir: &Path, id: &str) -> Result<(), StoreError> {
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
fn list_journal(dir: &Path) -> Result<Vec<JournalEntry>, StoreError> {
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

fn is_older_than(item: &fs::DirEntry, age: std::time::Duration) -> bool {
    item.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|a| a > age)
}

/// A running agent's owner lock: the locked file, removed when the agent exits cleanly.
struct FileOwner {
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

fn checked_owner<'a>(dir: &Path, owner: &'a str) -> Result<&'a str, StoreError> {
    if valid_owner(owner) {
        Ok(owner)
    } else {
        Err(StoreError::Io {
            path: owners_dir(dir),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid agent instance id {owner:?}"),
            ),
        })
    }
}

fn owner_lock_path(dir: &Path, owner: &str) -> Result<PathBuf, StoreError> {
    Ok(owners_dir(dir).join(format!("{}.lock", checked_owner(dir, owner)?)))
}

/// Creates and locks `owners/<owner>.lock`. The file is locked under a temporary
/// name and then renamed, so nobody ever sees it under its real name unlocked.
fn lock_owner(dir: &Path, owner: &str) -> Result<FileOwner, StoreError> {
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
fn owner_alive(dir: &Path, owner: &str) -> Result<bool, StoreError> {
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
fn sweep_owners(dir: &Path) -> Result<(), StoreError> {
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

fn read_journal_entry(path: &Path, id: &str) -> Result<Option<JournalEntry>, StoreError> {
    let Some(file) = open_checked(path, Holds::Token)? else { return Ok(None) };
    let buf = read_capped(file, path)?;
    let corrupt = |reason: String| StoreError::Corrupt { what: path.display().to_string(), reason };
    // serde_json's messages can quote the input, so only the position is reported.
    let entry: JournalIn = serde_json::from_slice(&buf).map_err(|e| {
        corrupt(format!(
            "not a JSON object with profile, credential, base_url, token and expires_at_unix (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let token = Secret::new(entry.token);
    if token.is_empty() {
        return Err(corrupt("the token is empty".into()));
    }
    Ok(Some(JournalEntry {
        id: id.to_owned(),
        profile: entry.profile,
        credential: entry.credential,
        base_url: entry.base_url,
        token,
        expires_at_unix: entry.expires_at_unix,
        owner: entry.owner,
    }))
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
