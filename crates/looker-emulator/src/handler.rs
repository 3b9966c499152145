//! Routing and answers: one request in, one Looker-like response out (or,
//! under the `drop_connections` fault, no response at all).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Body;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;

use super::body::{EmuBody, PatternCheck};
use super::request_log::RequestLog;
use super::state::{LoginOutcome, State, SudoOutcome};
use super::{api3_http, model, oauth_http, OneShotFault};
use super::{Faults, RequestRecord, Workspace};

/// The largest login or session body the emulator reads; Looker's are a
/// few dozen bytes.
pub(crate) const MAX_LOGIN_BODY: usize = 64 * 1024;

/// The path prefix of the API version the emulator speaks.
const API: &str = "/api/4.0";
/// Login, as every SDK calls it.
const LOGIN: &str = "/api/4.0/login";
/// Logout, as the agent calls it.
const LOGOUT: &str = "/api/4.0/logout";
/// Logout, as the Python SDK's `auth.logout()` calls it.
const LOGOUT_UNVERSIONED: &str = "/api/logout";
/// The session: its workspace, and who is behind a sudo token.
const SESSION: &str = "/api/4.0/session";
/// The large-body upload (not Looker's).
const UPLOAD: &str = "/api/4.0/emulator/upload";

/// What the connection task needs to answer a request.
pub(crate) struct Ctx {
    /// Tokens, credentials, faults and counters.
    pub(crate) state: State,
    /// `http://127.0.0.1:PORT`, for the `url` fields of answers.
    pub(crate) base_url: String,
    /// `http` or `https`, for URLs built from the client's `Host`.
    pub(crate) scheme: &'static str,
    /// The large-body pattern, sliced (not copied) by every download.
    pub(crate) pattern: Bytes,
    /// The requests answered.
    pub(crate) log: RequestLog,
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
pub(crate) type Answer = Result<Response<EmuBody>, Dropped>;

/// Answers one request, and records it.
pub(crate) async fn handle<B>(ctx: Arc<Ctx>, req: Request<B>) -> Answer
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    tracing::debug!(%method, %path, "emulator request");
    let answer = route(&ctx, req, &method, &path).await;
    ctx.log.push(RequestRecord {
        method: method.as_str().to_owned(),
        path,
        status: answer.as_ref().ok().map(|r| r.status().as_u16()),
    });
    answer
}

/// Picks the route: login, sudo, logout, the session, the large bodies,
/// then the read-only API.
async fn route<B>(ctx: &Ctx, req: Request<B>, method: &Method, path: &str) -> Answer
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if let Some((user_id, key_id)) = api3_http::parse_path(path) {
        return api3_http::handle(ctx, req, method, user_id, key_id).await;
    }
    match (method, path) {
        (&Method::GET, oauth_http::AUTH) => oauth_http::authorize(ctx, &req),
        (&Method::POST, oauth_http::DECISION) => oauth_http::decision(ctx, req).await,
        (&Method::POST, oauth_http::TOKEN) => oauth_http::token(ctx, req).await,
        (&Method::POST, LOGIN) => login(ctx, req).await,
        (&Method::DELETE, LOGOUT | LOGOUT_UNVERSIONED) => logout(ctx, &req).await,
        (&Method::PATCH, SESSION) => update_session(ctx, req).await,
        (&Method::POST, UPLOAD) => upload(ctx, req).await,
        (&Method::POST, _) => match path.strip_prefix(LOGIN).and_then(|p| p.strip_prefix('/')) {
            Some(user_id) if !user_id.is_empty() && !user_id.contains('/') => sudo(ctx, &req, user_id).await,
            _ => api(ctx, &req, method, path).await,
        },
        _ => api(ctx, &req, method, path).await,
    }
}

