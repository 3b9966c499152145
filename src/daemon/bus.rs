//! The D-Bus API (docs/reference.md "D-Bus API") on the session bus, sharing the one
//! [`Broker`](crate::broker::Broker) with the socket server.
//!
//! ```text
//! BusService::start ──► connect ──► serve /io/github/lookeragent/Agent1 ──► own the name
//!                                     ├─ broker events → TokenRefreshed / CredentialFailed
//!                                     └─ connection lost → log, reconnect with backoff
//! ```
//! The name is requested only once the object is served, so a D-Bus-activated
//! caller never reaches a name without the object behind it. Every method checks
//! the caller's uid (`GetConnectionCredentials`, asked once per caller connection,
//! with the program behind it) against the daemon's. Signals go to
//! every listener on the bus, so they never carry a token.

use super::listener::exe_of_process;
use super::service::{Caller, Door, Reply, Service};
use crate::broker::BrokerEvent;
pub use crate::protocol::dbus::{BUS_NAME, ERROR_PREFIX, INTERFACE, OBJECT_PATH};
use crate::protocol::{ApiError, ErrorCode, Request, DEFAULT_MIN_TTL_SECS};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use zbus::fdo::{DBusProxy, RequestNameFlags, RequestNameReply};
use zbus::message::Header;
use zbus::names::BusName;
use zbus::object_server::SignalEmitter;
use zbus::Connection;

/// How long [`BusService::stop`] waits for the name to be released.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting to the bus may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest pause between reconnection attempts after the bus went away.
const RECONNECT_CAP: Duration = Duration::from_secs(60);

/// How the D-Bus door replies with an [`ApiError`]: the error name from the
/// table ([`ErrorCode::dbus_name`]), the message as its description.
#[derive(Debug)]
pub(crate) enum BusError {
    /// An error of the API.
    Api(ApiError),
    /// A D-Bus level failure (marshalling, the bus itself).
    ZBus(zbus::Error),
}

impl From<ApiError> for BusError {
    fn from(e: ApiError) -> Self {
        BusError::Api(e)
    }
}

impl From<zbus::Error> for BusError {
    fn from(e: zbus::Error) -> Self {
        BusError::ZBus(e)
    }
}

impl zbus::DBusError for BusError {
    fn create_reply(&self, call: &Header<'_>) -> zbus::Result<zbus::message::Message> {
        let desc = match self {
            BusError::Api(e) => e.message.clone(),
            BusError::ZBus(e) => e.to_string(),
        };
        zbus::message::Message::error(call, self.name())?.build(&(desc,))
    }

    fn name(&self) -> zbus::names::ErrorName<'_> {
        match self {
            BusError::Api(e) => zbus::names::ErrorName::try_from(e.code.dbus_name())
                .unwrap_or_else(|_| zbus::names::ErrorName::from_static_str_unchecked(FAILED)),
            BusError::ZBus(zbus::Error::MethodError(name, _, _)) => name.as_ref(),
            BusError::ZBus(_) => zbus::names::ErrorName::from_static_str_unchecked(FAILED),
        }
    }

    fn description(&self) -> Option<&str> {
        match self {
            BusError::Api(e) => Some(&e.message),
            BusError::ZBus(_) => None,
        }
    }
}

/// The generic D-Bus error name, for failures that are not the API's.
const FAILED: &str = "org.freedesktop.DBus.Error.Failed";

/// What the bus told about a connection the first time it called, kept for the
/// connection's life: its uid, and the program behind it (read once, then, so a
/// process that calls, forks and execs an allowed program is still judged by what
/// it was when first seen).
#[derive(Debug, Clone)]
struct Known {
    uid: u32,
    pid: Option<u32>,
    exe: Option<std::sync::Arc<std::path::Path>>,
}

/// The object served at [`OBJECT_PATH`].
pub(crate) struct Agent {
    service: Arc<Service>,
    bus: DBusProxy<'static>,
    /// Callers by unique bus name. A unique name is never reused while the bus
    /// lives, so an entry cannot go stale; it saves a bus round trip per call.
    uids: std::sync::Mutex<std::collections::HashMap<String, Known>>,
}

