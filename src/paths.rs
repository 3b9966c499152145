//! Where things live (docs/reference.md "Where things live"), honouring XDG variables and overrides.

use std::path::{Path, PathBuf};

/// Application folder name under the XDG base directories.
pub(crate) const APP: &str = "looker-agent";

/// Resolved locations for one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Paths {
    /// The config file.
    pub(crate) config: PathBuf,
    /// The agent socket.
    pub(crate) socket: PathBuf,
    /// The file secret store's folder.
    pub(crate) data_dir: PathBuf,
}

fn home() -> PathBuf {
    directories::BaseDirs::new()
        .map(|b| b.home_dir().to_path_buf())
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    // `directories` already reads XDG_*; reading the variable first keeps an empty
    // or relative value from being used (the XDG spec says to ignore those).
    match std::env::var_os(var).map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        _ => home().join(fallback),
    }
}

/// `$XDG_RUNTIME_DIR`, else `/tmp/looker-agent-UID` (cron, `su`, SSH without
/// pam_systemd). Anyone can create that name in /tmp first, so both sides check it
/// with [`crate::files::private_dir::check_private_dir`]: the agent creates it 0700 and refuses it when it is
/// someone else's, and `lookerctl` refuses to talk through it.
pub(crate) fn runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        _ => PathBuf::from(format!("/tmp/looker-agent-{}", rustix::process::getuid().as_raw())),
    }
}

/// Default config file: `$XDG_CONFIG_HOME/looker-agent/config.toml`.
pub(crate) fn default_config() -> PathBuf {
    xdg("XDG_CONFIG_HOME", ".config").join(APP).join("config.toml")
}

/// Default socket: `$XDG_RUNTIME_DIR/looker-agent/agent.sock`.
pub(crate) fn default_socket() -> PathBuf {
    runtime_dir().join(APP).join("agent.sock")
}

/// Default file-store folder: `$XDG_DATA_HOME/looker-agent/`.
pub(crate) fn default_data_dir() -> PathBuf {
    xdg("XDG_DATA_HOME", ".local/share").join(APP)
}

/// Default state folder: `$XDG_STATE_HOME/looker-agent/` (rotation records).
pub fn default_state_dir() -> PathBuf {
    xdg("XDG_STATE_HOME", ".local/state").join(APP)
}

impl Paths {
    /// Resolves paths from explicit overrides (flags, already merged with their
    /// environment variables by clap) and the XDG defaults.
    pub(crate) fn resolve(config: Option<&Path>, socket: Option<&Path>) -> Paths {
        Paths {
            config: config.map(Path::to_path_buf).unwrap_or_else(default_config),
            socket: socket.map(Path::to_path_buf).unwrap_or_else(default_socket),
            data_dir: default_data_dir(),
        }
    }
}
