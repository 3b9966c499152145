//! Using a stored OAuth grant: the login of a credential set of `kind = "oauth"`.
//!
//! Looker may rotate refresh tokens: each refresh answers a new one and the one
//! sent stops working. The rule that keeps a grant from being lost is that the new
//! refresh token is in the secret store before anything else happens (before the
//! access token is handed to anyone). If storing it fails, this keeper holds it in
//! memory (it is then the only working copy), uses it for the next refresh and tries
//! to store it again first. Refreshes of one set run one at a time: two concurrent
//! refreshes with the same token would make Looker refuse the second.
//!
//! The agent and `lookerctl credential verify` are two processes refreshing the same
//! grant: each refresh also holds `$XDG_STATE_HOME/looker-agent/grants/{profile}/
//! {credential}.lock` (an flock, dropped however the process dies) and reads the
//! refresh token from the store only once it holds it, so the second one uses the
//! token the first one stored rather than the one Looker has just rotated away.
//!
//! What no client can close is the moment between Looker applying a rotation and
//! its answer arriving: a crash (or a dropped connection) exactly there loses the
//! grant, and the set then says "sign in again".

use crate::files::{lock, private_dir};
use crate::looker::{LoginToken, LookerApi, LookerError};
use crate::secret::Secret;
use crate::store::{SecretKey, SecretStore, StoreError};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::Mutex;

/// How long a refresh waits for another process's refresh of the same grant (one
/// call to Looker, bounded by the profile's timeout) before giving up for now.
const OTHER_REFRESH_WAIT: Duration = Duration::from_secs(60);

/// Why a refresh gave no token.
#[derive(Debug)]
pub enum GrantError {
    /// Looker refused or failed; [`LookerError::Rejected`] means the grant is gone.
    Looker(LookerError),
    /// The refresh token could not be read from the store.
    Store(String),
}

/// One OAuth credential set's refresh token in use (see the module documentation).
pub struct GrantKeeper {
    /// A rotated refresh token the store did not take, held until it does.
    unstored: Mutex<Option<Secret>>,
    /// Where the cross-process refresh locks live (`None`: this process only).
    lock_dir: Option<PathBuf>,
}

impl Default for GrantKeeper {
    fn default() -> Self {
        GrantKeeper::new()
    }
}

impl GrantKeeper {
    /// A keeper with nothing held, taking turns with other processes through the
    /// locks in the default state folder.
    pub fn new() -> GrantKeeper {
        GrantKeeper::locking_in(Some(crate::paths::default_state_dir().join("grants")))
    }

    /// A keeper whose cross-process locks live in `dir` (`None`: no such lock, for a
    /// grant only this process can see).
    pub fn locking_in(dir: Option<PathBuf>) -> GrantKeeper {
        GrantKeeper { unstored: Mutex::new(None), lock_dir: dir }
    }

    /// Takes `key`'s cross-process refresh lock, waiting for another holder; `None`
    /// without a lock folder, or when the lock cannot be taken at all (a read-only
    /// state folder): the race it guards against is rare, a refresh refused for a lock
    /// file would fail every time.
    async fn lock_across_processes(&self, key: &SecretKey) -> Result<Option<std::fs::File>, GrantError> {
        let Some(root) = &self.lock_dir else { return Ok(None) };
        let dir = root.join(&*key.profile);
        let path = dir.join(format!("{}.lock", key.credential));
        let unlocked = |e: std::io::Error| {
            tracing::warn!(profile = %key.profile, credential = %key.credential, lock = %path.display(),
                error = %e, "cannot take the OAuth refresh lock; refreshing without it (a `lookerctl credential \
                 verify` at this very moment could lose the grant): check that folder's owner and permissions");
            Ok(None)
        };
        if let Err(e) = private_dir::create_all(&dir) {
            return unlocked(e);
        }
        let file = match lock::open_or_create(&path) {
            Ok(f) => f,
            Err(e) => return unlocked(e),
        };
        match lock::exclusive_waiting_async(&file, OTHER_REFRESH_WAIT).await {
            Ok(true) => Ok(Some(file)),
            Ok(false) => Err(GrantError::Looker(LookerError::Unavailable {
                reason: format!(
                    "another process has been refreshing the OAuth grant of {}/{} for {} s (its lock: {}); \
                     try again when it has finished",
                    key.profile,
                    key.credential,
                    OTHER_REFRESH_WAIT.as_secs(),
                    path.display()
                ),
                retry_after: None,
            })),
            Err(e) => unlocked(e),
        }
    }

