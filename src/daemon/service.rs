//! The one request path between the doors and the broker.
//!
//! ```text
//! socket: handler.rs ─┐                          ┌─ broker (token cache, logins)
//!                     ├─► Service::admit(Caller) ┤
//! D-Bus:  bus.rs ─────┘   Service::call(Request) └─ reload, status
//! ```
//! A door (an adapter) only decodes its wire format into a [`Caller`] and a
//! [`Request`], and encodes the [`Reply`] or [`ApiError`] back. Everything else
//! happens here, once, for every door: the caller's uid is checked, the profile's
//! `allowed_executables` applied, the audit line written, broker errors turned
//! into API errors. The Looker API gateway is the third door: its TCP listener and
//! the socket's `/looker/…` paths admit their callers here too, then hand the
//! admitted call to [`Service::gateway`] (which reaches the same broker).

use crate::broker::{Broker, IssuedToken, Stamp};
use crate::gateway::Gateway;
use crate::protocol::{
    echo, ApiError, ErrorCode, GatewayCredentialAnswer, GatewayCredentialRequest, GatewayStatus, Health,
    Request, SessionStatus, StatusReport,
};
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Reloads the config from disk; returns a one-line summary or why it failed.
pub type ReloadFn = Arc<dyn Fn(&Broker) -> Result<String, String> + Send + Sync>;

/// Which door a request came in by (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// The agent socket.
    Socket,
    /// The session bus.
    DBus,
    /// The gateway's loopback TCP listener.
    Gateway,
}

impl Door {
    /// The `transport` field of log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Door::Socket => "socket",
            Door::DBus => "dbus",
            Door::Gateway => "gateway-tcp",
        }
    }

    /// How a caller of this door is named in messages.
    fn caller_noun(self) -> &'static str {
        match self {
            Door::Socket => "client",
            Door::DBus => "D-Bus caller",
            Door::Gateway => "gateway client",
        }
    }
}

/// Who is asking, as the door learnt it when the caller connected (the kernel's
/// SO_PEERCRED and pidfd on the socket, the bus daemon's credentials on D-Bus).
/// The program is read then, once, so a process that connects, forks and execs
/// another program is still judged by what it was.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The door.
    pub door: Door,
    /// The caller's uid, if known (unknown is refused).
    pub uid: Option<u32>,
    /// The caller's pid when it connected, if known.
    pub pid: Option<i64>,
    /// The caller's program (`/proc/PID/exe`) when it connected, if known.
    pub exe: Option<&'a Path>,
    /// The caller's unique bus name (D-Bus only).
    pub bus_name: Option<&'a str>,
    /// A pidfd of the calling process (the socket's SO_PEERPIDFD), if the door has one:
    /// a gateway credential bound to the caller dies when it polls readable.
    pub pidfd: Option<BorrowedFd<'a>>,
}

/// A caller that passed [`Service::admit`]: only these reach [`Service::call`].
#[derive(Debug, Clone, Copy)]
pub struct Admitted<'a>(Caller<'a>);

/// What a request produced; the door encodes it.
#[derive(Debug)]
pub enum Reply {
    /// `Health`.
    Health(Health),
    /// `Token`: the token, and the moment its time left is counted from.
    Token(IssuedToken, Stamp),
    /// `Invalidate`: done, nothing to say.
    Done,
    /// `Status`.
    Status(Box<StatusReport>),
    /// `Revoke`: how many tokens Looker confirmed gone.
    Revoked(u32),
    /// `Reload`: a one-line summary.
    Reloaded(String),
    /// `ListProfiles`.
    Profiles(Vec<String>),
    /// `GatewayCredential`.
    GatewayCredential(Box<GatewayCredentialAnswer>),
    /// `GatewayRevoke`.
    GatewayRevoked(crate::protocol::GatewayRevokeAnswer),
}

/// The service every door calls.
pub struct Service {
    broker: Broker,
    uid: u32,
    reload: Option<ReloadFn>,
    gateway: Gateway,
}

impl Service {
    /// Serves `broker` to callers of `uid`; `reload` re-reads the config (none in dev mode).
    pub fn new(broker: Broker, uid: u32, reload: Option<ReloadFn>) -> Service {
        Service { broker, uid, reload, gateway: Gateway::new() }
    }

