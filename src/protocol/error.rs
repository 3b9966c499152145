//! The one error type of the API ([`ApiError`]) and the one table of its codes.
//!
//! Each [`ErrorCode`] has one row in [`ErrorCode::row`]: its wire name, its HTTP
//! status on the socket, its D-Bus error name and the `lookerctl` exit status it
//! means. The socket handler, the D-Bus object, both clients and the CLI all read
//! that row; none keeps a mapping of its own.

use serde::{Deserialize, Serialize};

/// `lookerctl` exit statuses (docs/reference.md "lookerctl"): part of the interface.
pub(crate) mod exit {
    /// Success.
    pub(crate) const OK: u8 = 0;
    /// Any other failure.
    pub(crate) const FAILURE: u8 = 1;
    /// Usage error, or a request the agent found malformed.
    pub(crate) const USAGE: u8 = 2;
    /// The agent is not reachable.
    pub(crate) const AGENT_UNREACHABLE: u8 = 3;
    /// Unknown profile or credential.
    pub(crate) const UNKNOWN: u8 = 4;
    /// Looker rejected the credentials.
    pub(crate) const REJECTED: u8 = 5;
    /// Looker unreachable or failing.
    pub(crate) const UPSTREAM: u8 = 6;
}

/// The prefix of the D-Bus error names.
pub(crate) const DBUS_ERROR_PREFIX: &str = "io.github.lookeragent.Agent1.Error";

/// The stable error codes of the API.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No such profile, or none named and no default (404).
    UnknownProfile,
    /// No such credential set in the profile (404).
    UnknownCredential,
    /// Malformed request, or a `min_ttl` no token can satisfy (400).
    BadRequest,
    /// Looker refused the credentials (502).
    CredentialsRejected,
    /// Looker unreachable, failing or rate limiting; the agent shutting down or
    /// out of resources (503).
    UpstreamUnavailable,
    /// The caller may not have tokens: another user, or not an allowed program (403).
    Forbidden,
    /// No route for the request (404).
    NotFound,
    /// The secret store failed (locked, unavailable, secret missing) (500).
    SecretStore,
    /// The agent itself failed (500).
    Internal,
}

/// One row of the error table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ErrorRow {
    /// The snake_case code on the socket (`{"error":{"code":…}}`).
    pub(crate) wire: &'static str,
    /// The HTTP status on the socket.
    pub(crate) http_status: u16,
    /// The last part of the D-Bus error name (after [`DBUS_ERROR_PREFIX`]).
    pub(crate) dbus: &'static str,
    /// The `lookerctl` exit status.
    pub(crate) exit: u8,
}

impl ErrorCode {
    /// Every code, for reverse lookups.
    pub(crate) const ALL: [ErrorCode; 9] = [
        ErrorCode::UnknownProfile,
        ErrorCode::UnknownCredential,
        ErrorCode::BadRequest,
        ErrorCode::CredentialsRejected,
        ErrorCode::UpstreamUnavailable,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::SecretStore,
        ErrorCode::Internal,
    ];

    /// The table: everything a door needs to say about an error.
    pub(crate) const fn row(self) -> ErrorRow {
        use exit::*;
        let (wire, http_status, dbus, exit) = match self {
            ErrorCode::UnknownProfile => ("unknown_profile", 404, "UnknownProfile", UNKNOWN),
            ErrorCode::UnknownCredential => ("unknown_credential", 404, "UnknownCredential", UNKNOWN),
            ErrorCode::BadRequest => ("bad_request", 400, "BadRequest", USAGE),
            ErrorCode::CredentialsRejected => ("credentials_rejected", 502, "CredentialsRejected", REJECTED),
            ErrorCode::UpstreamUnavailable => ("upstream_unavailable", 503, "UpstreamUnavailable", UPSTREAM),
            ErrorCode::Forbidden => ("forbidden", 403, "AccessDenied", FAILURE),
            ErrorCode::NotFound => ("not_found", 404, "NotFound", FAILURE),
            ErrorCode::SecretStore => ("secret_store", 500, "SecretStore", FAILURE),
            ErrorCode::Internal => ("internal", 500, "Internal", FAILURE),
        };
        ErrorRow { wire, http_status, dbus, exit }
    }

    /// The HTTP status the socket API answers with.
    pub(crate) const fn http_status(self) -> u16 {
        self.row().http_status
    }

    /// The `lookerctl` exit status this error means.
    pub(crate) const fn exit_status(self) -> u8 {
        self.row().exit
    }

    /// The full D-Bus error name (`io.github.lookeragent.Agent1.Error.UnknownProfile`).
    pub(crate) fn dbus_name(self) -> String {
        format!("{DBUS_ERROR_PREFIX}.{}", self.row().dbus)
    }

    /// The code a D-Bus error name stands for; `None` for a name not of this API.
    pub(crate) fn from_dbus_name(name: &str) -> Option<ErrorCode> {
        let short = name.strip_prefix(DBUS_ERROR_PREFIX)?.strip_prefix('.')?;
        ErrorCode::ALL.into_iter().find(|c| c.row().dbus == short)
    }
}

/// Why a request was not served: a code from the table and a message for people
/// that says what to do next. Never holds a secret or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// What kind of failure (drives status, D-Bus name and exit status).
    pub(crate) code: ErrorCode,
    /// What went wrong and what to do next.
    pub(crate) message: String,
}

impl ApiError {
    /// An error with `code`.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into() }
    }

    /// A malformed request.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::BadRequest, message)
    }
}

/// `{"error":{"code":"…","message":"…"}}`: how the socket carries an [`ApiError`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ErrorBody {
    /// The error itself.
    pub(crate) error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ErrorDetail {
    /// Stable machine-readable code.
    pub(crate) code: ErrorCode,
    /// What went wrong and what to do next, for people.
    pub(crate) message: String,
}

impl From<&ApiError> for ErrorBody {
    fn from(e: &ApiError) -> Self {
        ErrorBody { error: ErrorDetail { code: e.code, message: e.message.clone() } }
    }
}

impl From<ErrorBody> for ApiError {
    fn from(b: ErrorBody) -> Self {
        ApiError { code: b.error.code, message: b.error.message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_name_is_the_serde_name() {
        for c in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.row().wire, "{c:?}");
        }
    }

    #[test]
    fn dbus_names_round_trip_and_spec_names_are_kept() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_dbus_name(&c.dbus_name()), Some(c));
        }
        assert_eq!(ErrorCode::Forbidden.dbus_name(), "io.github.lookeragent.Agent1.Error.AccessDenied");
        assert_eq!(ErrorCode::from_dbus_name("org.freedesktop.DBus.Error.Failed"), None);
    }

    #[test]
    fn spec_statuses_and_exit_codes() {
        let t = |c: ErrorCode| (c.http_status(), c.exit_status());
        assert_eq!(t(ErrorCode::UnknownProfile), (404, 4));
        assert_eq!(t(ErrorCode::UnknownCredential), (404, 4));
        assert_eq!(t(ErrorCode::BadRequest), (400, 2));
        assert_eq!(t(ErrorCode::CredentialsRejected), (502, 5));
        assert_eq!(t(ErrorCode::UpstreamUnavailable), (503, 6));
        assert_eq!(t(ErrorCode::Forbidden), (403, 1));
    }
}
