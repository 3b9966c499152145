//! The agent's API, shared by the daemon and `lookerctl` so the two cannot drift
//! apart (docs/reference.md, "Socket API" and "D-Bus API"):
//!
//! - [`request`]: what a client can ask, whatever door it uses, and the socket
//!   routes that carry each request (decoded by the daemon, built by the client);
//! - [`error`]: the one error type and the one table from which its HTTP status,
//!   D-Bus error name and `lookerctl` exit status derive;
//! - here: the answers' wire types.

pub(crate) mod error;
pub(crate) mod request;

/// The D-Bus API's names (docs/reference.md "D-Bus API").
pub(crate) mod dbus {
    /// The well-known bus name.
    pub const BUS_NAME: &str = "io.github.lookeragent.Agent1";
    /// The object path.
    pub const OBJECT_PATH: &str = "/io/github/lookeragent/Agent1";
    /// The interface name.
    pub const INTERFACE: &str = "io.github.lookeragent.Agent1";
    /// The prefix of the interface's error names.
    pub const ERROR_PREFIX: &str = super::error::DBUS_ERROR_PREFIX;
}

pub use error::{ApiError, ErrorCode};
pub(crate) use request::{Request, Route};

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Path segment that stands for "the default profile" in `/v1/profiles/{profile}/...`.
/// Profile names cannot start with `_`, so it never collides with a real one.
pub(crate) const DEFAULT_PROFILE_SEGMENT: &str = "_";

/// Default `min_ttl` in seconds when a client names none.
pub(crate) const DEFAULT_MIN_TTL_SECS: u64 = 60;

/// Characters of a name (profile, credential, path) echoed back in an error message;
/// a longer one is cut there and marked with an ellipsis, so a 5,000-character
/// name does not come back whole.
pub(crate) const MAX_ECHO_CHARS: usize = 64;

/// `s` as an error message may repeat it: at most `max` characters, `…` marking a cut.
pub(crate) fn clip(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((at, _)) => Cow::Owned(format!("{}…", &s[..at])),
    }
}

/// A name from a request as error messages repeat it ([`MAX_ECHO_CHARS`]).
pub(crate) fn echo(s: &str) -> Cow<'_, str> {
    clip(s, MAX_ECHO_CHARS)
}

/// The token object: a superset of Looker's own login answer. `Debug` hides the token.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenObject {
    /// The access token, to send as `Authorization: token …`.
    pub access_token: String,
    /// Always `Bearer`, as Looker says.
    pub token_type: String,
    /// Seconds the token has left when handed out.
    pub expires_in: u64,
    /// Wall-clock expiry, RFC 3339 UTC (`2026-11-22T17:04:05Z`).
    pub expires_at: String,
    /// Profile the token belongs to.
    pub profile: String,
    /// Credential set that obtained it.
    pub credential: String,
    /// The profile's Looker base URL (no `/api/...` suffix).
    pub base_url: String,
}

/// The token is wiped from memory when the object goes (lookerctl, client programs):
/// freed heap is not cleared otherwise.
impl Drop for TokenObject {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.access_token);
    }
}

/// `GET /v1/health` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Health {
    /// `ok` when serving.
    pub(crate) status: String,
    /// The agent's version.
    pub(crate) version: String,
}

/// `POST /v1/profiles/{profile}/invalidate` body. `Debug` hides the token.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvalidateRequest {
    /// The token a client saw rejected (401).
    pub access_token: String,
}

impl std::fmt::Debug for TokenObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenObject")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("expires_at", &self.expires_at)
            .field("profile", &self.profile)
            .field("credential", &self.credential)
            .field("base_url", &self.base_url)
            .finish()
    }
}

impl std::fmt::Debug for InvalidateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvalidateRequest").field("access_token", &"<redacted>").finish()
    }
}

/// `POST /v1/revoke` body; both fields optional (absent means "all").
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeRequest {
    /// Only this profile's tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) profile: Option<String>,
    /// Only this credential set's tokens (needs `profile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) credential: Option<String>,
}