    /// Exchanges the set's refresh token for an access token, storing a rotated
    /// refresh token before returning.
    pub async fn refresh(
        &self,
        api: &dyn LookerApi,
        store: &dyn SecretStore,
        key: &SecretKey,
        client_guid: &str,
    ) -> Result<LoginToken, GrantError> {
        let mut unstored = self.unstored.lock().await;
        // Held until the rotated token is stored (or kept): dropped with the file.
        let _across = self.lock_across_processes(key).await?;
        if let Some(held) = unstored.as_ref() {
            if store.set(key, client_guid, held).await.is_ok() {
                tracing::info!(profile = %key.profile, credential = %key.credential,
                    "stored the rotated OAuth refresh token that the secret store refused before");
                *unstored = None;
            }
        }
        let current = match unstored.as_ref() {
            Some(held) => held.clone(),
            None => {
                store.get(key, client_guid).await.map_err(|e| GrantError::Store(not_found_hint(e, key)))?
            }
        };
        let answer = api.refresh_grant(client_guid, &current).await.map_err(GrantError::Looker)?;
        if let Some(new) = answer.refresh_token.filter(|n| n != &current) {
            match store.set(key, client_guid, &new).await {
                Ok(()) => *unstored = None,
                Err(e) => {
                    tracing::warn!(profile = %key.profile, credential = %key.credential, error = %e,
                        "Looker rotated the OAuth refresh token but the secret store refused the new one: \
                         it is kept in memory and stored again at the next refresh; if the agent stops \
                         before then, sign in again with `lookerctl login`");
                    *unstored = Some(new);
                }
            }
        }
        Ok(answer.token)
    }
}

/// A store error, with "no refresh token" said in OAuth's words.
fn not_found_hint(e: StoreError, key: &SecretKey) -> String {
    match e {
        StoreError::NotFound { .. } => format!(
            "no OAuth refresh token stored for {}/{}: sign in again: lookerctl login {} --name {}",
            key.profile, key.credential, key.profile, key.credential
        ),
        e => e.to_string(),
    }
}

