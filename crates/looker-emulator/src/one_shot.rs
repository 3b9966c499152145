//! One-shot faults: the next API3 key creation, the next key deletion, the
//! next login of one client_id or the next `POST /api/token` fails once,
//! then the emulator is healthy again. A test arms one before each step of a
//! multi-step operation (a key rotation, a refresh) to see that the client
//! recovers from a failure at exactly that step.

use std::collections::HashMap;

use super::state::State;
use super::OneShotFault;

/// The armed one-shot faults.
#[derive(Default)]
pub(crate) struct OneShots {
    pub(crate) api3_create: Option<OneShotFault>,
    pub(crate) api3_delete: Option<OneShotFault>,
    pub(crate) oauth_token: Option<OneShotFault>,
    /// By client_id.
    pub(crate) login: HashMap<String, OneShotFault>,
}

impl State {
    /// Arms a fault for the next key creation (replacing one already armed).
    pub(crate) fn fail_next_api3_create(&self, fault: OneShotFault) {
        self.lock().one_shots.api3_create = Some(fault);
    }

    /// Arms a fault for the next key deletion.
    pub(crate) fn fail_next_api3_delete(&self, fault: OneShotFault) {
        self.lock().one_shots.api3_delete = Some(fault);
    }

    /// Arms a fault for the next `POST /api/token`.
    pub(crate) fn fail_next_oauth_token(&self, fault: OneShotFault) {
        self.lock().one_shots.oauth_token = Some(fault);
    }

    /// Arms a fault for the next login with `client_id`.
    pub(crate) fn fail_next_login(&self, client_id: &str, fault: OneShotFault) {
        self.lock().one_shots.login.insert(client_id.to_owned(), fault);
    }

    /// Disarms every one-shot fault.
    pub(crate) fn clear_one_shot_faults(&self) {
        self.lock().one_shots = OneShots::default();
    }

    pub(crate) fn take_api3_create_fault(&self) -> Option<OneShotFault> {
        self.lock().one_shots.api3_create.take()
    }

    pub(crate) fn take_api3_delete_fault(&self) -> Option<OneShotFault> {
        self.lock().one_shots.api3_delete.take()
    }

    pub(crate) fn take_oauth_token_fault(&self) -> Option<OneShotFault> {
        self.lock().one_shots.oauth_token.take()
    }

    pub(crate) fn take_login_fault(&self, client_id: &str) -> Option<OneShotFault> {
        self.lock().one_shots.login.remove(client_id)
    }
}
