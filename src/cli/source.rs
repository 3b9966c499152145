//! `lookerctl credential add … --source -- CMD ARGS…`: a credential set whose secret
//! a command prints ([`crate::secret_source`]), so nothing is read or stored.

use super::args::Cli;
use super::context::{config_path, open_store};
use super::exit::{self, CliError};
use super::manage::poke;
use super::output;
use crate::config_edit::ConfigEditor;
use crate::secret_source::SecretSource;
use crate::store::SecretKey;

/// Writes the credential set with its `source` into the config; deletes any secret
/// the store held for it (it would never be used again). Reads nothing from stdin.
pub async fn add_sourced(
    cli: &Cli,
    profile: &str,
    name: &str,
    client_id: &str,
    command: &[String],
) -> Result<u8, CliError> {
    let source = SecretSource::new(command.to_vec()).map_err(|e| {
        CliError::usage(format!("--source: {e}; e.g. `--source -- pass show looker/{profile}`"))
    })?;
    source.program_path().map_err(|e| CliError::usage(e.to_string()))?;
    let mut ed = ConfigEditor::open(&config_path(cli))?;
    ed.add_credential(profile, name, client_id)?;
    ed.set_credential_source(profile, name, Some(source.argv()))?;
    if ed.is_changed() {
        ed.save()?;
    }
    // Still holding the config's lock, so a concurrent `credential add` of the same
    // set (which stores a secret) cannot have its secret deleted here.
    let key = SecretKey::new(profile, name);
    let cleanup = match open_store(cli).await {
        Ok(store) => store.delete(&key).await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.message),
    };
    drop(ed);
    if let Err(e) = cleanup {
        output::warn(&format!(
            "saved; a secret stored earlier for {profile}/{name} could not be checked or deleted ({e}); \
             it is not used while the credential has a source"
        ));
    }
    poke(cli).await?;
    if cli.json {
        output::json(&serde_json::json!({
            "profile": profile,
            "credential": name,
            "client_id": client_id,
            "source": source.argv(),
        }))?;
    } else {
        output::line(&format!(
            "{profile}/{name} takes its secret from `{}` whenever the agent logs in; \
             check it: lookerctl credential verify {profile} {name}",
            source.display()
        ))?;
    }
    Ok(exit::OK)
}

/// The `SECRET` column of `credential list`: where the secret comes from (never the secret).
pub fn secret_column(source: Option<&[String]>) -> String {
    match source {
        None => "secret store".into(),
        Some(argv) => match SecretSource::new(argv.to_vec()) {
            Ok(s) => format!("command `{}`", s.display()),
            Err(_) => "command (invalid)".into(),
        },
    }
}
