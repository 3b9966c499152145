//! `lookerctl status|revoke|profile|credential`.
//!
//! Profile and credential edits go to the config file and the secret store
//! directly, then a running agent is told to reload (it is fine if none runs).
//!
//! Each edit holds the config's lock ([`ConfigEditor`]) from reading the config
//! until its secret store work is done, so concurrent edits run one after the
//! other and none is lost; a secret is never read from a person while it is held.

use super::args::{
    Cli, CredentialCommand, GatewayRevokeArgs, ProfileAddArgs, ProfileCommand, RevokeArgs, StatusArgs,
};
use super::context::{config_path, open_store, unknown_profile};
use super::exit::{self, CliError};
use super::output::{self, countdown, table};
use super::token::agent;
use crate::client::ClientError;
use crate::config::Config;
use crate::config_edit::{ConfigEditor, CredentialChange, ProfileSettings};
use crate::protocol::RevokeRequest;
use crate::secret::Secret;
use crate::store::{SecretKey, SharedStore};
use std::io::{IsTerminal, Read};

/// Stores the secret of `key` for `client_id`, then saves the edited config (that
/// names this client_id for `key`): both change, or neither does.
///
/// The secret goes in first, next to any secret of the credential's older client_id;
/// if the config cannot be saved, the new secret is deleted again (unless it replaced
/// the one of the same client_id, which the config keeps naming), so the credential
/// the config names still logs in. Once saved, secrets of other client_ids are stale
/// and deleted. The caller holds the config's lock throughout (`ed`).
pub(crate) async fn store_then_save(
    ed: &mut ConfigEditor,
    store: &SharedStore,
    key: &SecretKey,
    client_id: &str,
    secret: &Secret,
    change: CredentialChange,
) -> Result<(), CliError> {
    store.set(key, client_id, secret).await?;
    if ed.is_changed() {
        if let Err(e) = ed.save() {
            if change != CredentialChange::Unchanged {
                if let Err(undo) = store.delete_client_id(key, client_id).await {
                    return Err(CliError::failure(format!(
                        "{e}; the secret just stored for client_id {client_id} could not be removed again \
                         ({undo}): it is unused, remove it with `lookerctl credential remove {} {}` once \
                         the config can be saved, or leave it",
                        key.profile, key.credential
                    )));
                }
            }
            return Err(e.into());
        }
    }
    if let Err(e) = store.delete_other_client_ids(key, client_id).await {
        output::warn(&format!(
            "saved; a secret stored for an older client_id of {}/{} could not be deleted ({e}); it is \
             never used, and the next `lookerctl credential add` of it tries again",
            key.profile, key.credential
        ));
    }
    Ok(())
}

/// The KEY AGE cell: `40d`, `<1d`, `?` (Looker would not say), `-` (no API key in the store).
fn key_age_cell(c: &crate::protocol::CredentialStatus) -> String {
    match (c.key_age_seconds, &c.key_age_unknown) {
        (Some(secs), _) if secs < 86_400 => "<1d".into(),
        (Some(secs), _) => format!("{}d", secs / 86_400),
        (None, Some(_)) => "?".into(),
        (None, None) => "-".into(),
    }
}

/// `rotate_after` as `credential list` and `status` show it: `90d`, or whole hours when
/// the setting is not a whole number of days (`36h`); it is at least a day (checked on load).
fn rotate_cell(after: std::time::Duration) -> String {
    let secs = after.as_secs();
    if secs % 86_400 == 0 {
        format!("{}d", secs / 86_400)
    } else {
        format!("{}h", secs / 3_600)
    }
}

/// A note on the key's age or rotation when there is something to say:
/// `prod/main: rotate_after 30d: next rotation 2026-…`.
fn key_note(who: &str, c: &crate::protocol::CredentialStatus) -> Option<String> {
    let shown = |secs: u64| rotate_cell(std::time::Duration::from_secs(secs));
    match (c.rotate_after_seconds, &c.next_rotation_at, &c.rotation_error, &c.key_age_unknown) {
        (Some(after), _, Some(e), _) => {
            Some(format!("{who}: rotate_after {}: the last rotation failed: {e}", shown(after)))
        }
        (Some(after), Some(next), None, _) => {
            Some(format!("{who}: rotate_after {}: next rotation {next}", shown(after)))
        }
        (Some(after), None, None, Some(why)) => {
            Some(format!("{who}: rotate_after {}, but the key's age is unknown: {why}", shown(after)))
        }
        (Some(after), None, None, None) => {
            Some(format!("{who}: rotate_after {}; the key's age is learned at its first login", shown(after)))
        }
        (None, _, _, Some(why)) => Some(format!("{who}: API key age unknown: {why}")),
        (None, ..) => None,
    }
}

