//! What every command that touches the config or the secret store starts from:
//! which config file, which store, and how an unknown profile is reported.

use super::args::Cli;
use super::exit::CliError;
use crate::paths;
use crate::store::{self, SharedStore};
use std::path::PathBuf;

/// The config file lookerctl edits: `--config`, LOOKER_AGENT_CONFIG or the XDG default.
pub(crate) fn config_path(cli: &Cli) -> PathBuf {
    cli.config.clone().unwrap_or_else(paths::default_config)
}

/// The secret store `--secret-store` names.
pub(crate) async fn open_store(cli: &Cli) -> Result<SharedStore, CliError> {
    let (s, _) = store::open(cli.secret_store, paths::default_data_dir()).await?;
    Ok(s)
}

/// Exit 4, saying how to find or add the profile.
pub(crate) fn unknown_profile(name: &str) -> CliError {
    CliError::unknown(format!(
        "no profile named {name:?}; `lookerctl profile list` shows the profiles, `lookerctl profile add` adds one"
    ))
}
