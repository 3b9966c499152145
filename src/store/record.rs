//! What the stores read back from the JSON they wrote: one parser whose errors
//! never quote the input, and one way back from a stored token to a journal entry.

use super::JournalEntry;
use crate::secret::Secret;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Parses stored JSON as `T`. serde_json's messages can quote the input (a secret,
/// a token), so the error says only what was `expected` and where:
/// `not a JSON object with {expected} (line L, column C)`.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8], expected: &str) -> Result<T, String> {
    serde_json::from_slice(bytes)
        .map_err(|e| format!("not a JSON object with {expected} (line {}, column {})", e.line(), e.column()))
}

/// A journaled token as a store keeps it in JSON (the whole secret of a Secret
/// Service item; part of a journal file). No `Debug`: it holds the token.
#[derive(Deserialize)]
pub(crate) struct JournalToken {
    /// Where to revoke it.
    pub(crate) base_url: String,
    /// The token.
    pub(crate) token: String,
    /// Unix time after which Looker no longer accepts it.
    pub(crate) expires_at_unix: i64,
}

impl JournalToken {
    /// The journal entry `id` of `profile`/`credential` that holds this token; an
    /// empty token (nothing to revoke with) is refused.
    pub(crate) fn into_entry(
        self,
        id: String,
        profile: String,
        credential: String,
        owner: Option<String>,
    ) -> Result<JournalEntry, String> {
        let token = Secret::new(self.token);
        if token.is_empty() {
            return Err("the token is empty".into());
        }
        Ok(JournalEntry {
            id,
            profile,
            credential,
            base_url: self.base_url,
            token,
            expires_at_unix: self.expires_at_unix,
            owner,
        })
    }
}
