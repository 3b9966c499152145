//! Atomic replacement of a file: a temporary file in the same folder, written and
//! synced, renamed over the target, then the folder synced, so a crash leaves the old
//! or the new file, never half of one. rename(2) replaces a symlink at the target
//! itself, never what it points to (callers that write through a link resolve it first).
//!
//! Each step returns its own `io::Error`, so every caller keeps its own wording.

use super::private_dir::sync_dir;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A temporary file on its way to replace another; removed if dropped before
/// [`AtomicFile::commit`].
#[derive(Debug)]
pub(crate) struct AtomicFile {
    file: File,
    tmp: PathBuf,
    folder: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// A new temporary file `PREFIX<random>SUFFIX` in `folder`, mode 0600.
    pub(crate) fn in_folder(folder: &Path, prefix: &str, suffix: &str) -> io::Result<AtomicFile> {
        let tmp = tempfile::Builder::new()
            .prefix(prefix)
            .suffix(suffix)
            .permissions(fs::Permissions::from_mode(0o600))
            .tempfile_in(folder)?;
        let (file, path) = tmp.keep().map_err(|e| e.error)?;
        Ok(AtomicFile { file, tmp: path, folder: folder.to_path_buf(), committed: false })
    }

    /// A new temporary file at exactly `tmp` (which must not exist), mode 0600, not
    /// following a symlink: for a name that itself tells what it will become.
    pub(crate) fn named(tmp: &Path) -> io::Result<AtomicFile> {
        let flags = (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC).bits() as i32;
        let file =
            OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(flags).open(tmp)?;
        let folder = match tmp.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(AtomicFile { file, tmp: tmp.to_path_buf(), folder, committed: false })
    }

    /// The open temporary file (to set its owner or mode).
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Sets its permission bits, whatever the umask.
    pub(crate) fn set_mode(&self, mode: u32) -> io::Result<()> {
        self.file.set_permissions(fs::Permissions::from_mode(mode))
    }

    /// Writes all of `body` and syncs it to disk.
    pub(crate) fn write_synced(&mut self, body: &[u8]) -> io::Result<()> {
        self.file.write_all(body)?;
        self.file.sync_all()
    }

    /// Renames it over `target`. On error the temporary file is removed.
    pub(crate) fn rename_to(mut self, target: &Path) -> io::Result<Committed> {
        fs::rename(&self.tmp, target)?;
        self.committed = true;
        Ok(Committed { folder: std::mem::take(&mut self.folder) })
    }

    /// [`AtomicFile::rename_to`] and [`Committed::sync`] in one.
    pub(crate) fn commit(self, target: &Path) -> io::Result<()> {
        self.rename_to(target)?.sync()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// A file renamed into place whose folder is still to be synced.
#[derive(Debug)]
#[must_use = "sync the folder, or say why not"]
pub(crate) struct Committed {
    folder: PathBuf,
}

impl Committed {
    /// Syncs the folder, so the rename itself survives a crash.
    pub(crate) fn sync(self) -> io::Result<()> {
        sync_dir(&self.folder)
    }

    /// The folder that holds the file.
    #[cfg(test)]
    pub(crate) fn folder(&self) -> &Path {
        &self.folder
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        n.sort();
        n
    }

    #[test]
    fn replaces_the_target_0600_and_leaves_no_temporary_file() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("f");
        fs::write(&target, "old").unwrap();
        let mut a = AtomicFile::in_folder(t.path(), ".f.", ".tmp").unwrap();
        a.write_synced(b"new").unwrap();
        a.commit(&target).unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o7777, 0o600);
        assert_eq!(names(t.path()), ["f"]);
    }

    #[test]
    fn a_dropped_write_leaves_the_old_file() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("f");
        fs::write(&target, "old").unwrap();
        let mut a = AtomicFile::named(&t.path().join(".tmp-f")).unwrap();
        a.write_synced(b"half").unwrap();
        drop(a);
        assert_eq!(fs::read_to_string(&target).unwrap(), "old");
        assert_eq!(names(t.path()), ["f"]);
        // A named temporary file is never one that exists already (nor a link).
        std::os::unix::fs::symlink("f", t.path().join(".tmp-f")).unwrap();
        assert!(AtomicFile::named(&t.path().join(".tmp-f")).is_err());
        assert_eq!(fs::read_to_string(&target).unwrap(), "old");
    }

    #[test]
    fn the_mode_can_be_set() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("f");
        let mut a = AtomicFile::in_folder(t.path(), ".x", "").unwrap();
        a.set_mode(0o644).unwrap();
        a.write_synced(b"x").unwrap();
        let done = a.rename_to(&target).unwrap();
        assert_eq!(done.folder(), t.path());
        done.sync().unwrap();
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o7777, 0o644);
    }
}