/// `POST /api/4.0/login`.
async fn login<B>(ctx: &Ctx, req: Request<B>) -> Answer
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let query = req.uri().query().map(str::to_owned);
    let is_form = is_form(&req);
    let body = read_small_body(req).await;

    let faults =
        delay_then_drop(ctx, |f| f.login_delay).await.inspect_err(|_| ctx.state.count_failed_login())?;
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

    let Some(body) = body else {
        ctx.state.count_failed_login();
        return Ok(error(StatusCode::BAD_REQUEST));
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
    let one_shot = ctx.state.take_login_fault(client_id);
    if let Some(OneShotFault::Status(status)) = one_shot {
        ctx.state.count_failed_login();
        return Ok(fault_status(status));
    }
    match ctx.state.login(client_id, client_secret) {
        LoginOutcome::Rejected => {
            ctx.state.count_failed_login();
            tracing::debug!("emulator login rejected");
            Ok(error(StatusCode::NOT_FOUND))
        }
        LoginOutcome::Issued { .. } if one_shot == Some(OneShotFault::DropAfterApplying) => {
            ctx.state.count_login();
            Err(Dropped)
        }
        LoginOutcome::Issued { token, lifetime } => {
            ctx.state.count_login();
            Ok(issued(&faults, &token, lifetime))
        }
    }
}

/// `DELETE /api/4.0/logout` and `DELETE /api/logout`.
async fn logout<B>(ctx: &Ctx, req: &Request<B>) -> Answer {
    let token = bearer(req);
    delay_then_drop(ctx, |f| f.logout_delay).await?;
    match token {
        None => Ok(error(StatusCode::UNAUTHORIZED)),
        Some(t) if ctx.state.logout(&t) => Ok(empty(StatusCode::NO_CONTENT)),
        Some(_) => Ok(error(StatusCode::NOT_FOUND)),
    }
}

/// `POST /api/4.0/login/{user_id}`: sudo, with an admin's token. An API
/// call as far as the faults go (`api_delay`, `drop_connections`).
async fn sudo<B>(ctx: &Ctx, req: &Request<B>, user_id: &str) -> Answer {
    let faults = delay_then_drop(ctx, |f| f.api_delay).await?;
    let Some(token) = bearer(req) else {
        return Ok(error(StatusCode::UNAUTHORIZED));
    };
    match ctx.state.sudo(&token, user_id) {
        SudoOutcome::Unauthenticated => Ok(error(StatusCode::UNAUTHORIZED)),
        SudoOutcome::Forbidden => Ok(error(StatusCode::FORBIDDEN)),
        SudoOutcome::UnknownUser => Ok(error(StatusCode::NOT_FOUND)),
        SudoOutcome::Issued { token, lifetime } => Ok(issued(&faults, &token, lifetime)),
    }
}

/// `PATCH /api/4.0/session`: moves the caller's token to another workspace.
async fn update_session<B>(ctx: &Ctx, req: Request<B>) -> Answer
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    delay_then_drop(ctx, |f| f.api_delay).await?;
    let Some(token) = bearer(&req).filter(|t| ctx.state.is_live(t)) else {
        return Ok(error(StatusCode::UNAUTHORIZED));
    };
    let Some(body) = read_small_body(req).await else {
        return Ok(error(StatusCode::BAD_REQUEST));
    };
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return Ok(error(StatusCode::BAD_REQUEST));
    };
    match fields.get("workspace_id") {
        // Looker's PATCH leaves out what is not given.
        None | Some(Value::Null) => {}
        Some(value) => {
            let Some(workspace) = value.as_str().and_then(Workspace::from_name) else {
                return Ok(json(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    model::validation_error("workspace_id", "must be one of: production, dev"),
                ));
            };
            if !ctx.state.set_workspace(&token, workspace) {
                return Ok(error(StatusCode::UNAUTHORIZED));
            }
        }
    }
    ctx.state.count_api_call();
    match ctx.state.token_info(&token) {
        Some(info) => Ok(json(StatusCode::OK, model::session(&info).to_string())),
        None => Ok(error(StatusCode::UNAUTHORIZED)),
    }
}

/// `POST /api/4.0/emulator/upload`: counts the body and checks it against
/// the pattern as it streams in, keeping none of it.
async fn upload<B>(ctx: &Ctx, req: Request<B>) -> Answer
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    delay_then_drop(ctx, |f| f.api_delay).await?;
    if bearer(&req).and_then(|t| ctx.state.authenticate(&t)).is_none() {
        return Ok(error(StatusCode::UNAUTHORIZED));
    }
    let mut body = std::pin::pin!(req.into_body());
    let mut check = PatternCheck::new(ctx.pattern.clone());
    while let Some(frame) = body.as_mut().frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    check.feed(data);
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "emulator: upload body failed");
                return Ok(error(StatusCode::BAD_REQUEST));
            }
        }
    }
    ctx.state.count_api_call();
    let answer = serde_json::json!({ "bytes": check.bytes, "pattern_ok": check.ok });
    Ok(json(StatusCode::OK, answer.to_string()))
}

