//! A secret store in process memory: for tests and `--dev`. Lost at exit.

use super::{JournalEntry, OwnerLock, SecretKey, SecretStore, StoreError};
use crate::secret::Secret;
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// Secrets in a map; values are zeroed when dropped.
#[derive(Debug, Default)]
pub struct MemoryStore {
    items: Mutex<BTreeMap<SecretKey, (String, Secret)>>,
    journal: Mutex<BTreeMap<String, JournalEntry>>,
    /// Owners holding their lock: brokers sharing this store in one process (tests).
    owners: Arc<Mutex<BTreeSet<String>>>,
}

/// Releases an owner of a [`MemoryStore`] when dropped.
struct MemoryOwner {
    owners: Arc<Mutex<BTreeSet<String>>>,
    owner: String,
}

impl Drop for MemoryOwner {
    fn drop(&mut self) {
        self.owners.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.owner);
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<SecretKey, (String, Secret)>> {
        // A poisoned map is still a valid map: a panic elsewhere must not lose secrets.
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl SecretStore for MemoryStore {
    fn describe(&self) -> String {
        "memory".into()
    }

    async fn get(&self, key: &SecretKey) -> Result<Secret, StoreError> {
        self.lock().get(key).map(|(_, s)| s.clone()).ok_or_else(|| StoreError::NotFound {
            profile: key.profile.clone(),
            credential: key.credential.clone(),
        })
    }

    async fn set(&self, key: &SecretKey, client_id: &str, secret: &Secret) -> Result<(), StoreError> {
        self.lock().insert(key.clone(), (client_id.to_string(), secret.clone()));
        Ok(())
    }

    async fn delete(&self, key: &SecretKey) -> Result<bool, StoreError> {
        Ok(self.lock().remove(key).is_some())
    }

    async fn journal_add(&self, entry: &JournalEntry) -> Result<(), StoreError> {
        self.journal.lock().unwrap_or_else(|p| p.into_inner()).insert(entry.id.clone(), entry.clone());
        Ok(())
    }

    async fn journal_remove(&self, id: &str) -> Result<(), StoreError> {
        self.journal.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        Ok(())
    }

    async fn journal_list(&self) -> Result<Vec<JournalEntry>, StoreError> {
        Ok(self.journal.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect())
    }

    async fn journal_lock(&self, owner: &str) -> Result<OwnerLock, StoreError> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner()).insert(owner.to_string());
        let held = MemoryOwner { owners: self.owners.clone(), owner: owner.to_string() };
        Ok(OwnerLock::new(owner, Box::new(held)))
    }

    async fn journal_owner_alive(&self, owner: &str) -> Result<bool, StoreError> {
        Ok(self.owners.lock().unwrap_or_else(|p| p.into_inner()).contains(owner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip() {
        let s = MemoryStore::new();
        let k = SecretKey::new("p", "c");
        assert!(matches!(s.get(&k).await, Err(StoreError::NotFound { .. })));
        s.set(&k, "id", &Secret::new("x")).await.unwrap();
        assert_eq!(s.get(&k).await.unwrap().expose(), "x");
        assert!(s.delete(&k).await.unwrap());
        assert!(!s.delete(&k).await.unwrap());
    }
}
