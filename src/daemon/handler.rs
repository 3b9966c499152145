//! The socket API's routes (SPEC.md "Socket API"), on top of hyper.

use super::listener::Peer;
use super::server::Limits;
use crate::broker::{Broker, BrokerError};
use crate::protocol::{
    ErrorBody, ErrorCode, Health, InvalidateRequest, RevokeRequest, RevokeResponse, DEFAULT_MIN_TTL_SECS,
    DEFAULT_PROFILE_SEGMENT,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// Reloads the config from disk; returns a one-line summary or why it failed.
pub type ReloadFn = Arc<dyn Fn(&Broker) -> Result<String, String> + Send + Sync>;

/// What every request handler shares.
pub struct Ctx {
    /// The token broker.
    pub broker: Broker,
    /// The daemon's uid: only this uid is served.
    pub uid: u32,
    /// `POST /v1/reload`: re-read the config (absent in dev mode).
    pub reload: Option<ReloadFn>,
    /// Size and time limits.
    pub limits: Limits,
}

type Resp = Response<Full<Bytes>>;

fn json(status: StatusCode, body: Vec<u8>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Token answers must never be cached by anything in between.
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// An error answer with the SPEC's shape.
pub fn error(code: ErrorCode, message: impl Into<String>) -> Resp {
    let body = serde_json::to_vec(&ErrorBody::new(code, message)).unwrap_or_default();
    json(StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), body)
}

fn broker_error(e: &BrokerError) -> Resp {
    error(e.code(), e.to_string())
}

fn ok<T: serde::Serialize>(v: &T) -> Resp {
    match serde_json::to_vec(v) {
        Ok(b) => json(StatusCode::OK, b),
        Err(e) => error(ErrorCode::Internal, format!("cannot encode answer: {e}")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenQuery {
    #[serde(default)]
    credential: Option<String>,
    #[serde(default)]
    min_ttl: Option<String>,
}

fn parse_min_ttl(raw: Option<&str>) -> Result<Duration, String> {
    match raw {
        None | Some("") => Ok(Duration::from_secs(DEFAULT_MIN_TTL_SECS)),
        Some(s) => crate::duration::parse(s).map_err(|e| format!("min_ttl: {e}")),
    }
}

/// Reads a JSON body, within the size and time limits; an empty body is `T::default()`.
async fn read_json<T: serde::de::DeserializeOwned + Default>(
    body: Incoming,
    limits: &Limits,
) -> Result<T, Resp> {
    // A declared length over the limit is refused at once, not waited for.
    if body.size_hint().lower() > limits.max_body as u64 {
        return Err(error(
            ErrorCode::BadRequest,
            format!("request body larger than {} bytes", limits.max_body),
        ));
    }
    let limited = Limited::new(body, limits.max_body);
    let collected = match tokio::time::timeout(limits.body_timeout, limited.collect()).await {
        Err(_) => return Err(error(ErrorCode::BadRequest, "request body not received in time")),
        Ok(Err(e)) => {
            let msg = if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                format!("request body larger than {} bytes", limits.max_body)
            } else {
                format!("cannot read request body: {e}")
            };
            return Err(error(ErrorCode::BadRequest, msg));
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    if collected.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    serde_json::from_slice(&collected)
        .map_err(|e| error(ErrorCode::BadRequest, format!("invalid JSON body: {e}")))
}

/// Splits `/a/b/c` into `buf` without allocating; returns how many segments were
/// found, or 0 (matching no route) when there are more than `buf` holds.
fn split_path<'a>(path: &'a str, buf: &mut [&'a str]) -> usize {
    let mut n = 0;
    for seg in path.trim_matches('/').split('/') {
        if n == buf.len() {
            return 0;
        }
        buf[n] = seg;
        n += 1;
    }
    n
}

fn profile_arg(seg: &str) -> Option<&str> {
    if seg == DEFAULT_PROFILE_SEGMENT {
        None
    } else {
        Some(seg)
    }
}

/// Answers one request. Never fails: every problem becomes an error answer.
pub async fn handle(ctx: Arc<Ctx>, peer: Peer, req: Request<Incoming>) -> Result<Resp, Infallible> {
    if !peer.is_uid(ctx.uid) {
        tracing::warn!(peer_uid = ?peer.uid, peer_pid = ?peer.pid, exe = ?peer.exe(), "refused a client of another user");
        return Ok(error(ErrorCode::Forbidden, "this agent serves only its own user"));
    }
    // Split the request so the path can be borrowed while the body is read.
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let mut seg_buf = [""; 5];
    let n = split_path(path, &mut seg_buf);
    let segs = &seg_buf[..n];
    let method = &parts.method;
    let resp = match (method, segs) {
        (&Method::GET, ["v1", "health"]) => {
            ok(&Health { status: "ok".into(), version: crate::VERSION.into() })
        }
        (&Method::GET, ["v1", "profiles", profile, "token"]) => {
            let q: TokenQuery = match serde_urlencoded::from_str(parts.uri.query().unwrap_or("")) {
                Ok(q) => q,
                Err(e) => return Ok(error(ErrorCode::BadRequest, format!("invalid query: {e}"))),
            };
            let min_ttl = match parse_min_ttl(q.min_ttl.as_deref()) {
                Ok(d) => d,
                Err(e) => return Ok(error(ErrorCode::BadRequest, e)),
            };
            if let Err(e) = ctx.broker.check_caller(profile_arg(profile), || peer.exe()) {
                tracing::warn!(transport = "socket", pid = ?peer.pid, uid = ?peer.uid, exe = ?peer.exe(),
                    profile = %profile, "token refused: caller not in the profile's allowed_executables");
                return Ok(broker_error(&e));
            }
            match ctx.broker.token(profile_arg(profile), q.credential.as_deref(), min_ttl).await {
                Ok(t) => {
                    let now = ctx.broker.now();
                    // The audit trail is at debug so cache hits stay quiet by default:
                    // enable it with RUST_LOG=info,looker_agent::audit=debug.
                    if tracing::enabled!(target: "looker_agent::audit", tracing::Level::DEBUG) {
                        tracing::debug!(target: "looker_agent::audit", transport = "socket", pid = ?peer.pid,
                            uid = ?peer.uid, exe = ?peer.exe(), profile = %t.profile, credential = %t.credential,
                            expires_in = t.expires_in(now), "token handed out");
                    }
                    json(StatusCode::OK, t.to_json(now))
                }
                Err(e) => broker_error(&e),
            }
        }
        (&Method::POST, ["v1", "profiles", profile, "invalidate"]) => {
            let body: InvalidateBody = match read_json(body, &ctx.limits).await {
                Ok(b) => b,
                Err(r) => return Ok(r),
            };
            let Some(body) = body.0 else {
                return Ok(error(ErrorCode::BadRequest, "body must be {\"access_token\":\"…\"}"));
            };
            match ctx.broker.invalidate(profile_arg(profile), &body.access_token) {
                Ok(()) => {
                    let mut r = Response::new(Full::new(Bytes::new()));
                    *r.status_mut() = StatusCode::NO_CONTENT;
                    r
                }
                Err(e) => broker_error(&e),
            }
        }
        (&Method::GET, ["v1", "status"]) => ok(&ctx.broker.status()),
        (&Method::POST, ["v1", "revoke"]) => {
            let body: RevokeRequest = match read_json(body, &ctx.limits).await {
                Ok(b) => b,
                Err(r) => return Ok(r),
            };
            match ctx.broker.revoke(body.profile.as_deref(), body.credential.as_deref()).await {
                Ok(n) => ok(&RevokeResponse { revoked: n }),
                Err(e) => broker_error(&e),
            }
        }
        (&Method::POST, ["v1", "reload"]) => match &ctx.reload {
            None => error(ErrorCode::BadRequest, "this agent has no config file to reload (dev mode)"),
            Some(f) => match f(&ctx.broker) {
                Ok(summary) => ok(&serde_json::json!({ "reloaded": true, "summary": summary })),
                Err(e) => error(ErrorCode::BadRequest, e),
            },
        },
        (_, ["v1", "health"])
        | (_, ["v1", "status"])
        | (_, ["v1", "revoke"])
        | (_, ["v1", "reload"])
        | (_, ["v1", "profiles", _, "token"])
        | (_, ["v1", "profiles", _, "invalidate"]) => {
            let mut r = error(ErrorCode::BadRequest, format!("method {method} not allowed on {path}"));
            *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            r
        }
        _ => {
            error(ErrorCode::NotFound, format!("no such endpoint: {method} {path}; see SPEC.md's socket API"))
        }
    };
    Ok(resp)
}

/// An invalidate body; `None` when the body was empty.
#[derive(Default)]
struct InvalidateBody(Option<InvalidateRequest>);

impl<'de> Deserialize<'de> for InvalidateBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        InvalidateRequest::deserialize(d).map(|r| InvalidateBody(Some(r)))
    }
}