/// Everything that is neither login nor logout.
async fn api<B>(ctx: &Ctx, req: &Request<B>, method: &Method, path: &str) -> Answer {
    delay_then_drop(ctx, |f| f.api_delay).await?;
    let fields = query_param(req, "fields");
    let fields = fields.as_deref();
    let is_get = method == Method::GET || method == Method::HEAD;
    if !is_get {
        return Ok(error(StatusCode::NOT_FOUND));
    }
    match path {
        "/alive" => return Ok(empty(StatusCode::OK)),
        "/versions" | "/api/4.0/versions" => {
            let versions = model::versions(&api_server_url(ctx, req));
            return Ok(json(StatusCode::OK, model::select_fields(versions, fields).to_string()));
        }
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
        Session,
        Models,
        Model(&'a str),
        Download,
    }
    let route = match (rest, rest.strip_prefix("/users/"), rest.strip_prefix("/lookml_models/")) {
        ("/user", _, _) => Route::Me,
        ("/session", _, _) => Route::Session,
        ("/lookml_models", _, _) => Route::Models,
        ("/emulator/download", _, _) => Route::Download,
        (_, _, Some(name)) if !name.is_empty() && !name.contains('/') => Route::Model(name),
        (_, Some(tail), _) => match tail.split_once('/') {
            None if !tail.is_empty() => Route::User(tail),
            Some((id, "roles")) if !id.is_empty() => Route::Roles(id),
            _ => return Ok(error(StatusCode::NOT_FOUND)),
        },
        _ => return Ok(error(StatusCode::NOT_FOUND)),
    };
    let Some(token) = bearer(req) else {
        return Ok(error(StatusCode::UNAUTHORIZED));
    };
    let Some(me) = ctx.state.authenticate(&token) else {
        return Ok(error(StatusCode::UNAUTHORIZED));
    };
    ctx.state.count_api_call();
    let body = match route {
        Route::Session => match ctx.state.token_info(&token) {
            Some(info) => model::session(&info),
            None => return Ok(error(StatusCode::UNAUTHORIZED)),
        },
        Route::Models => model::lookml_models(),
        Route::Model(name) => match model::lookml_model(name) {
            Some(m) => m,
            None => return Ok(error(StatusCode::NOT_FOUND)),
        },
        Route::Download => {
            let Some(len) = query_param(req, "bytes").and_then(|b| b.parse::<u64>().ok()) else {
                return Ok(error(StatusCode::BAD_REQUEST));
            };
            // Fault knobs: break off after `cut_at` bytes; `chunked=1` announces no length.
            let cut_at = query_param(req, "cut_at").and_then(|c| c.parse::<u64>().ok());
            let chunked = query_param(req, "chunked").as_deref() == Some("1");
            return Ok(download(ctx, len, cut_at, chunked));
        }
        Route::Me => model::user(&ctx.base_url, &me, &ctx.state.api3_keys(&me.id)),
        Route::User(id) | Route::Roles(id) => {
            let user = if id == me.id { Some(me) } else { ctx.state.find_user(id) };
            let Some(user) = user else {
                return Ok(error(StatusCode::NOT_FOUND));
            };
            if matches!(route, Route::Roles(_)) {
                model::roles(&ctx.base_url, &user)
            } else {
                model::user(&ctx.base_url, &user, &ctx.state.api3_keys(&user.id))
            }
        }
    };
    Ok(json(StatusCode::OK, model::select_fields(body, fields).to_string()))
}

/// `GET /api/4.0/emulator/download?bytes=N[&cut_at=M][&chunked=1]`: N bytes of the
/// pattern, generated as the client reads them; broken off after M bytes (the
/// connection dropped mid-body), framed in chunks instead of a Content-Length.
fn download(ctx: &Ctx, len: u64, cut_at: Option<u64>, chunked: bool) -> Response<EmuBody> {
    let mut resp = Response::new(EmuBody::pattern(ctx.pattern.clone(), len, cut_at, chunked));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if !chunked {
        resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    resp
}

/// `scheme://host[:port]` as the client addressed the emulator (its
/// `Host`), or the emulator's own address when the `Host` is missing or
/// holds anything but host-name characters.
fn api_server_url<B>(ctx: &Ctx, req: &Request<B>) -> String {
    let host =
        req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).filter(|h| {
            !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        });
    match host {
        Some(host) => format!("{}://{host}", ctx.scheme),
        None => ctx.base_url.clone(),
    }
}

/// The token of an `Authorization: token …` or `Authorization: Bearer …` header.
pub(crate) fn bearer<B>(req: &Request<B>) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    let known = scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer");
    (known && !token.is_empty()).then(|| token.to_owned())
}