/// Entries kept in [`Agent::uids`] before it is emptied (bounds memory, not correctness).
const UID_CACHE_MAX: usize = 4096;

impl Agent {
    /// What the bus says of the caller: asked once per caller connection, then cached.
    async fn known(&self, hdr: &Header<'_>) -> Result<(String, Known), BusError> {
        let denied = |m: String| BusError::Api(ApiError::new(ErrorCode::Forbidden, m));
        let Some(sender) = hdr.sender() else {
            return Err(denied("the call has no sender".into()));
        };
        let cached = self.uids.lock().unwrap_or_else(|p| p.into_inner()).get(sender.as_str()).cloned();
        if let Some(k) = cached {
            return Ok((sender.to_string(), k));
        }
        let creds = self
            .bus
            .get_connection_credentials(BusName::from(sender.to_owned()))
            .await
            .map_err(|e| denied(format!("cannot tell which user is calling: {e}")))?;
        let Some(uid) = creds.unix_user_id() else {
            return Err(denied("the bus does not tell which user is calling".into()));
        };
        let pid = creds.process_id();
        let exe = pid.and_then(|p| i32::try_from(p).ok()).and_then(|p| {
            use std::os::fd::AsFd;
            exe_of_process(p, creds.process_fd().map(|f| f.as_fd()))
        });
        let known = Known { uid, pid, exe: exe.map(Arc::from) };
        let mut uids = self.uids.lock().unwrap_or_else(|p| p.into_inner());
        if uids.len() >= UID_CACHE_MAX {
            uids.clear();
        }
        uids.insert(sender.to_string(), known.clone());
        Ok((sender.to_string(), known))
    }

    /// Decoded arguments in, the service's reply out: the whole of this door.
    async fn serve(&self, hdr: &Header<'_>, req: Request<'_>) -> Result<Reply, BusError> {
        let (name, known) = self.known(hdr).await?;
        let caller = Caller {
            door: Door::DBus,
            uid: Some(known.uid),
            pid: known.pid.map(i64::from),
            exe: known.exe.as_deref(),
            bus_name: Some(&name),
            pidfd: None,
        };
        let admitted = self.service.admit(caller)?;
        Ok(self.service.call(admitted, req).await?)
    }
}

/// The empty string means "the default" on the bus.
fn opt(s: &str) -> Option<Cow<'_, str>> {
    Some(s).filter(|s| !s.is_empty()).map(Cow::Borrowed)
}

/// A reply of another kind than the request's: a bug, reported rather than panicked on.
fn unexpected(r: Reply) -> BusError {
    BusError::Api(ApiError::new(ErrorCode::Internal, format!("unexpected reply {r:?}")))
}

/// The D-Bus object. A module of its own because zbus generates a `pub trait
/// AgentSignals` beside it (the signal emitters, without docs), which is nobody's
/// business outside this file.
mod object {
    use super::*;

    #[zbus::interface(name = "io.github.lookeragent.Agent1")]
    impl Agent {
        /// A token for `profile` with at least `min_ttl` seconds left, from `credential`.
        /// Empty strings mean the default profile / the first healthy credential set;
        /// a `min_ttl` of 0 means the default (60 s).
        #[zbus(out_args("access_token", "expires_at_unix", "base_url"))]
        async fn get_token(
            &self,
            profile: &str,
            credential: &str,
            min_ttl: u32,
            #[zbus(header)] hdr: Header<'_>,
        ) -> Result<(String, i64, String), BusError> {
            let min_ttl = if min_ttl == 0 { DEFAULT_MIN_TTL_SECS } else { u64::from(min_ttl) };
            let req = Request::Token {
                profile: opt(profile),
                credential: opt(credential),
                min_ttl: Duration::from_secs(min_ttl),
            };
            match self.serve(&hdr, req).await? {
                Reply::Token(t, now) => {
                    Ok((t.token.token.expose().to_string(), t.expires_at_unix(now), t.base_url.to_string()))
                }
                r => Err(unexpected(r)),
            }
        }

