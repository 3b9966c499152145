//! Private folders: made 0700 at once (`mkdir` is atomic, so there is no window with
//! looser permissions), set to 0700 again when ours and looser (as rbw does), and the
//! safe-path walk that checks nobody but you and root can change what a path leads to.

use super::rules::{self, Owners, STICKY, WRITABLE_BY_OTHERS};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of every private folder.
pub(crate) const MODE: u32 = 0o700;

/// What [`create`] found.
#[derive(Debug)]
pub(crate) enum Created {
    /// The folder was made, mode 0700 (and its parent synced).
    New,
    /// Something was already there: its metadata (followed if asked), for the caller
    /// to check with its own rule and words. An own folder looser than 0700 has been
    /// set to 0700 already.
    Existing(fs::Metadata),
}

/// Creates `path` as a 0700 folder, or, when it exists, tightens it if it is a folder
/// of ours and returns what is there. `follow_symlink`: whether an existing `path`
/// may be a symlink to a folder.
pub(crate) fn create(path: &Path, follow_symlink: bool) -> io::Result<Created> {
    match fs::DirBuilder::new().mode(MODE).create(path) {
        Ok(()) => {
            // The umask can only remove bits; set the mode anyway, as rbw does.
            fs::set_permissions(path, fs::Permissions::from_mode(MODE))?;
            if let Some(parent) = path.parent() {
                sync_dir(parent)?;
            }
            Ok(Created::New)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = if follow_symlink { fs::metadata(path) } else { fs::symlink_metadata(path) }?;
            tighten(path, &meta)?;
            Ok(Created::Existing(meta))
        }
        Err(e) => Err(e),
    }
}

/// Creates `dir` and any missing parents, each new one 0700 (a config's folder).
pub(crate) fn create_all(dir: &Path) -> io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    fs::DirBuilder::new().recursive(true).mode(MODE).create(dir)
}

/// Sets a folder of ours back to exactly 0700 when its mode differs; whether it did.
/// Anything else (another user's folder, not a folder) is left alone for the
/// caller's rule to judge.
pub(crate) fn tighten(path: &Path, meta: &fs::Metadata) -> io::Result<bool> {
    if meta.is_dir() && meta.uid() == rules::euid() && meta.mode() & 0o7777 != MODE {
        fs::set_permissions(path, fs::Permissions::from_mode(MODE))?;
        return Ok(true);
    }
    Ok(false)
}

/// fsync of a folder, so a rename or removal in it is on disk.
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    fs::File::open(path).and_then(|d| d.sync_all())
}

/// Why a folder on the way to the agent socket cannot be trusted: someone other
/// than you (and root) could swap what it holds, e.g. plant a fake agent that hands
/// out its own token and base URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UnsafePath {
    /// A folder (or symlink) on the path belongs to another user.
    #[error("{} is owned by uid {owner}, not by you (uid {me}) or root, so that user could plant a fake agent there; remove it (as root: `rm -rf {}`), or point XDG_RUNTIME_DIR or --socket / LOOKER_AGENT_SOCKET at a folder of your own", path.display(), path.display())]
    ForeignOwner {
        /// The folder.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Your uid.
        me: u32,
    },
    /// A folder on the path can be written by its group or by everyone (and is not
    /// a sticky folder such as /tmp, where only an entry's owner may replace it).
    #[error("{} can be written by other users (mode {mode:04o}), so they could plant a fake agent there; run `chmod go-w {}`, or point XDG_RUNTIME_DIR or --socket / LOOKER_AGENT_SOCKET at a private folder", path.display(), path.display())]
    Writable {
        /// The folder.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// Something on the path is not a folder.
    #[error("{} is not a directory; remove it or choose another --socket", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// A folder on the path does not exist (and was not to be created).
    #[error("{} does not exist", path.display())]
    Missing {
        /// The first missing folder.
        path: PathBuf,
    },
    /// Symlinks that point at each other.
    #[error("{} has too many levels of symlinks", path.display())]
    SymlinkLoop {
        /// The path being resolved.
        path: PathBuf,
    },
    /// The path cannot be inspected (or a folder not created).
    #[error("cannot {what} {}: {reason}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
}

/// Symlinks followed at most while walking a path (as the kernel's own limit).
const MAX_SYMLINKS: usize = 40;

