//! The Looker API gateway (docs/reference.md, "Looker API gateway"): the agent
//! serves the Looker API itself, so programs written for Looker use it as their base
//! URL and never hold a client secret or a real token.
//!
//! ```text
//! socket door: handler.rs  (/looker/{profile}/…) ─┐
//!                                                 ├─► Service::admit(Caller) ─► Gateway::serve
//! TCP door:    daemon/server.rs (gateway listener) ┘        │
//!                                    route::classify ───────┤ login / sudo / logout / workspace:
//!                                                           │   answered here (sessions.rs, answer.rs)
//!                                                           └ everything else: forward.rs with the
//!                                                             broker's real token (one per credential
//!                                                             set; sudo and dev tokens: broker/variants.rs),
//!                                                             a 401 replayed once (replay.rs)
//! ```
//! The caller's uid is checked by the same [`Service`](crate::daemon::service::Service)
//! as on the other doors; what only the gateway knows (Host, session tokens) is here.
//! Credentials and sessions outlive an agent restart through a state file (saved.rs).

pub mod answer;
pub mod audit;
pub mod forward;
pub mod pool;
mod process;
pub mod replay;
pub mod route;
pub mod saved;
pub mod sessions;
pub mod tcp_peer;

use crate::broker::{Broker, BrokerError, IssuedToken, Variant};
use crate::protocol::echo;
use bytes::Bytes;
use forward::{Forwarder, Outbound};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HOST};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use replay::RequestBody;
use route::Call;
use sessions::{Ended, GatewayCredential, Session, Sessions, SESSION_TTL};
use std::borrow::Cow;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// What the gateway answers with: its own small answers, or Looker's, streamed (and
/// audited at its end when the audit is on).
pub type Body = Either<Full<Bytes>, audit::Audited<pool::UpstreamBody>>;

/// The header a socket-door client picks a credential set with.
pub const CREDENTIAL_HEADER: &str = "looker-agent-credential";

/// A token handed to a forwarded call has at least this long left: a call is
/// checked by Looker when it starts, so a minute covers any queueing on the way.
const CALL_MIN_TTL: Duration = Duration::from_secs(60);

/// The most a login form or workspace switch body may hold.
const SMALL_BODY_LIMIT: usize = 64 * 1024;

/// How long the gateway waits for such a small body.
const SMALL_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often expired sessions and credentials are swept (their own tokens revoked).
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Which door a gateway request came in by, and what that door knows.
#[derive(Debug, Clone, Copy)]
pub enum Door<'a> {
    /// `/looker/{profile}/…` on the agent socket. A call without a session token is
    /// made with the profile's own token (the peer is the agent's user, and its
    /// program is judged by the profile's `allowed_executables`).
    Socket {
        /// The connecting program, as the socket read it.
        exe: Option<&'a Path>,
    },
    /// The loopback TCP listener: every authenticated call needs a session.
    Tcp,
}

impl Door<'_> {
    fn as_str(&self) -> &'static str {
        match self {
            Door::Socket { .. } => "gateway-socket",
            Door::Tcp => "gateway-tcp",
        }
    }
}

/// Whom a call acts for.
enum Who<'a> {
    /// A gateway session (a token from the gateway's login).
    Session(Arc<Session>),
    /// A socket-door client without a session: the profile's token, its allow-list applied.
    Peer { profile: Option<Cow<'a, str>>, credential: Option<&'a str>, exe: Option<&'a Path> },
    /// Nobody (no or an unknown session token): only logins and open endpoints.
    Nobody,
}

/// The gateway: its sessions and its connection pool to Looker.
#[derive(Default)]
pub struct Gateway {
    sessions: Arc<Sessions>,
    forwarder: Forwarder,
    url: OnceLock<String>,
}

/// A minted gateway credential, as `lookerctl exec` and `lookerctl gateway credential` get it.
pub struct MintedCredential {
    /// The gateway's TCP URL (the `base_url` clients use).
    pub base_url: String,
    /// The credential.
    pub credential: Arc<GatewayCredential>,
    /// Its client_secret.
    pub client_secret: crate::secret::Secret,
    /// A session token of it (for LOOKER_ACCESS_TOKEN), if one was asked for.
    pub session_token: Option<crate::secret::Secret>,
}