        /// A caller saw `access_token` rejected: the agent stops handing it out and
        /// logs in anew on the next request. Unknown tokens are ignored.
        async fn invalidate(
            &self,
            profile: &str,
            access_token: &str,
            #[zbus(header)] hdr: Header<'_>,
        ) -> Result<(), BusError> {
            let req =
                Request::Invalidate { profile: opt(profile), access_token: Cow::Borrowed(access_token) };
            match self.serve(&hdr, req).await? {
                Reply::Done => Ok(()),
                r => Err(unexpected(r)),
            }
        }

        /// The configured profile names, sorted.
        #[zbus(out_args("profiles"))]
        async fn list_profiles(&self, #[zbus(header)] hdr: Header<'_>) -> Result<Vec<String>, BusError> {
            match self.serve(&hdr, Request::ListProfiles).await? {
                Reply::Profiles(p) => Ok(p),
                r => Err(unexpected(r)),
            }
        }

        /// Revokes the live tokens of a credential set, a profile, or (both empty) all;
        /// returns how many Looker confirmed gone.
        #[zbus(out_args("revoked"))]
        async fn revoke(
            &self,
            profile: &str,
            credential: &str,
            #[zbus(header)] hdr: Header<'_>,
        ) -> Result<u32, BusError> {
            match self
                .serve(&hdr, Request::Revoke { profile: opt(profile), credential: opt(credential) })
                .await?
            {
                Reply::Revoked(n) => Ok(n),
                r => Err(unexpected(r)),
            }
        }

        /// The agent's version.
        #[zbus(property(emits_changed_signal = "const"))]
        async fn version(&self) -> String {
            crate::VERSION.to_string()
        }

        /// A login produced a new token (which this signal never carries).
        #[zbus(signal)]
        pub(super) async fn token_refreshed(
            emitter: &SignalEmitter<'_>,
            profile: &str,
            credential: &str,
            expires_at_unix: i64,
        ) -> zbus::Result<()>;

        /// A login failed; `reason` says why in plain words.
        #[zbus(signal)]
        pub(super) async fn credential_failed(
            emitter: &SignalEmitter<'_>,
            profile: &str,
            credential: &str,
            reason: &str,
        ) -> zbus::Result<()>;
    }
}

/// Where to find the bus.
#[derive(Debug, Clone, Default)]
pub enum BusAddress {
    /// The session bus (`DBUS_SESSION_BUS_ADDRESS`, else `$XDG_RUNTIME_DIR/bus`).
    #[default]
    Session,
    /// A bus at this D-Bus address (tests).
    Address(String),
}

/// The D-Bus side of a running daemon. Serves in the background; never stops
/// the daemon: without a session bus it logs once and ends, a lost bus is
/// logged and reconnected to.
pub(crate) struct BusService {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl BusService {
    /// Starts serving `service` on the bus. Must run inside a tokio runtime.
    pub(crate) fn start(service: Arc<Service>, address: BusAddress) -> BusService {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(service, address, stopped));
        BusService { stop: Some(stop), task }
    }

    /// Releases the name and closes the connection, within `STOP_TIMEOUT` of its
    /// own: a stalled bus costs the shutdown that long, never the revocation's deadline.
    pub(crate) async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if tokio::time::timeout(STOP_TIMEOUT, &mut self.task).await.is_err() {
            tracing::warn!("the D-Bus connection did not close in time; dropping it");
            self.task.abort();
        }
    }
}

/// Why one attempt at serving failed.
enum Setup {
    /// No bus to talk to.
    NoBus(String),
    /// Connected, but the name is someone else's.
    NameTaken,
    /// Connected, but something else failed.
    Failed(String),
}

