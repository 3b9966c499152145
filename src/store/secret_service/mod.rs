//! Client secrets in the freedesktop Secret Service (gnome-keyring, KWallet, KeePassXC...).
//!
//! One item per credential set, in the default collection (`login` with gnome-keyring),
//! labelled `Looker API secret (PROFILE/CREDENTIAL)`, with the attributes
//! `application=looker-agent`, `profile=NAME`, `credential=NAME` and `client_id=ID`,
//! so `secret-tool search application looker-agent` lists them. An item is looked up
//! and replaced by all four attributes: a read asks for the client_id the config
//! names and gets that item or nothing, and storing a secret replaces only the item
//! of the same client_id (the provider's own replace, atomic). While
//! `lookerctl credential add` changes a credential's client_id, both items exist for
//! a moment; the old one is deleted only once the config names the new one (the new
//! one instead, when saving the config fails), so the credential the config names
//! keeps working whatever fails.
//!
//! Nothing here may hang the daemon: connecting, every operation and the unlock
//! prompt are each bounded in time. A locked collection is unlocked through the
//! provider's own prompt when one can appear; otherwise (headless, no prompter) the
//! answer is [`StoreError::Locked`] naming the collection.
//!
//! The connection (and its encrypted session) is opened once and reused; if the
//! provider restarts, the next operation reconnects once and retries.
//!
//! The token journal (tokens the agent holds, kept until revoked or expired so a
//! restart after a crash can revoke them) is one item per token in the default
//! collection, labelled `looker-agent token journal (PROFILE/CREDENTIAL)`, with the
//! attributes `application=looker-agent-journal`, `journal_id=ID`, `profile=NAME` and
//! `credential=NAME`, and the secret `{"base_url": ..., "token": ..., "expires_at_unix": ...}`
//! (`application/json`). The application value differs on purpose, so
//! `secret-tool search application looker-agent` lists the client secrets only.
//! Items also carry `owner=INSTANCE`, the agent instance that obtained the token.
//!
//! The owner lock: a running agent instance owns the bus name
//! `io.github.lookeragent.Journal.i<INSTANCE>` on the session bus, on a connection of
//! its own, for its whole life; the bus drops the name however the agent dies. Other
//! agents revoke only entries whose owner's name has no owner. The lock lives on the
//! bus, not in a folder, because the bus is what agents sharing this store have in
//! common: they reach the same collection through the same session bus whatever
//! their data and runtime folders are (`--socket`, `XDG_DATA_HOME`). (Agents reaching
//! one keyring file through two different session buses, two non-systemd logins with
//! a keyring daemon each, do not see each other's locks.)

use super::{valid_owner, JournalEntry, OwnerLock, SecretKey, SecretStore, StoreError};
use crate::secret::Secret;
use async_trait::async_trait;
use futures_util::StreamExt;
use secret_service::{Collection, EncryptionType, Item, SearchItemsResult, SecretService};
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue};
use zeroize::{Zeroize, Zeroizing};

/// The attribute value that marks this program's items.
pub(crate) const APPLICATION: &str = "looker-agent";
/// The attribute value that marks this program's token journal items.
pub(crate) const JOURNAL_APPLICATION: &str = "looker-agent-journal";
const SECRETS_NAME: &str = "org.freedesktop.secrets";
const SERVICE_PATH: &str = "/org/freedesktop/secrets";
const SERVICE_IFACE: &str = "org.freedesktop.Secret.Service";
const PROMPT_IFACE: &str = "org.freedesktop.Secret.Prompt";
mod failure;
mod journal;
mod unlock;
use failure::*;
use journal::*;
use unlock::*;

const COLLECTION_IFACE: &str = "org.freedesktop.Secret.Collection";
/// Prefix of the bus names that mark running agent instances (see the module docs).
pub(crate) const OWNER_NAME_PREFIX: &str = "io.github.lookeragent.Journal.i";

/// The bus name that agent instance `owner` holds while it lives.
pub(crate) fn owner_bus_name(owner: &str) -> Option<String> {
    valid_owner(owner).then(|| format!("{OWNER_NAME_PREFIX}{owner}"))
}

