//! The config file: profiles and their ordered credential sets. No secrets.
//!
//! ```toml
//! default_profile = "prod"
//!
//! [profiles.prod]
//! base_url = "https://example.looker.com"
//! verify_tls = true            # default
//! ca_file = "/etc/ssl/private-ca.pem"
//! timeout = "30s"
//!
//! [[profiles.prod.credentials]]
//! name = "reporting"
//! client_id = "AbCdEf123"
//! ```
//!
//! Loading is all-or-nothing: a syntax error or unknown key is a [`ConfigError`]
//! naming the file, line and what was expected, and the daemon refuses to start.
//! Edits go through [`crate::config_edit`], which keeps comments and layout.

use crate::files::rules::{writable_by, Finding, Kind, Rule};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default refresh window: a set used within it is kept fresh.
pub const DEFAULT_REFRESH_WINDOW: Duration = Duration::from_secs(3600);

/// Default per-request timeout towards Looker.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The whole config file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Profile used when none is named.
    #[serde(default)]
    pub default_profile: Option<String>,
    /// Profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One Looker instance.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Base URL without `/api/...` (a pasted `/api/4.0` is stripped on load).
    pub base_url: String,
    /// Verify the server certificate (default true).
    #[serde(default = "yes")]
    pub verify_tls: bool,
    /// Extra CA certificate (PEM) to trust, for a private CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Per-request timeout towards Looker (default 30 s).
    #[serde(default, with = "crate::duration::serde_opt")]
    pub timeout: Option<Duration>,
    /// Allow plain `http://` to a non-loopback host (tokens would cross the network in clear).
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Keep tokens fresh ahead of expiry even when no client asked lately.
    #[serde(default)]
    pub always_fresh: bool,
    /// A credential set asked for within this window is refreshed ahead of expiry (default 1 h).
    #[serde(default, with = "crate::duration::serde_opt")]
    pub refresh_window: Option<Duration>,
    /// When non-empty, only these programs (matched on the caller's
    /// `/proc/PID/exe`) receive this profile's tokens.
    #[serde(default)]
    pub allowed_executables: Vec<PathBuf>,
    /// Credential sets, in the order they are tried.
    #[serde(default)]
    pub credentials: Vec<Credential>,
}

/// One client_id/client_secret pair (the secret lives in the secret store).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Name, unique within the profile.
    pub name: String,
    /// Looker API client_id.
    pub client_id: String,
}

fn yes() -> bool {
    true
}

/// A config file that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax error, unknown key or wrong type.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What was found and what was expected.
        message: String,
    },
    /// Well-formed TOML that breaks a rule (duplicate names, bad URL...).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The rule broken and how to fix it.
        message: String,
    },
    /// The file's owner or mode is unsafe.
    #[error("refusing config {path}: {problem}")]
    Insecure {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// Writing the file failed.
    #[error("cannot write config {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Checks a profile or credential name (the rule is [`crate::name::Name`]'s).
pub fn validate_name(kind: &'static str, name: &str) -> Result<(), String> {
    crate::name::Name::check(kind, name).map(|_| ()).map_err(|e| e.to_string())
}

/// Normalises a base URL: trims, drops a trailing `/` and a pasted `/api/<version>` suffix.
pub fn normalize_base_url(raw: &str) -> Result<String, String> {
    let mut s = raw.trim().trim_end_matches('/').to_string();
    // Until nothing changes, so a normalised URL stays as it is (`…/api/4.0/api/4.0`).
    loop {
        let before = s.len();
        if let Some(idx) = s.rfind("/api/") {
            let tail = &s[idx + 5..];
            if !tail.is_empty() && !tail.contains('/') {
                s.truncate(idx);
            }
        } else if s.ends_with("/api") {
            s.truncate(s.len() - 4);
        }
        s.truncate(s.trim_end_matches(|c: char| c == '/' || c.is_whitespace()).len());
        if s.len() == before {
            break;
        }
    }
    let url = url::Url::parse(&s)
        .map_err(|e| format!("invalid base_url {raw:?}: {e}; expected e.g. https://example.looker.com"))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(format!("invalid base_url {raw:?}: the scheme must be https (or http to loopback)"));
    }
    if url.host_str().is_none() {
        return Err(format!("invalid base_url {raw:?}: no host"));
    }
    Ok(s.trim_end_matches('/').to_string())
}

