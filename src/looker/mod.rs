//! The upstream Looker API, as docs/reference.md "How the agent speaks to Looker" describes it.
//!
//! [`LookerApi`] is the seam: the daemon talks to [`client::LookerClient`]
//! (reqwest + rustls), unit tests may talk to a fake. Its error variants drive
//! the broker: rejected credentials are not retried, unavailability is retried
//! with backoff, a bad answer is reported.

pub(crate) mod causes;
pub mod client;
// pub(crate): the gateway's upstream client (src/gateway/forward.rs) shares the TLS setup.
pub(crate) mod tls;

use crate::secret::Secret;
use async_trait::async_trait;
use std::time::Duration;

/// A successful login answer.
#[derive(Debug, Clone)]
pub struct LoginToken {
    /// The access token.
    pub access_token: Secret,
    /// Looker's `token_type` (normally `Bearer`).
    pub token_type: String,
    /// Lifetime in seconds, as Looker said (positive).
    pub expires_in: u64,
}

/// A successful answer of `POST /api/token` (an OAuth grant used).
#[derive(Debug, Clone)]
pub struct OAuthTokens {
    /// The access token, as a login would give it.
    pub token: LoginToken,
    /// The refresh token Looker handed back: a new one when it rotates them (the
    /// old one then no longer works), absent or the same one when it does not.
    pub refresh_token: Option<Secret>,
}

/// Why a Looker call failed; the variant decides what the broker does next.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LookerError {
    /// Looker refused the credentials (404/401/403/400 on login): do not retry.
    #[error("Looker rejected the credentials (HTTP {status}: {message})")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Looker's `message`, or the body's start.
        message: String,
    },
    /// Looker could not be reached or is failing (connect error, timeout, 429, 5xx): retry later.
    #[error("Looker is unavailable: {reason}")]
    Unavailable {
        /// What failed, in plain words.
        reason: String,
        /// A `Retry-After` the server asked for.
        retry_after: Option<Duration>,
    },
    /// Looker answered something that is not a valid answer.
    #[error("Looker sent an unexpected answer: {reason}")]
    BadAnswer {
        /// What was wrong with it.
        reason: String,
    },
    /// The token was expired or revoked (401 on an API call).
    #[error("the access token is expired or revoked (HTTP 401)")]
    TokenExpired,
    /// The profile's settings cannot work (bad URL, plain http to a remote host, bad CA file).
    #[error("{0}")]
    Config(String),
}

/// What `GET /api/4.0/user` says about the credentials' user (the fields we use).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, Default)]
pub struct LookerUser {
    /// User id (a string in API 4.0).
    #[serde(default, deserialize_with = "id_as_string")]
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Email address.
    #[serde(default)]
    pub email: Option<String>,
    /// Role ids.
    #[serde(default)]
    pub role_ids: Option<Vec<serde_json::Value>>,
}

fn id_as_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    use serde::Deserialize;
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// The name of Looker's built-in Admin role.
pub const ADMIN_ROLE_NAME: &str = "Admin";

/// One role as `GET /api/4.0/users/{id}/roles` describes it (the fields used).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct Role {
    /// Role id.
    #[serde(default, deserialize_with = "id_as_string")]
    pub id: String,
    /// Role name.
    #[serde(default)]
    pub name: Option<String>,
    /// Its permission set.
    #[serde(default, skip_serializing)]
    pub permission_set: Option<PermissionSet>,
}

/// A role's permission set (the fields used).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct PermissionSet {
    /// Every permission.
    #[serde(default)]
    pub all_access: Option<bool>,
    /// The permissions granted.
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
}

impl Role {
    /// True for the Admin role or any role with administrative permissions.
    pub fn is_admin(&self) -> bool {
        let named = self.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(ADMIN_ROLE_NAME));
        let perms = self.permission_set.as_ref().is_some_and(|p| {
            p.all_access == Some(true) || p.permissions.iter().flatten().any(|x| x == "administer")
        });
        named || perms
    }
}