/// Bus connection, provider check and session negotiation together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One D-Bus call; the provider answers in milliseconds when it is healthy.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// One whole store operation, not counting the unlock prompt.
const OP_TIMEOUT: Duration = Duration::from_secs(20);
/// Unlock prompt wait with no display: there is nobody to type a password.
const HEADLESS_UNLOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// Unlock prompt wait in a graphical session: time for a person to type a password.
const DESKTOP_UNLOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// One live connection with its negotiated (Diffie-Hellman, AES) session.
struct Connection {
    bus: zbus::Connection,
    service: SecretService<'static>,
}

/// The Secret Service backend. Cheap to share; holds one reusable connection.
pub struct SecretServiceStore {
    current: Mutex<Arc<Connection>>,
    unlock_timeout: Duration,
}

impl std::fmt::Debug for SecretServiceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretServiceStore")
            .field("unlock_timeout", &self.unlock_timeout)
            .finish_non_exhaustive()
    }
}

impl SecretServiceStore {
    /// Connects to the session bus's Secret Service, within a few seconds.
    ///
    /// Fails with [`StoreError::Unavailable`] when there is no session bus, or when no
    /// program owns `org.freedesktop.secrets` on it. A provider that the bus could
    /// start on demand is started only in a graphical session: headless, it would come
    /// up locked with nobody to unlock it.
    pub async fn connect() -> Result<Self, StoreError> {
        let connection = open_connection().await?;
        let unlock_timeout = if has_display() { DESKTOP_UNLOCK_TIMEOUT } else { HEADLESS_UNLOCK_TIMEOUT };
        Ok(SecretServiceStore { current: Mutex::new(Arc::new(connection)), unlock_timeout })
    }

    /// How long [`get`](SecretStore::get) and friends wait for the provider's unlock
    /// prompt before answering [`StoreError::Locked`]: 5 s without a display
    /// (`DISPLAY`/`WAYLAND_DISPLAY`), 60 s with one.
    pub fn unlock_timeout(&self) -> Duration {
        self.unlock_timeout
    }

    fn connection(&self) -> Arc<Connection> {
        // A poisoned lock still holds a valid handle.
        self.current.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces a dead connection (unless another task already did).
    async fn reconnect(&self, dead: &Arc<Connection>) -> Result<Arc<Connection>, StoreError> {
        let fresh = Arc::new(open_connection().await?);
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if Arc::ptr_eq(&cur, dead) {
            *cur = fresh;
        }
        Ok(cur.clone())
    }

    /// Runs `op` on the current connection, bounded in time; on a dead connection,
    /// reconnects and runs it once more.
    async fn run<'s, T, F, Fut>(&'s self, what: &str, op: F) -> Result<T, StoreError>
    where
        F: Fn(Arc<Connection>) -> Fut,
        Fut: Future<Output = Result<T, Failure>> + 's,
    {
        let limit = OP_TIMEOUT + self.unlock_timeout;
        let conn = self.connection();
        match bounded(limit, what, op(conn.clone())).await {
            Ok(v) => Ok(v),
            Err(Failure::Store(e)) => Err(e),
            Err(Failure::Stale(reason)) => {
                tracing::info!(%reason, "Secret Service connection lost; reconnecting");
                let conn = self.reconnect(&conn).await?;
                match bounded(limit, what, op(conn)).await {
                    Ok(v) => Ok(v),
                    Err(Failure::Store(e)) => Err(e),
                    Err(Failure::Stale(reason)) => {
                        Err(unavailable(format!("the Secret Service failed: {reason}")))
                    }
                }
            }
        }
    }
}

