//! The token journal in the Secret Service: one item per token the agent holds
//! (see the parent module's docs for the attributes), written, listed and removed.

use super::*;
use crate::store::record::{parse_json, JournalToken};

/// A journal item's secret as written. No `Debug`: it holds the token.
#[derive(Serialize)]
pub(super) struct JournalSecretOut<'a> {
    base_url: &'a str,
    token: &'a str,
    expires_at_unix: i64,
}

pub(super) fn journal_label(entry: &JournalEntry) -> String {
    format!("looker-agent token journal ({}/{})", entry.profile, entry.credential)
}

pub(super) async fn journal_add_once(
    conn: Arc<Connection>,
    entry: JournalEntry,
    limit: Duration,
) -> Result<(), Failure> {
    let collection = unlocked_default_collection(&conn, limit).await?;
    let mut attributes = HashMap::from([
        ("application", JOURNAL_APPLICATION),
        ("journal_id", entry.id.as_str()),
        ("profile", entry.profile.as_str()),
        ("credential", entry.credential.as_str()),
    ]);
    if let Some(owner) = &entry.owner {
        attributes.insert("owner", owner.as_str());
    }
    let body = serde_json::to_vec(&JournalSecretOut {
        base_url: &entry.base_url,
        token: entry.token.expose(),
        expires_at_unix: entry.expires_at_unix,
    })
    .map(Zeroizing::new)
    .map_err(|_| StoreError::Corrupt {
        what: "token journal entry".into(),
        reason: "cannot encode".into(),
    })?;
    collection.create_item(&journal_label(&entry), attributes, &body, true, "application/json").await?;
    Ok(())
}

pub(super) fn journal_id_attributes(id: &str) -> HashMap<&str, &str> {
    HashMap::from([("application", JOURNAL_APPLICATION), ("journal_id", id)])
}

/// Whether the item at `path` still matches `attributes`: tells an item that another
/// client removed between our search and our call apart from a real failure.
pub(super) async fn still_there(
    conn: &Connection,
    attributes: HashMap<&str, &str>,
    path: &ObjectPath<'_>,
) -> Result<bool, Failure> {
    let found = conn.service.search_items(attributes).await?;
    Ok(found.unlocked.iter().chain(&found.locked).any(|i| i.item_path.as_str() == path.as_str()))
}

pub(super) async fn journal_remove_once(
    conn: Arc<Connection>,
    id: String,
    limit: Duration,
) -> Result<(), Failure> {
    for item in &search_unlocking(&conn, journal_id_attributes(&id), limit).await?.unlocked {
        if let Err(e) = item.delete().await {
            // Removed meanwhile (e.g. twice at once): the entry is gone, as asked.
            if still_there(&conn, journal_id_attributes(&id), &item.item_path).await? {
                return Err(e.into());
            }
        }
    }
    Ok(())
}

pub(super) async fn journal_list_once(
    conn: Arc<Connection>,
    limit: Duration,
) -> Result<Vec<JournalEntry>, Failure> {
    let all = || HashMap::from([("application", JOURNAL_APPLICATION)]);
    let found = search_unlocking(&conn, all(), limit).await?;
    if !found.locked.is_empty() {
        tracing::warn!(
            count = found.locked.len(),
            "token journal items sit in a locked collection and were left out"
        );
    }
    let mut entries = Vec::new();
    for item in &found.unlocked {
        let read = async {
            Ok::<_, secret_service::Error>((item.get_attributes().await?, item.get_secret().await?))
        };
        let (attributes, secret) = match read.await {
            Ok((a, s)) => (a, Zeroizing::new(s)),
            Err(e) => {
                // Revoked and removed since the search: nothing left to list.
                if still_there(&conn, all(), &item.item_path).await? {
                    return Err(e.into());
                }
                continue;
            }
        };
        match journal_entry(&attributes, &secret) {
            Ok(entry) => entries.push(entry),
            Err(reason) => {
                tracing::warn!(item = %item.item_path.as_str(), %reason, "skipping a corrupt token journal item");
            }
        }
    }
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(entries)
}

/// Rebuilds an entry from an item's attributes and secret; the error never quotes the secret.
pub(super) fn journal_entry(
    attributes: &HashMap<String, String>,
    secret: &[u8],
) -> Result<JournalEntry, String> {
    let attribute = |name: &str| {
        attributes.get(name).filter(|v| !v.is_empty()).cloned().ok_or_else(|| format!("no {name} attribute"))
    };
    let (id, profile, credential) =
        (attribute("journal_id")?, attribute("profile")?, attribute("credential")?);
    let parsed: JournalToken = parse_json(secret, "base_url, token and expires_at_unix")
        .map_err(|m| format!("the secret is {m}"))?;
    // Absent on items of versions before owners existed.
    let owner = attributes.get("owner").filter(|o| !o.is_empty()).cloned();
    parsed.into_entry(id, profile, credential, owner)
}