/// Tells a running agent to re-read its config; silent when none runs.
pub(crate) async fn poke(cli: &Cli) -> Result<(), CliError> {
    match agent(cli).reload().await {
        Ok(_) | Err(ClientError::NotRunning { .. }) => Ok(()),
        Err(ClientError::Api { message, .. }) => {
            Err(CliError::failure(format!("saved, but the running agent did not accept it: {message}")))
        }
        Err(e) => {
            output::warn(&format!(
                "saved; could not tell the running agent ({e}); it picks the change up on SIGHUP \
                 (`systemctl --user reload looker-agent` or `kill -HUP PID`)"
            ));
            Ok(())
        }
    }
}

/// `lookerctl status`.
pub(crate) async fn status(cli: &Cli, _args: &StatusArgs) -> Result<u8, CliError> {
    let report = agent(cli).status().await?;
    if cli.json {
        output::json(&report)?;
        return Ok(exit::OK);
    }
    output::line(&format!(
        "looker-agent {} (pid {}), up {}; secret store: {}",
        report.version,
        report.pid,
        countdown(report.uptime_secs),
        report.secret_store
    ))?;
    if report.profiles.is_empty() {
        output::line("no profiles: add one with `lookerctl profile add NAME --base-url URL`")?;
        return Ok(exit::OK);
    }
    let mut rows = Vec::new();
    for p in &report.profiles {
        let default =
            if report.default_profile.as_deref() == Some(p.name.as_str()) { " (default)" } else { "" };
        if p.credentials.is_empty() {
            rows.push(vec![
                format!("{}{default}", p.name),
                "-".into(),
                "no credentials".into(),
                "".into(),
                "".into(),
                "".into(),
                "".into(),
            ]);
        }
        for c in &p.credentials {
            rows.push(vec![
                format!("{}{default}", p.name),
                c.name.clone(),
                c.state.as_str().to_string(),
                c.expires_in.map(countdown).unwrap_or_else(|| "-".into()),
                c.logins.to_string(),
                key_age_cell(c),
                c.last_error.clone().unwrap_or_default(),
            ]);
        }
    }
    output::line(&table(
        &["PROFILE", "CREDENTIAL", "STATE", "EXPIRES IN", "LOGINS", "KEY AGE", "LAST ERROR"],
        &rows,
    ))?;
    // Notes on single sets, below the table and apart from it.
    let mut notes = Vec::new();
    for p in &report.profiles {
        for c in &p.credentials {
            let who = format!("{}/{}", p.name, c.name);
            if let Some(cmd) = &c.secret_source {
                notes.push(format!("{who}: the secret comes from the command `{cmd}`"));
            }
            if c.kind == crate::config::CredentialKind::Oauth {
                notes.push(format!(
                    "{who}: an OAuth sign-in (app {}); the refresh token is in the secret store",
                    c.client_id
                ));
            }
            notes.extend(key_note(&who, c));
        }
    }
    if !notes.is_empty() {
        output::line(&format!("\n{}", notes.join("\n")))?;
    }
    if let Some(g) = &report.gateway {
        let url = g.url.as_deref().unwrap_or("not listening on TCP (see the agent's log)");
        output::line(&format!(
            "gateway: {url}; {} credential(s), {} session(s)",
            g.credentials,
            g.sessions.len()
        ))?;
        if !g.minted.is_empty() {
            let rows: Vec<Vec<String>> = g
                .minted
                .iter()
                .map(|c| {
                    vec![
                        c.client_id.clone(),
                        c.profile.clone(),
                        c.credential.clone().unwrap_or_else(|| "-".into()),
                        c.expires_at.clone().unwrap_or_else(|| "with its process".into()),
                        c.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            output::line(&table(&["CLIENT_ID", "PROFILE", "CREDENTIAL", "EXPIRES", "PID"], &rows))?;
        }
        if !g.sessions.is_empty() {
            let rows: Vec<Vec<String>> = g
                .sessions
                .iter()
                .map(|s| {
                    vec![
                        s.id.to_string(),
                        s.profile.clone(),
                        s.workspace.clone(),
                        s.sudo_user_id.clone().unwrap_or_else(|| "-".into()),
                        s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                        s.created.clone(),
                    ]
                })
                .collect();
            output::line(&table(&["SESSION", "PROFILE", "WORKSPACE", "SUDO", "PID", "SINCE"], &rows))?;
        }
    }
    Ok(exit::OK)
}

/// `lookerctl gateway revoke`: ends gateway credentials and their sessions.
pub(crate) async fn gateway_revoke(cli: &Cli, args: &GatewayRevokeArgs) -> Result<u8, CliError> {
    let req = crate::protocol::GatewayRevokeRequest {
        profile: args.profile.clone(),
        client_id: args.client_id.clone(),
    };
    let a = agent(cli).gateway_revoke(req).await?;
    if cli.json {
        output::json(&a)?;
    } else {
        output::line(&format!(
            "ended {} gateway credential(s) and {} session(s)",
            a.credentials, a.sessions
        ))?;
    }
    Ok(exit::OK)
}

/// `lookerctl revoke`.
pub(crate) async fn revoke(cli: &Cli, args: &RevokeArgs) -> Result<u8, CliError> {
    let req = RevokeRequest { profile: args.profile.clone(), credential: args.credential.clone() };
    let r = agent(cli).revoke(&req).await?;
    if cli.json {
        output::json(&r)?;
    } else {
        output::line(&format!("revoked {} token(s)", r.revoked))?;
    }
    Ok(exit::OK)
}

fn load(cli: &Cli) -> Result<Config, CliError> {
    Ok(Config::load(&config_path(cli))?)
}

/// `lookerctl profile …`.
pub(crate) async fn profile(cli: &Cli, cmd: &ProfileCommand) -> Result<u8, CliError> {
    match cmd {
        ProfileCommand::Add(a) => profile_add(cli, a).await,
        ProfileCommand::List => {
            let cfg = load(cli)?;
            let default = cfg.resolve_profile(None).map(str::to_string);
            if cli.json {
                let v: Vec<_> = cfg
                    .profiles
                    .iter()
                    .map(|(n, p)| profile_json(n, p, default.as_deref() == Some(n.as_str())))
                    .collect();
                output::json(&v)?;
            } else if cfg.profiles.is_empty() {
                output::line("no profiles: add one with `lookerctl profile add NAME --base-url URL`")?;
            } else {
                let rows: Vec<Vec<String>> = cfg
                    .profiles
                    .iter()
                    .map(|(n, p)| {
                        vec![
                            if default.as_deref() == Some(n.as_str()) {
                                format!("{n} (default)")
                            } else {
                                n.clone()
                            },
                            p.base_url.clone(),
                            p.credentials.len().to_string(),
                        ]
                    })
                    .collect();
                output::line(&table(&["PROFILE", "BASE URL", "CREDENTIALS"], &rows))?;
            }
            Ok(exit::OK)
        }
        ProfileCommand::Show { name } => {
            let cfg = load(cli)?;
            let p = cfg.profiles.get(name).ok_or_else(|| unknown_profile(name))?;
            let is_default = cfg.resolve_profile(None) == Some(name.as_str());
            if cli.json {
                output::json(&profile_json(name, p, is_default))?;
            } else {
                output::line(&format!("profile:      {name}{}", if is_default { " (default)" } else { "" }))?;
                output::line(&format!("base_url:     {}", p.base_url))?;
                output::line(&format!("verify_tls:   {}", p.verify_tls))?;
                if let Some(ca) = &p.ca_file {
                    output::line(&format!("ca_file:      {}", ca.path().display()))?;
                    if let Err(why) = ca.certs() {
                        output::line(&format!("              unusable: {why}"))?;
                    }
                }
                output::line(&format!("timeout:      {}", crate::duration::format(p.timeout())))?;
                if p.allow_insecure_http {
                    output::line("allow_insecure_http: true")?;
                }
                let rows: Vec<Vec<String>> = p
                    .credentials
                    .iter()
                    .map(|c| {
                        vec![
                            c.name.clone(),
                            c.client_id.clone(),
                            super::source::secret_column(c.source.as_deref()),
                        ]
                    })
                    .collect();
                output::line(&table(&["CREDENTIAL", "CLIENT ID", "SECRET"], &rows))?;
            }
            Ok(exit::OK)
        }
        ProfileCommand::Remove { name } => {
            let mut ed = ConfigEditor::open(&config_path(cli))?;
            let removed = ed.remove_profile(name)?;
            ed.save()?;
            let store = open_store(cli).await;
            let mut warn = None;
            match store {
                Ok(s) => {
                    for c in &removed.credentials {
                        if let Err(e) = s.delete(&SecretKey::new(name.as_str(), c.name.as_str())).await {
                            warn = Some(e.to_string());
                        }
                    }
                }
                Err(e) => warn = Some(e.message),
            }
            drop(ed);
            poke(cli).await?;
            if let Some(w) = warn {
                output::warn(&format!(
                    "profile removed, but a secret could not be deleted: {w}; remove it from the store by hand \
                     (e.g. `secret-tool clear application looker-agent profile {name}`)"
                ));
            }
            if !cli.json {
                output::line(&format!(
                    "removed profile {name} ({} credential set(s))",
                    removed.credentials.len()
                ))?;
            } else {
                output::json(
                    &serde_json::json!({ "removed": name, "credentials": removed.credentials.len() }),
                )?;
            }
            Ok(exit::OK)
        }
    }
}

fn profile_json(name: &str, p: &crate::config::Profile, is_default: bool) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "default": is_default,
        "base_url": p.base_url,
        "verify_tls": p.verify_tls,
        "ca_file": p.ca_file.as_ref().map(|c| c.path()),
        "timeout_secs": p.timeout().as_secs(),
        "allow_insecure_http": p.allow_insecure_http,
        "credentials": p.credentials.iter().map(|c| serde_json::json!({"name": c.name, "client_id": c.client_id, "kind": c.kind, "source": c.source})).collect::<Vec<_>>(),
    })
}

