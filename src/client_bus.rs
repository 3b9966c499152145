//! The `lookerctl` side of the D-Bus API: a fallback for when the agent's
//! socket is absent (another socket path, a sandbox that sees only the bus).
//! Also the typed proxy other Rust programs (and the tests) can use.

use crate::client::ClientError;
use crate::protocol::dbus::BUS_NAME;
use crate::protocol::{ErrorCode, TokenObject};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a token call over the bus may take (a login included).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long connecting to the session bus may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The interface's errors as a Rust caller of the proxy sees them: one variant per
/// D-Bus error name of the table ([`ErrorCode::dbus_name`]), each with the agent's
/// message; anything else is [`AgentError::ZBus`].
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "io.github.lookeragent.Agent1.Error")]
pub enum AgentError {
    /// A D-Bus level failure (transport, marshalling, a foreign error name).
    #[zbus(error)]
    ZBus(zbus::Error),
    /// No such profile, or none named and no default.
    UnknownProfile(String),
    /// No such credential set in the profile.
    UnknownCredential(String),
    /// Looker refused the credentials.
    CredentialsRejected(String),
    /// Looker unreachable or failing, or the agent is shutting down.
    UpstreamUnavailable(String),
    /// A request no token can satisfy, or malformed.
    BadRequest(String),
    /// The caller is not the daemon's user, or not an allowed program.
    AccessDenied(String),
    /// The secret store failed (locked, unavailable, secret missing). An extension of the documented list.
    SecretStore(String),
    /// No such method (an extension).
    NotFound(String),
    /// The agent itself failed (an extension).
    Internal(String),
}

/// The zbus proxy of the D-Bus API: `Agent1Proxy`, its blocking twin, and a
/// stream and argument type per signal.
// zbus generates the signal argument structs and streams without docs: the trait's
// own docs above each method are what a reader gets.
#[allow(missing_docs)]
mod proxy {
    use super::AgentError;

    /// Client proxy for `io.github.lookeragent.Agent1` (docs/reference.md "D-Bus API").
    #[zbus::proxy(
        interface = "io.github.lookeragent.Agent1",
        default_service = "io.github.lookeragent.Agent1",
        default_path = "/io/github/lookeragent/Agent1"
    )]
    pub trait Agent1 {
        /// `GetToken(s profile, s credential, u min_ttl) -> (s access_token, x expires_at_unix, s base_url)`;
        /// empty strings and 0 mean the defaults.
        fn get_token(
            &self,
            profile: &str,
            credential: &str,
            min_ttl: u32,
        ) -> Result<(String, i64, String), AgentError>;

        /// `Invalidate(s profile, s access_token)`.
        fn invalidate(&self, profile: &str, access_token: &str) -> Result<(), AgentError>;

        /// `ListProfiles() -> (as)`.
        fn list_profiles(&self) -> Result<Vec<String>, AgentError>;

        /// `Revoke(s profile, s credential) -> (u revoked)`.
        fn revoke(&self, profile: &str, credential: &str) -> Result<u32, AgentError>;

        /// `signal TokenRefreshed(s profile, s credential, x expires_at_unix)`.
        #[zbus(signal)]
        fn token_refreshed(&self, profile: &str, credential: &str, expires_at_unix: i64) -> zbus::Result<()>;

        /// `signal CredentialFailed(s profile, s credential, s reason)`.
        #[zbus(signal)]
        fn credential_failed(&self, profile: &str, credential: &str, reason: &str) -> zbus::Result<()>;

        /// `property Version (s)`.
        #[zbus(property)]
        fn version(&self) -> zbus::Result<String>;
    }
}

pub use proxy::*;

/// What [`ClientError::NotRunning`] names instead of a socket.
fn bus_place() -> PathBuf {
    PathBuf::from(format!("the session bus name {BUS_NAME}"))
}

fn not_running(reason: impl Into<String>) -> ClientError {
    ClientError::NotRunning { socket: bus_place(), reason: reason.into() }
}

/// Turns a D-Bus failure into the socket client's error, so callers handle one type.
/// The code comes from the error's name, through the one table.
fn client_error(e: AgentError) -> ClientError {
    use zbus::DBusError as _;
    if let (Some(code), Some(message)) = (ErrorCode::from_dbus_name(e.name().as_str()), e.description()) {
        return ClientError::Api { status: code.http_status(), code, message: message.to_string() };
    }
    match e {
        AgentError::ZBus(e) => match &e {
            zbus::Error::MethodError(name, desc, _)
                if matches!(
                    name.as_str(),
                    "org.freedesktop.DBus.Error.ServiceUnknown"
                        | "org.freedesktop.DBus.Error.NameHasNoOwner"
                        | "org.freedesktop.DBus.Error.Spawn.ServiceNotFound"
                ) =>
            {
                not_running(desc.clone().unwrap_or_else(|| format!("no owner of {BUS_NAME}")))
            }
            zbus::Error::FDO(f)
                if matches!(
                    **f,
                    zbus::fdo::Error::ServiceUnknown(_)
                        | zbus::fdo::Error::NameHasNoOwner(_)
                        | zbus::fdo::Error::SpawnServiceNotFound(_)
                ) =>
            {
                not_running(format!("no owner of {BUS_NAME} on the session bus"))
            }
            zbus::Error::InputOutput(_) => not_running(format!("the session bus connection failed: {e}")),
            _ => ClientError::Protocol(format!("D-Bus: {e}")),
        },
        other => ClientError::Protocol(format!("D-Bus: {other:?}")),
    }
}

