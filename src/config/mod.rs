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

mod ca_file;
mod trusted;

pub use ca_file::{CaCerts, CaFile};

pub(crate) use trusted::read_trusted;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default refresh window: a set used within it is kept fresh.
pub(crate) const DEFAULT_REFRESH_WINDOW: Duration = Duration::from_secs(3600);

/// The shortest `rotate_after` accepted: keys rotated more often than daily are a
/// misreading (`rotate_after = "90"` is 90 seconds), not a policy.
pub(crate) const MIN_ROTATE_AFTER: Duration = Duration::from_secs(86_400);

/// Default per-request timeout towards Looker.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// The Looker API gateway's TCP door.
    #[serde(default)]
    pub gateway: GatewayConfig,
}

/// `[gateway]`: where the Looker API gateway listens on TCP.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// A loopback address and port (`127.0.0.1:8765`); absent: an ephemeral port on
    /// 127.0.0.1. `"off"`: no TCP door (the socket's `/looker/…` paths still work).
    #[serde(default)]
    pub listen: Option<String>,
}

/// What `[gateway] listen` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayListen {
    /// No TCP door.
    Off,
    /// Listen here (port 0: any free one).
    At(std::net::SocketAddr),
}

impl GatewayConfig {
    /// The address to listen on; only loopback addresses are accepted, since the
    /// gateway hands out Looker access to whoever reaches it (the uid check needs
    /// both ends on this machine).
    pub fn listen(&self) -> Result<GatewayListen, String> {
        let raw = match self.listen.as_deref().map(str::trim) {
            None | Some("") => return Ok(GatewayListen::At((std::net::Ipv4Addr::LOCALHOST, 0).into())),
            Some("off") => return Ok(GatewayListen::Off),
            Some(r) => r,
        };
        let addr: std::net::SocketAddr = raw.parse().map_err(|_| {
            format!(
                "[gateway] listen = {raw:?} is not an address and port like \"127.0.0.1:8765\" (or \"off\")"
            )
        })?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "[gateway] listen = {raw:?} is not a loopback address: the gateway only listens on 127.0.0.1 or [::1]"
            ));
        }
        Ok(GatewayListen::At(addr))
    }
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
    /// Extra CA certificates (PEM) to trust, for a private CA: read when the config
    /// is loaded (see [`CaFile`]).
    #[serde(default)]
    pub ca_file: Option<CaFile>,
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

/// One credential set: an API key (client_id + client_secret; the secret lives in
/// the secret store, or is printed by the command `source` names), or an OAuth grant
/// from `lookerctl login` (`kind = "oauth"`, client_id the OAuth app's client_guid,
/// the refresh token in the secret store).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Name, unique within the profile.
    pub name: String,
    /// Looker API client_id (for an OAuth grant: the OAuth client app's client_guid).
    pub client_id: String,
    /// What the secret store holds for it (default: an API key's client secret).
    #[serde(default)]
    pub kind: CredentialKind,
    /// Rotate the API key by itself once the key is this old (`rotate_after = "90d"`;
    /// at least a day). Only for API keys kept in the secret store.
    #[serde(default, with = "crate::duration::serde_opt")]
    pub rotate_after: Option<Duration>,
    /// A command (program first, run without a shell) whose standard output is the
    /// client secret; then nothing is in the secret store ([`crate::secret_source`]).
    #[serde(default)]
    pub source: Option<Vec<String>>,
}

/// What kind of secret a credential set logs in with.
#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// An API key: `POST /api/4.0/login` with client_id and client_secret.
    #[default]
    ApiKey,
    /// An OAuth grant (`lookerctl login`): `POST /api/token` with
    /// `grant_type=refresh_token`; Looker may rotate the refresh token at each use.
    Oauth,
}

impl CredentialKind {
    /// The config's word for it (`api_key`, `oauth`).
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::ApiKey => "api_key",
            CredentialKind::Oauth => "oauth",
        }
    }
}

impl Credential {
    /// A credential whose secret is in the secret store.
    pub fn new(name: impl Into<String>, client_id: impl Into<String>) -> Credential {
        Credential {
            name: name.into(),
            client_id: client_id.into(),
            kind: CredentialKind::ApiKey,
            rotate_after: None,
            source: None,
        }
    }

    /// The external source of its secret, if it has one (checked on load).
    pub fn secret_source(&self) -> Option<crate::secret_source::SecretSource> {
        self.source.clone().and_then(|argv| crate::secret_source::SecretSource::new(argv).ok())
    }
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
pub(crate) fn normalize_base_url(raw: &str) -> Result<String, String> {
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
                if c.kind == CredentialKind::Oauth && c.source.is_some() {
                    return Err(format!(
                        "profile {pname:?}: credential {:?} is an OAuth grant (kind = \"oauth\") and cannot have a source: \
                         its refresh token changes at each use and lives in the secret store; remove `source`, \
                         or `kind` for an API key",
                        c.name
                    ));
                }
                if let Some(after) = c.rotate_after {
                    let why = if c.kind == CredentialKind::Oauth {
                        Some("it is an OAuth grant, which has no API key to rotate")
                    } else if c.source.is_some() {
                        Some("its secret comes from a command, where the agent cannot write a new one")
                    } else if after < MIN_ROTATE_AFTER {
                        Some("rotate_after must be at least a day (e.g. \"90d\"); a bare number is seconds")
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        return Err(format!(
                            "profile {pname:?}: credential {:?} has rotate_after, but {why}",
                            c.name
                        ));
                    }
                }
                if let Some(argv) = &c.source {
                    crate::secret_source::SecretSource::check(argv)
                        .map_err(|e| format!("profile {pname:?}: credential {:?}: {e}", c.name))?;
                }
            }
        }
        self.gateway.listen()?;
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
    pub(crate) fn allows_executable(&self, exe: Option<&Path>) -> bool {
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
    pub(crate) fn refresh_window(&self) -> Duration {
        self.refresh_window.unwrap_or(DEFAULT_REFRESH_WINDOW)
    }

    /// A credential set by name.
    pub(crate) fn credential(&self, name: &str) -> Option<&Credential> {
        self.credentials.iter().find(|c| c.name == name)
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
    fn a_relative_ca_file_is_refused_with_the_fix() {
        let e = parse("[profiles.p]\nbase_url = \"https://x\"\nca_file = \"corp-ca.pem\"\n").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("\"corp-ca.pem\" is not an absolute path") && msg.contains("--ca-file"),
            "{msg}"
        );
        // An absolute one loads, readable or not (that is the profile's own error).
        let c = parse("[profiles.p]\nbase_url = \"https://x\"\nca_file = \"/nonexistent/ca.pem\"\n").unwrap();
        assert!(c.profiles["p"].ca_file.as_ref().unwrap().certs().is_err());
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
}