impl Gateway {
    /// A gateway with no sessions yet.
    pub fn new() -> Gateway {
        Gateway::default()
    }

    /// Records the TCP listener's URL (`http://127.0.0.1:PORT`), once it is bound.
    pub fn set_url(&self, url: String) {
        let _ = self.url.set(url);
    }

    /// The TCP listener's URL, if it listens.
    pub fn url(&self) -> Option<&str> {
        self.url.get().map(String::as_str)
    }

    /// The gateway's sessions (status, minting).
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Mints a credential for `profile` (already resolved) and `credential`, living `ttl`
    /// or as long as the process behind `pidfd`; with a session of it if `session`.
    pub fn mint(
        &self,
        broker: &Broker,
        profile: &str,
        credential: Option<&str>,
        ttl: Option<Duration>,
        bound: Option<(i32, std::os::fd::OwnedFd)>,
        session: bool,
    ) -> Result<MintedCredential, String> {
        let base_url = self.url().ok_or_else(|| {
            "the gateway does not listen on TCP (see the log: [gateway] listen could not be bound)"
                .to_string()
        })?;
        let pid = bound.as_ref().map(|(pid, _)| *pid);
        // Read while the pidfd is held: the pid cannot have been reused yet if the
        // process still runs (and if it does not, the watch below ends it at once).
        let process = pid.map(|pid| sessions::BoundProcess { pid, start_time: process::start_time(pid) });
        let minted = self.sessions.mint(profile, credential, ttl, process);
        if let Some((pid, fd)) = bound {
            process::retire_on_exit(self.sessions.clone(), broker.clone(), minted.credential.id, pid, fd);
        }
        let session_token = session.then(|| self.sessions.open(&minted.credential, None, None, None).1);
        tracing::info!(profile = %echo(profile), credential = ?credential.map(echo), pid = ?pid,
            ttl_secs = ?ttl.map(|t| t.as_secs()), "gateway credential minted");
        Ok(MintedCredential {
            base_url: base_url.to_string(),
            credential: minted.credential,
            client_secret: minted.client_secret,
            session_token,
        })
    }

    /// Takes up the credentials and sessions an earlier run saved (those bound to a
    /// process only if it still runs, watched again), then saves every change to
    /// `path` from now on, with the TCP door's `port`. Call once, at start.
    pub fn keep_in(
        &self,
        broker: &Broker,
        path: std::path::PathBuf,
        port: Option<u16>,
        saved: Option<saved::Saved>,
    ) {
        if let Some(mut saved) = saved {
            let mut pidfds = process::keep_running(&mut saved, saved::boot_id());
            let bound = self.sessions.restore(saved);
            for c in &bound {
                if let (Some(b), Some(fd)) = (c.bound, pidfds.remove(&c.client_id)) {
                    process::retire_on_exit(self.sessions.clone(), broker.clone(), c.id, b.pid, fd);
                }
            }
            let (credentials, sessions) = self.sessions.snapshot();
            tracing::info!(credentials = credentials.len(), sessions = sessions.len(), path = %path.display(),
                "gateway credentials and sessions of the last run taken up");
        }
        self.sessions.save_to(path, port);
    }

    /// Ends the gateway credentials of `profile` (all profiles: `None`), or only the one
    /// with `client_id`, and their sessions (`lookerctl gateway revoke`).
    pub fn revoke(
        &self,
        broker: &Broker,
        profile: Option<&str>,
        client_id: Option<&str>,
    ) -> crate::protocol::GatewayRevokeAnswer {
        let (credentials, ended) = self.sessions.retire_where(|c| {
            profile.is_none_or(|p| *c.profile == *p) && client_id.is_none_or(|id| c.client_id == id)
        });
        let sessions = ended.len() as u32;
        Gateway::end(broker, ended);
        crate::protocol::GatewayRevokeAnswer { credentials, sessions }
    }

    /// Ends what `ended` lists: the tokens only those sessions used are revoked.
    fn end(broker: &Broker, ended: Ended) {
        for s in ended {
            tracing::debug!(target: "looker_agent::audit", session = s.id, profile = %s.profile, "gateway session ended");
            if s.variant.dev_owner.is_some() {
                broker.end_owner(s.id);
            }
        }
    }

