//! `lookerctl credential verify`: log in with a stored credential set, say which
//! Looker user it acts as, warn when that user is an admin, log out again.
//!
//! It talks to Looker directly (the config, the secret store and
//! [`LookerClient`]), so it works whether or not the agent runs and never
//! disturbs the agent's cached tokens.
//!
//! How an admin is recognised: `GET /api/4.0/users/{id}/roles` lists the user's
//! roles, those given through groups included; a role named `Admin` (Looker's
//! built-in one), or one whose permission set has `all_access` or the
//! `administer` permission, makes the user an admin. When the roles cannot be
//! read, the user's `role_ids` are used instead: `"2"` is the id of Looker's
//! built-in Admin role.

use super::args::Cli;
use super::context::{config_path, open_store, unknown_profile};
use super::exit::{self, CliError};
use super::output;
use crate::config::{Config, CredentialKind};
use crate::looker::client::LookerClient;
use crate::looker::{LookerApi, LookerError, LookerUser, Role};
use crate::oauth::grant::{GrantError, GrantKeeper};
use crate::secret::Secret;
use crate::store::SecretKey;

/// The id of Looker's built-in Admin role.
pub(crate) const BUILTIN_ADMIN_ROLE_ID: &str = "2";

/// What `verify` found out about the user's admin status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AdminCheck {
    /// From the user's roles: the names of the administrative ones (empty: not an admin).
    Roles(Vec<String>),
    /// From `role_ids` only (the roles could not be read): holds the built-in Admin role id.
    RoleIds(bool),
    /// Neither worked.
    Unknown,
}

impl AdminCheck {
    /// `Some(true)` when the user is an admin, `None` when it could not be told.
    pub(crate) fn is_admin(&self) -> Option<bool> {
        match self {
            AdminCheck::Roles(admin) => Some(!admin.is_empty()),
            AdminCheck::RoleIds(b) => Some(*b),
            AdminCheck::Unknown => None,
        }
    }

    /// How the answer was reached, for `--json`.
    pub(crate) fn source(&self) -> Option<&'static str> {
        match self {
            AdminCheck::Roles(_) => Some("roles"),
            AdminCheck::RoleIds(_) => Some("role_ids"),
            AdminCheck::Unknown => None,
        }
    }
}

/// Decides whether a user is an admin from its roles (when they could be read) or its role ids.
pub(crate) fn admin_check(user: &LookerUser, roles: Option<&[Role]>) -> AdminCheck {
    if let Some(roles) = roles {
        return AdminCheck::Roles(
            roles
                .iter()
                .filter(|r| r.is_admin())
                .map(|r| r.name.clone().unwrap_or_else(|| r.id.clone()))
                .collect(),
        );
    }
    match &user.role_ids {
        Some(ids) => AdminCheck::RoleIds(ids.iter().any(|v| match v {
            serde_json::Value::String(s) => s == BUILTIN_ADMIN_ROLE_ID,
            serde_json::Value::Number(n) => {
                n.as_u64().is_some_and(|n| n.to_string() == BUILTIN_ADMIN_ROLE_ID)
            }
            _ => false,
        })),
        None => AdminCheck::Unknown,
    }
}

/// Adds what to do next to a Looker error met while verifying.
fn looker_failure(e: &LookerError, what: &str, profile: &str, name: &str, client_id: &str) -> CliError {
    let hint = match e {
        LookerError::Rejected { .. } => format!(
            "; check that the API key {client_id} still exists and is enabled for a user in Looker \
             (Admin > Users > Edit Keys), then store its secret again: \
             `lookerctl credential add {profile} {name} --client-id {client_id}`"
        ),
        LookerError::Unavailable { .. } => format!(
            "; check the network and the profile's base_url (`lookerctl profile show {profile}`), then try again"
        ),
        LookerError::BadAnswer { .. } => {
            format!("; check that base_url points at the Looker instance (`lookerctl profile show {profile}`)")
        }
        LookerError::TokenExpired => "; the token was refused at once: try again".to_string(),
        LookerError::Config(_) => String::new(),
    };
    CliError::new(exit::for_looker(e), format!("{what} {profile}/{name}: {e}{hint}"))
}