async fn open_connection() -> Result<Connection, StoreError> {
    let attempt = async {
        let bus = zbus::connection::Builder::session()
            .map(|b| b.method_timeout(CALL_TIMEOUT))
            .map_err(|e| unavailable(format!("no session bus ({e})")))?;
        let bus =
            bus.build().await.map_err(|e| unavailable(format!("cannot connect to the session bus ({e})")))?;
        let dbus = zbus::fdo::DBusProxy::new(&bus).await.map_err(|e| unavailable(e.to_string()))?;
        let name = zbus::names::BusName::try_from(SECRETS_NAME).map_err(|e| unavailable(e.to_string()))?;
        let owned = dbus.name_has_owner(name).await.map_err(|e| unavailable(e.to_string()))?;
        if !owned {
            let activatable = dbus
                .list_activatable_names()
                .await
                .map(|names| names.iter().any(|n| n.as_str() == SECRETS_NAME))
                .unwrap_or(false);
            if !(activatable && has_display()) {
                return Err(unavailable(format!(
                    "no program owns {SECRETS_NAME} on the session bus (no keyring is running{})",
                    if activatable { "; not starting one without a graphical session" } else { "" }
                )));
            }
        }
        let service = SecretService::connect_with_existing(EncryptionType::Dh, bus.clone())
            .await
            .map_err(|e| unavailable(format!("cannot open a Secret Service session ({e})")))?;
        Ok(Connection { bus, service })
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt).await.unwrap_or_else(|_| {
        Err(unavailable(format!(
            "the session bus or the Secret Service did not answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        )))
    })
}

/// Every item of a credential set, whatever its client_id.
fn search_attributes(key: &SecretKey) -> HashMap<&str, &str> {
    HashMap::from([
        ("application", APPLICATION),
        ("profile", key.profile.as_str()),
        ("credential", key.credential.as_str()),
    ])
}

/// The one item of a credential set for a client_id: what is read, replaced and deleted.
fn item_attributes<'a>(key: &'a SecretKey, client_id: &'a str) -> HashMap<&'a str, &'a str> {
    let mut attributes = search_attributes(key);
    attributes.insert("client_id", client_id);
    attributes
}

fn label(key: &SecretKey) -> String {
    format!("Looker API secret ({}/{})", key.profile, key.credential)
}

/// The collection an item lives in: its object path's parent.
fn parent_path(item: &ObjectPath<'_>) -> Option<OwnedObjectPath> {
    let (parent, _) = item.as_str().rsplit_once('/')?;
    OwnedObjectPath::try_from(parent.to_owned()).ok()
}

/// A collection's label for messages (e.g. `Login`), or its path when it has none.
async fn collection_name(bus: &zbus::Connection, path: &ObjectPath<'_>) -> String {
    let label = async {
        let proxy = zbus::Proxy::new(bus, SECRETS_NAME, path.to_owned(), COLLECTION_IFACE).await?;
        proxy.get_property::<String>("Label").await
    };
    match label.await {
        Ok(l) if !l.is_empty() => l,
        _ => path.as_str().rsplit('/').next().unwrap_or(path.as_str()).to_owned(),
    }
}

fn secret_from_bytes(mut bytes: Vec<u8>) -> Result<Secret, StoreError> {
    match String::from_utf8(bytes) {
        Ok(s) => Ok(Secret::new(s)),
        Err(e) => {
            bytes = e.into_bytes();
            bytes.zeroize();
            Err(StoreError::Corrupt {
                what: "Secret Service item".into(),
                reason: "the secret is not UTF-8 text".into(),
            })
        }
    }
}

async fn get_once(
    conn: Arc<Connection>,
    key: SecretKey,
    client_id: String,
    limit: Duration,
) -> Result<Secret, Failure> {
    let found = search_unlocking(&conn, item_attributes(&key, &client_id), limit).await?;
    let Some(item) = found.unlocked.first() else {
        return Err(Failure::Store(StoreError::NotFound {
            profile: key.profile,
            credential: key.credential,
        }));
    };
    Ok(secret_from_bytes(item.get_secret().await?)?)
}

/// The default collection, unlocked.
async fn unlocked_default_collection(conn: &Connection, limit: Duration) -> Result<Collection<'_>, Failure> {
    let collection =
        match conn.service.get_default_collection().await {
            Ok(c) => c,
            Err(secret_service::Error::NoResult) => return Err(Failure::Store(unavailable(
                "the Secret Service has no default collection; create one (e.g. with seahorse) and try again",
            ))),
            Err(e) => return Err(e.into()),
        };
    if collection.is_locked().await? {
        unlock_or_fail(&conn.bus, collection.collection_path.clone(), limit).await?;
    }
    Ok(collection)
}

/// The items matching `attributes`, after unlocking the collection of the first
/// locked one (if any): the `unlocked` list is what can be read or deleted.
async fn search_unlocking<'c>(
    conn: &'c Connection,
    attributes: HashMap<&str, &str>,
    limit: Duration,
) -> Result<SearchItemsResult<Item<'c>>, Failure> {
    let found = conn.service.search_items(attributes.clone()).await?;
    let Some(locked) = found.locked.first() else { return Ok(found) };
    let collection = parent_path(&locked.item_path).unwrap_or_else(|| locked.item_path.clone());
    unlock_or_fail(&conn.bus, collection, limit).await?;
    Ok(conn.service.search_items(attributes).await?)
}