    /// Drops expired sessions and credentials (run every [`SWEEP_EVERY`]).
    pub fn sweep(&self, broker: &Broker) {
        Gateway::end(broker, self.sessions.sweep());
        self.forwarder.sweep();
    }

    /// Ends every session and credential (shutdown, before the broker revokes). What
    /// was saved stays saved (writes still pending are finished first), for the next run.
    pub fn clear(&self, broker: &Broker) {
        self.sessions.stop_saving();
        Gateway::end(broker, self.sessions.clear());
    }

    /// Serves one gateway request. Never fails: every problem is a Looker-shaped answer.
    pub async fn serve(
        &self,
        broker: &Broker,
        door: Door<'_>,
        req: hyper::Request<Incoming>,
    ) -> Response<Body> {
        // Checked once per call, before it: the clock is read only when the call is logged.
        let started = audit::enabled().then(tokio::time::Instant::now);
        let (parts, body) = req.into_parts();
        let answer = self.route(broker, door, &parts, body).await;
        let Some(started) = started else { return answer };
        let call = audit::CallRecord::new(
            door.as_str(),
            &parts.method,
            parts.uri.path(),
            answer.status().as_u16(),
            started,
        );
        answer.map(|body| match body {
            // The agent's own answers are whole: their line is written now.
            Either::Left(full) => {
                let mut call = call;
                call.add_bytes(hyper::body::Body::size_hint(&full).exact().unwrap_or(0));
                call.log(true);
                Either::Left(full)
            }
            Either::Right(streamed) => Either::Right(streamed.audit(call)),
        })
    }

