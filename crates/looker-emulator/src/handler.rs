//! Routing and answers: one request in, one Looker-like response out (or,
//! under the `drop_connections` fault, no response at all).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::model;
use super::state::{LoginOutcome, State};

/// The largest login body the emulator reads; Looker's are a few dozen bytes.
const MAX_LOGIN_BODY: usize = 64 * 1024;

/// The path prefix of the API version the emulator speaks.
const API: &str = "/api/4.0";
/// Login, as every SDK calls it.
const LOGIN: &str = "/api/4.0/login";
/// Logout, as the agent calls it.
const LOGOUT: &str = "/api/4.0/logout";
/// Logout, as the Python SDK's `auth.logout()` calls it.
const LOGOUT_UNVERSIONED: &str = "/api/logout";

/// What the connection task needs to answer a request.
pub(crate) struct Ctx {
    /// Tokens, credentials, faults and counters.
    pub(crate) state: State,
    /// `http://127.0.0.1:PORT`, for the `url` fields of answers.
    pub(crate) base_url: String,
}

/// The service's error: hyper closes the connection without answering.
#[derive(Debug)]
pub(crate) struct Dropped;

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by the emulator's drop_connections fault")
    }
}

impl std::error::Error for Dropped {}

/// The response type of every route.
pub(crate) type Answer = Result<Response<Full<Bytes>>, Dropped>;

/// Answers one request.
pub(crate) async fn handle<B>(ctx: Arc<Ctx>, req: Request<B>) -> Answer
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    tracing::debug!(%method, %path, "emulator request");
    match (&method, path.as_str()) {
        (&Method::POST, LOGIN) => login(&ctx, req).await,
        (&Method::DELETE, LOGOUT | LOGOUT_UNVERSIONED) => logout(&ctx, &req).await,
        _ => api(&ctx, &req, &method, &path).await,
    }
}

/// `POST /api/4.0/login`.
async fn login<B>(ctx: &Ctx, req: Request<B>) -> Answer
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let query = req.uri().query().map(str::to_owned);
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    let body = Limited::new(req.into_body(), MAX_LOGIN_BODY).collect().await.map(|c| c.to_bytes());

    let faults = ctx.state.faults();
    pause(faults.login_delay).await;
    if faults.drop_connections {
        ctx.state.count_failed_login();
        return Err(Dropped);
    }
    if let Some(status) = faults.login_status {
        ctx.state.count_failed_login();
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = json(status, model::error(message_for(status)));
        if let Some(secs) = faults.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        return Ok(resp);
    }
    if faults.malformed_body {
        ctx.state.count_failed_login();
        return Ok(with_type(
            StatusCode::OK,
            Bytes::from_static(b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
            "application/json",
        ));
    }
    if faults.missing_access_token {
        ctx.state.count_failed_login();
        let expires_in = lifetime_secs(ctx.state.token_lifetime());
        return Ok(json(StatusCode::OK, model::access_token(None, expires_in)));
    }

    let body = match body {
        Ok(body) => body,
        Err(_) => {
            ctx.state.count_failed_login();
            return Ok(error(StatusCode::BAD_REQUEST));
        }
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if is_form && !body.is_empty() {
        match serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) {
            Ok(form) => pairs.extend(form),
            Err(_) => {
                ctx.state.count_failed_login();
                return Ok(error(StatusCode::BAD_REQUEST));
            }
        }
    }
    // Old clients put the credentials in the query string; the body wins.
    if let Some(q) = query {
        pairs.extend(serde_urlencoded::from_str::<Vec<(String, String)>>(&q).unwrap_or_default());
    }
    let field = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let (Some(client_id), Some(client_secret)) = (field("client_id"), field("client_secret")) else {
        ctx.state.count_failed_login();
        return Ok(error(StatusCode::NOT_FOUND));
    };
    match ctx.state.login(client_id, client_secret) {
        LoginOutcome::Rejected => {
            ctx.state.count_failed_login();
            tracing::debug!("emulator login rejected");
            Ok(error(StatusCode::NOT_FOUND))
        }
        LoginOutcome::Issued { token, lifetime } => {
            ctx.state.count_login();
            let expires_in = faults.bad_expires_in.unwrap_or_else(|| lifetime_secs(lifetime));
            Ok(json(StatusCode::OK, model::access_token(Some(&token), expires_in)))
        }
    }
}