async fn set_once(
    conn: Arc<Connection>,
    key: SecretKey,
    client_id: String,
    secret: Secret,
    limit: Duration,
) -> Result<(), Failure> {
    let collection = unlocked_default_collection(&conn, limit).await?;
    // replace = true: the provider swaps the item with these very attributes (the same
    // client_id) in one step; items of other client_ids are the caller's to clean up.
    collection
        .create_item(
            &label(&key),
            item_attributes(&key, &client_id),
            secret.expose().as_bytes(),
            true,
            "text/plain",
        )
        .await?;
    Ok(())
}

async fn delete_once(conn: Arc<Connection>, key: SecretKey, limit: Duration) -> Result<bool, Failure> {
    delete_matching(&conn, search_attributes(&key), limit, |_| true).await.map(|n| n > 0)
}

async fn delete_client_id_once(
    conn: Arc<Connection>,
    key: SecretKey,
    client_id: String,
    limit: Duration,
) -> Result<bool, Failure> {
    delete_matching(&conn, item_attributes(&key, &client_id), limit, |_| true).await.map(|n| n > 0)
}

async fn delete_other_client_ids_once(
    conn: Arc<Connection>,
    key: SecretKey,
    keep: String,
    limit: Duration,
) -> Result<usize, Failure> {
    delete_matching(&conn, search_attributes(&key), limit, |attributes| {
        attributes.get("client_id").map(String::as_str) != Some(keep.as_str())
    })
    .await
}

/// Deletes the unlocked items matching `attributes` whose attributes `doomed` selects;
/// how many. One deleted meanwhile by another client counts as gone, not as a failure.
async fn delete_matching(
    conn: &Connection,
    attributes: HashMap<&str, &str>,
    limit: Duration,
    doomed: impl Fn(&HashMap<String, String>) -> bool,
) -> Result<usize, Failure> {
    let found = search_unlocking(conn, attributes.clone(), limit).await?;
    if !found.locked.is_empty() {
        tracing::warn!(
            count = found.locked.len(),
            "Secret Service items of this credential sit in a locked collection and were left alone"
        );
    }
    let mut deleted = 0;
    for item in &found.unlocked {
        let result = async {
            if doomed(&item.get_attributes().await?) {
                item.delete().await?;
                return Ok(true);
            }
            Ok::<_, secret_service::Error>(false)
        };
        match result.await {
            Ok(true) => deleted += 1,
            Ok(false) => {}
            Err(e) => {
                if still_there(conn, attributes.clone(), &item.item_path).await? {
                    return Err(e.into());
                }
            }
        }
    }
    Ok(deleted)
}

#[async_trait]
impl SecretStore for SecretServiceStore {
    fn describe(&self) -> String {
        "secret-service".into()
    }

    async fn get(&self, key: &SecretKey, client_id: &str) -> Result<Secret, StoreError> {
        let limit = self.unlock_timeout;
        self.run("reading a secret", |c| get_once(c, key.clone(), client_id.to_owned(), limit)).await
    }

    async fn set(&self, key: &SecretKey, client_id: &str, secret: &Secret) -> Result<(), StoreError> {
        let limit = self.unlock_timeout;
        self.run("storing a secret", |c| {
            set_once(c, key.clone(), client_id.to_owned(), secret.clone(), limit)
        })
        .await
    }

    async fn delete(&self, key: &SecretKey) -> Result<bool, StoreError> {
        let limit = self.unlock_timeout;
        self.run("deleting a secret", |c| delete_once(c, key.clone(), limit)).await
    }

    async fn delete_client_id(&self, key: &SecretKey, client_id: &str) -> Result<bool, StoreError> {
        let limit = self.unlock_timeout;
        self.run("deleting a secret", |c| delete_client_id_once(c, key.clone(), client_id.to_owned(), limit))
            .await
    }

    async fn delete_other_client_ids(&self, key: &SecretKey, keep: &str) -> Result<usize, StoreError> {
        let limit = self.unlock_timeout;
        self.run("deleting stale secrets", |c| {
            delete_other_client_ids_once(c, key.clone(), keep.to_owned(), limit)
        })
        .await
    }

