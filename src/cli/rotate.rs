//! `lookerctl credential rotate PROFILE [NAME]`: a new API key for the credential's
//! own Looker user, stored and named in the config, the old key deleted at Looker
//! ([`crate::rotation`] has the steps and how an interrupted run is recovered).
//!
//! Like `credential verify` it talks to Looker directly with the stored secret, so it
//! works with or without a running agent; a running agent is told to reload at the
//! end, and its reload revokes the tokens it held for the old key (a credential set
//! whose client_id changed is a new one to it).

use super::args::Cli;
use super::context::{config_path, open_store};
use super::exit::{self, CliError};
use super::manage::poke;
use super::output;
use crate::config::Config;
use crate::looker::client::LookerClient;
use crate::paths;
use crate::rotation::{RotateError, Rotator};

/// Turns a rotation error into a message and an exit status.
fn cli_error(e: RotateError) -> CliError {
    match e {
        RotateError::Config(c) => c.into(),
        RotateError::Edit(c) => c.into(),
        RotateError::Store { .. } => CliError::failure(e.to_string()),
        RotateError::Refused { .. } => CliError::new(exit::REJECTED, e.to_string()),
        RotateError::OAuthCredential { .. } => CliError::usage(e.to_string()),
        e => match e.looker() {
            Some(l) => CliError::new(exit::for_looker(l), e.to_string()),
            None => CliError::failure(e.to_string()),
        },
    }
}

/// `lookerctl credential rotate PROFILE [NAME]`.
pub async fn rotate(cli: &Cli, profile: &str, name: Option<&str>) -> Result<u8, CliError> {
    let path = config_path(cli);
    let cfg = Config::load(&path)?;
    let settings = cfg.profiles.get(profile).ok_or_else(|| super::context::unknown_profile(profile))?;
    let client = LookerClient::new(settings).map_err(|e| {
        CliError::failure(format!(
            "profile {profile:?}: {e} (`lookerctl profile show {profile}` shows its settings)"
        ))
    })?;
    let store = open_store(cli).await?;
    let state_dir = paths::default_state_dir();
    let rotator = Rotator { config_path: &path, state_dir: &state_dir, store: &store, api: &client };
    let done = rotator.rotate(profile, name).await.map_err(cli_error)?;
    poke(cli).await?;
    if cli.json {
        output::json(&serde_json::json!({
            "profile": profile,
            "credential": done.credential,
            "user_id": done.user_id,
            "old_client_id": done.old_client_id,
            "new_client_id": done.new_client_id,
            "resumed": done.resumed,
            "warnings": done.warnings,
        }))?;
    } else {
        let how = if done.resumed { " (finishing an interrupted rotation)" } else { "" };
        output::line(&format!(
            "{profile}/{}: rotated{how}: now client_id {} (user {}); the old key {} is deleted at Looker",
            done.credential, done.new_client_id, done.user_id, done.old_client_id
        ))?;
    }
    for w in &done.warnings {
        output::warn(w);
    }
    Ok(exit::OK)
}
