//! The `lookerctl` side of the socket API: one HTTP/1.1 request per call over
//! the Unix socket (hyper's client on a current-thread runtime).

use crate::files::private_dir::{self, UnsafePath};
use crate::protocol::error::ErrorBody;
use crate::protocol::{
    ErrorCode, Request as ApiRequest, RevokeRequest, RevokeResponse, StatusReport, TokenObject,
    DEFAULT_MIN_TTL_SECS,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

/// Largest answer the client reads.
const MAX_ANSWER: usize = 4 << 20;

/// Why a call to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers on the socket.
    #[error("no looker-agent is reachable at {socket} ({reason}); start it with `systemctl --user start looker-agent.socket` or `looker-agent &`, or point LOOKER_AGENT_SOCKET at a running one")]
    NotRunning {
        /// The socket tried.
        socket: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// Something answers on the socket, but it cannot be trusted to be your agent:
    /// its folder can be changed by another user, or it runs as another user.
    #[error("refusing the agent socket {socket}: {reason}")]
    Untrusted {
        /// The socket tried.
        socket: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The agent answered with an API error.
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The API error code.
        code: ErrorCode,
        /// The agent's message.
        message: String,
    },
    /// The agent's answer made no sense (version mismatch?).
    #[error("unexpected answer from the agent: {0}")]
    Protocol(String),
}

/// A client for one agent socket.
#[derive(Debug, Clone)]
pub struct AgentClient {
    socket: PathBuf,
    timeout: Duration,
}

impl AgentClient {
    /// A client for the socket at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        AgentClient { socket: socket.into(), timeout: Duration::from_secs(60) }
    }

    /// Refuses a socket whose folder someone else could have planted or can change
    /// (see [`private_dir::check_private_dir`]); a missing folder means no agent runs.
    fn check_folder(&self) -> Result<(), ClientError> {
        let Some(dir) = self.socket.parent().filter(|d| !d.as_os_str().is_empty()) else {
            return Ok(());
        };
        match private_dir::check_private_dir(dir, false) {
            Ok(_) => Ok(()),
            Err(e @ UnsafePath::Missing { .. }) => {
                Err(ClientError::NotRunning { socket: self.socket.clone(), reason: e.to_string() })
            }
            Err(e) => Err(ClientError::Untrusted { socket: self.socket.clone(), reason: e.to_string() }),
        }
    }

    /// The server must run as this very user (SO_PEERCRED), as the agent checks its
    /// clients: a fake agent of another user would hand out its own token and base URL.
    /// Root's is refused too: no agent of yours runs as root.
    fn check_server(&self, stream: &tokio::net::UnixStream) -> Result<(), ClientError> {
        let me = rustix::process::getuid().as_raw();
        match stream.peer_cred() {
            Ok(c) if c.uid() == me => Ok(()),
            Ok(c) => Err(ClientError::Untrusted {
                socket: self.socket.clone(),
                reason: format!(
                    "it is served by uid {} (pid {}), not by you (uid {me}), so it is not your agent; stop that process or remove the socket, and start your own agent",
                    c.uid(),
                    c.pid().map(|p| p.to_string()).unwrap_or_else(|| "unknown".into())
                ),
            }),
            Err(e) => Err(ClientError::Untrusted {
                socket: self.socket.clone(),
                reason: format!("cannot tell who serves it (SO_PEERCRED: {e})"),
            }),
        }
    }

    /// Sends one request and returns the status and body.
    pub(crate) async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Bytes), ClientError> {
        let not_running = |e: std::io::Error| ClientError::NotRunning {
            socket: self.socket.clone(),
            reason: e.to_string(),
        };
        self.check_folder()?;
        let stream = tokio::net::UnixStream::connect(&self.socket).await.map_err(not_running)?;
        self.check_server(&stream)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let conn_task = tokio::spawn(conn);
        let mut req = Request::builder().method(method).uri(path).header(HOST, "agent");
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let work = async {
            let resp = sender.send_request(req).await.map_err(|e| ClientError::Protocol(e.to_string()))?;
            let status = resp.status().as_u16();
            let limited = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER);
            let bytes = limited.collect().await.map_err(|e| ClientError::Protocol(e.to_string()))?.to_bytes();
            Ok::<_, ClientError>((status, bytes))
        };
        let out = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| ClientError::Protocol(format!("no answer within {}s", self.timeout.as_secs())))?;
        conn_task.abort();
        out
    }

    /// Sends `req` the way [`ApiRequest::to_http`] says; the raw status and body.
    async fn send(&self, req: &ApiRequest<'_>) -> Result<(u16, Bytes), ClientError> {
        let (method, path, body) = req
            .to_http()
            .ok_or_else(|| ClientError::Protocol(format!("{req:?} is not offered on the socket")))?;
        self.request(method, &path, body).await
    }

    async fn call<T: serde::de::DeserializeOwned>(&self, req: &ApiRequest<'_>) -> Result<T, ClientError> {
        let (status, bytes) = self.send(req).await?;
        if (200..300).contains(&status) {
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(format!("{e}")))
        } else {
            Err(api_error(status, &bytes))
        }
    }

    /// A token (`GET /v1/profiles/{profile}/token`). `None` asks for the agent's
    /// default profile, credential set and `min_ttl`.
    pub async fn token(
        &self,
        profile: Option<&str>,
        credential: Option<&str>,
        min_ttl: Option<Duration>,
    ) -> Result<TokenObject, ClientError> {
        self.call(&ApiRequest::Token {
            profile: profile.map(Cow::Borrowed),
            credential: credential.map(Cow::Borrowed),
            min_ttl: min_ttl.unwrap_or(Duration::from_secs(DEFAULT_MIN_TTL_SECS)),
        })
        .await
    }

    /// `POST /v1/profiles/{profile}/invalidate`.
    pub async fn invalidate(&self, profile: Option<&str>, access_token: &str) -> Result<(), ClientError> {
        let req = ApiRequest::Invalidate {
            profile: profile.map(Cow::Borrowed),
            access_token: Cow::Borrowed(access_token),
        };
        let (status, bytes) = self.send(&req).await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(api_error(status, &bytes))
        }
    }

    /// `GET /v1/status`.
    pub(crate) async fn status(&self) -> Result<StatusReport, ClientError> {
        self.call(&ApiRequest::Status).await
    }

    /// `POST /v1/revoke`.
    pub(crate) async fn revoke(&self, req: &RevokeRequest) -> Result<RevokeResponse, ClientError> {
        self.call(&ApiRequest::Revoke {
            profile: req.profile.as_deref().map(Cow::Borrowed),
            credential: req.credential.as_deref().map(Cow::Borrowed),
        })
        .await
    }

    /// `POST /v1/gateway/credentials`: a gateway credential (and session).
    pub async fn gateway_credential(
        &self,
        req: crate::protocol::GatewayCredentialRequest,
    ) -> Result<crate::protocol::GatewayCredentialAnswer, ClientError> {
        self.call(&ApiRequest::GatewayCredential(req)).await
    }

    /// `POST /v1/gateway/revoke`: end gateway credentials and their sessions.
    pub async fn gateway_revoke(
        &self,
        req: crate::protocol::GatewayRevokeRequest,
    ) -> Result<crate::protocol::GatewayRevokeAnswer, ClientError> {
        self.call(&ApiRequest::GatewayRevoke(req)).await
    }

    /// `POST /v1/reload`: make a running agent re-read its config.
    pub(crate) async fn reload(&self) -> Result<serde_json::Value, ClientError> {
        self.call(&ApiRequest::Reload).await
    }
}

fn api_error(status: u16, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => ClientError::Api { status, code: e.error.code, message: e.error.message },
        Err(_) => ClientError::Protocol(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(body).chars().take(200).collect::<String>()
        )),
    }
}