    async fn route(&self, broker: &Broker, door: Door<'_>, parts: &Parts, body: Incoming) -> Response<Body> {
        let small = |r: Response<Full<Bytes>>| r.map(Either::Left);
        if let (Door::Tcp, Err(host)) = (door, loopback_host(parts)) {
            tracing::warn!(host = %echo(&host), "gateway refused a request for a host that is not loopback (DNS rebinding?)");
            return small(answer::error(
                StatusCode::FORBIDDEN,
                "looker-agent: the gateway only answers requests addressed to 127.0.0.1, [::1] or localhost",
            ));
        }
        let full = parts.uri.path();
        let (hint, path) = match (route::split_prefix(full), door) {
            (Some((p, rest)), _) => (Some(p), rest),
            (None, Door::Tcp) => (None, full),
            (None, Door::Socket { .. }) => return small(answer::not_found()),
        };
        // `_` is the default profile, as elsewhere on the socket.
        let hint = hint.filter(|p| p != crate::protocol::DEFAULT_PROFILE_SEGMENT);
        let call = route::classify(&parts.method, path);
        let presented = session_token(parts);
        let mut ended = Vec::new();
        let session = presented.and_then(|t| self.sessions.get(t, &mut ended));
        Gateway::end(broker, ended);
        if let (Some(s), Some(h)) = (&session, &hint) {
            if *s.profile != **h {
                return small(answer::not_found());
            }
        }
        let who = match (session, door) {
            (Some(s), _) => Who::Session(s),
            (None, _) if presented.is_some() => Who::Nobody,
            (None, Door::Socket { exe }) => Who::Peer {
                profile: hint.clone(),
                credential: parts
                    .headers
                    .get(CREDENTIAL_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .filter(|c| !c.is_empty()),
                exe,
            },
            (None, Door::Tcp) => Who::Nobody,
        };
        let target = match parts.uri.query() {
            Some(q) => Cow::Owned(format!("{path}?{q}")),
            None => Cow::Borrowed(path),
        };
        // The rare calls' futures are boxed: this one's state, moved into place on every
        // call, is then no larger than a forwarded call needs.
        match call {
            Call::Login => small(Box::pin(self.login(hint.as_deref(), parts, body)).await),
            Call::Open => self.forward(broker, &Who::Nobody, parts, &target, body).await,
            _ if matches!(who, Who::Nobody) => small(answer::requires_authentication()),
            Call::Logout => small(self.logout(broker, &who, presented)),
            Call::Sudo(user) => small(Box::pin(self.sudo(broker, &who, &user)).await),
            Call::SetWorkspace => Box::pin(self.set_workspace(broker, &who, parts, &target, body)).await,
            Call::Api => self.forward(broker, &who, parts, &target, body).await,
        }
    }

    /// `POST /api/{ver}/login` with a gateway credential, in the form body or the query.
    async fn login(&self, hint: Option<&str>, parts: &Parts, body: Incoming) -> Response<Full<Bytes>> {
        let form = match read_small(body).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let mut id = None;
        let mut secret = None;
        let query = parts.uri.query().unwrap_or("").as_bytes();
        for (k, v) in url::form_urlencoded::parse(query).chain(url::form_urlencoded::parse(&form)) {
            match &*k {
                "client_id" => id = Some(v),
                "client_secret" => secret = Some(crate::secret::Secret::new(v.into_owned())),
                _ => {}
            }
        }
        let cred = match (id, secret) {
            (Some(id), Some(secret)) => self.sessions.check(&id, secret.expose()),
            _ => None,
        };
        let Some(cred) = cred.filter(|c| hint.is_none_or(|h| *c.profile == *h)) else {
            tracing::info!(
                "gateway login refused: not a live gateway credential (of this profile); credentials end \
                 with their process and at their TTL: mint a new one"
            );
            return answer::not_found();
        };
        let (session, token) = self.sessions.open(&cred, None, None, Some(SESSION_TTL));
        tracing::debug!(target: "looker_agent::audit", session = session.id, profile = %session.profile,
            pid = ?cred.bound.map(|b| b.pid), "gateway session opened");
        answer::login(token.expose(), session.expires_in())
    }

    /// `DELETE /logout`: ends that session only; the shared real token stays live.
    fn logout(&self, broker: &Broker, who: &Who<'_>, presented: Option<&str>) -> Response<Full<Bytes>> {
        if let (Who::Session(_), Some(t)) = (who, presented) {
            if let Some(s) = self.sessions.close(t) {
                Gateway::end(broker, vec![s]);
            }
        }
        answer::no_content()
    }

    /// `POST /api/{ver}/login/{user_id}`: a new session acting as that user, on a sudo
    /// token cached per credential set and user.
    async fn sudo(&self, broker: &Broker, who: &Who<'_>, user: &str) -> Response<Full<Bytes>> {
        let shared = match self.real_token(broker, who).await {
            Ok(t) => t,
            Err(e) => return answer::from_broker(&e),
        };
        let variant = Variant { user_id: Some(user.into()), dev_owner: None };
        if let Err(e) =
            broker.variant_token(&shared.profile, &shared.credential, &variant, CALL_MIN_TTL).await
        {
            return answer::from_broker(&e);
        }
        let cred = match who {
            Who::Session(s) => s.minted_by.clone(),
            // A socket client has no credential of its own: its sudo session gets one
            // that lives as long as the session.
            _ => {
                self.sessions
                    .mint(&shared.profile, Some(&shared.credential), Some(SESSION_TTL), None)
                    .credential
            }
        };
        let (session, token) =
            self.sessions.open(&cred, Some(shared.credential.clone()), Some(user.into()), Some(SESSION_TTL));
        tracing::debug!(target: "looker_agent::audit", session = session.id, profile = %session.profile,
            sudo_user_id = %echo(user), "gateway sudo session opened");
        answer::login(token.expose(), session.expires_in())
    }

    /// `PATCH /api/{ver}/session`: `dev` gives this session a token of its own in the dev
    /// workspace; `production` returns it to the shared token. Looker's answer is the one
    /// to the same call made with the session's (new) token.
    async fn set_workspace(
        &self,
        broker: &Broker,
        who: &Who<'_>,
        parts: &Parts,
        target: &str,
        body: Incoming,
    ) -> Response<Body> {
        let small = |r: Response<Full<Bytes>>| r.map(Either::Left);
        let Who::Session(s) = who else {
            return small(answer::error(
                StatusCode::BAD_REQUEST,
                "looker-agent: log in through the gateway to switch workspaces: at Looker the workspace \
                 belongs to the token, and this call has none of its own (it would move every client)",
            ));
        };
        let bytes = match read_small(body).await {
            Ok(b) => b,
            Err(r) => return small(r),
        };
        #[derive(serde::Deserialize)]
        struct Workspace {
            workspace_id: Option<String>,
        }
        let dev =
            match serde_json::from_slice::<Workspace>(&bytes).ok().and_then(|w| w.workspace_id).as_deref() {
                Some("dev") => true,
                Some("production") => false,
                _ => {
                    return small(answer::error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "workspace_id must be \"production\" or \"dev\"",
                    ))
                }
            };
        // Pin the credential set: a dev token is one set's login.
        let dev_set = match (&s.credential, dev) {
            (_, false) => None,
            (Some(c), true) => Some(c.clone()),
            (None, true) => match broker.token(Some(&s.profile), None, CALL_MIN_TTL).await {
                Ok(t) => Some(t.credential),
                Err(e) => return small(answer::from_broker(&e)),
            },
        };
        let Some(moved) = session_token(parts).and_then(|t| self.sessions.set_dev(t, dev_set)) else {
            return small(answer::requires_authentication());
        };
        if !dev && s.variant.dev_owner.is_some() {
            broker.end_owner(s.id);
        }
        tracing::debug!(target: "looker_agent::audit", session = s.id, dev, "gateway session workspace switched");
        let who = Who::Session(moved);
        self.send(broker, &who, parts, target, RequestBody::Whole(bytes)).await
    }

