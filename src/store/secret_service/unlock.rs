//! Unlocking a locked collection through the provider's own prompt, bounded in
//! time; headless, a locked collection is an error naming it.

use super::*;

/// Asks the provider to unlock `objects`, waiting at most `limit` for its prompt.
/// Returns whether they are unlocked. A prompt still open at the deadline is dismissed.
pub(super) async fn unlock(
    bus: &zbus::Connection,
    objects: Vec<OwnedObjectPath>,
    limit: Duration,
) -> Result<bool, Failure> {
    let service = zbus::Proxy::new(bus, SECRETS_NAME, SERVICE_PATH, SERVICE_IFACE).await?;
    let (unlocked, prompt): (Vec<OwnedObjectPath>, OwnedObjectPath) =
        service.call("Unlock", &(objects,)).await?;
    if prompt.as_str() == "/" {
        return Ok(!unlocked.is_empty());
    }
    let prompt = zbus::Proxy::new(bus, SECRETS_NAME, prompt, PROMPT_IFACE).await?;
    let waited = async {
        let mut completed = prompt.receive_signal("Completed").await?;
        let _: () = prompt.call("Prompt", &("",)).await?;
        Ok::<_, zbus::Error>(completed.next().await)
    };
    match tokio::time::timeout(limit, waited).await {
        Ok(Ok(Some(msg))) => {
            let (dismissed, _result): (bool, OwnedValue) = msg.body().deserialize()?;
            Ok(!dismissed)
        }
        Ok(Ok(None)) => Ok(false),
        Ok(Err(e)) => {
            // A provider that cannot show a prompt (no prompter, no display) may fail
            // the call itself; for the user that is still "locked".
            tracing::debug!(error = %e, "Secret Service unlock prompt failed");
            Ok(false)
        }
        Err(_) => {
            tracing::debug!("Secret Service unlock prompt timed out; dismissing it");
            let _ =
                tokio::time::timeout(Duration::from_secs(1), prompt.call::<_, _, ()>("Dismiss", &())).await;
            Ok(false)
        }
    }
}

/// Unlocks the collection at `path` or fails with `Locked` naming it.
pub(super) async fn unlock_or_fail(
    bus: &zbus::Connection,
    path: OwnedObjectPath,
    limit: Duration,
) -> Result<(), Failure> {
    if unlock(bus, vec![path.clone()], limit).await? {
        Ok(())
    } else {
        Err(Failure::Store(StoreError::Locked { collection: collection_name(bus, &path).await }))
    }
}
