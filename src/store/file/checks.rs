//! Reading a file of the store safely: the owner and mode checks of its files and
//! folders, with the advice to give when one is refused.

use super::super::{SecretKey, StoreError};
use super::io_err;
use crate::files::rules::{Finding, Rule};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// No legitimate entry comes near this; a bigger file is not read into memory.
const MAX_ENTRY_LEN: u64 = 64 * 1024;

pub(super) fn add_again(key: &SecretKey) -> String {
    format!("lookerctl credential add {} {} --client-id ID", key.profile, key.credential)
}

/// What a file holds, for the advice when it is refused.
#[derive(Clone, Copy)]
pub(super) enum Holds<'a> {
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
pub(super) fn check_file(path: &Path, meta: &fs::Metadata, holds: Holds<'_>) -> Result<(), StoreError> {
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
pub(super) fn check_dir(path: &Path, meta: &fs::Metadata) -> Result<(), StoreError> {
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
pub(super) fn check_dirs(dir: &Path, inner: &[PathBuf]) -> Result<(), StoreError> {
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
pub(super) fn open_checked(path: &Path, holds: Holds<'_>) -> Result<Option<File>, StoreError> {
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
pub(super) fn read_capped(mut file: File, path: &Path) -> Result<Zeroizing<Vec<u8>>, StoreError> {
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