/// `lookerctl credential verify PROFILE [NAME]`.
pub(crate) async fn verify(cli: &Cli, profile_name: &str, name: Option<&str>) -> Result<u8, CliError> {
    let cfg = Config::load(&config_path(cli))?;
    let profile = cfg.profiles.get(profile_name).ok_or_else(|| unknown_profile(profile_name))?;
    let cred = match name {
        Some(n) => profile.credential(n).ok_or_else(|| {
            CliError::unknown(format!(
                "profile {profile_name:?} has no credential named {n:?}; \
                 `lookerctl credential list {profile_name}` shows its credentials"
            ))
        })?,
        None => profile.credentials.first().ok_or_else(|| {
            CliError::unknown(format!(
                "profile {profile_name:?} has no credential set; add one with \
                 `lookerctl credential add {profile_name} NAME --client-id ID`"
            ))
        })?,
    };
    let (cname, client_id) = (cred.name.as_str(), cred.client_id.as_str());
    let client = LookerClient::new(profile).map_err(|e| {
        CliError::failure(format!(
            "profile {profile_name:?}: {e} (`lookerctl profile show {profile_name}` shows its settings)"
        ))
    })?;
    let fail = |e: &LookerError, what: &str| looker_failure(e, what, profile_name, cname, client_id);
    let key = SecretKey::new(profile_name, cname);
    let token = match (cred.kind, cred.secret_source()) {
        // An OAuth grant: a refresh, whose rotated refresh token is stored as the agent would.
        (CredentialKind::Oauth, _) => {
            let store = open_store(cli).await?;
            GrantKeeper::new().refresh(&client, store.as_ref(), &key, client_id).await.map_err(|e| match e {
                GrantError::Looker(e @ LookerError::Rejected { .. }) => CliError::new(
                    exit::REJECTED,
                    format!(
                        "Looker refused the OAuth grant of {profile_name}/{cname} ({e}): it was revoked or has \
                         expired; {}",
                        crate::oauth::grant::sign_in_again(profile_name, cname)
                    ),
                ),
                GrantError::Looker(e) => fail(&e, "cannot refresh the OAuth grant of"),
                GrantError::Store(m) => CliError::failure(m),
            })?
        }
        (CredentialKind::ApiKey, source) => {
            let secret = match source {
                Some(source) => source.fetch().await.map_err(|e| CliError::failure(e.to_string()))?,
                None => open_store(cli).await?.get(&key, client_id).await?,
            };
            client.login(client_id, &secret).await.map_err(|e| fail(&e, "cannot log in with"))?
        }
    };

    let looked_up = look_up(&client, &token.access_token).await;
    // The token was only for this check: revoke it whatever happened.
    let logged_out = match client.logout(&token.access_token).await {
        Ok(()) => true,
        Err(e) => {
            output::warn(&format!(
                "could not log out the token used for this check ({e}); it expires by itself in {}",
                output::countdown(token.expires_in)
            ));
            false
        }
    };
    drop(token);
    let (user, roles, roles_error) =
        looked_up.map_err(|e| fail(&e, "logged in, but cannot read the user of"))?;
    let check = admin_check(&user, roles.as_deref());
    let mut warnings = Vec::new();
    match &check {
        AdminCheck::Roles(admin) if !admin.is_empty() => warnings.push(format!(
            "{profile_name}/{cname} acts as an admin (role {}). Looker advises API keys on a service account \
             with only the permissions it needs: create a user with a narrower role, give it an API key, \
             and store that one instead (`lookerctl credential add {profile_name} NAME --client-id ID`)",
            admin.join(", ")
        )),
        AdminCheck::RoleIds(true) => warnings.push(format!(
            "{profile_name}/{cname} very likely acts as an admin (its role_ids hold {BUILTIN_ADMIN_ROLE_ID}, \
             Looker's built-in Admin role). Looker advises API keys on a service account with only the \
             permissions it needs"
        )),
        AdminCheck::Unknown => warnings.push(format!(
            "could not tell whether {profile_name}/{cname} is an admin: {}",
            roles_error.as_deref().unwrap_or("the user has no role_ids")
        )),
        _ => {}
    }

    if cli.json {
        output::json(&serde_json::json!({
            "profile": profile_name,
            "credential": cname,
            "client_id": client_id,
            "base_url": profile.base_url,
            "user": {
                "id": user.id,
                "display_name": user.display_name,
                "email": user.email,
                "role_ids": user.role_ids,
            },
            "roles": roles,
            "admin": check.is_admin(),
            "admin_source": check.source(),
            "logged_out": logged_out,
            "warnings": warnings,
        }))?;
    } else {
        let role_text = match &roles {
            Some(r) if r.is_empty() => "none".to_string(),
            Some(r) => r
                .iter()
                .map(|r| r.name.clone().unwrap_or_else(|| r.id.clone()))
                .collect::<Vec<_>>()
                .join(", "),
            None => format!("unknown ({})", roles_error.as_deref().unwrap_or("not readable")),
        };
        let admin_text = match check.is_admin() {
            Some(true) => "yes",
            Some(false) => "no",
            None => "unknown",
        };
        output::line(&format!(
            "{profile_name}/{cname} (client_id {client_id}) logs in to {} as:",
            profile.base_url
        ))?;
        output::line(&output::fields(
            2,
            &[
                ("id", user.id.clone()),
                ("name", user.display_name.clone().unwrap_or_else(|| "-".into())),
                ("email", user.email.clone().unwrap_or_else(|| "-".into())),
                ("roles", role_text),
                ("admin", admin_text.to_string()),
            ],
        ))?;
        if logged_out {
            output::line("the token used for this check was logged out again")?;
        }
    }
    for w in &warnings {
        output::warn(w);
    }
    Ok(exit::OK)
}