    async fn journal_add(&self, entry: &JournalEntry) -> Result<(), StoreError> {
        let limit = self.unlock_timeout;
        self.run("journaling a token", |c| journal_add_once(c, entry.clone(), limit)).await
    }

    async fn journal_remove(&self, id: &str) -> Result<(), StoreError> {
        let limit = self.unlock_timeout;
        self.run("removing a token from the journal", |c| journal_remove_once(c, id.to_owned(), limit)).await
    }

    async fn journal_list(&self) -> Result<Vec<JournalEntry>, StoreError> {
        let limit = self.unlock_timeout;
        self.run("listing the token journal", |c| journal_list_once(c, limit)).await
    }

    async fn journal_lock(&self, owner: &str) -> Result<OwnerLock, StoreError> {
        let name = owner_bus_name(owner)
            .ok_or_else(|| unavailable(format!("invalid agent instance id {owner:?}")))?;
        // A connection of its own, never replaced by a reconnect: the name must stay
        // held without a gap for as long as the agent lives.
        let hold = async {
            let bus = zbus::connection::Builder::session()
                .map(|b| b.method_timeout(CALL_TIMEOUT))
                .map_err(|e| unavailable(format!("no session bus ({e})")))?
                .build()
                .await
                .map_err(|e| unavailable(format!("cannot connect to the session bus ({e})")))?;
            let flags = zbus::fdo::RequestNameFlags::DoNotQueue.into();
            match bus.request_name_with_flags(name.as_str(), flags).await {
                Ok(zbus::fdo::RequestNameReply::PrimaryOwner) => Ok(bus),
                Ok(other) => Err(unavailable(format!("cannot own the bus name {name}: {other:?}"))),
                Err(e) => Err(unavailable(format!("cannot own the bus name {name}: {e}"))),
            }
        };
        let bus = tokio::time::timeout(CONNECT_TIMEOUT, hold).await.unwrap_or_else(|_| {
            Err(unavailable(format!("the session bus did not answer within {} s", CONNECT_TIMEOUT.as_secs())))
        })?;
        Ok(OwnerLock::new(owner, Box::new(bus)))
    }

    async fn journal_owner_alive(&self, owner: &str) -> Result<bool, StoreError> {
        let Some(name) = owner_bus_name(owner) else { return Ok(false) };
        self.run("checking a token journal owner", |c| {
            let name = name.clone();
            async move {
                let dbus = zbus::fdo::DBusProxy::new(&c.bus).await?;
                let name = zbus::names::BusName::try_from(name.as_str())
                    .map_err(|e| Failure::Store(unavailable(e.to_string())))?;
                dbus.name_has_owner(name).await.map_err(|e| Failure::from(zbus::Error::from(e)))
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_parent_is_its_collection() {
        let item = ObjectPath::try_from("/org/freedesktop/secrets/collection/login/7").unwrap();
        assert_eq!(parent_path(&item).unwrap().as_str(), "/org/freedesktop/secrets/collection/login");
    }

    #[test]
    fn a_corrupt_journal_secret_is_described_without_its_content() {
        let attrs: HashMap<String, String> = [("journal_id", "j1"), ("profile", "p"), ("credential", "c")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        let good = br#"{"base_url":"https://x","token":"tok-secret","expires_at_unix":5}"#;
        let e = journal_entry(&attrs, good).unwrap();
        assert_eq!((e.id.as_str(), e.token.expose(), e.expires_at_unix), ("j1", "tok-secret", 5));
        let bad = br#"{"base_url":"https://x","token":tok-secret}"#;
        let reason = journal_entry(&attrs, bad).err().unwrap();
        assert!(!reason.contains("tok-secret"), "{reason}");
        assert!(journal_entry(&HashMap::new(), good).is_err());
    }

    #[test]
    fn dead_connections_are_told_apart_from_answers() {
        let io = zbus::Error::InputOutput(Arc::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe)));
        assert!(zbus_is_stale(&io));
        assert!(!zbus_is_stale(&zbus::Error::InvalidReply));
        assert!(matches!(
            Failure::from(secret_service::Error::Locked),
            Failure::Store(StoreError::Locked { .. })
        ));
    }
}