/// `DELETE /api/4.0/logout` and `DELETE /api/logout`.
async fn logout<B>(ctx: &Ctx, req: &Request<B>) -> Answer {
    let token = bearer(req);
    let faults = ctx.state.faults();
    pause(faults.logout_delay).await;
    if faults.drop_connections {
        return Err(Dropped);
    }
    match token {
        None => Ok(error(StatusCode::UNAUTHORIZED)),
        Some(t) if ctx.state.logout(&t) => Ok(empty(StatusCode::NO_CONTENT)),
        Some(_) => Ok(error(StatusCode::NOT_FOUND)),
    }
}

/// Everything that is neither login nor logout.
async fn api<B>(ctx: &Ctx, req: &Request<B>, method: &Method, path: &str) -> Answer {
    let faults = ctx.state.faults();
    pause(faults.api_delay).await;
    if faults.drop_connections {
        return Err(Dropped);
    }
    let fields = query_param(req, "fields");
    let fields = fields.as_deref();
    let is_get = method == Method::GET || method == Method::HEAD;
    if !is_get {
        return Ok(error(StatusCode::NOT_FOUND));
    }
    match path {
        "/alive" => return Ok(empty(StatusCode::OK)),
        "/versions" => return Ok(json(StatusCode::OK, model::versions(&ctx.base_url).to_string())),
        _ => {}
    }
    let Some(rest) = path.strip_prefix(API) else {
        return Ok(error(StatusCode::NOT_FOUND));
    };
    // Routes below need a live token; unknown routes are 404 either way.
    enum Route<'a> {
        Me,
        User(&'a str),
        Roles(&'a str),
    }
    let route = match (rest, rest.strip_prefix("/users/")) {
        ("/user", _) => Route::Me,
        (_, Some(tail)) => match tail.split_once('/') {
            None if !tail.is_empty() => Route::User(tail),
            Some((id, "roles")) if !id.is_empty() => Route::Roles(id),
            _ => return Ok(error(StatusCode::NOT_FOUND)),
        },
        _ => return Ok(error(StatusCode::NOT_FOUND)),
    };
    let Some(me) = bearer(req).and_then(|t| ctx.state.authenticate(&t)) else {
        return Ok(error(StatusCode::UNAUTHORIZED));
    };
    ctx.state.count_api_call();
    let body = match route {
        Route::Me => model::user(&ctx.base_url, &me, &ctx.state.client_ids_of(&me.id)),
        Route::User(id) | Route::Roles(id) => {
            let user = if id == me.id { Some(me) } else { ctx.state.find_user(id) };
            let Some(user) = user else {
                return Ok(error(StatusCode::NOT_FOUND));
            };
            if matches!(route, Route::Roles(_)) {
                model::roles(&ctx.base_url, &user)
            } else {
                model::user(&ctx.base_url, &user, &ctx.state.client_ids_of(&user.id))
            }
        }
    };
    Ok(json(StatusCode::OK, model::select_fields(body, fields).to_string()))
}

/// The token of an `Authorization: token …` or `Authorization: Bearer …` header.
fn bearer<B>(req: &Request<B>) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    let known = scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer");
    (known && !token.is_empty()).then(|| token.to_owned())
}

/// The first value of a query parameter.
fn query_param<B>(req: &Request<B>, name: &str) -> Option<String> {
    let query = req.uri().query()?;
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Sleeps on tokio's clock, skipping the timer for a zero delay.
async fn pause(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

/// A duration as Looker's whole-second `expires_in`.
fn lifetime_secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The `message` Looker puts in an error body with this status.
fn message_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Bad Request",
        401 => "Requires authentication.",
        403 => "Forbidden",
        404 => "Not found",
        429 => "Too Many Requests",
        _ => status.canonical_reason().unwrap_or("Error"),
    }
}

/// A Looker error body with this status.
fn error(status: StatusCode) -> Response<Full<Bytes>> {
    json(status, model::error(message_for(status)))
}

/// A JSON response.
fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    with_type(status, Bytes::from(body), "application/json")
}

/// A response with a body of the given content type.
fn with_type(status: StatusCode, body: Bytes, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A response without a body.
fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}
