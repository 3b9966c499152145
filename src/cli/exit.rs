//! Exit statuses (docs/reference.md; the values live in the protocol's error table)
//! and the error type that carries one.

use crate::client::ClientError;
use crate::protocol::ErrorCode;

pub(crate) use crate::protocol::error::exit::*;

/// A failure with its exit status and a message that says what to do next.
#[derive(Debug)]
pub(crate) struct CliError {
    /// Exit status.
    pub(crate) code: u8,
    /// Message for stderr.
    pub(crate) message: String,
}

impl CliError {
    /// Exit status 1.
    pub(crate) fn failure(message: impl Into<String>) -> Self {
        CliError { code: FAILURE, message: message.into() }
    }

    /// Exit status 2.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        CliError { code: USAGE, message: message.into() }
    }

    /// Exit status 4.
    pub(crate) fn unknown(message: impl Into<String>) -> Self {
        CliError { code: UNKNOWN, message: message.into() }
    }

    /// Any exit status.
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Self {
        CliError { code, message: message.into() }
    }
}

/// The exit status for a socket API error code.
pub(crate) fn for_code(code: ErrorCode) -> u8 {
    code.exit_status()
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        let code = match &e {
            ClientError::NotRunning { .. } | ClientError::Untrusted { .. } => AGENT_UNREACHABLE,
            ClientError::Api { code, .. } => for_code(*code),
            ClientError::Protocol(_) => FAILURE,
        };
        CliError { code, message: e.to_string() }
    }
}

impl From<crate::config::ConfigError> for CliError {
    fn from(e: crate::config::ConfigError) -> Self {
        CliError::failure(e.to_string())
    }
}

impl From<crate::config_edit::EditError> for CliError {
    fn from(e: crate::config_edit::EditError) -> Self {
        use crate::config_edit::EditError;
        let code = match &e {
            EditError::UnknownProfile { .. } | EditError::UnknownCredential { .. } => UNKNOWN,
            EditError::ProfileExists { .. } | EditError::Invalid(_) => USAGE,
            EditError::Config(_) => FAILURE,
        };
        CliError { code, message: e.to_string() }
    }
}

impl From<crate::store::StoreError> for CliError {
    fn from(e: crate::store::StoreError) -> Self {
        let code = match &e {
            crate::store::StoreError::NotFound { .. } => UNKNOWN,
            _ => FAILURE,
        };
        CliError { code, message: e.to_string() }
    }
}

/// The exit status for a Looker error met by lookerctl itself (`credential verify`).
pub(crate) fn for_looker(e: &crate::looker::LookerError) -> u8 {
    use crate::looker::LookerError;
    match e {
        LookerError::Rejected { .. } => REJECTED,
        LookerError::Unavailable { .. } | LookerError::BadAnswer { .. } | LookerError::TokenExpired => {
            UPSTREAM
        }
        LookerError::Config(_) => FAILURE,
    }
}