impl Config {
    /// Loads and validates a config file. A missing file is an empty config.
    ///
    /// A file that another user could change is refused (see [`read_trusted`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        match read_trusted(path)? {
            Some(text) => Config::parse(path, &text),
            None => Ok(Config::default()),
        }
    }

    /// Parses and validates config text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|span| line_col(text, span.start)).unwrap_or((1, 1));
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        cfg.validate().map_err(|message| ConfigError::Invalid { path: path.to_path_buf(), message })?;
        Ok(cfg)
    }

    /// Checks the rules TOML cannot express; normalises base URLs in place.
    pub fn validate(&mut self) -> Result<(), String> {
        for (pname, profile) in self.profiles.iter_mut() {
            validate_name("profile", pname)?;
            profile.base_url =
                normalize_base_url(&profile.base_url).map_err(|e| format!("profile {pname:?}: {e}"))?;
            let mut seen = std::collections::BTreeSet::new();
            for c in &profile.credentials {
                validate_name("credential", &c.name).map_err(|e| format!("profile {pname:?}: {e}"))?;
                if !seen.insert(c.name.as_str()) {
                    return Err(format!(
                        "profile {pname:?}: credential {:?} appears twice; credential names must be unique",
                        c.name
                    ));
                }
                if c.client_id.trim().is_empty() {
                    return Err(format!("profile {pname:?}: credential {:?} has an empty client_id", c.name));
                }
            }
        }
        if let Some(d) = &self.default_profile {
            if !self.profiles.contains_key(d) {
                return Err(format!(
                    "default_profile = {d:?} names no profile; add it or change default_profile"
                ));
            }
        }
        Ok(())
    }

    /// The profile to use when `requested` is `None`: `default_profile`, else the only profile.
    pub fn resolve_profile<'a>(&'a self, requested: Option<&'a str>) -> Option<&'a str> {
        match requested {
            Some(p) if !p.is_empty() => Some(p),
            _ => match &self.default_profile {
                Some(d) => Some(d.as_str()),
                None if self.profiles.len() == 1 => self.profiles.keys().next().map(|s| s.as_str()),
                None => None,
            },
        }
    }
}

impl Profile {
    /// A profile with every default setting and no credential sets.
    pub fn new(base_url: impl Into<String>) -> Profile {
        Profile {
            base_url: base_url.into(),
            verify_tls: true,
            ca_file: None,
            timeout: None,
            allow_insecure_http: false,
            always_fresh: false,
            refresh_window: None,
            allowed_executables: Vec::new(),
            credentials: Vec::new(),
        }
    }

    /// True when `exe` may receive this profile's tokens (no allow-list: everyone
    /// of the agent's own user). Configured paths are compared canonicalized, as
    /// `/proc/PID/exe` is.
    pub fn allows_executable(&self, exe: Option<&Path>) -> bool {
        if self.allowed_executables.is_empty() {
            return true;
        }
        let Some(exe) = exe else { return false };
        self.allowed_executables
            .iter()
            .any(|a| a == exe || std::fs::canonicalize(a).map(|c| c == exe).unwrap_or(false))
    }

    /// The request timeout towards Looker.
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    /// The refresh window (default 1 h).
    pub fn refresh_window(&self) -> Duration {
        self.refresh_window.unwrap_or(DEFAULT_REFRESH_WINDOW)
    }

    /// A credential set by name.
    pub fn credential(&self, name: &str) -> Option<&Credential> {
        self.credentials.iter().find(|c| c.name == name)
    }
}

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
pub fn read_trusted(path: &Path) -> Result<Option<String>, ConfigError> {
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

/// 1-based line and column of byte `offset` in `text` (for error messages).
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/x/config.toml"), t)
    }

    #[test]
    fn full_profile() {
        let c = parse(
            r#"
default_profile = "prod"
[profiles.prod]
base_url = "https://example.looker.com/api/4.0/"
timeout = "5m"
[[profiles.prod.credentials]]
name = "reporting"
client_id = "abc"
[[profiles.prod.credentials]]
name = "backup"
client_id = "def"
"#,
        )
        .unwrap();
        let p = &c.profiles["prod"];
        assert_eq!(p.base_url, "https://example.looker.com");
        assert_eq!(p.timeout(), Duration::from_secs(300));
        assert!(p.verify_tls);
        assert_eq!(p.credentials[1].name, "backup");
        assert_eq!(c.resolve_profile(None), Some("prod"));
    }

    #[test]
    fn unknown_key_names_line_and_expectation() {
        let e = parse("[profiles.prod]\nbase_url = \"https://x\"\nverfy_tls = false\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("/x/config.toml:3:"), "{msg}");
        assert!(msg.contains("verfy_tls") && msg.contains("verify_tls"), "{msg}");
    }

    #[test]
    fn syntax_error_has_line() {
        let e = parse("default_profile = \"a\"\n[profiles.a\n").unwrap_err();
        assert!(e.to_string().starts_with("/x/config.toml:2:"), "{e}");
    }

    #[test]
    fn rules() {
        assert!(parse("default_profile = \"nope\"").unwrap_err().to_string().contains("names no profile"));
        let dup = "[profiles.p]\nbase_url=\"https://x\"\n[[profiles.p.credentials]]\nname=\"a\"\nclient_id=\"1\"\n[[profiles.p.credentials]]\nname=\"a\"\nclient_id=\"2\"\n";
        assert!(parse(dup).unwrap_err().to_string().contains("twice"));
        assert!(parse("[profiles._x]\nbase_url=\"https://x\"\n").is_err());
        assert!(parse("[profiles.p]\nbase_url=\"ftp://x\"\n").is_err());
    }

    #[test]
    fn default_resolution() {
        let two =
            parse("[profiles.a]\nbase_url=\"https://a\"\n[profiles.b]\nbase_url=\"https://b\"\n").unwrap();
        assert_eq!(two.resolve_profile(None), None);
        assert_eq!(two.resolve_profile(Some("b")), Some("b"));
    }

    mod file_safety {
        use super::super::*;
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
}
