//! PLACEHOLDER: being written (freedesktop Secret Service).
use super::{SecretKey, SecretStore, StoreError};
use crate::secret::Secret;
use async_trait::async_trait;

/// The Secret Service backend.
pub struct SecretServiceStore;
impl SecretServiceStore {
    /// Connects to the session bus's Secret Service.
    pub async fn connect() -> Result<Self, StoreError> {
        Err(StoreError::Unavailable { reason: "todo".into() })
    }
}
#[async_trait]
impl SecretStore for SecretServiceStore {
    fn describe(&self) -> String {
        "secret-service".into()
    }
    async fn get(&self, key: &SecretKey) -> Result<Secret, StoreError> {
        Err(StoreError::NotFound { profile: key.profile.clone(), credential: key.credential.clone() })
    }
    async fn set(&self, _key: &SecretKey, _client_id: &str, _secret: &Secret) -> Result<(), StoreError> {
        Err(StoreError::Unavailable { reason: "todo".into() })
    }
    async fn delete(&self, _key: &SecretKey) -> Result<bool, StoreError> {
        Ok(false)
    }
}
