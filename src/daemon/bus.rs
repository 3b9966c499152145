//! The D-Bus API (SPEC.md "D-Bus API") on the session bus, sharing the one
//! [`Broker`] with the socket server.
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
use crate::broker::{Broker, BrokerError, BrokerEvent};
use crate::protocol::DEFAULT_MIN_TTL_SECS;
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use zbus::fdo::{DBusProxy, RequestNameFlags, RequestNameReply};
use zbus::message::Header;
use zbus::names::BusName;
use zbus::object_server::SignalEmitter;
use zbus::Connection;

/// The well-known bus name.
pub const BUS_NAME: &str = "io.github.lookeragent.Agent1";
/// The object path.
pub const OBJECT_PATH: &str = "/io/github/lookeragent/Agent1";
/// The interface name.
pub const INTERFACE: &str = "io.github.lookeragent.Agent1";
/// The prefix of the interface's error names.
pub const ERROR_PREFIX: &str = "io.github.lookeragent.Agent1.Error";

/// How long [`BusService::stop`] waits for the name to be released.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting to the bus may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest pause between reconnection attempts after the bus went away.
const RECONNECT_CAP: Duration = Duration::from_secs(60);

/// The interface's errors, as D-Bus error names under [`ERROR_PREFIX`]
/// (`io.github.lookeragent.Agent1.Error.UnknownProfile`, …). Each carries a
/// message for people. Shared by the daemon and [`crate::client_bus`].
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
    /// The caller is not the daemon's user (or cannot be identified).
    AccessDenied(String),
    /// The secret store failed (locked, unavailable, secret missing). An extension of SPEC.md's list.
    SecretStore(String),
}

impl From<BrokerError> for AgentError {
    fn from(e: BrokerError) -> Self {
        // Names the caller sent come back cut short, as over the socket.
        let msg = super::handler::peer_message(&e);
        match e {
            BrokerError::UnknownProfile { .. } | BrokerError::NoDefaultProfile { .. } => {
                AgentError::UnknownProfile(msg)
            }
            BrokerError::UnknownCredential { .. } => AgentError::UnknownCredential(msg),
            BrokerError::BadRequest(_) => AgentError::BadRequest(msg),
            BrokerError::Rejected { .. } => AgentError::CredentialsRejected(msg),
            BrokerError::Unavailable { .. } | BrokerError::ShuttingDown => {
                AgentError::UpstreamUnavailable(msg)
            }
            BrokerError::Store(_) => AgentError::SecretStore(msg),
            BrokerError::Forbidden(_) => AgentError::AccessDenied(msg),
        }
    }
}

/// Who called, once checked.
struct Caller {
    name: String,
    uid: u32,
    known: Known,
}

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
pub struct Agent {
    broker: Broker,
    uid: u32,
    bus: DBusProxy<'static>,
    /// Callers by unique bus name. A unique name is never reused while the bus
    /// lives, so an entry cannot go stale; it saves a bus round trip per call.
    uids: std::sync::Mutex<std::collections::HashMap<String, Known>>,
}

/// Entries kept in [`Agent::uids`] before it is emptied (bounds memory, not correctness).
const UID_CACHE_MAX: usize = 4096;

impl Agent {
    /// Refuses callers of another user; unknown callers are refused too.
    async fn check_caller(&self, hdr: &Header<'_>) -> Result<Caller, AgentError> {
        let Some(sender) = hdr.sender() else {
            return Err(AgentError::AccessDenied("the call has no sender".into()));
        };
        let cached = self.uids.lock().unwrap_or_else(|p| p.into_inner()).get(sender.as_str()).cloned();
        let known = match cached {
            Some(k) => k,
            None => {
                let creds =
                    self.bus.get_connection_credentials(BusName::from(sender.to_owned())).await.map_err(
                        |e| AgentError::AccessDenied(format!("cannot tell which user is calling: {e}")),
                    )?;
                let Some(uid) = creds.unix_user_id() else {
                    return Err(AgentError::AccessDenied(
                        "the bus does not tell which user is calling".into(),
                    ));
                };
                let pid = creds.process_id();
                let exe = pid.and_then(|p| i32::try_from(p).ok()).and_then(|p| {
                    use std::os::fd::AsFd;
                    exe_of_process(p, creds.process_fd().map(|f| f.as_fd()))
                });
                let known = Known { uid, pid, exe: exe.map(std::sync::Arc::from) };
                let mut uids = self.uids.lock().unwrap_or_else(|p| p.into_inner());
                if uids.len() >= UID_CACHE_MAX {
                    uids.clear();
                }
                uids.insert(sender.to_string(), known.clone());
                known
            }
        };
        if known.uid != self.uid {
            tracing::warn!(peer_uid = known.uid, bus_name = %sender, "refused a D-Bus caller of another user");
            return Err(AgentError::AccessDenied("this agent serves only its own user".into()));
        }
        Ok(Caller { name: sender.to_string(), uid: known.uid, known })
    }
}

