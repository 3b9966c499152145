//! Owner and mode rules: which files and folders the agent trusts.
//!
//! A [`Rule`] says what kind of entry is expected, who may own it and which mode
//! bits are refused; [`Rule::check`] answers with the first [`Finding`], which the
//! caller turns into its own message and advice (a config file, a secret file and a
//! socket call for different fixes).

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

/// The effective uid: the owner of every file this process creates.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Mode bits that let the group or others write.
pub(crate) const WRITABLE_BY_OTHERS: u32 = 0o022;
/// Mode bits that give the group or others any access.
pub(crate) const ACCESSIBLE_BY_OTHERS: u32 = 0o077;
/// The sticky bit: in such a folder only an entry's owner may rename or remove it.
pub(crate) const STICKY: u32 = 0o1000;

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;
const S_IFLNK: u32 = 0o120000;
const S_IFSOCK: u32 = 0o140000;

/// What kind of entry a rule expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file.
    File,
    /// Anything but a folder or symlink; mode bits are checked only on a regular file
    /// (a pipe, `--config <(...)`, or /dev/null has no meaningful mode).
    Readable,
    /// A folder.
    Dir,
    /// A Unix socket.
    Socket,
}

/// Who may own a trusted entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owners {
    /// You (the effective uid) only.
    You,
    /// You or root.
    YouOrRoot,
}

impl Owners {
    /// True when `owner` is allowed, `me` being you.
    pub(crate) fn allow(self, owner: u32, me: u32) -> bool {
        owner == me || (self == Owners::YouOrRoot && owner == 0)
    }
}

/// One rule (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rule {
    /// The kind of entry expected.
    pub(crate) kind: Kind,
    /// Who may own it.
    pub(crate) owners: Owners,
    /// Mode bits refused when you own it.
    pub(crate) refused: u32,
    /// Mode bits refused when root owns it (with [`Owners::YouOrRoot`]).
    pub(crate) refused_if_root: u32,
    /// A folder with the sticky bit may have the refused bits (like /tmp).
    pub(crate) sticky_ok: bool,
}

/// Why an entry breaks a rule, first problem first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finding {
    /// A symbolic link where a file or folder was expected.
    Symlink,
    /// Not the kind of entry expected.
    WrongKind {
        /// What was expected.
        expected: Kind,
    },
    /// Owned by someone not allowed.
    Owner {
        /// Its owner.
        owner: u32,
        /// You (the effective uid).
        me: u32,
    },
    /// Refused mode bits are set.
    Mode {
        /// Its permission bits (`mode & 0o7777`).
        mode: u32,
    },
}

impl Rule {
    /// A file only you own and nobody else can access (the file store's files).
    pub(crate) const PRIVATE_FILE: Rule = Rule {
        kind: Kind::File,
        owners: Owners::You,
        refused: ACCESSIBLE_BY_OTHERS,
        refused_if_root: ACCESSIBLE_BY_OTHERS,
        sticky_ok: false,
    };

    /// A folder only you own and nobody else can write into (the file store's folders).
    pub(crate) const PRIVATE_DIR: Rule = Rule {
        kind: Kind::Dir,
        owners: Owners::You,
        refused: WRITABLE_BY_OTHERS,
        refused_if_root: WRITABLE_BY_OTHERS,
        sticky_ok: false,
    };

    /// A folder you or root own that nobody else can change entries of: not writable
    /// by others, unless sticky (a config file's folder, a credentials folder).
    pub(crate) const TRUSTED_DIR: Rule = Rule {
        kind: Kind::Dir,
        owners: Owners::YouOrRoot,
        refused: WRITABLE_BY_OTHERS,
        refused_if_root: WRITABLE_BY_OTHERS,
        sticky_ok: true,
    };

    /// Checks an entry's metadata (from `symlink_metadata` to see a link itself).
    pub(crate) fn check(&self, meta: &Metadata) -> Result<(), Finding> {
        self.check_mode(meta.uid(), meta.mode(), euid())
    }