/// `POST /v1/revoke` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct RevokeResponse {
    /// How many live tokens were revoked at Looker.
    pub(crate) revoked: u32,
}

/// `GET /v1/status` answer. Never holds a token value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatusReport {
    /// The agent's version.
    pub(crate) version: String,
    /// Process id of the daemon.
    pub(crate) pid: u32,
    /// Which secret store serves, and why when `auto` chose it.
    pub(crate) secret_store: String,
    /// The default profile, if any.
    pub(crate) default_profile: Option<String>,
    /// Seconds since the daemon started.
    pub(crate) uptime_secs: u64,
    /// One entry per profile, in name order.
    pub profiles: Vec<ProfileStatus>,
    /// The Looker API gateway: where it listens and its live sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayStatus>,
}

/// The gateway in [`StatusReport`]; never a secret or a token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GatewayStatus {
    /// `http://127.0.0.1:PORT`, when the TCP door listens.
    pub url: Option<String>,
    /// Live gateway credentials.
    pub credentials: u32,
    /// The same, one by one, oldest first.
    #[serde(default)]
    pub minted: Vec<MintedStatus>,
    /// Live sessions, oldest first.
    pub sessions: Vec<SessionStatus>,
}

/// One gateway session in [`GatewayStatus`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionStatus {
    /// Local id (log lines name it).
    pub id: u64,
    /// Profile.
    pub profile: String,
    /// Credential set, once pinned (sudo, dev); otherwise the profile's first healthy one.
    pub credential: Option<String>,
    /// `production` or `dev`.
    pub workspace: String,
    /// The Looker user it acts as (sudo), if any.
    pub sudo_user_id: Option<String>,
    /// The process its credential dies with, if any.
    pub pid: Option<i32>,
    /// When it started, RFC 3339 UTC.
    pub created: String,
}

/// `POST /v1/gateway/revoke`: end gateway credentials before their time (a leaked
/// looker.ini), with their sessions. Both fields absent: every one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GatewayRevokeRequest {
    /// Only this profile's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Only the credential with this client_id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// The answer to [`GatewayRevokeRequest`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct GatewayRevokeAnswer {
    /// Gateway credentials ended.
    pub credentials: u32,
    /// Their sessions, ended with them.
    pub sessions: u32,
}

/// One live gateway credential in [`GatewayStatus`] (its client_id is not secret).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MintedStatus {
    /// The client_id programs log in with.
    pub client_id: String,
    /// Profile.
    pub profile: String,
    /// Credential set, if bound to one.
    pub credential: Option<String>,
    /// When it ends, RFC 3339 UTC (`None`: with its process).
    pub expires_at: Option<String>,
    /// The process it dies with, if any.
    pub pid: Option<i32>,
}

/// `POST /v1/gateway/credentials`: mint a gateway credential.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GatewayCredentialRequest {
    /// Profile (absent: the default).
    #[serde(default)]
    pub profile: Option<String>,
    /// Credential set (absent: the profile's first healthy one).
    #[serde(default)]
    pub credential: Option<String>,
    /// Seconds it lives (absent: 8 hours, unless bound to the caller).
    #[serde(default)]
    pub ttl: Option<u64>,
    /// Dies when the calling process exits (`lookerctl exec`, which execs in place).
    #[serde(default)]
    pub bind_to_caller: bool,
    /// Also open a session of it, answered as `access_token`.
    #[serde(default)]
    pub session: bool,
}

/// The answer to [`GatewayCredentialRequest`]. `Debug` hides the secret and token.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GatewayCredentialAnswer {
    /// The gateway's URL: the `base_url` a Looker client uses.
    pub base_url: String,
    /// Gateway client_id.
    pub client_id: String,
    /// Gateway client_secret.
    pub client_secret: String,
    /// When it stops working, RFC 3339 UTC (absent: when the caller exits).
    pub expires_at: Option<String>,
    /// A session token, if asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// The profile it is bound to.
    pub profile: String,
    /// The credential set it is bound to, if one was named.
    pub credential: Option<String>,
}