/// `RFC 3339` UTC for a Unix time.
fn rfc3339(unix: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The unique name that owns [`BUS_NAME`] (starting the agent by D-Bus activation
/// when nobody does), checked to run as this very user, as the socket client checks
/// SO_PEERCRED: a bus that lets other users in must not let them pose as the agent.
/// Calls then go to that unique name, which is never reused, so the owner cannot
/// change between the check and the call.
async fn trusted_owner(conn: &zbus::Connection) -> Result<zbus::names::OwnedUniqueName, ClientError> {
    use zbus::fdo::{DBusProxy, Error as Fdo};
    let zerr = |e: zbus::Error| client_error(AgentError::ZBus(e));
    let dbus = DBusProxy::new(conn).await.map_err(zerr)?;
    let name = zbus::names::BusName::try_from(BUS_NAME).map_err(|e| zerr(e.into()))?;
    let owner = match dbus.get_name_owner(name.clone()).await {
        Ok(o) => o,
        Err(Fdo::NameHasNoOwner(_)) => {
            let start = dbus.start_service_by_name(
                name.clone().try_into().map_err(|e: zbus::names::Error| zerr(e.into()))?,
                0,
            );
            tokio::time::timeout(CALL_TIMEOUT, start)
                .await
                .map_err(|_| not_running("D-Bus activation did not finish in time"))?
                .map_err(|e| zerr(e.into()))?;
            dbus.get_name_owner(name).await.map_err(|e| zerr(e.into()))?
        }
        Err(e) => return Err(zerr(e.into())),
    };
    let me = rustix::process::getuid().as_raw();
    let creds = dbus
        .get_connection_credentials(zbus::names::BusName::from(owner.as_ref()))
        .await
        .map_err(|e| zerr(e.into()))?;
    match creds.unix_user_id() {
        Some(uid) if uid == me => Ok(owner),
        other => Err(ClientError::Untrusted {
            socket: bus_place(),
            reason: format!(
                "its owner {owner} runs as uid {}, not as you (uid {me}), so it is not your agent",
                other.map(|u| u.to_string()).unwrap_or_else(|| "unknown".into())
            ),
        }),
    }
}

/// Asks the agent for a token over the session bus (`GetToken`), as
/// [`crate::client::AgentClient::token`] does over the socket.
///
/// The D-Bus answer names neither the profile nor the credential set a default
/// resolved to, so the token object carries what was asked for (empty for a default).
/// A missing bus or agent is [`ClientError::NotRunning`].
pub(crate) async fn token_over_bus(
    profile: Option<&str>,
    credential: Option<&str>,
    min_ttl: Option<Duration>,
) -> Result<TokenObject, ClientError> {
    let conn = match tokio::time::timeout(CONNECT_TIMEOUT, zbus::Connection::session()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(not_running(format!("no session bus: {e}"))),
        Err(_) => return Err(not_running("the session bus did not answer")),
    };
    let owner = trusted_owner(&conn).await?;
    let proxy = Agent1Proxy::builder(&conn)
        .destination(owner)
        .map_err(|e| client_error(e.into()))?
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(|e| client_error(e.into()))?;
    // 0 means "the default" on the bus, so an explicit 0 becomes 1 s (any live token).
    let min_ttl = min_ttl.map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX).max(1)).unwrap_or(0);
    let call = proxy.get_token(profile.unwrap_or(""), credential.unwrap_or(""), min_ttl);
    let (access_token, expires_at_unix, base_url) = match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(r) => r.map_err(client_error)?,
        Err(_) => {
            return Err(ClientError::Protocol(format!(
                "no answer over D-Bus within {}s",
                CALL_TIMEOUT.as_secs()
            )))
        }
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    Ok(TokenObject {
        access_token,
        token_type: "Bearer".into(),
        expires_in: u64::try_from(expires_at_unix.saturating_sub(now)).unwrap_or(0),
        expires_at: rfc3339(expires_at_unix),
        profile: profile.unwrap_or("").into(),
        credential: credential.unwrap_or("").into(),
        base_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::DBusError as _;

    /// Every code's D-Bus name, as the daemon sends it, reaches the proxy as the
    /// variant of that name and comes back to the same code.
    #[test]
    fn every_code_has_its_variant() {
        for code in ErrorCode::ALL {
            let name = zbus::names::OwnedErrorName::try_from(code.dbus_name()).unwrap();
            let e = AgentError::from(zbus::Error::MethodError(name, Some("m".into()), dummy_message()));
            assert!(!matches!(e, AgentError::ZBus(_)), "{code:?} has no AgentError variant");
            assert_eq!(e.name().as_str(), code.dbus_name());
            match client_error(e) {
                ClientError::Api { code: c, message, .. } => assert_eq!((c, message.as_str()), (code, "m")),
                other => panic!("{code:?}: {other:?}"),
            }
        }
    }

    fn dummy_message() -> zbus::message::Message {
        zbus::message::Message::method_call("/", "Ping").unwrap().build(&()).unwrap()
    }
}