/// The first value of a query parameter.
pub(crate) fn query_param<B>(req: &Request<B>, name: &str) -> Option<String> {
    let query = req.uri().query()?;
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The faults every request meets first: waits the delay that `delay` picks
/// (the login's, the logout's or the API's), then drops the connection under
/// `drop_connections`. Returns the faults, for the ones the route meets next.
pub(crate) async fn delay_then_drop(ctx: &Ctx, delay: fn(&Faults) -> Duration) -> Result<Faults, Dropped> {
    let faults = ctx.state.faults();
    pause(delay(&faults)).await;
    if faults.drop_connections {
        return Err(Dropped);
    }
    Ok(faults)
}

/// Whether the request's body is a form (`application/x-www-form-urlencoded`,
/// parameters such as `charset` aside).
pub(crate) fn is_form<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// The whole body of a login-sized request (a login, a session change, a consent
/// form, a token request, a new API3 key); `None` when it is larger than
/// [`MAX_LOGIN_BODY`] or broke off.
pub(crate) async fn read_small_body<B>(req: Request<B>) -> Option<Bytes>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    Limited::new(req.into_body(), MAX_LOGIN_BODY).collect().await.ok().map(|c| c.to_bytes())
}

/// Sleeps on tokio's clock, skipping the timer for a zero delay.
pub(crate) async fn pause(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

/// A duration as Looker's whole-second `expires_in`.
pub(crate) fn lifetime_secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The `expires_in` to report for a token that lives `lifetime`: the
/// `bad_expires_in` fault's, when it is set.
pub(crate) fn expires_in(faults: &Faults, lifetime: Duration) -> i64 {
    faults.bad_expires_in.unwrap_or_else(|| lifetime_secs(lifetime))
}

/// The answer to a login or a sudo that issued `token`.
fn issued(faults: &Faults, token: &str, lifetime: Duration) -> Response<EmuBody> {
    json(StatusCode::OK, model::access_token(Some(token), expires_in(faults, lifetime)))
}

/// The answer of a one-shot `Status` fault: a Looker error with that status
/// (503 when it is not a status at all).
pub(crate) fn fault_status(status: u16) -> Response<EmuBody> {
    error(StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE))
}

/// The `message` Looker puts in an error body with this status.
pub(crate) fn message_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Bad Request",
        401 => "Requires authentication.",
        403 => "Forbidden",
        404 => "Not found",
        422 => "Validation Failed",
        429 => "Too Many Requests",
        _ => status.canonical_reason().unwrap_or("Error"),
    }
}

/// A Looker error body with this status.
pub(crate) fn error(status: StatusCode) -> Response<EmuBody> {
    json(status, model::error(message_for(status)))
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, body: String) -> Response<EmuBody> {
    with_type(status, Bytes::from(body), "application/json")
}

/// A response with a body of the given content type.
pub(crate) fn with_type(status: StatusCode, body: Bytes, content_type: &'static str) -> Response<EmuBody> {
    let mut resp = Response::new(EmuBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A response without a body.
pub(crate) fn empty(status: StatusCode) -> Response<EmuBody> {
    let mut resp = Response::new(EmuBody::full(Bytes::new()));
    *resp.status_mut() = status;
    resp
}