    /// [`Rule::check`] on raw values: `mode` with its file type bits (`st_mode`).
    pub(crate) fn check_mode(&self, owner: u32, mode: u32, me: u32) -> Result<(), Finding> {
        let ty = mode & S_IFMT;
        if ty == S_IFLNK {
            return Err(Finding::Symlink);
        }
        let kind_ok = match self.kind {
            Kind::File => ty == S_IFREG,
            Kind::Readable => ty != S_IFDIR,
            Kind::Dir => ty == S_IFDIR,
            Kind::Socket => ty == S_IFSOCK,
        };
        if !kind_ok {
            return Err(Finding::WrongKind { expected: self.kind });
        }
        if !self.owners.allow(owner, me) {
            return Err(Finding::Owner { owner, me });
        }
        let refused = if owner == me { self.refused } else { self.refused_if_root };
        if self.kind == Kind::Readable && ty != S_IFREG {
            return Ok(());
        }
        if self.sticky_ok && mode & STICKY != 0 {
            return Ok(());
        }
        if mode & refused != 0 {
            return Err(Finding::Mode { mode: mode & 0o7777 });
        }
        Ok(())
    }
}

/// Who, besides the owner, may write with `mode`: for messages.
pub(crate) fn writable_by(mode: u32) -> Option<&'static str> {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => Some("group and others"),
        (true, false) => Some("group"),
        (false, true) => Some("others"),
        (false, false) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: u32 = 1000;

    #[test]
    fn private_files_are_yours_and_closed() {
        let r = Rule::PRIVATE_FILE;
        assert_eq!(r.check_mode(ME, 0o100600, ME), Ok(()));
        assert_eq!(r.check_mode(ME, 0o100640, ME), Err(Finding::Mode { mode: 0o640 }));
        assert_eq!(r.check_mode(0, 0o100600, ME), Err(Finding::Owner { owner: 0, me: ME }));
        assert_eq!(r.check_mode(ME, 0o120777, ME), Err(Finding::Symlink));
        assert_eq!(r.check_mode(ME, 0o010600, ME), Err(Finding::WrongKind { expected: Kind::File }));
    }

    #[test]
    fn trusted_dirs_may_be_roots_and_sticky() {
        let r = Rule::TRUSTED_DIR;
        assert_eq!(r.check_mode(0, 0o40755, ME), Ok(()));
        assert_eq!(r.check_mode(0, 0o41777, ME), Ok(()));
        assert_eq!(r.check_mode(ME, 0o40775, ME), Err(Finding::Mode { mode: 0o775 }));
        assert_eq!(r.check_mode(1001, 0o40700, ME), Err(Finding::Owner { owner: 1001, me: ME }));
        assert_eq!(Rule::PRIVATE_DIR.check_mode(ME, 0o41777, ME), Err(Finding::Mode { mode: 0o1777 }));
        assert_eq!(
            Rule::PRIVATE_DIR.check_mode(ME, 0o100700, ME),
            Err(Finding::WrongKind { expected: Kind::Dir })
        );
    }

    #[test]
    fn readable_special_files_have_no_mode_but_an_owner() {
        let r = Rule { kind: Kind::Readable, refused: WRITABLE_BY_OTHERS, ..Rule::TRUSTED_DIR };
        assert_eq!(r.check_mode(ME, 0o010666, ME), Ok(()));
        assert_eq!(r.check_mode(ME, 0o100666, ME), Err(Finding::Mode { mode: 0o666 }));
        assert_eq!(r.check_mode(7, 0o010666, ME), Err(Finding::Owner { owner: 7, me: ME }));
        assert_eq!(r.check_mode(ME, 0o40700, ME), Err(Finding::WrongKind { expected: Kind::Readable }));
    }

    #[test]
    fn roots_files_can_have_their_own_limit() {
        let r =
            Rule { refused: 0o077, refused_if_root: 0o037, owners: Owners::YouOrRoot, ..Rule::PRIVATE_FILE };
        assert_eq!(r.check_mode(0, 0o100440, ME), Ok(()));
        assert_eq!(r.check_mode(ME, 0o100440, ME), Err(Finding::Mode { mode: 0o440 }));
        assert_eq!(writable_by(0o664), Some("group"));
        assert_eq!(writable_by(0o646), Some("others"));
        assert_eq!(writable_by(0o666), Some("group and others"));
        assert_eq!(writable_by(0o644), None);
    }
}
