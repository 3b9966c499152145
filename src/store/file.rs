//! PLACEHOLDER: being written (0600 files under XDG_DATA_HOME).
use super::{SecretKey, SecretStore, StoreError};
use crate::secret::Secret;
use async_trait::async_trait;
use std::path::PathBuf;

/// Secrets in 0600 files.
pub struct FileStore {
    dir: PathBuf,
}
impl FileStore {
    /// A store rooted at `dir`.
    pub fn new(dir: PathBuf) -> Self {
        FileStore { dir }
    }
}
#[async_trait]
impl SecretStore for FileStore {
    fn describe(&self) -> String {
        format!("file ({})", self.dir.display())
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