/// The user, its roles (`None` when unreadable) and why the roles were unreadable.
type LookedUp = (LookerUser, Option<Vec<Role>>, Option<String>);

async fn look_up(client: &LookerClient, token: &Secret) -> Result<LookedUp, LookerError> {
    let user = client.user(token).await?;
    if user.id.is_empty() {
        return Ok((user, None, Some("the user has no id".into())));
    }
    match client.user_roles(token, &user.id).await {
        Ok(roles) => Ok((user, Some(roles), None)),
        Err(e) => Ok((user, None, Some(e.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role_ids: Option<Vec<serde_json::Value>>) -> LookerUser {
        LookerUser { id: "7".into(), role_ids, ..Default::default() }
    }

    #[test]
    fn admin_by_name_or_permissions_else_role_ids() {
        let roles: Vec<Role> = serde_json::from_str(
            r#"[{"id":"3","name":"User","permission_set":{"all_access":false,"permissions":["access_data"]}},
                {"id":9,"name":"Ops","permission_set":{"permissions":["administer"]}}]"#,
        )
        .unwrap();
        assert_eq!(admin_check(&user(None), Some(&roles)), AdminCheck::Roles(vec!["Ops".into()]));
        assert_eq!(admin_check(&user(None), Some(&roles[..1])).is_admin(), Some(false));
        let admin: Vec<Role> = serde_json::from_str(r#"[{"id":"2","name":"admin"}]"#).unwrap();
        assert_eq!(admin_check(&user(None), Some(&admin)).is_admin(), Some(true));
        assert_eq!(admin_check(&user(Some(vec!["2".into()])), None), AdminCheck::RoleIds(true));
        assert_eq!(admin_check(&user(Some(vec![2.into()])), None), AdminCheck::RoleIds(true));
        assert_eq!(admin_check(&user(Some(vec!["3".into()])), None), AdminCheck::RoleIds(false));
        assert_eq!(admin_check(&user(None), None), AdminCheck::Unknown);
    }
}