fn opt(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.is_empty())
}

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
    ) -> Result<(String, i64, String), AgentError> {
        let caller = self.check_caller(&hdr).await?;
        let (pid, exe) = (caller.known.pid, caller.known.exe.as_deref());
        if let Err(e) = self.broker.check_caller(opt(profile), || exe.map(std::path::Path::to_path_buf)) {
            tracing::warn!(transport = "dbus", pid = ?pid, uid = caller.uid, exe = ?exe, bus_name = %caller.name,
                profile = %crate::protocol::echo(profile), "token refused: caller not in the profile's allowed_executables");
            return Err(e.into());
        }
        let min_ttl = if min_ttl == 0 { DEFAULT_MIN_TTL_SECS } else { u64::from(min_ttl) };
        let t = self.broker.token(opt(profile), opt(credential), Duration::from_secs(min_ttl)).await?;
        let now = self.broker.now();
        let expires_at_unix = t.expires_at_unix(now);
        if tracing::enabled!(target: "looker_agent::audit", tracing::Level::DEBUG) {
            tracing::debug!(target: "looker_agent::audit", transport = "dbus", pid = ?pid, uid = caller.uid,
                exe = ?exe, bus_name = %caller.name, profile = %t.profile, credential = %t.credential,
                expires_at_unix, expires_in = t.expires_in(now), "token handed out");
        }
        Ok((t.token.token.expose().to_string(), expires_at_unix, t.base_url.to_string()))
    }

    /// A caller saw `access_token` rejected: the agent stops handing it out and
    /// logs in anew on the next request. Unknown tokens are ignored.
    async fn invalidate(
        &self,
        profile: &str,
        access_token: &str,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(), AgentError> {
        self.check_caller(&hdr).await?;
        Ok(self.broker.invalidate(opt(profile), access_token)?)
    }

    /// The configured profile names, sorted.
    #[zbus(out_args("profiles"))]
    async fn list_profiles(&self, #[zbus(header)] hdr: Header<'_>) -> Result<Vec<String>, AgentError> {
        self.check_caller(&hdr).await?;
        Ok(self.broker.profiles())
    }

    /// Revokes the live tokens of a credential set, a profile, or (both empty) all;
    /// returns how many Looker confirmed gone.
    #[zbus(out_args("revoked"))]
    async fn revoke(
        &self,
        profile: &str,
        credential: &str,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<u32, AgentError> {
        let caller = self.check_caller(&hdr).await?;
        let n = self.broker.revoke(opt(profile), opt(credential)).await?;
        tracing::info!(bus_name = %caller.name, profile, credential, revoked = n, "tokens revoked on request over D-Bus");
        Ok(n)
    }

    /// The agent's version.
    #[zbus(property(emits_changed_signal = "const"))]
    async fn version(&self) -> String {
        crate::VERSION.to_string()
    }

    /// A login produced a new token (which this signal never carries).
    #[zbus(signal)]
    async fn token_refreshed(
        emitter: &SignalEmitter<'_>,
        profile: &str,
        credential: &str,
        expires_at_unix: i64,
    ) -> zbus::Result<()>;

    /// A login failed; `reason` says why in plain words.
    #[zbus(signal)]
    async fn credential_failed(
        emitter: &SignalEmitter<'_>,
        profile: &str,
        credential: &str,
        reason: &str,
    ) -> zbus::Result<()>;
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
pub struct BusService {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl BusService {
    /// Starts serving `broker` on the bus, for callers of `uid` only. Must run inside a tokio runtime.
    pub fn start(broker: Broker, uid: u32, address: BusAddress) -> BusService {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(broker, uid, address, stopped));
        BusService { stop: Some(stop), task }
    }

    /// Releases the name and closes the connection, within `STOP_TIMEOUT` of its
    /// own: a stalled bus costs the shutdown that long, never the revocation's deadline.
    pub async fn stop(mut self) {
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
async fn serve(broker: &Broker, uid: u32, address: &BusAddress) -> Result<Connection, Setup> {
    let conn = connect(address).await?;
    let failed = |e: zbus::Error| Setup::Failed(e.to_string());
    let bus = DBusProxy::builder(&conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(failed)?;
    conn.object_server()
        .at(OBJECT_PATH, Agent { broker: broker.clone(), uid, bus, uids: Default::default() })
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

async fn run(broker: Broker, uid: u32, address: BusAddress, mut stopped: oneshot::Receiver<()>) {
    let mut connected_once = false;
    let mut pause = Duration::from_secs(1);
    loop {
        // Subscribe before serving, so no event between the two is lost.
        let events = broker.subscribe();
        let attempt = tokio::select! {
            r = serve(&broker, uid, &address) => r,
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