async fn profile_add(cli: &Cli, a: &ProfileAddArgs) -> Result<u8, CliError> {
    let mut ed = ConfigEditor::open(&config_path(cli))?;
    let settings = ProfileSettings {
        base_url: a.base_url.clone(),
        verify_tls: !a.no_verify_tls,
        ca_file: a.ca_file.clone(),
        timeout: a.timeout,
        allow_insecure_http: a.allow_insecure_http,
    };
    ed.add_profile(&a.name, &settings)?;
    if a.default {
        ed.set_default_profile(Some(&a.name))?;
    }
    ed.save()?;
    poke(cli).await?;
    if cli.json {
        output::json(&serde_json::json!({ "added": a.name }))?;
    } else {
        output::line(&format!(
            "added profile {}; now add a credential: lookerctl credential add {} NAME --client-id ID",
            a.name, a.name
        ))?;
    }
    Ok(exit::OK)
}

/// Reads a client secret from stdin (piped) or a no-echo prompt (terminal).
pub(crate) fn read_secret(profile: &str, name: &str) -> Result<Secret, CliError> {
    let stdin = std::io::stdin();
    let raw = zeroize::Zeroizing::new(if stdin.is_terminal() {
        rpassword::prompt_password(format!("client_secret for {profile}/{name}: "))
            .map_err(|e| CliError::failure(format!("cannot read the secret: {e}")))?
    } else {
        let mut s = String::new();
        stdin
            .lock()
            .take(64 * 1024)
            .read_to_string(&mut s)
            .map_err(|e| CliError::failure(format!("cannot read the secret from stdin: {e}")))?;
        s
    });
    let secret = Secret::new(raw.trim_end_matches(['\r', '\n']));
    drop(raw);
    if secret.is_empty() {
        return Err(CliError::usage(format!(
            "empty client_secret for {profile}/{name}: pipe it on stdin \
             (e.g. `printf '%s' \"$SECRET\" | lookerctl …`) or type it at the prompt"
        )));
    }
    Ok(secret)
}