/// The words for a grant Looker refused (revoked, expired, rotated away).
pub fn sign_in_again(profile: &str, credential: &str) -> String {
    if credential == super::DEFAULT_CREDENTIAL_NAME {
        format!("sign in again: lookerctl login {profile}")
    } else {
        format!("sign in again: lookerctl login {profile} --name {credential}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::looker::OAuthTokens;
    use crate::store::memory::MemoryStore;
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Looker with strict rotation: refresh token `rt-N` gives `rt-(N+1)`.
    struct Rotating {
        live: std::sync::Mutex<String>,
        calls: AtomicUsize,
    }

    #[async_trait]
    impl LookerApi for Rotating {
        async fn login(&self, _: &str, _: &Secret) -> Result<LoginToken, LookerError> {
            unreachable!("an OAuth set never logs in with a secret")
        }
        async fn logout(&self, _: &Secret) -> Result<(), LookerError> {
            Ok(())
        }
        async fn alive(&self) -> Result<(), LookerError> {
            Ok(())
        }
        async fn user(&self, _: &Secret) -> Result<crate::looker::LookerUser, LookerError> {
            Ok(Default::default())
        }
        async fn refresh_grant(&self, guid: &str, rt: &Secret) -> Result<OAuthTokens, LookerError> {
            assert_eq!(guid, "looker-agent");
            // A round trip: another refresh may run meanwhile.
            tokio::task::yield_now().await;
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let mut live = self.live.lock().unwrap();
            if rt.expose() != live.as_str() {
                return Err(LookerError::Rejected { status: 400, message: "invalid_grant".into() });
            }
            *live = format!("rt-{}", n + 1);
            Ok(OAuthTokens {
                token: LoginToken {
                    access_token: Secret::new(format!("at-{n}")),
                    token_type: "Bearer".into(),
                    expires_in: 3600,
                },
                refresh_token: Some(Secret::new(live.clone())),
            })
        }
    }

    fn rotating() -> Rotating {
        Rotating { live: std::sync::Mutex::new("rt-0".into()), calls: AtomicUsize::new(0) }
    }

    #[tokio::test]
    async fn a_rotated_token_is_stored_before_the_access_token_is_returned() {
        let (api, store, key) = (rotating(), MemoryStore::new(), SecretKey::new("p", "oauth"));
        store.set(&key, "looker-agent", &Secret::new("rt-0")).await.unwrap();
        let keeper = GrantKeeper::locking_in(None);
        for n in 0..3 {
            let t = keeper.refresh(&api, &store, &key, "looker-agent").await.unwrap();
            assert_eq!(t.access_token.expose(), format!("at-{n}"));
            assert_eq!(store.get(&key, "looker-agent").await.unwrap().expose(), format!("rt-{}", n + 1));
        }
    }

    #[tokio::test]
    async fn concurrent_refreshes_take_turns() {
        let (api, store, key) = (rotating(), MemoryStore::new(), SecretKey::new("p", "oauth"));
        store.set(&key, "looker-agent", &Secret::new("rt-0")).await.unwrap();
        let keeper = GrantKeeper::locking_in(None);
        let (a, b) = tokio::join!(
            keeper.refresh(&api, &store, &key, "looker-agent"),
            keeper.refresh(&api, &store, &key, "looker-agent")
        );
        assert!(a.is_ok() && b.is_ok(), "the second refresh used the rotated token");
    }

    /// Two processes (two keepers, as the agent and `lookerctl credential verify` each
    /// have one) refreshing one grant at once: the lock makes the second read the token
    /// the first stored. Without it both send rt-0 and Looker refuses the second.
    #[tokio::test]
    async fn keepers_of_two_processes_take_turns_through_the_lock() {
        let (api, store, key) = (rotating(), MemoryStore::new(), SecretKey::new("p", "oauth"));
        store.set(&key, "looker-agent", &Secret::new("rt-0")).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (agent, ctl) = (
            GrantKeeper::locking_in(Some(dir.path().to_path_buf())),
            GrantKeeper::locking_in(Some(dir.path().to_path_buf())),
        );
        let (a, b) = tokio::join!(
            agent.refresh(&api, &store, &key, "looker-agent"),
            ctl.refresh(&api, &store, &key, "looker-agent")
        );
        assert!(a.is_ok() && b.is_ok(), "{:?} / {:?}", a.err(), b.err());
        assert_eq!(store.get(&key, "looker-agent").await.unwrap().expose(), "rt-2");
        assert!(dir.path().join("p/oauth.lock").exists());
        // The same race without the lock is lost: the guard above is what wins it.
        let (x, y) = (GrantKeeper::locking_in(None), GrantKeeper::locking_in(None));
        let (a, b) = tokio::join!(
            x.refresh(&api, &store, &key, "looker-agent"),
            y.refresh(&api, &store, &key, "looker-agent")
        );
        assert!(a.is_ok() != b.is_ok(), "one of two unlocked refreshes is refused");
    }

    /// A lock folder that cannot be made (here: under a file) costs the lock, never the
    /// refresh.
    #[tokio::test]
    async fn a_lock_that_cannot_be_taken_does_not_stop_the_refresh() {
        let (api, store, key) = (rotating(), MemoryStore::new(), SecretKey::new("p", "oauth"));
        store.set(&key, "looker-agent", &Secret::new("rt-0")).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, b"").unwrap();
        let keeper = GrantKeeper::locking_in(Some(file.join("grants")));
        let t = keeper.refresh(&api, &store, &key, "looker-agent").await.unwrap();
        assert_eq!(t.access_token.expose(), "at-0");
        assert_eq!(store.get(&key, "looker-agent").await.unwrap().expose(), "rt-1");
    }

    /// A store whose writes fail while `refuse` is set (a locked keyring).
    #[derive(Default)]
    struct Refusing {
        inner: MemoryStore,
        refuse: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl SecretStore for Refusing {
        fn describe(&self) -> String {
            "refusing".into()
        }
        async fn get(&self, key: &SecretKey, id: &str) -> Result<Secret, StoreError> {
            self.inner.get(key, id).await
        }
        async fn set(&self, key: &SecretKey, id: &str, secret: &Secret) -> Result<(), StoreError> {
            if self.refuse.load(Ordering::SeqCst) {
                return Err(StoreError::Locked { collection: "login".into() });
            }
            self.inner.set(key, id, secret).await
        }
        async fn delete(&self, key: &SecretKey) -> Result<bool, StoreError> {
            self.inner.delete(key).await
        }
        async fn delete_client_id(&self, key: &SecretKey, id: &str) -> Result<bool, StoreError> {
            self.inner.delete_client_id(key, id).await
        }
        async fn delete_other_client_ids(&self, key: &SecretKey, keep: &str) -> Result<usize, StoreError> {
            self.inner.delete_other_client_ids(key, keep).await
        }
    }

    #[tokio::test]
    async fn a_rotated_token_the_store_refuses_is_kept_and_stored_later() {
        let (api, store, key) = (rotating(), Refusing::default(), SecretKey::new("p", "oauth"));
        store.set(&key, "looker-agent", &Secret::new("rt-0")).await.unwrap();
        let keeper = GrantKeeper::locking_in(None);
        store.refuse.store(true, Ordering::SeqCst);
        keeper.refresh(&api, &store, &key, "looker-agent").await.unwrap();
        assert_eq!(store.get(&key, "looker-agent").await.unwrap().expose(), "rt-0", "the store refused");
        // The held token (rt-1) is the only working one: the next refresh uses it.
        keeper.refresh(&api, &store, &key, "looker-agent").await.unwrap();
        store.refuse.store(false, Ordering::SeqCst);
        keeper.refresh(&api, &store, &key, "looker-agent").await.unwrap();
        assert_eq!(store.get(&key, "looker-agent").await.unwrap().expose(), "rt-3");
        assert!(keeper.unstored.lock().await.is_none(), "nothing held once stored");
    }

    #[tokio::test]
    async fn a_missing_token_says_sign_in_again() {
        let (api, store, key) = (rotating(), MemoryStore::new(), SecretKey::new("p", "work"));
        let Err(GrantError::Store(m)) =
            GrantKeeper::locking_in(None).refresh(&api, &store, &key, "looker-agent").await
        else {
            panic!("a store error")
        };
        assert!(m.contains("lookerctl login p --name work"), "{m}");
    }
}
