//! `lookerctl login PROFILE`: sign a person in with Looker's OAuth and keep the
//! grant as a credential set (see [`crate::oauth`] for the flow).
//!
//! Order of work: everything that can be checked is checked before the browser
//! opens (the profile, the name, the port); the code is exchanged the moment it
//! arrives (codes are short-lived and single-use); the refresh token is stored
//! before the config names the set, so a config never points at a missing grant.
//! The access token the exchange also gave is only used to say who signed in, then
//! revoked: the agent gets its own from the stored grant.

use super::args::{Cli, LoginArgs};
use super::context::{config_path, open_store, unknown_profile};
use super::exit::{self, CliError};
use super::manage::{poke, store_then_save};
use super::output;
use crate::config::{Config, CredentialKind};
use crate::config_edit::ConfigEditor;
use crate::looker::client::LookerClient;
use crate::looker::{LookerApi, LookerError};
use crate::oauth::browser;
use crate::oauth::callback::{Callback, CallbackError};
use crate::oauth::pkce::Pkce;
use crate::oauth::{authorize_url, redirect_uri};
use crate::store::SecretKey;

/// `lookerctl login`.
pub(crate) async fn login(cli: &Cli, a: &LoginArgs) -> Result<u8, CliError> {
    let cfg = Config::load(&config_path(cli))?;
    let profile = cfg.profiles.get(&a.profile).ok_or_else(|| unknown_profile(&a.profile))?;
    let (pname, name, guid) = (a.profile.as_str(), a.name.as_str(), a.client_guid.as_str());
    if guid.is_empty() || guid.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(CliError::usage("--client-guid must be the OAuth app's client_guid, without spaces"));
    }
    if let Some(c) = profile.credential(name).filter(|c| c.kind != CredentialKind::Oauth) {
        return Err(CliError::usage(format!(
            "{pname}/{} is an API key, not an OAuth sign-in; choose another name (`lookerctl login {pname} \
             --name NAME`) or remove it first (`lookerctl credential remove {pname} {}`)",
            c.name, c.name
        )));
    }
    let client = LookerClient::new(profile).map_err(|e| {
        CliError::failure(format!(
            "profile {pname:?}: {e} (`lookerctl profile show {pname}` shows its settings)"
        ))
    })?;

    let callback = Callback::bind(a.port).await.map_err(|e| CliError::failure(e.to_string()))?;
    let redirect = redirect_uri(callback.port());
    let pkce = Pkce::new();
    let url = authorize_url(&profile.base_url, guid, &redirect, &pkce.state, &pkce.challenge);
    if let Some(hint) = browser::ssh_hint(callback.port()) {
        output::warn(&hint);
    }
    let opened = if a.no_browser { None } else { browser::open(&url) };
    match &opened {
        Some(browser::Opened(program)) => output::note(&format!(
            "signing in to {}: opened the sign-in page with {program}; if no browser appeared, open this link:\n  {url}",
            profile.base_url
        )),
        None if a.no_browser => {
            output::note(&format!("signing in to {}: open this link in a browser:", profile.base_url));
            // The link alone on standard output, for a person to copy or a script to read
            // (with --json, standard output holds only the final object).
            if cli.json {
                output::note(&format!("  {url}"));
            } else {
                output::line(&url)?;
            }
        }
        None => output::note(&format!(
            "signing in to {}: could not start a browser (set $BROWSER, or install xdg-open); open this link:\n  {url}",
            profile.base_url
        )),
    }
    output::note(&format!("waiting up to {} for the sign-in …", output::countdown(a.timeout.as_secs())));

    let code = callback.wait(&pkce.state, a.timeout).await.map_err(|e| match e {
        CallbackError::Refused { .. } => CliError::new(
            exit::REJECTED,
            format!("{e}; nothing was stored. Run `lookerctl login {pname}` again and allow the access"),
        ),
        e => CliError::failure(e.to_string()),
    })?;
    let tokens = client
        .exchange_code(guid, &redirect, &code, &pkce.verifier)
        .await
        .map_err(|e| exchange_failure(&e, pname, guid, &redirect))?;
    drop((code, pkce));
    let Some(refresh_token) = tokens.refresh_token else {
        let _ = client.logout(&tokens.token.access_token).await;
        return Err(CliError::new(
            exit::UPSTREAM,
            format!(
                "Looker signed you in but gave no refresh token, so the agent could not keep the sign-in; \
                 check that the OAuth app {guid:?} is set up for refresh tokens, or use an API key \
                 (`lookerctl credential add {pname} NAME --client-id ID`)"
            ),
        ));
    };
    // Who signed in, for the message; the token is revoked right after.
    let user = client.user(&tokens.token.access_token).await;
    if let Err(e) = client.logout(&tokens.token.access_token).await {
        output::warn(&format!(
            "could not revoke the sign-in's first access token ({e}); it expires by itself"
        ));
    }
    drop(tokens.token);

    let store = open_store(cli).await?;
    let mut ed = ConfigEditor::open(&config_path(cli))?;
    let change = ed.add_credential(pname, name, guid)?;
    ed.set_credential_kind(pname, name, CredentialKind::Oauth)?;
    ed.set_credential_source(pname, name, None)?;
    let key = SecretKey::new(pname, name);
    store_then_save(&mut ed, &store, &key, guid, &refresh_token, change).await?;
    drop((refresh_token, ed));
    poke(cli).await?;

    let user = user.ok();
    if cli.json {
        output::json(&serde_json::json!({
            "profile": pname,
            "credential": name,
            "client_guid": guid,
            "user": user.as_ref().map(|u| serde_json::json!({
                "id": u.id, "display_name": u.display_name, "email": u.email,
            })),
            "store": store.describe(),
        }))?;
    } else {
        let who = match &user {
            Some(u) => {
                let label =
                    u.display_name.clone().or_else(|| u.email.clone()).unwrap_or_else(|| u.id.clone());
                match &u.email {
                    Some(email) if Some(email) != u.display_name.as_ref() => format!(" as {label} <{email}>"),
                    _ => format!(" as {label}"),
                }
            }
            None => String::new(),
        };
        output::line(&format!(
            "signed in to {pname}{who}; the grant is stored as {pname}/{name} in {}; try: lookerctl token {pname}",
            store.describe()
        ))?;
    }
    Ok(exit::OK)
}

/// What to say when Looker refuses the code.
fn exchange_failure(e: &LookerError, profile: &str, guid: &str, redirect: &str) -> CliError {
    match e {
        LookerError::Rejected { .. } => CliError::new(
            exit::REJECTED,
            format!(
                "Looker refused the sign-in's code ({e}); check that the OAuth app {guid:?} is registered \
                 on the instance with redirect_uri {redirect} (docs/oauth.md), then run `lookerctl login \
                 {profile}` again"
            ),
        ),
        e => CliError::new(exit::for_looker(e), format!("cannot finish the sign-in: {e}; try again")),
    }
}
