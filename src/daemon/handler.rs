//! The socket door (docs/reference.md "Socket API"): decodes an HTTP request into
//! a [`Request`], calls the [`Service`], encodes its answer. Nothing else: the
//! caller check, allow-list, audit and error table live behind the service.
//! Paths under `/looker/` are the Looker API gateway's socket door: admitted the
//! same way, then served by [`crate::gateway::Gateway::serve`].

use super::limits::Limits;
use super::listener::Peer;
use super::service::{Caller, Door, Reply, Service};
use crate::gateway;
use crate::protocol::error::ErrorBody;
use crate::protocol::request::RouteMiss;
use crate::protocol::{
    clip, echo, ApiError, ErrorCode, InvalidateRequest, Request, RevokeRequest, RevokeResponse, Route,
    DEFAULT_MIN_TTL_SECS,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request as HttpRequest, Response, StatusCode};
use serde::Deserialize;
use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// What every connection of the socket door shares.
pub struct Ctx {
    /// The one request path (shared with the D-Bus door).
    pub service: Arc<Service>,
    /// Size and time limits.
    pub limits: Limits,
}

impl Ctx {
    /// A socket door on its own service (tests, benches and fuzzing serve sockets
    /// without the rest of the daemon).
    pub fn new(
        broker: crate::broker::Broker,
        uid: u32,
        reload: Option<super::service::ReloadFn>,
        limits: Limits,
    ) -> Ctx {
        Ctx { service: Arc::new(Service::new(broker, uid, reload)), limits }
    }
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

/// An error answer: `{"error":{"code","message"}}` with the code's status.
pub fn error(code: ErrorCode, message: impl Into<String>) -> Resp {
    api_error(&ApiError::new(code, message))
}

fn api_error(e: &ApiError) -> Resp {
    let body = serde_json::to_vec(&ErrorBody::from(e)).unwrap_or_default();
    json(StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), body)
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
) -> Result<T, ApiError> {
    // A declared length over the limit is refused at once, not waited for.
    if body.size_hint().lower() > limits.max_body as u64 {
        return Err(ApiError::bad_request(format!("request body larger than {} bytes", limits.max_body)));
    }
    let limited = Limited::new(body, limits.max_body);
    let collected = match tokio::time::timeout(limits.body_timeout, limited.collect()).await {
        Err(_) => return Err(ApiError::bad_request("request body not received in time")),
        Ok(Err(e)) => {
            let msg = if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                format!("request body larger than {} bytes", limits.max_body)
            } else {
                format!("cannot read request body: {e}")
            };
            return Err(ApiError::bad_request(msg));
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    match collected.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Ok(T::default()),
        Some(b'{') => {}
        Some(_) => return Err(ApiError::bad_request("the request body must be a JSON object (or empty)")),
    }
    serde_json::from_slice(&collected).map_err(|e| {
        ApiError::bad_request(format!("invalid JSON body: {}", clip(&e.to_string(), MAX_PARSER_MESSAGE)))
    })
}

/// Answers one request. Never fails: every problem becomes an error answer.
pub async fn handle(
    ctx: Arc<Ctx>,
    peer: Peer,
    req: HttpRequest<Incoming>,
) -> Result<Response<gateway::Body>, Infallible> {
    let caller = Caller {
        door: Door::Socket,
        uid: peer.uid,
        pid: peer.pid.map(i64::from),
        exe: peer.exe(),
        bus_name: None,
        pidfd: peer.pidfd(),
    };
    let admitted = match ctx.service.admit(caller) {
        Ok(a) => a,
        Err(e) => return Ok(api_error(&e).map(Either::Left)),
    };
    if req.uri().path().starts_with(gateway::route::PREFIX) {
        let door = gateway::Door::Socket { exe: peer.exe() };
        return Ok(ctx.service.gateway().serve(ctx.service.broker(), door, req).await);
    }
    Ok(handle_api(&ctx, admitted, req).await.map(Either::Left))
}

/// Answers one request of the gateway's TCP door: the caller is admitted by the
/// same service (its uid, from the kernel's socket table), then the gateway serves it.
pub async fn handle_gateway(
    ctx: Arc<Ctx>,
    peer: Peer,
    req: HttpRequest<Incoming>,
) -> Result<Response<gateway::Body>, Infallible> {
    let caller =
        Caller { door: Door::Gateway, uid: peer.uid, pid: None, exe: None, bus_name: None, pidfd: None };
    if ctx.service.admit(caller).is_err() {
        let msg = "looker-agent: this gateway serves only its own user's programs";
        return Ok(gateway::answer::error(StatusCode::FORBIDDEN, msg).map(Either::Left));
    }
    Ok(ctx.service.gateway().serve(ctx.service.broker(), gateway::Door::Tcp, req).await)
}