    /// Forwards a call to Looker with the real token of `who` (none for `Who::Nobody`).
    async fn forward(
        &self,
        broker: &Broker,
        who: &Who<'_>,
        parts: &Parts,
        target: &str,
        body: Incoming,
    ) -> Response<Body> {
        let body = match RequestBody::read(body, replay::READ_TIMEOUT).await {
            Ok(b) => b,
            Err(e) => {
                return answer::error(
                    StatusCode::BAD_REQUEST,
                    &format!("looker-agent: cannot read the request body: {e}"),
                )
                .map(Either::Left)
            }
        };
        self.send(broker, who, parts, target, body).await
    }

    /// Sends `body` to Looker for `who`; an upstream 401 drops that token, gets a new
    /// one (one login, however many clients saw it) and replays a replayable body once.
    async fn send(
        &self,
        broker: &Broker,
        who: &Who<'_>,
        parts: &Parts,
        target: &str,
        body: RequestBody,
    ) -> Response<Body> {
        let small = |r: Response<Full<Bytes>>| r.map(Either::Left);
        let profile_name = match who {
            Who::Session(s) => Some(Cow::Borrowed(&*s.profile)),
            Who::Peer { profile, .. } => profile.clone(),
            Who::Nobody => None,
        };
        let (_, profile) = match broker.profile(profile_name.as_deref()) {
            Ok(p) => p,
            Err(e) => return small(answer::from_broker(&e)),
        };
        let authenticated = !matches!(who, Who::Nobody);
        let mut token = None;
        if authenticated {
            match self.real_token(broker, who).await {
                Ok(t) => token = Some(t),
                Err(e) => return small(answer::from_broker(&e)),
            }
        }
        let again = body.replay_copy();
        let first = self
            .forwarder
            .send(
                &profile,
                Outbound {
                    method: parts.method.clone(),
                    path_and_query: target,
                    headers: &parts.headers,
                    body: body.into(),
                    auth: token.as_ref().map(|t| &t.token.token),
                },
            )
            .await;
        let answer = match (first, &token) {
            (Ok(r), Some(t)) if r.status() == StatusCode::UNAUTHORIZED => {
                self.invalidate(broker, who, t);
                match again {
                    None => Ok(r),
                    Some(again) => {
                        drop(r);
                        let t = match self.real_token(broker, who).await {
                            Ok(t) => t,
                            Err(e) => return small(answer::from_broker(&e)),
                        };
                        tracing::info!(profile = %t.profile, credential = %t.credential,
                            "Looker refused a token mid-run; replayed the call once with a new one");
                        // Boxed: rare, and it would double this future's size.
                        Box::pin(self.forwarder.send(
                            &profile,
                            Outbound {
                                method: parts.method.clone(),
                                path_and_query: target,
                                headers: &parts.headers,
                                body: again,
                                auth: Some(&t.token.token),
                            },
                        ))
                        .await
                    }
                }
            }
            (r, _) => r,
        };
        match answer {
            Ok(r) => replay::answer_back(r).map(|b| Either::Right(audit::Audited::new(b))),
            Err(e) => small(answer::error(e.status(), &format!("looker-agent: {e}"))),
        }
    }

