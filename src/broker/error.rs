//! [`BrokerError`]: why a token could not be handed out, mapped onto the API's codes.

use crate::protocol::{echo, ApiError, ErrorCode};

/// Why the broker could not serve a request. Cloneable: one login outcome
/// is shared by every client waiting on it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BrokerError {
    /// No such profile.
    #[error("unknown profile {profile:?}{}", known_list(.known))]
    UnknownProfile {
        /// The name asked for.
        profile: String,
        /// The profiles that exist.
        known: Vec<String>,
    },
    /// No profile named and no default to fall back on.
    #[error("no profile given and no default: name one{}, or set default_profile in the config", known_list(.known))]
    NoDefaultProfile {
        /// The profiles that exist.
        known: Vec<String>,
    },
    /// No such credential set in the profile (or the profile has none).
    #[error("{}", unknown_credential_message(.profile, .credential))]
    UnknownCredential {
        /// Profile name.
        profile: String,
        /// The credential asked for (empty: the profile has none).
        credential: String,
    },
    /// A request no token can satisfy, or malformed.
    #[error("{0}")]
    BadRequest(String),
    /// Looker refused every credential set tried.
    #[error("Looker rejected credential {credential:?} of profile {profile:?} (HTTP {status}: {message}); check the client_id and secret (`lookerctl credential verify {profile} {credential}`), or add new ones with `lookerctl credential add`")]
    Rejected {
        /// Profile name.
        profile: String,
        /// Credential set name.
        credential: String,
        /// Looker's HTTP status.
        status: u16,
        /// Looker's message.
        message: String,
    },
    /// Looker refused an OAuth credential set's grant (revoked, expired, rotated
    /// away): only the person can fix it, by signing in again.
    #[error("Looker refused the OAuth grant of credential {credential:?} of profile {profile:?} (HTTP {status}: {message}); it was revoked or has expired: {}", crate::oauth::grant::sign_in_again(.profile, .credential))]
    SignInAgain {
        /// Profile name.
        profile: String,
        /// Credential set name.
        credential: String,
        /// Looker's HTTP status.
        status: u16,
        /// Looker's message.
        message: String,
    },
    /// Looker unreachable, failing, or the profile's connection settings cannot work.
    #[error("Looker for profile {profile:?} is unavailable: {reason}")]
    Unavailable {
        /// Profile name.
        profile: String,
        /// What failed and, where known, what to do.
        reason: String,
    },
    /// The secret store failed (locked, missing secret, unreachable).
    #[error("{0}")]
    Store(String),
    /// The caller may not receive this profile's tokens (executable allow-list).
    #[error("{0}")]
    Forbidden(String),
    /// The agent is shutting down.
    #[error("the agent is shutting down")]
    ShuttingDown,
    /// Looker refused a request made for a client (a sudo to a user that does not
    /// exist or may not be impersonated, a workspace it does not allow): its status
    /// and words go back to the client as they are.
    #[error("Looker refused: {message} (HTTP {status})")]
    Refused {
        /// Looker's HTTP status.
        status: u16,
        /// Looker's message.
        message: String,
    },
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "; no profile is configured yet: add one with `lookerctl profile add NAME --base-url URL`".into()
    } else {
        format!(" (known: {})", known.join(", "))
    }
}

fn unknown_credential_message(profile: &str, credential: &str) -> String {
    if credential.is_empty() {
        format!(
            "profile {profile:?} has no credential set: add one with `lookerctl credential add {profile} NAME --client-id ID`"
        )
    } else {
        format!(
            "unknown credential {credential:?} in profile {profile:?}: see `lookerctl credential list {profile}`"
        )
    }
}

impl BrokerError {
    /// The socket API error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            BrokerError::UnknownProfile { .. } | BrokerError::NoDefaultProfile { .. } => {
                ErrorCode::UnknownProfile
            }
            BrokerError::UnknownCredential { .. } => ErrorCode::UnknownCredential,
            BrokerError::BadRequest(_) => ErrorCode::BadRequest,
            BrokerError::Rejected { .. } | BrokerError::SignInAgain { .. } => ErrorCode::CredentialsRejected,
            BrokerError::Unavailable { .. } | BrokerError::ShuttingDown => ErrorCode::UpstreamUnavailable,
            BrokerError::Store(_) => ErrorCode::SecretStore,
            BrokerError::Forbidden(_) => ErrorCode::Forbidden,
            BrokerError::Refused { status: 403, .. } => ErrorCode::Forbidden,
            BrokerError::Refused { .. } => ErrorCode::BadRequest,
        }
    }

    /// The error as a client sees it. Names the client sent are cut to
    /// [`crate::protocol::MAX_ECHO_CHARS`] (a real name is never long enough to be
    /// cut, and a cut one can never match: the ellipsis is no name's character).
    pub fn to_api(&self) -> ApiError {
        let cut = |s: &str| echo(s).into_owned();
        let message = match self {
            BrokerError::UnknownProfile { profile, known } => {
                BrokerError::UnknownProfile { profile: cut(profile), known: known.clone() }.to_string()
            }
            BrokerError::UnknownCredential { profile, credential } => {
                BrokerError::UnknownCredential { profile: cut(profile), credential: cut(credential) }
                    .to_string()
            }
            e => e.to_string(),
        };
        ApiError::new(self.code(), message)
    }
}
