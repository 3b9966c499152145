//! A secret store in process memory: for tests and `--dev`. Lost at exit.

use super::{JournalEntry, OwnerLock, SecretKey, SecretStore, StoreError};
use crate::secret::Secret;
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// The secrets of one credential set, by client_id.
type Items = BTreeMap<String, Secret>;

/// Secrets in a map; values are zeroed when dropped.
#[derive(Debug, Default)]
pub struct MemoryStore {
    items: Mutex<BTreeMap<SecretKey, Items>>,
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

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<SecretKey, Items>> {
        // A poisoned map is still a valid map: a panic elsewhere must not lose secrets.
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the items of `key`, dropping the key once it has none left.
    fn edit<T>(&self, key: &SecretKey, f: impl FnOnce(&mut Items) -> T) -> T {
        let mut map = self.lock();
        let items = map.entry(key.clone()).or_default();
        let out = f(items);
        if items.is_empty() {
            map.remove(key);
        }
        out
    }
}

#[async_trait]
impl SecretStore for MemoryStore {
    fn describe(&self) -> String {
        "memory".into()
    }

    async fn get(&self, key: &SecretKey, client_id: &str) -> Result<Secret, StoreError> {
        self.lock().get(key).and_then(|items| items.get(client_id)).cloned().ok_or_else(|| {
            StoreError::NotFound { profile: key.profile.clone(), credential: key.credential.clone() }
        })
    }

    async fn set(&self, key: &SecretKey, client_id: &str, secret: &Secret) -> Result<(), StoreError> {
        self.edit(key, |items| items.insert(client_id.to_string(), secret.clone()));
        Ok(())
    }

    async fn delete(&self, key: &SecretKey) -> Result<bool, StoreError> {
        Ok(self.lock().remove(key).is_some())
    }

    async fn delete_client_id(&self, key: &SecretKey, client_id: &str) -> Result<bool, StoreError> {
        Ok(self.edit(key, |items| items.remove(client_id).is_some()))
    }

    async fn delete_other_client_ids(&self, key: &SecretKey, keep: &str) -> Result<usize, StoreError> {
        Ok(self.edit(key, |items| {
            let before = items.len();
            items.retain(|id, _| id == keep);
            before - items.len()
        }))
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
        assert!(matches!(s.get(&k, "id").await, Err(StoreError::NotFound { .. })));
        s.set(&k, "id", &Secret::new("x")).await.unwrap();
        assert_eq!(s.get(&k, "id").await.unwrap().expose(), "x");
        assert!(s.delete(&k).await.unwrap());
        assert!(!s.delete(&k).await.unwrap());
    }

    #[tokio::test]
    async fn items_are_per_client_id() {
        let s = MemoryStore::new();
        let k = SecretKey::new("p", "c");
        s.set(&k, "a", &Secret::new("sa")).await.unwrap();
        s.set(&k, "b", &Secret::new("sb")).await.unwrap();
        assert_eq!(s.get(&k, "a").await.unwrap().expose(), "sa");
        assert_eq!(s.get(&k, "b").await.unwrap().expose(), "sb");
        assert!(matches!(s.get(&k, "c").await, Err(StoreError::NotFound { .. })));
        assert!(s.delete_client_id(&k, "b").await.unwrap());
        assert!(!s.delete_client_id(&k, "b").await.unwrap());
        s.set(&k, "b", &Secret::new("sb")).await.unwrap();
        assert_eq!(s.delete_other_client_ids(&k, "b").await.unwrap(), 1);
        assert!(matches!(s.get(&k, "a").await, Err(StoreError::NotFound { .. })));
        assert_eq!(s.get(&k, "b").await.unwrap().expose(), "sb");
        assert_eq!(s.delete_other_client_ids(&k, "b").await.unwrap(), 0);
        assert!(s.delete_client_id(&k, "b").await.unwrap());
        assert!(!s.delete(&k).await.unwrap(), "the key went with its last item");
    }
}
