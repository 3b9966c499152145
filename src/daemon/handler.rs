//! The socket API's routes (SPEC.md "Socket API"), on top of hyper.

use super::listener::Peer;
use super::server::Limits;
use crate::broker::{Broker, BrokerError};
use crate::protocol::{
    clip, echo, ErrorBody, ErrorCode, Health, InvalidateRequest, RevokeRequest, RevokeResponse,
    DEFAULT_MIN_TTL_SECS, DEFAULT_PROFILE_SEGMENT,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use std::borrow::Cow;
use std::convert::Infallible;
use std::path::Path;
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
    error(e.code(), peer_message(e))
}

/// The message of `e` as a client sees it: names the client sent are cut to
/// [`crate::protocol::MAX_ECHO_CHARS`] (a real name is never that long to be cut wrongly, and the
/// cut one can never match, the ellipsis being no name's character).
pub(crate) fn peer_message(e: &BrokerError) -> String {
    let cut = |s: &str| echo(s).into_owned();
    match e {
        BrokerError::UnknownProfile { profile, known } => {
            BrokerError::UnknownProfile { profile: cut(profile), known: known.clone() }.to_string()
        }
        BrokerError::UnknownCredential { profile, credential } => {
            BrokerError::UnknownCredential { profile: cut(profile), credential: cut(credential) }.to_string()
        }
        e => e.to_string(),
    }
}

/// Longest parser message (query, JSON body) repeated to the client: they can quote the input.
const MAX_PARSER_MESSAGE: usize = 200;

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

/// Reads a JSON object body, within the size and time limits; an empty body is
/// `T::default()`. Anything but an object is refused: serde would read `[]` as a
/// struct with every field absent (for `/v1/revoke`: "revoke everything").
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
    match collected.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Ok(T::default()),
        Some(b'{') => {}
        Some(_) => {
            return Err(error(ErrorCode::BadRequest, "the request body must be a JSON object (or empty)"))
        }
    }
    serde_json::from_slice(&collected).map_err(|e| {
        error(
            ErrorCode::BadRequest,
            format!("invalid JSON body: {}", clip(&e.to_string(), MAX_PARSER_MESSAGE)),
        )
    })
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

/// Percent-decodes one path segment (`pro%64` is `prod`); borrowed when there is
/// nothing to decode. A broken escape or a result that is not UTF-8 is an error.
fn decode_segment(seg: &str) -> Result<Cow<'_, str>, String> {
    if !seg.contains('%') {
        return Ok(Cow::Borrowed(seg));
    }
    let bad = || format!("path segment {:?} is not valid percent-encoded UTF-8", echo(seg));
    let raw = seg.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = raw.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| bad())
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
    let mut raw_buf = [""; 5];
    let n = split_path(path, &mut raw_buf);
    let mut decoded: [Cow<'_, str>; 5] = Default::default();
    for (d, raw) in decoded.iter_mut().zip(&raw_buf[..n]) {
        match decode_segment(raw) {
            Ok(s) => *d = s,
            Err(msg) => return Ok(error(ErrorCode::BadRequest, msg)),
        }
    }
    let mut seg_buf = [""; 5];
    for (s, d) in seg_buf.iter_mut().zip(&decoded[..n]) {
        *s = d;
    }
    let segs = &seg_buf[..n];
    let shown_path = echo(path);
    let method = &parts.method;
    let resp = match (method, segs) {
        (&Method::GET, ["v1", "health"]) => {
            ok(&Health { status: "ok".into(), version: crate::VERSION.into() })
        }
        (&Method::GET, ["v1", "profiles", profile, "token"]) => {
            let q: TokenQuery = match serde_urlencoded::from_str(parts.uri.query().unwrap_or("")) {
                Ok(q) => q,
                Err(e) => {
                    let msg = format!("invalid query: {}", clip(&e.to_string(), MAX_PARSER_MESSAGE));
                    return Ok(error(ErrorCode::BadRequest, msg));
                }
            };
            let min_ttl = match parse_min_ttl(q.min_ttl.as_deref()) {
                Ok(d) => d,
                Err(e) => return Ok(error(ErrorCode::BadRequest, e)),
            };
            // The program that opened this connection, as seen when it was accepted.
            if let Err(e) =
                ctx.broker.check_caller(profile_arg(profile), || peer.exe().map(Path::to_path_buf))
            {
                tracing::warn!(transport = "socket", pid = ?peer.pid, uid = ?peer.uid, exe = ?peer.exe(),
                    profile = %echo(profile), "token refused: caller not in the profile's allowed_executables");
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
            // Its own task: a client that hangs up drops this handler, not the revocation
            // (which would otherwise stop midway and leave its journal entry behind).
            let broker = ctx.broker.clone();
            let work = tokio::spawn(async move {
                broker.revoke(body.profile.as_deref(), body.credential.as_deref()).await
            });
            match work.await {
                Ok(Ok(n)) => ok(&RevokeResponse { revoked: n }),
                Ok(Err(e)) => broker_error(&e),
                Err(e) => error(ErrorCode::Internal, format!("the revocation failed: {e}")),
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
            let mut r = error(
                ErrorCode::BadRequest,
                format!("method {} not allowed on {shown_path}", echo(method.as_str())),
            );
            *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            r
        }
        _ => {
            let method = echo(method.as_str());
            error(
                ErrorCode::NotFound,
                format!("no such endpoint: {method} {shown_path}; see SPEC.md's socket API"),
            )
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
