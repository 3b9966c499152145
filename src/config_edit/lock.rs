//! The edit lock: an exclusive `flock(2)` on `.NAME.lock` next to the file the
//! config finally names, held by a [`super::ConfigEditor`] until it is dropped.

use crate::config::ConfigError;
use crate::files::{lock, private_dir};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long [`super::ConfigEditor::open`] waits for another edit of the same config to end.
/// An edit holds the lock for milliseconds (a Secret Service unlock prompt aside).
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// An exclusive `flock(2)` on the config's lock file; released when dropped (or when
/// the process dies, however it dies).
#[derive(Debug)]
pub(super) struct EditLock {
    _file: std::fs::File,
}

/// The lock file of the config at `path`: `.NAME.lock` next to the file it finally names.
pub fn lock_path(path: &Path) -> std::io::Result<PathBuf> {
    let target = resolve_symlinks(path)?;
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(parent_or_dot(&target).join(format!(".{name}.lock")))
}

pub(super) fn parent_or_dot(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl EditLock {
    /// Takes the lock of the config at `path`, creating its folder (0700) and lock
    /// file (0600) when missing; waits up to `wait` for another holder to let go.
    pub(super) fn take(path: &Path, wait: Duration) -> Result<EditLock, ConfigError> {
        let write_err = |source| ConfigError::Write { path: path.to_path_buf(), source };
        let lock = lock_path(path).map_err(write_err)?;
        private_dir::create_all(&parent_or_dot(&lock)).map_err(write_err)?;
        let file = lock::open_or_create(&lock).map_err(|e| {
            write_err(std::io::Error::new(
                e.kind(),
                format!("cannot open its lock file {}: {e}", lock.display()),
            ))
        })?;
        match lock::exclusive_waiting(&file, wait) {
            Ok(true) => Ok(EditLock { _file: file }),
            Ok(false) => Err(write_err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "another edit (lookerctl profile/credential/import) still holds its lock {} after {} s; \
                     let it finish, then run the command again",
                    lock.display(),
                    wait.as_secs_f32()
                ),
            ))),
            Err(e) => {
                Err(write_err(std::io::Error::new(e.kind(), format!("cannot lock {}: {e}", lock.display()))))
            }
        }
    }
}

/// The file a path finally names, following symlinks (up to 40, like the kernel).
pub(super) fn resolve_symlinks(path: &Path) -> std::io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&p)?;
                p = match p.parent() {
                    Some(parent) if link.is_relative() => parent.join(link),
                    _ => link,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}
