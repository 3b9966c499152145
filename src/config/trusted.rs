//! Reading the config file only when no other user can change it: the owner and
//! mode checks of the file and of the folders that hold it, with a fix to paste.

use super::ConfigError;
use crate::files::rules::{writable_by, Finding, Kind, Rule};
use std::path::{Path, PathBuf};

/// A config file larger than this is not a config file.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Reads the config file's text after checking that no other user can change it;
/// `Ok(None)` when it does not exist.
///
/// Whoever can write the config can point `base_url` at their own server and
/// collect the client secrets the agent sends there, so the file must be owned by
/// the current user (or root) and not writable by group or others, and the folder
/// holding it must not let others replace it (owned by us or root, and not
/// group/world-writable unless sticky, like `/tmp`). Group/world *readable* is fine:
/// the file holds no secrets. A symlink is followed and its target checked, along
/// with the folders holding the link and the target. The checks run on the opened
/// file, so the file read is the file checked.
pub(crate) fn read_trusted(path: &Path) -> Result<Option<String>, ConfigError> {
    use std::io::Read as _;
    use std::os::unix::fs::MetadataExt as _;

    let read_err = |source| ConfigError::Read { path: path.to_path_buf(), source };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    let meta = file.metadata().map_err(read_err)?;
    let me = rustix::process::geteuid().as_raw();
    let insecure = |problem| ConfigError::Insecure { path: path.to_path_buf(), problem };
    if meta.is_dir() {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            message: "is a folder; expected a TOML file".into(),
        });
    }
    // Pipes (`--config <(...)`) and /dev/null have no meaningful mode; their owner still counts.
    check_file_mode(path, meta.uid(), meta.mode(), me).map_err(insecure)?;
    let mut dirs = vec![parent_dir(path)];
    if let Ok(real) = std::fs::canonicalize(path) {
        let real_parent = parent_dir(&real);
        if !dirs.contains(&real_parent) {
            dirs.push(real_parent);
        }
    }
    for dir in dirs {
        let dmeta = std::fs::metadata(&dir).map_err(read_err)?;
        check_dir_mode(&dir, dmeta.uid(), dmeta.mode(), me).map_err(insecure)?;
    }

    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text).map_err(read_err)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            message: format!("larger than {MAX_CONFIG_BYTES} bytes; is this the right file?"),
        });
    }
    Ok(Some(text))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Quotes a path for a copy-pasteable shell fix (the `shlex` crate's rules: as it
/// is when that is safe, else quoted). A path that was opened holds no NUL.
fn shell_quote(path: &Path) -> String {
    let s = path.display().to_string();
    shlex::try_quote(&s).map_or_else(|_| format!("{s:?}"), std::borrow::Cow::into_owned)
}

/// What the config file must be: owned by you or root; if a regular file, not
/// writable by group or others (readable is fine: it holds no secrets).
const CONFIG_FILE: Rule = Rule { kind: Kind::Readable, sticky_ok: false, ..Rule::TRUSTED_DIR };

/// The file rule of [`read_trusted`] on `st_mode` `mode` (type bits included).
fn check_file_mode(path: &Path, owner: u32, mode: u32, me: u32) -> Result<(), String> {
    const WHY: &str =
        "whoever can change it could point base_url at their own server and capture your client secrets";
    match CONFIG_FILE.check_mode(owner, mode, me) {
        Ok(()) | Err(Finding::Symlink | Finding::WrongKind { .. }) => Ok(()),
        Err(Finding::Owner { owner, me }) => Err(format!(
            "it is owned by uid {owner}, not by you (uid {me}); {WHY}. \
             Fix: `chown {me} {p}` (as root), or use a copy you own",
            p = shell_quote(path)
        )),
        Err(Finding::Mode { mode }) => Err(format!(
            "it is writable by {} (mode {mode:04o}); {WHY}. Fix: `chmod go-w {}`",
            writable_by(mode).unwrap_or("others"),
            shell_quote(path)
        )),
    }
}

/// The folder rule of [`read_trusted`]: owned by `me` or root; not group/world-writable unless sticky.
fn check_dir_mode(dir: &Path, owner: u32, mode: u32, me: u32) -> Result<(), String> {
    const WHY: &str = "whoever can change that folder could replace the config, point base_url at \
                       their own server and capture your client secrets";
    match Rule::TRUSTED_DIR.check_mode(owner, mode, me) {
        Ok(()) | Err(Finding::Symlink | Finding::WrongKind { .. }) => Ok(()),
        Err(Finding::Owner { owner, me }) => Err(format!(
            "its folder {} is owned by uid {owner}, not by you (uid {me}); {WHY}. \
             Fix: move the config to a folder you own",
            dir.display()
        )),
        Err(Finding::Mode { mode }) => Err(format!(
            "its folder {} is writable by {} (mode {mode:04o}); {WHY}. Fix: `chmod go-w {}`",
            dir.display(),
            writable_by(mode).unwrap_or("others"),
            shell_quote(dir)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::os::unix::fs::{symlink, PermissionsExt as _};

    const OK: &str = "[profiles.p]\nbase_url = \"https://x.example\"\n";

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn private_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        chmod(d.path(), 0o700);
        d
    }

    #[test]
    fn missing_file_is_empty_config() {
        let d = private_dir();
        assert_eq!(Config::load(&d.path().join("none.toml")).unwrap(), Config::default());
    }

    #[test]
    fn readable_by_all_is_fine_writable_is_refused() {
        let d = private_dir();
        let f = d.path().join("config.toml");
        std::fs::write(&f, OK).unwrap();
        for mode in [0o600, 0o644, 0o444, 0o640] {
            chmod(&f, mode);
            assert!(Config::load(&f).is_ok(), "mode {mode:o}");
        }
        for (mode, who) in [(0o664, "group"), (0o646, "others"), (0o666, "group and others")] {
            chmod(&f, mode);
            let e = Config::load(&f).unwrap_err();
            assert!(matches!(e, ConfigError::Insecure { .. }), "{e}");
            let msg = e.to_string();
            assert!(msg.contains(&format!("writable by {who} ")), "{msg}");
            assert!(msg.contains(&format!("chmod go-w {}", f.display())), "{msg}");
        }
    }

    #[test]
    fn symlink_to_own_file_is_followed() {
        let d = private_dir();
        let real = d.path().join("real.toml");
        std::fs::write(&real, OK).unwrap();
        chmod(&real, 0o600);
        let link = d.path().join("config.toml");
        symlink(&real, &link).unwrap();
        assert_eq!(Config::load(&link).unwrap().profiles.len(), 1);
        // The link's own mode (0777) does not matter; the target's does.
        chmod(&real, 0o666);
        assert!(matches!(Config::load(&link), Err(ConfigError::Insecure { .. })));
    }

    #[test]
    fn open_folder_is_refused_unless_sticky() {
        let d = private_dir();
        let sub = d.path().join("shared");
        std::fs::create_dir(&sub).unwrap();
        let f = sub.join("config.toml");
        std::fs::write(&f, OK).unwrap();
        chmod(&f, 0o600);
        chmod(&sub, 0o777);
        let msg = Config::load(&f).unwrap_err().to_string();
        assert!(msg.contains("its folder") && msg.contains("chmod go-w"), "{msg}");
        chmod(&sub, 0o1777);
        assert!(Config::load(&f).is_ok());
    }

    #[test]
    fn owned_by_another_user_is_refused() {
        // The rule itself, for any uid we run as.
        let p = Path::new("/c/config.toml");
        let e = check_file_mode(p, 1001, 0o100644, 1000).unwrap_err();
        assert!(e.contains("owned by uid 1001") && e.contains("chown 1000 /c/config.toml"), "{e}");
        assert!(check_file_mode(p, 0, 0o100644, 1000).is_ok(), "root-owned is trusted");
        assert!(check_file_mode(p, 1000, 0o100600, 1000).is_ok());
        assert!(check_file_mode(p, 1000, 0o010666, 1000).is_ok(), "a pipe has no real mode");
        assert!(check_dir_mode(Path::new("/c"), 1001, 0o40755, 1000).is_err());
        assert!(check_dir_mode(Path::new("/tmp"), 0, 0o41777, 1000).is_ok());

        // And for real, when we can give a file away (running as root).
        let me = rustix::process::geteuid().as_raw();
        if me != 0 {
            return;
        }
        let d = private_dir();
        let f = d.path().join("config.toml");
        std::fs::write(&f, OK).unwrap();
        chmod(&f, 0o644);
        std::os::unix::fs::chown(&f, Some(65534), None).unwrap();
        let msg = Config::load(&f).unwrap_err().to_string();
        assert!(msg.contains("owned by uid 65534"), "{msg}");
    }

    #[test]
    fn quoting_in_fix_hint() {
        assert_eq!(shell_quote(Path::new("/a b/it's")), "\"/a b/it's\"");
        assert_eq!(shell_quote(Path::new("/a b/config.toml")), "'/a b/config.toml'");
        assert_eq!(shell_quote(Path::new("/a/config.toml")), "/a/config.toml");
        // What the shell reads back is the path.
        for p in ["/a b/it's", "/x/$HOME/`id`", "/tab\there", "/q\"'\"", "/a,b=c%d"] {
            let out = std::process::Command::new("/bin/sh")
                .args(["-c", &format!("printf %s {}", shell_quote(Path::new(p)))])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), p);
        }
    }
}