    /// The Looker API gateway behind the gateway doors.
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// The broker behind the service.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The uid served.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// Lets in callers of the agent's own uid only; unknown callers are refused too.
    pub fn admit<'a>(&self, caller: Caller<'a>) -> Result<Admitted<'a>, ApiError> {
        if caller.uid == Some(self.uid) {
            return Ok(Admitted(caller));
        }
        tracing::warn!(transport = caller.door.as_str(), peer_uid = ?caller.uid, peer_pid = ?caller.pid,
            exe = ?caller.exe, bus_name = caller.bus_name.map(tracing::field::display),
            "refused a {} of another user", caller.door.caller_noun());
        Err(ApiError::new(ErrorCode::Forbidden, "this agent serves only its own user"))
    }

    /// Serves one request.
    pub async fn call(&self, caller: Admitted<'_>, req: Request<'_>) -> Result<Reply, ApiError> {
        let caller = caller.0;
        match req {
            Request::Health => {
                Ok(Reply::Health(Health { status: "ok".into(), version: crate::VERSION.into() }))
            }
            Request::Token { profile, credential, min_ttl } => {
                let got = self
                    .broker
                    .token_for(profile.as_deref(), credential.as_deref(), min_ttl, caller.exe)
                    .await;
                match got {
                    Ok(t) => {
                        let now = t.issued;
                        // At debug so cache hits stay quiet by default:
                        // enable it with RUST_LOG=info,looker_agent::audit=debug.
                        if tracing::enabled!(target: "looker_agent::audit", tracing::Level::DEBUG) {
                            tracing::debug!(target: "looker_agent::audit", transport = caller.door.as_str(),
                                pid = ?caller.pid, uid = ?caller.uid, exe = ?caller.exe, bus_name = caller.bus_name.map(tracing::field::display),
                                profile = %t.profile, credential = %t.credential,
                                expires_at_unix = t.expires_at_unix(now), expires_in = t.expires_in(now),
                                "token handed out");
                        }
                        Ok(Reply::Token(t, now))
                    }
                    Err(e) => {
                        if e.code() == ErrorCode::Forbidden {
                            tracing::warn!(transport = caller.door.as_str(), pid = ?caller.pid, uid = ?caller.uid,
                                exe = ?caller.exe, bus_name = caller.bus_name.map(tracing::field::display),
                                profile = %echo(profile.as_deref().unwrap_or("")),
                                "token refused: caller not in the profile's allowed_executables");
                        }
                        Err(e.to_api())
                    }
                }
            }
            Request::Invalidate { profile, access_token } => {
                self.broker.invalidate(profile.as_deref(), &access_token).map_err(|e| e.to_api())?;
                Ok(Reply::Done)
            }
            Request::Status => {
                let mut report = self.broker.status();
                report.gateway = Some(self.gateway_status());
                Ok(Reply::Status(Box::new(report)))
            }
            Request::GatewayCredential(r) => {
                self.mint(caller, r).map(|a| Reply::GatewayCredential(Box::new(a)))
            }
            Request::GatewayRevoke(r) => {
                // A profile named must be one the agent serves (a typo ends nothing silently).
                let profile = match r.profile.as_deref() {
                    Some(p) => Some(self.broker.profile(Some(p)).map_err(|e| e.to_api())?.0),
                    None => None,
                };
                let answer = self.gateway.revoke(&self.broker, profile.as_deref(), r.client_id.as_deref());
                tracing::info!(transport = caller.door.as_str(), pid = ?caller.pid,
                    profile = ?profile.as_deref().map(echo), client_id = ?r.client_id.as_deref().map(echo),
                    credentials = answer.credentials, sessions = answer.sessions, "gateway credentials revoked on request");
                match (&r.client_id, answer.credentials) {
                    (Some(id), 0) => Err(ApiError::new(
                        ErrorCode::UnknownCredential,
                        format!(
                            "no live gateway credential has client_id {:?}{}; `lookerctl status` lists them",
                            echo(id),
                            profile.map(|p| format!(" in profile {p:?}")).unwrap_or_default()
                        ),
                    )),
                    _ => Ok(Reply::GatewayRevoked(answer)),
                }
            }
            Request::ListProfiles => Ok(Reply::Profiles(self.broker.profiles())),
            Request::Revoke { profile, credential } => {
                let (p, c) = (profile.map(|p| p.into_owned()), credential.map(|c| c.into_owned()));
                // Its own task: a client that hangs up drops the door's future, not the
                // revocation (which would otherwise stop midway, its journal entry left behind).
                let broker = self.broker.clone();
                let (tp, tc) = (p.clone(), c.clone());
                let work = tokio::spawn(async move { broker.revoke(tp.as_deref(), tc.as_deref()).await });
                let n = match work.await {
                    Ok(r) => r.map_err(|e| e.to_api())?,
                    Err(e) => {
                        return Err(ApiError::new(ErrorCode::Internal, format!("the revocation failed: {e}")))
                    }
                };
                tracing::info!(transport = caller.door.as_str(), pid = ?caller.pid, bus_name = caller.bus_name.map(tracing::field::display),
                    profile = ?p.as_deref().map(echo), credential = ?c.as_deref().map(echo), revoked = n,
                    "tokens revoked on request");
                Ok(Reply::Revoked(n))
            }
            Request::Reload => match &self.reload {
                None => Err(ApiError::bad_request("this agent has no config file to reload (dev mode)")),
                Some(f) => f(&self.broker).map(Reply::Reloaded).map_err(ApiError::bad_request),
            },
        }
    }

    /// Mints a gateway credential for the caller; the profile's allow-list judges the
    /// minting program (its sessions are not judged again).
    fn mint(
        &self,
        caller: Caller<'_>,
        r: GatewayCredentialRequest,
    ) -> Result<GatewayCredentialAnswer, ApiError> {
        let (profile, settings) = self.broker.profile(r.profile.as_deref()).map_err(|e| e.to_api())?;
        if let Some(c) = r.credential.as_deref().filter(|c| !c.is_empty()) {
            if settings.credential(c).is_none() {
                return Err(crate::broker::BrokerError::UnknownCredential {
                    profile: profile.to_string(),
                    credential: c.to_string(),
                }
                .to_api());
            }
        }
        if !settings.allows_executable(caller.exe) {
            tracing::warn!(transport = caller.door.as_str(), pid = ?caller.pid, exe = ?caller.exe,
                profile = %profile, "gateway credential refused: caller not in the profile's allowed_executables");
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("this program may not use profile {profile:?}: it is not in the profile's allowed_executables"),
            ));
        }
        let bound = if r.bind_to_caller {
            let (Some(pid), Some(fd)) = (caller.pid, caller.pidfd) else {
                return Err(ApiError::bad_request(
                    "bind_to_caller needs the caller's process (a pidfd from the agent socket; Linux 6.5 or later)",
                ));
            };
            let fd = fd
                .try_clone_to_owned()
                .map_err(|e| ApiError::new(ErrorCode::Internal, format!("pidfd: {e}")))?;
            Some((i32::try_from(pid).unwrap_or(-1), fd))
        } else {
            None
        };
        let ttl = match (r.ttl, r.bind_to_caller) {
            (Some(0), _) => return Err(ApiError::bad_request("ttl must be at least one second")),
            (Some(t), _) if t > crate::gateway::sessions::MAX_CREDENTIAL_TTL.as_secs() => {
                return Err(ApiError::bad_request(format!(
                    "ttl is at most {} seconds (366 days); mint a new credential when it ends",
                    crate::gateway::sessions::MAX_CREDENTIAL_TTL.as_secs()
                )))
            }
            (Some(t), _) => Some(Duration::from_secs(t)),
            (None, true) => None,
            (None, false) => Some(crate::gateway::sessions::DEFAULT_CREDENTIAL_TTL),
        };
        let credential = r.credential.as_deref().filter(|c| !c.is_empty());
        let minted = self
            .gateway
            .mint(&self.broker, &profile, credential, ttl, bound, r.session)
            .map_err(|m| {
                ApiError::new(
                    ErrorCode::UpstreamUnavailable,
                    format!(
                        "{m}; set [gateway] listen to a free loopback port (not \"off\") and restart the agent, \
                         or use `lookerctl exec --direct` for a real token"
                    ),
                )
            })?;
        Ok(GatewayCredentialAnswer {
            base_url: minted.base_url,
            client_id: minted.credential.client_id.clone(),
            client_secret: minted.client_secret.expose().to_string(),
            expires_at: minted.credential.expires_at.map(crate::broker::slot::rfc3339),
            access_token: minted.session_token.map(|t| t.expose().to_string()),
            profile: profile.to_string(),
            credential: credential.map(str::to_string),
        })
    }

    /// The gateway part of `/v1/status`.
    fn gateway_status(&self) -> GatewayStatus {
        let (creds, sessions) = self.gateway.sessions().snapshot();
        GatewayStatus {
            url: self.gateway.url().map(str::to_string),
            credentials: creds.len() as u32,
            minted: creds
                .iter()
                .map(|c| crate::protocol::MintedStatus {
                    client_id: c.client_id.clone(),
                    profile: c.profile.to_string(),
                    credential: c.credential.as_deref().map(str::to_string),
                    expires_at: c.expires_at.map(crate::broker::slot::rfc3339),
                    pid: c.bound.map(|b| b.pid),
                })
                .collect(),
            sessions: sessions
                .iter()
                .map(|s| SessionStatus {
                    id: s.id,
                    profile: s.profile.to_string(),
                    credential: s.credential.as_deref().map(str::to_string),
                    workspace: if s.variant.dev_owner.is_some() { "dev" } else { "production" }.into(),
                    sudo_user_id: s.variant.user_id.as_deref().map(str::to_string),
                    pid: s.minted_by.bound.map(|b| b.pid),
                    created: crate::broker::slot::rfc3339(s.created),
                })
                .collect(),
        }
    }
}