/// Walks `dir` from `/` and checks that nobody but you and root can change what it
/// leads to, creating missing folders (mode 0700) when `create` is set.
///
/// Every folder on the way, and every symlink met (which is followed), must be
/// owned by root or by you. A folder that its group or everyone can write is refused,
/// unless it has the sticky bit (like /tmp): there only an entry's owner can rename
/// or remove it, and the next entry is itself checked to be yours or root's.
/// `dir` itself must be writable by nobody else (a sticky shared folder is no
/// private folder). Returns `dir` with its symlinks resolved.
///
/// A folder created here is made with mode 0700 at once (`mkdir` is atomic); if
/// someone else creates it first, the check that follows refuses it.
/// POSIX ACLs are not looked at.
pub(crate) fn check_private_dir(dir: &Path, create: bool) -> Result<PathBuf, UnsafePath> {
    use std::collections::VecDeque;
    let me = rules::euid();
    let io = |what: &'static str, path: &Path, e: std::io::Error| UnsafePath::Io {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let absolute = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir().map_err(|e| io("resolve", dir, e))?.join(dir)
    };
    let owner_ok = |path: &Path, owner: u32| {
        if Owners::YouOrRoot.allow(owner, me) {
            Ok(())
        } else {
            Err(UnsafePath::ForeignOwner { path: path.to_path_buf(), owner, me })
        }
    };
    let mut todo: VecDeque<std::ffi::OsString> =
        absolute.components().skip(1).map(|c| c.as_os_str().to_os_string()).collect();
    let mut cur = PathBuf::from("/");
    let root = std::fs::metadata(&cur).map_err(|e| io("inspect", &cur, e))?;
    owner_ok(&cur, root.uid())?;
    if root.mode() & WRITABLE_BY_OTHERS != 0 {
        return Err(UnsafePath::Writable { path: cur, mode: root.mode() & 0o7777 });
    }
    let mut links = 0;
    let mut last = root;
    while let Some(comp) = todo.pop_front() {
        if comp == "." {
            continue;
        }
        if comp == ".." {
            // `cur` has no symlinks left in it, so its parent is the real one.
            cur.pop();
            last = std::fs::symlink_metadata(&cur).map_err(|e| io("inspect", &cur, e))?;
            continue;
        }
        let next = cur.join(&comp);
        let meta = match std::fs::symlink_metadata(&next) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                match std::fs::DirBuilder::new().mode(0o700).create(&next) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io("create", &next, e)),
                }
                std::fs::symlink_metadata(&next).map_err(|e| io("inspect", &next, e))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(UnsafePath::Missing { path: next });
            }
            Err(e) => return Err(io("inspect", &next, e)),
        };
        owner_ok(&next, meta.uid())?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(UnsafePath::SymlinkLoop { path: absolute });
            }
            let target = std::fs::read_link(&next).map_err(|e| io("read symlink", &next, e))?;
            if target.is_absolute() {
                cur = PathBuf::from("/");
            }
            for c in target.components().rev() {
                if !matches!(c, std::path::Component::RootDir) {
                    todo.push_front(c.as_os_str().to_os_string());
                }
            }
            continue;
        }
        if !meta.file_type().is_dir() {
            return Err(UnsafePath::NotADirectory { path: next });
        }
        let mode = meta.mode() & 0o7777;
        let shared = mode & WRITABLE_BY_OTHERS != 0;
        // Sticky and with an entry below it: only that entry's owner (checked next) can move it.
        let sticky_parent = mode & STICKY != 0 && !todo.is_empty();
        if shared && !sticky_parent {
            return Err(UnsafePath::Writable { path: next, mode });
        }
        cur = next;
        last = meta;
    }
    // The folder itself: writable by nobody else, even when sticky (its owner, you or
    // root, was checked on the way).
    if last.mode() & WRITABLE_BY_OTHERS != 0 {
        return Err(UnsafePath::Writable { path: cur, mode: last.mode() & 0o7777 });
    }
    Ok(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mkdir(p: &Path, mode: u32) {
        std::fs::create_dir(p).unwrap();
        chmod(p, mode);
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A folder `name` of mode `mode` in a fresh temporary folder, and a private
    /// (0700) folder `mine` in it.
    fn mine_inside(name: &str, mode: u32) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let outer = t.path().join(name);
        mkdir(&outer, mode);
        let mine = outer.join("mine");
        mkdir(&mine, 0o700);
        (t, outer, mine)
    }

    #[test]
    fn a_private_folder_below_a_sticky_shared_one_is_safe() {
        let (_t, shared, mine) = mine_inside("tmp", 0o1777);
        assert_eq!(check_private_dir(&mine, false).unwrap(), std::fs::canonicalize(&mine).unwrap());
        // The sticky folder itself is no private folder.
        assert!(matches!(check_private_dir(&shared, false), Err(UnsafePath::Writable { .. })));
    }

    #[test]
    fn a_writable_folder_on_the_way_is_refused() {
        let (_t, open, mine) = mine_inside("open", 0o777);
        match check_private_dir(&mine, false) {
            Err(UnsafePath::Writable { path, mode }) => assert_eq!((path, mode), (open.clone(), 0o777)),
            other => panic!("{other:?}"),
        }
        chmod(&open, 0o770);
        assert!(matches!(check_private_dir(&mine, false), Err(UnsafePath::Writable { .. })));
        // The folder itself, group-writable.
        chmod(&open, 0o755);
        chmod(&mine, 0o720);
        assert!(matches!(check_private_dir(&mine, false), Err(UnsafePath::Writable { .. })));
    }

    #[test]
    fn symlinks_are_followed_and_their_targets_checked() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        mkdir(&real, 0o700);
        let link = t.path().join("link");
        std::os::unix::fs::symlink("real", &link).unwrap();
        assert_eq!(check_private_dir(&link, false).unwrap(), std::fs::canonicalize(&real).unwrap());
        // A link into a writable folder leads somewhere unsafe.
        let open = t.path().join("open");
        mkdir(&open, 0o777);
        mkdir(&open.join("x"), 0o700);
        let bad = t.path().join("bad");
        std::os::unix::fs::symlink(open.join("x"), &bad).unwrap();
        assert!(matches!(check_private_dir(&bad, false), Err(UnsafePath::Writable { .. })));
        let looped = t.path().join("loop");
        std::os::unix::fs::symlink("loop", &looped).unwrap();
        assert!(matches!(check_private_dir(&looped, false), Err(UnsafePath::SymlinkLoop { .. })));
    }

    #[test]
    fn missing_folders_are_reported_or_created_private() {
        let t = tempfile::tempdir().unwrap();
        let deep = t.path().join("a").join("b");
        assert!(matches!(check_private_dir(&deep, false), Err(UnsafePath::Missing { .. })));
        check_private_dir(&deep, true).unwrap();
        for p in [t.path().join("a"), deep] {
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777, 0o700);
        }
    }

    #[test]
    fn a_folder_of_another_user_is_refused() {
        if rustix::process::getuid().as_raw() != 0 {
            eprintln!("skipped: needs root to give a folder away");
            return;
        }
        let (_t, theirs, mine) = mine_inside("theirs", 0o755);
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        match check_private_dir(&mine, true) {
            Err(UnsafePath::ForeignOwner { path, owner, .. }) => assert_eq!((path, owner), (theirs, 65534)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_makes_0700_and_tightens_our_own() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("d");
        assert!(matches!(create(&d, false).unwrap(), Created::New));
        assert_eq!(std::fs::metadata(&d).unwrap().permissions().mode() & 0o7777, 0o700);
        chmod(&d, 0o755);
        assert!(matches!(create(&d, false).unwrap(), Created::Existing(_)));
        assert_eq!(std::fs::metadata(&d).unwrap().permissions().mode() & 0o7777, 0o700);
        // A symlink is reported as one unless followed.
        let link = t.path().join("link");
        std::os::unix::fs::symlink("d", &link).unwrap();
        match create(&link, false).unwrap() {
            Created::Existing(m) => assert!(m.file_type().is_symlink()),
            other => panic!("{other:?}"),
        }
        match create(&link, true).unwrap() {
            Created::Existing(m) => assert!(m.is_dir()),
            other => panic!("{other:?}"),
        }
        let deep = t.path().join("a/b/c");
        create_all(&deep).unwrap();
        for p in [t.path().join("a"), deep] {
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o077, 0, "{p:?}");
        }
    }
}
