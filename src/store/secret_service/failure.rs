//! How an operation on the Secret Service fails ([`Failure`]): a dead connection
//! worth one reconnect, or a final answer; and the time bound on every call.

use super::*;

/// Why an operation failed: `Stale` means the connection is dead and one reconnect
/// is worth trying; `Store` is final.
pub(super) enum Failure {
    Stale(String),
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl From<secret_service::Error> for Failure {
    fn from(e: secret_service::Error) -> Self {
        use secret_service::Error as E;
        let stale = match &e {
            E::Zbus(z) => zbus_is_stale(z),
            E::ZbusFdo(f) => fdo_is_stale(f),
            _ => false,
        };
        if stale {
            return Failure::Stale(e.to_string());
        }
        Failure::Store(match e {
            E::Unavailable => unavailable("no Secret Service provider or session bus found"),
            // Locked between our check and the call (the screen locker, another client).
            E::Zbus(zbus::Error::MethodError(name, _, _))
                if name.as_str() == "org.freedesktop.Secret.Error.IsLocked" =>
            {
                StoreError::Locked { collection: "(unknown collection)".into() }
            }
            E::Locked | E::Prompt | E::PromptDisconnected => {
                StoreError::Locked { collection: "(unknown collection)".into() }
            }
            other => unavailable(format!("the Secret Service failed: {other}")),
        })
    }
}

impl From<zbus::Error> for Failure {
    fn from(e: zbus::Error) -> Self {
        if zbus_is_stale(&e) {
            Failure::Stale(e.to_string())
        } else {
            Failure::Store(unavailable(format!("the Secret Service failed: {e}")))
        }
    }
}

/// D-Bus errors after which the same connection or session cannot work again.
pub(super) fn zbus_is_stale(e: &zbus::Error) -> bool {
    match e {
        zbus::Error::InputOutput(_) => true,
        zbus::Error::FDO(f) => fdo_is_stale(f),
        zbus::Error::MethodError(name, _, _) => matches!(
            name.as_str(),
            "org.freedesktop.DBus.Error.ServiceUnknown"
                | "org.freedesktop.DBus.Error.NameHasNoOwner"
                | "org.freedesktop.DBus.Error.UnknownObject"
                | "org.freedesktop.DBus.Error.NoReply"
                | "org.freedesktop.DBus.Error.Disconnected"
                | "org.freedesktop.Secret.Error.NoSession"
        ),
        _ => false,
    }
}

pub(super) fn fdo_is_stale(e: &zbus::fdo::Error) -> bool {
    use zbus::fdo::Error as F;
    matches!(
        e,
        F::ServiceUnknown(_)
            | F::NameHasNoOwner(_)
            | F::UnknownObject(_)
            | F::NoReply(_)
            | F::Disconnected(_)
            | F::IOError(_)
            | F::ZBus(zbus::Error::InputOutput(_))
    )
}

pub(super) fn unavailable(reason: impl Into<String>) -> StoreError {
    StoreError::Unavailable { reason: reason.into() }
}

pub(super) fn has_display() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// Bounds a step with a timeout, turning expiry into `Unavailable`.
pub(super) async fn bounded<T, F>(limit: Duration, what: &str, fut: F) -> Result<T, Failure>
where
    F: Future<Output = Result<T, Failure>>,
{
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Store(unavailable(format!(
            "the Secret Service did not answer within {} s while {what}",
            limit.as_secs()
        )))),
    }
}