/// One API3 key of a user, as `GET /api/4.0/users/{id}/credentials_api3` lists it
/// (the fields used; never a secret).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, Default, PartialEq, Eq)]
pub struct Api3Key {
    /// Looker's id of the key (digits), what `DELETE …/credentials_api3/{id}` takes.
    #[serde(default, deserialize_with = "id_as_string")]
    pub id: String,
    /// The key's client_id.
    #[serde(default)]
    pub client_id: String,
    /// When Looker created it (`2024-01-01T00:00:00.000+00:00`).
    #[serde(default)]
    pub created_at: Option<String>,
    /// The `purpose` given at creation.
    #[serde(default)]
    pub purpose: Option<String>,
}

impl Api3Key {
    /// `created_at` as a time: Looker writes `2024-01-01T00:00:00.000+00:00` (a UTC
    /// offset, fractions of a second); `Z` and no zone (UTC) are read too.
    pub fn created(&self) -> Option<std::time::SystemTime> {
        parse_looker_time(self.created_at.as_deref()?)
    }
}

/// Parses Looker's timestamps (see [`Api3Key::created`]).
pub fn parse_looker_time(text: &str) -> Option<std::time::SystemTime> {
    let text = text.trim();
    let (base, rest) = (text.get(..19)?, text.get(19..)?);
    let at = humantime::parse_rfc3339_weak(base).ok()?;
    let rest = rest.strip_prefix('.').map_or(rest, |r| r.trim_start_matches(|c: char| c.is_ascii_digit()));
    let offset_secs: i64 = match rest {
        "" | "Z" | "z" => 0,
        zone => {
            let (sign, hm) = match zone.as_bytes().first()? {
                b'+' => (1, &zone[1..]),
                b'-' => (-1, &zone[1..]),
                _ => return None,
            };
            let (h, m) = hm.split_once(':').unwrap_or((hm.get(..2)?, hm.get(2..)?));
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60)
        }
    };
    // Local time = UTC + offset, so UTC = local - offset.
    let shift = Duration::from_secs(offset_secs.unsigned_abs());
    if offset_secs >= 0 {
        at.checked_sub(shift)
    } else {
        at.checked_add(shift)
    }
}

/// The answer to `POST /api/4.0/users/{id}/credentials_api3`: the new key and the
/// only copy of its secret Looker ever hands out.
#[derive(Debug, Clone)]
pub struct NewApi3Key {
    /// The key.
    pub key: Api3Key,
    /// Its client_secret.
    pub client_secret: Secret,
}