async fn connect(address: &BusAddress) -> Result<Connection, Setup> {
    let builder = match address {
        BusAddress::Session => zbus::connection::Builder::session(),
        BusAddress::Address(a) => zbus::connection::Builder::address(a.as_str()),
    }
    .map_err(|e| Setup::NoBus(e.to_string()))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, builder.build()).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(Setup::NoBus(e.to_string())),
        Err(_) => Err(Setup::NoBus(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))),
    }
}

/// Connects, serves the object, then owns the name (in that order).
async fn serve(service: &Arc<Service>, address: &BusAddress) -> Result<Connection, Setup> {
    let conn = connect(address).await?;
    let failed = |e: zbus::Error| Setup::Failed(e.to_string());
    let bus = DBusProxy::builder(&conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(failed)?;
    conn.object_server()
        .at(OBJECT_PATH, Agent { service: service.clone(), bus, uids: Default::default() })
        .await
        .map_err(failed)?;
    match conn.request_name_with_flags(BUS_NAME, RequestNameFlags::DoNotQueue.into()).await {
        Ok(RequestNameReply::PrimaryOwner) | Ok(RequestNameReply::AlreadyOwner) => Ok(conn),
        Ok(_) | Err(zbus::Error::NameTaken) => Err(Setup::NameTaken),
        Err(e) => Err(failed(e)),
    }
}

/// Turns broker events into signals until the connection closes.
async fn forward_events(conn: Connection, mut events: broadcast::Receiver<BrokerEvent>) {
    let Ok(emitter) = SignalEmitter::new(&conn, OBJECT_PATH) else {
        return;
    };
    loop {
        let sent = match events.recv().await {
            Ok(BrokerEvent::TokenRefreshed { profile, credential, expires_at_unix }) => {
                Agent::token_refreshed(&emitter, &profile, &credential, expires_at_unix).await
            }
            Ok(BrokerEvent::CredentialFailed { profile, credential, reason }) => {
                Agent::credential_failed(&emitter, &profile, &credential, &reason).await
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::debug!(missed = n, "D-Bus signals fell behind broker events");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, "cannot emit a D-Bus signal");
            if conn.is_closed() {
                return;
            }
        }
    }
}

async fn run(service: Arc<Service>, address: BusAddress, mut stopped: oneshot::Receiver<()>) {
    let mut connected_once = false;
    let mut pause = Duration::from_secs(1);
    loop {
        // Subscribe before serving, so no event between the two is lost.
        let events = service.broker().subscribe();
        let attempt = tokio::select! {
            r = serve(&service, &address) => r,
            _ = &mut stopped => return,
        };
        let conn = match attempt {
            Ok(conn) => conn,
            Err(Setup::NameTaken) => {
                tracing::warn!(
                    name = BUS_NAME,
                    "another process owns the D-Bus name; this agent serves its socket only (D-Bus off)"
                );
                return;
            }
            Err(Setup::NoBus(e) | Setup::Failed(e)) if !connected_once => {
                tracing::info!(error = %e, "D-Bus off: no usable session bus; serving the socket only");
                return;
            }
            Err(Setup::NoBus(e) | Setup::Failed(e)) => {
                tracing::debug!(error = %e, retry_in = ?pause, "session bus still unreachable");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = &mut stopped => return,
                }
                pause = (pause * 2).min(RECONNECT_CAP);
                continue;
            }
        };
        if connected_once {
            tracing::info!(name = BUS_NAME, "back on the session bus");
        } else {
            tracing::info!(name = BUS_NAME, path = OBJECT_PATH, "serving on the session bus");
        }
        connected_once = true;
        pause = Duration::from_secs(1);
        let signals = tokio::spawn(forward_events(conn.clone(), events));
        tokio::select! {
            _ = conn.closed() => {
                signals.abort();
                tracing::warn!("lost the session bus connection; the socket keeps serving, reconnecting in the background");
            }
            _ = &mut stopped => {
                signals.abort();
                let _ = conn.release_name(BUS_NAME).await;
                let _ = conn.close().await;
                return;
            }
        }
    }
}