/// `lookerctl credential …`.
pub(crate) async fn credential(cli: &Cli, cmd: &CredentialCommand) -> Result<u8, CliError> {
    match cmd {
        CredentialCommand::Add { profile, name, client_id, source: true, command, .. } => {
            super::source::add_sourced(cli, profile, name, client_id, command).await
        }
        CredentialCommand::Add { profile, name, client_id, rotate_after, .. } => {
            let path = config_path(cli);
            // Validate everything before asking for the secret, and let go of the
            // lock while a person may be typing it.
            {
                let mut ed = ConfigEditor::open(&path)?;
                ed.add_credential(profile, name, client_id)?;
                if rotate_after.is_some() {
                    ed.set_credential_rotate_after(profile, name, *rotate_after)?;
                }
            }
            let secret = read_secret(profile, name)?;
            let store = open_store(cli).await?;
            let mut ed = ConfigEditor::open(&path)?;
            let change = ed.add_credential(profile, name, client_id)?;
            // The secret is stored now: a source the set had no longer applies.
            ed.set_credential_source(profile, name, None)?;
            if rotate_after.is_some() {
                ed.set_credential_rotate_after(profile, name, *rotate_after)?;
            }
            let key = SecretKey::new(profile.as_str(), name.as_str());
            store_then_save(&mut ed, &store, &key, client_id, &secret, change).await?;
            drop((secret, ed));
            poke(cli).await?;
            if cli.json {
                output::json(
                    &serde_json::json!({ "profile": profile, "credential": name, "change": format!("{change:?}").to_lowercase() }),
                )?;
            } else {
                output::line(&format!(
                    "stored the secret of {profile}/{name} in {}; try: lookerctl token {profile}",
                    store.describe()
                ))?;
            }
            Ok(exit::OK)
        }
        CredentialCommand::List { profile } => {
            let cfg = load(cli)?;
            if let Some(p) = profile {
                if !cfg.profiles.contains_key(p) {
                    return Err(unknown_profile(p));
                }
            }
            let items: Vec<(String, &crate::config::Credential)> = cfg
                .profiles
                .iter()
                .filter(|(n, _)| profile.as_deref().is_none_or(|p| p == n.as_str()))
                .flat_map(|(n, p)| p.credentials.iter().map(move |c| (n.clone(), c)))
                .collect();
            if cli.json {
                let v: Vec<_> = items
                    .iter()
                    .map(|(p, c)| {
                        serde_json::json!({
                            "profile": p, "name": c.name, "client_id": c.client_id,
                            "kind": c.kind,
                            "secret": if c.source.is_some() { "command" } else { "store" },
                            "source": c.source,
                            "rotate_after_seconds": c.rotate_after.map(|d| d.as_secs()),
                        })
                    })
                    .collect();
                output::json(&v)?;
            } else if items.is_empty() {
                output::line(
                    "no credential sets: add one with `lookerctl credential add PROFILE NAME --client-id ID`",
                )?;
            } else {
                let rows: Vec<Vec<String>> = items
                    .into_iter()
                    .map(|(p, c)| {
                        let secret = match c.kind {
                            crate::config::CredentialKind::Oauth => {
                                "OAuth refresh token (secret store)".into()
                            }
                            crate::config::CredentialKind::ApiKey => {
                                super::source::secret_column(c.source.as_deref())
                            }
                        };
                        let rotate = c.rotate_after.map_or_else(|| "-".to_string(), rotate_cell);
                        vec![p, c.name.clone(), c.client_id.clone(), secret, rotate]
                    })
                    .collect();
                output::line(&table(
                    &["PROFILE", "CREDENTIAL", "CLIENT ID", "SECRET", "ROTATE AFTER"],
                    &rows,
                ))?;
            }
            Ok(exit::OK)
        }
        CredentialCommand::Verify { profile, name } => {
            super::verify::verify(cli, profile, name.as_deref()).await
        }
        CredentialCommand::Rotate { profile, name } => {
            super::rotate::rotate(cli, profile, name.as_deref()).await
        }
        CredentialCommand::Remove { profile, name } => {
            let mut ed = ConfigEditor::open(&config_path(cli))?;
            ed.remove_credential(profile, name)?;
            ed.save()?;
            let store = open_store(cli).await?;
            // Still locked: a concurrent add of the same name waits, so its new secret
            // cannot be the one deleted here.
            store.delete(&SecretKey::new(profile.as_str(), name.as_str())).await?;
            drop(ed);
            poke(cli).await?;
            if cli.json {
                output::json(&serde_json::json!({ "removed": { "profile": profile, "credential": name } }))?;
            } else {
                output::line(&format!("removed credential {profile}/{name} and its secret"))?;
            }
            Ok(exit::OK)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rotate_cell;
    use std::time::Duration;

    #[test]
    fn rotate_cells() {
        assert_eq!(rotate_cell(Duration::from_secs(90 * 86_400)), "90d");
        assert_eq!(rotate_cell(Duration::from_secs(36 * 3_600)), "36h");
        assert_eq!(rotate_cell(Duration::from_secs(86_400)), "1d");
    }
}