impl std::fmt::Debug for GatewayCredentialAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayCredentialAnswer")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("expires_at", &self.expires_at)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl Drop for GatewayCredentialAnswer {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.client_secret);
        if let Some(t) = &mut self.access_token {
            zeroize::Zeroize::zeroize(t);
        }
    }
}

/// One profile in [`StatusReport`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProfileStatus {
    /// Profile name.
    pub(crate) name: String,
    /// Looker base URL.
    pub(crate) base_url: String,
    /// Credential sets in configured order.
    pub credentials: Vec<CredentialStatus>,
}

/// What a credential set is doing, as `/v1/status` names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialState {
    /// No token and nothing under way (nobody asked yet, or its token ran out).
    #[default]
    Idle,
    /// A first login is under way.
    LoggingIn,
    /// A token is cached.
    Fresh,
    /// A token is cached and its replacement is being fetched.
    Refreshing,
    /// Logins failed (Looker down); the next waits for the backoff.
    BackingOff,
    /// Looker rejected the credentials; the set is skipped until retried.
    Rejected,
}

impl CredentialState {
    /// The name on the wire and in `lookerctl status`.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialState::Idle => "idle",
            CredentialState::LoggingIn => "logging_in",
            CredentialState::Fresh => "fresh",
            CredentialState::Refreshing => "refreshing",
            CredentialState::BackingOff => "backing_off",
            CredentialState::Rejected => "rejected",
        }
    }
}

/// One credential set in [`ProfileStatus`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CredentialStatus {
    /// Credential set name.
    pub(crate) name: String,
    /// The Looker client_id (not a secret); for an OAuth grant, the app's client_guid.
    pub(crate) client_id: String,
    /// `api_key` or `oauth` (a grant from `lookerctl login`).
    #[serde(default)]
    pub kind: crate::config::CredentialKind,
    /// What the set is doing now.
    pub state: CredentialState,
    /// Seconds left on the current token, if one is cached.
    pub expires_in: Option<u64>,
    /// Wall-clock expiry of the current token (RFC 3339).
    pub(crate) expires_at: Option<String>,
    /// When the last successful login happened (RFC 3339).
    pub(crate) last_login: Option<String>,
    /// The last error, in plain words.
    pub last_error: Option<String>,
    /// When the last error happened (RFC 3339).
    pub(crate) last_error_at: Option<String>,
    /// Until when logins are held back after failures (RFC 3339).
    pub(crate) backoff_until: Option<String>,
    /// Since when Looker has rejected this set (RFC 3339); it is skipped until retried.
    #[serde(default)]
    pub(crate) rejected_since: Option<String>,
    /// When the current token is due to be replaced (RFC 3339).
    #[serde(default)]
    pub(crate) refresh_at: Option<String>,
    /// Logins made since the daemon started.
    pub(crate) logins: u64,
    /// Tokens obtained and not yet revoked or expired.
    pub(crate) live_tokens: u32,
    /// The command that prints this set's secret (`pass show looker/prod`), when the
    /// secret comes from one instead of the secret store. Never its output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_source: Option<String>,
    /// When Looker created the API key (RFC 3339), once the agent has looked it up.
    #[serde(default)]
    pub key_created_at: Option<String>,
    /// The key's age in seconds (null while unknown).
    #[serde(default)]
    pub key_age_seconds: Option<u64>,
    /// Why the key's age is unknown (Looker refused to list the user's keys, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_age_unknown: Option<String>,
    /// `rotate_after` in seconds, when set.
    #[serde(default)]
    pub rotate_after_seconds: Option<u64>,
    /// When the agent rotates the key by itself next (RFC 3339), when known.
    #[serde(default)]
    pub next_rotation_at: Option<String>,
    /// Why the last automatic rotation failed (it is retried later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_error: Option<String>,
}