/// A request of the agent's own API (`/v1/…`).
async fn handle_api(ctx: &Ctx, admitted: super::service::Admitted<'_>, req: HttpRequest<Incoming>) -> Resp {
    // Split the request so the path can be borrowed while the body is read.
    let (parts, body) = req.into_parts();
    let request = match decode(&ctx.limits, &parts, body).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match ctx.service.call(admitted, request).await {
        Ok(reply) => encode(reply),
        Err(e) => api_error(&e),
    }
}

/// The [`Request`] an HTTP request stands for, or the answer that says why none.
async fn decode<'a>(
    limits: &Limits,
    parts: &'a hyper::http::request::Parts,
    body: Incoming,
) -> Result<Request<'a>, Resp> {
    let path = parts.uri.path();
    let method = &parts.method;
    let route = Route::decode(method, path).map_err(|miss| match miss {
        RouteMiss::BadSegment(msg) => error(ErrorCode::BadRequest, msg),
        RouteMiss::WrongMethod => {
            let msg = format!("method {} not allowed on {}", echo(method.as_str()), echo(path));
            let mut r = error(ErrorCode::BadRequest, msg);
            *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            r
        }
        RouteMiss::NotFound => error(
            ErrorCode::NotFound,
            format!(
                "no such endpoint: {} {}; see docs/reference.md, \"Socket API\"",
                echo(method.as_str()),
                echo(path)
            ),
        ),
    })?;
    let bad = |e: ApiError| api_error(&e);
    Ok(match route {
        Route::Health => Request::Health,
        Route::Status => Request::Status,
        Route::Reload => Request::Reload,
        Route::Token { profile } => {
            let q: TokenQuery = serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).map_err(|e| {
                error(
                    ErrorCode::BadRequest,
                    format!("invalid query: {}", clip(&e.to_string(), MAX_PARSER_MESSAGE)),
                )
            })?;
            let min_ttl = parse_min_ttl(q.min_ttl.as_deref()).map_err(|e| error(ErrorCode::BadRequest, e))?;
            let credential = q.credential.filter(|c| !c.is_empty()).map(Cow::Owned);
            Request::Token { profile, credential, min_ttl }
        }
        Route::Invalidate { profile } => {
            let body: InvalidateBody = read_json(body, limits).await.map_err(bad)?;
            let Some(body) = body.0 else {
                return Err(error(ErrorCode::BadRequest, "body must be {\"access_token\":\"…\"}"));
            };
            Request::Invalidate { profile, access_token: Cow::Owned(body.access_token) }
        }
        Route::GatewayCredential => Request::GatewayCredential(read_json(body, limits).await.map_err(bad)?),
        Route::GatewayRevoke => Request::GatewayRevoke(read_json(body, limits).await.map_err(bad)?),
        Route::Revoke => {
            let body: RevokeRequest = read_json(body, limits).await.map_err(bad)?;
            Request::Revoke {
                profile: body.profile.map(Cow::Owned),
                credential: body.credential.map(Cow::Owned),
            }
        }
    })
}

/// Encodes what the service answered.
fn encode(reply: Reply) -> Resp {
    match reply {
        Reply::Health(h) => ok(&h),
        Reply::Token(t, now) => json(StatusCode::OK, t.to_json(now)),
        Reply::Done => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Reply::Status(s) => ok(&*s),
        Reply::Revoked(n) => ok(&RevokeResponse { revoked: n }),
        Reply::Reloaded(summary) => ok(&serde_json::json!({ "reloaded": true, "summary": summary })),
        Reply::Profiles(p) => ok(&p),
        Reply::GatewayCredential(a) => ok(&*a),
        Reply::GatewayRevoked(a) => ok(&a),
    }
}

/// An invalidate body; `None` when the body was empty.
#[derive(Default)]
struct InvalidateBody(Option<InvalidateRequest>);

impl<'de> Deserialize<'de> for InvalidateBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        InvalidateRequest::deserialize(d).map(|r| InvalidateBody(Some(r)))
    }
}