    /// The real token a call of `who` is made with.
    async fn real_token(&self, broker: &Broker, who: &Who<'_>) -> Result<IssuedToken, BrokerError> {
        match who {
            Who::Session(s) if s.variant.is_shared() => {
                broker.token(Some(&s.profile), s.credential.as_deref(), CALL_MIN_TTL).await
            }
            Who::Session(s) => {
                let credential = match &s.credential {
                    Some(c) => c.clone(),
                    None => broker.token(Some(&s.profile), None, CALL_MIN_TTL).await?.credential,
                };
                broker.variant_token(&s.profile, &credential, &s.variant, CALL_MIN_TTL).await
            }
            Who::Peer { profile, credential, exe } => {
                broker.token_for(profile.as_deref(), *credential, CALL_MIN_TTL, *exe).await
            }
            Who::Nobody => Err(BrokerError::BadRequest("no session".into())),
        }
    }

    /// Looker refused `t` (401): stop using it.
    fn invalidate(&self, broker: &Broker, who: &Who<'_>, t: &IssuedToken) {
        match who {
            Who::Session(s) if !s.variant.is_shared() => {
                broker.invalidate_variant(&s.variant, t.token.token.expose())
            }
            _ => {
                let _ = broker.invalidate(Some(&t.profile), t.token.token.expose());
            }
        }
    }
}

/// The session token a request presents: `Authorization: token X` or `Bearer X`.
fn session_token(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer")).then(|| token.trim())
}

/// `Ok` when the request is addressed to a loopback name or address (its Host
/// header, else its absolute URI); `Err(host)` otherwise. Guards against DNS rebinding:
/// a web page that makes its own name resolve to 127.0.0.1 still sends its name.
fn loopback_host(parts: &Parts) -> Result<(), String> {
    let host = match parts.headers.get(HOST) {
        Some(h) => h.to_str().map_err(|_| "(not text)".to_string())?,
        None => match parts.uri.authority() {
            Some(a) => a.as_str(),
            None => return Err("(none)".into()),
        },
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        }),
    };
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(host.to_string())
    }
}

/// Reads a small request body (a login form, a workspace switch) whole.
async fn read_small(body: Incoming) -> Result<Bytes, Response<Full<Bytes>>> {
    let limited = Limited::new(body, SMALL_BODY_LIMIT);
    match tokio::time::timeout(SMALL_BODY_TIMEOUT, limited.collect()).await {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(_)) => Err(answer::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("looker-agent: request body larger than {SMALL_BODY_LIMIT} bytes, or broken"),
        )),
        Err(_) => {
            Err(answer::error(StatusCode::REQUEST_TIMEOUT, "looker-agent: request body not received in time"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(host: Option<&str>, auth: Option<&str>) -> Parts {
        let mut b = hyper::Request::builder().uri("/api/4.0/user");
        if let Some(h) = host {
            b = b.header(HOST, h);
        }
        if let Some(a) = auth {
            b = b.header(AUTHORIZATION, a);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn hosts() {
        for ok in ["127.0.0.1:8080", "127.0.0.1", "localhost:1", "LOCALHOST", "[::1]:99", "127.9.9.9:1"] {
            assert!(loopback_host(&parts(Some(ok), None)).is_ok(), "{ok}");
        }
        for bad in ["evil.example:8080", "10.0.0.1", "localhost.evil.com", "[2001:db8::1]:80"] {
            assert!(loopback_host(&parts(Some(bad), None)).is_err(), "{bad}");
        }
        assert!(loopback_host(&parts(None, None)).is_err());
    }

    #[test]
    fn tokens() {
        assert_eq!(session_token(&parts(None, Some("token abc"))), Some("abc"));
        assert_eq!(session_token(&parts(None, Some("Bearer abc"))), Some("abc"));
        assert_eq!(session_token(&parts(None, Some("Basic abc"))), None);
        assert_eq!(session_token(&parts(None, None)), None);
    }
}
