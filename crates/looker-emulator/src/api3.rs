//! API3 keys (`credentials_api3`): who may list, create and delete them,
//! and the bookkeeping. Keys created here are the same [`Credential`]s as
//! [`State::add_credential`]'s: both log in, both are listed.

use std::sync::Arc;
use std::time::SystemTime;

use super::state::{random_token, Credential, State, Tables};
use super::{Api3Counters, Api3KeyInfo, EmulatorUser};

/// Looker's client_ids are 20 letters and digits, its secrets 24.
const CLIENT_ID_LEN: usize = 20;
const CLIENT_SECRET_LEN: usize = 24;

/// The API3 knobs and counts.
pub(crate) struct Api3 {
    /// Whether a non-admin may manage its own keys (Looker's "API key
    /// self-service"; on by default).
    pub(crate) self_service: bool,
    /// Whether deleting a key also revokes the tokens it issued (off by
    /// default: the emulator leaves them to expire).
    pub(crate) delete_revokes_tokens: bool,
    pub(crate) created: u64,
    pub(crate) deleted: u64,
}

impl Default for Api3 {
    fn default() -> Self {
        Self { self_service: true, delete_revokes_tokens: false, created: 0, deleted: 0 }
    }
}

/// Why a `credentials_api3` request is refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Api3Refusal {
    /// No live token.
    Unauthenticated,
    /// Not an admin, and either another user's keys or self-service off.
    Forbidden,
    /// No such user (asked by an admin).
    UnknownUser,
}

impl Credential {
    fn info(&self, client_id: &str) -> Api3KeyInfo {
        Api3KeyInfo {
            id: self.key_id.clone(),
            client_id: client_id.to_owned(),
            user_id: self.user.id.clone(),
            created_at: self.created_at,
            purpose: self.purpose.clone(),
        }
    }
}

impl Tables {
    fn keys_of(&self, user_id: &str) -> Vec<Api3KeyInfo> {
        let mut keys: Vec<Api3KeyInfo> = self
            .credentials
            .iter()
            .filter(|(_, c)| c.user.id == user_id)
            .map(|(client_id, c)| c.info(client_id))
            .collect();
        // Numeric ids in numeric order, as Looker lists them.
        keys.sort_by(|a, b| (a.id.len(), &a.id).cmp(&(b.id.len(), &b.id)));
        keys
    }
}

impl State {
    /// The user whose keys `token` may manage as `user_id`.
    pub(crate) fn api3_access(&self, token: &str, user_id: &str) -> Result<Arc<EmulatorUser>, Api3Refusal> {
        let caller = self.authenticate(token).ok_or(Api3Refusal::Unauthenticated)?;
        let tables = self.lock();
        let allowed = caller.is_admin || (caller.id == user_id && tables.api3.self_service);
        if !allowed {
            return Err(Api3Refusal::Forbidden);
        }
        tables.find_user(user_id).ok_or(Api3Refusal::UnknownUser)
    }

    /// The keys of a user, by id.
    pub(crate) fn api3_keys(&self, user_id: &str) -> Vec<Api3KeyInfo> {
        self.lock().keys_of(user_id)
    }

    /// One key of a user.
    pub(crate) fn api3_key(&self, user_id: &str, key_id: &str) -> Option<Api3KeyInfo> {
        self.lock().keys_of(user_id).into_iter().find(|k| k.id == key_id)
    }

    /// Creates a key for `user`; returns it and its secret.
    pub(crate) fn create_api3_key(
        &self,
        user: Arc<EmulatorUser>,
        purpose: Option<String>,
    ) -> (Api3KeyInfo, String) {
        let mut tables = self.lock();
        let client_id = loop {
            let candidate = random_token(CLIENT_ID_LEN);
            if !tables.credentials.contains_key(&candidate) {
                break candidate;
            }
        };
        let secret = random_token(CLIENT_SECRET_LEN);
        let user_id = user.id.clone();
        let id = tables.insert_key(client_id.clone(), secret.clone(), user, purpose.clone());
        tables.api3.created += 1;
        let created_at = tables.credentials.get(&client_id).map_or_else(SystemTime::now, |c| c.created_at);
        (Api3KeyInfo { id, client_id, user_id, created_at, purpose }, secret)
    }

    /// Deletes a key of a user; false when the user has no such key.
    pub(crate) fn delete_api3_key(&self, user_id: &str, key_id: &str) -> bool {
        let mut tables = self.lock();
        let Some(client_id) = tables
            .credentials
            .iter()
            .find(|(_, c)| c.user.id == user_id && c.key_id == key_id)
            .map(|(id, _)| id.clone())
        else {
            return false;
        };
        tables.credentials.remove(&client_id);
        tables.api3.deleted += 1;
        if tables.api3.delete_revokes_tokens {
            tables.tokens.retain(
                |_, t| !matches!(&t.kind, super::TokenKind::ApiLogin { client_id: c } if *c == client_id),
            );
        }
        true
    }

    /// Backdates (or postdates) a key's `created_at`; false for an unknown client_id.
    pub(crate) fn set_api3_key_created_at(&self, client_id: &str, at: SystemTime) -> bool {
        match self.lock().credentials.get_mut(client_id) {
            Some(c) => {
                c.created_at = at;
                true
            }
            None => false,
        }
    }

    pub(crate) fn set_api3_self_service(&self, on: bool) {
        self.lock().api3.self_service = on;
    }

    pub(crate) fn set_api3_delete_revokes_tokens(&self, on: bool) {
        self.lock().api3.delete_revokes_tokens = on;
    }

    pub(crate) fn api3_counters(&self) -> Api3Counters {
        let tables = self.lock();
        Api3Counters { created: tables.api3.created, deleted: tables.api3.deleted }
    }
}