/// One Looker instance's API, as the agent uses it.
#[async_trait]
pub trait LookerApi: Send + Sync + 'static {
    /// `POST /api/4.0/login` with the form body.
    async fn login(&self, client_id: &str, client_secret: &Secret) -> Result<LoginToken, LookerError>;
    /// `POST /api/token` with `grant_type=refresh_token` (JSON body, as Looker's own
    /// looker-cli sends it): a fresh access token from an OAuth grant. A revoked,
    /// expired or rotated-away refresh token is [`LookerError::Rejected`].
    async fn refresh_grant(
        &self,
        client_guid: &str,
        refresh_token: &Secret,
    ) -> Result<OAuthTokens, LookerError> {
        let _ = (client_guid, refresh_token);
        Err(LookerError::BadAnswer { reason: "this client cannot use OAuth grants".into() })
    }

    /// `POST /api/token` with `grant_type=authorization_code`: the code the browser
    /// brought back, with the PKCE verifier and the same redirect URI.
    async fn exchange_code(
        &self,
        client_guid: &str,
        redirect_uri: &str,
        code: &Secret,
        code_verifier: &Secret,
    ) -> Result<OAuthTokens, LookerError> {
        let _ = (client_guid, redirect_uri, code, code_verifier);
        Err(LookerError::BadAnswer { reason: "this client cannot use OAuth grants".into() })
    }

    /// `DELETE /api/4.0/logout`; a token already gone (404) counts as success.
    async fn logout(&self, access_token: &Secret) -> Result<(), LookerError>;
    /// `GET /alive` at the root.
    async fn alive(&self) -> Result<(), LookerError>;
    /// `GET /api/4.0/user`.
    async fn user(&self, access_token: &Secret) -> Result<LookerUser, LookerError>;

    /// `GET /api/4.0/users/{id}/roles` (including roles given through groups).
    async fn user_roles(&self, access_token: &Secret, user_id: &str) -> Result<Vec<Role>, LookerError> {
        let _ = (access_token, user_id);
        Err(LookerError::BadAnswer { reason: "this client cannot read roles".into() })
    }

    /// `POST /api/4.0/login/{user_id}` (sudo) with an admin's token: a new token acting
    /// as that user. Looker's refusals (403 not allowed, 404 no such user) are
    /// [`LookerError::Rejected`] with Looker's status and message.
    async fn login_user(&self, access_token: &Secret, user_id: &str) -> Result<LoginToken, LookerError> {
        let _ = (access_token, user_id);
        Err(LookerError::BadAnswer { reason: "this client cannot log in as another user".into() })
    }

    /// `PATCH /api/4.0/session {"workspace_id": workspace}`: moves this token (and
    /// only it: at Looker the workspace belongs to the token) to `dev` or `production`.
    async fn set_workspace(&self, access_token: &Secret, workspace: &str) -> Result<(), LookerError> {
        let _ = (access_token, workspace);
        Err(LookerError::BadAnswer { reason: "this client cannot change workspaces".into() })
    }

    /// `GET /api/4.0/users/{id}/credentials_api3`: the user's API keys. Looker's
    /// refusal (403: another user's keys, or self-service off) is
    /// [`LookerError::Rejected`] with its status.
    async fn api3_keys(&self, access_token: &Secret, user_id: &str) -> Result<Vec<Api3Key>, LookerError> {
        let _ = (access_token, user_id);
        Err(LookerError::BadAnswer { reason: "this client cannot list API keys".into() })
    }

    /// `POST /api/4.0/users/{id}/credentials_api3 {"purpose": …}`: a new API key for
    /// the user, with its secret. Refusals as for [`LookerApi::api3_keys`].
    async fn create_api3_key(
        &self,
        access_token: &Secret,
        user_id: &str,
        purpose: &str,
    ) -> Result<NewApi3Key, LookerError> {
        let _ = (access_token, user_id, purpose);
        Err(LookerError::BadAnswer { reason: "this client cannot create API keys".into() })
    }

    /// `DELETE /api/4.0/users/{id}/credentials_api3/{key_id}`; `Ok(false)` when
    /// Looker knows no such key (already deleted).
    async fn delete_api3_key(
        &self,
        access_token: &Secret,
        user_id: &str,
        key_id: &str,
    ) -> Result<bool, LookerError> {
        let _ = (access_token, user_id, key_id);
        Err(LookerError::BadAnswer { reason: "this client cannot delete API keys".into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn looker_timestamps_with_offsets_fractions_and_z() {
        let at = |s: &str| parse_looker_time(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs());
        let utc = 1_704_067_200; // 2024-01-01T00:00:00Z
        assert_eq!(at("2024-01-01T00:00:00.000+00:00"), Some(utc));
        assert_eq!(at("2024-01-01T00:00:00Z"), Some(utc));
        assert_eq!(at("2024-01-01T00:00:00"), Some(utc));
        assert_eq!(at("2024-01-01T02:00:00.5+02:00"), Some(utc));
        assert_eq!(at("2023-12-31T19:00:00-05:00"), Some(utc));
        assert_eq!(at("2024-01-01T00:00:00+0100"), Some(utc - 3600));
        for bad in ["", "yesterday", "2024-01-01", "2024-01-01T00:00:00+xx:00", "2024-01-01T00:00:00 UTC"] {
            assert_eq!(parse_looker_time(bad), None, "{bad}");
        }
    }
}
