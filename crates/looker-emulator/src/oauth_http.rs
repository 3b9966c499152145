//! The OAuth routes: `GET /auth` (the consent page), `POST /auth/decision`
//! (its form) and `POST /api/token` (the code and refresh-token grants).

use bytes::Bytes;
use hyper::body::Body;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::Value;

use super::body::EmuBody;
use super::handler::{
    delay_then_drop, expires_in, is_form, json, read_small_body, with_type, Answer, Ctx, Dropped,
};
use super::oauth::{AuthorizeParams, AuthorizeRefusal, TokenRefusal, Tokens};
use super::{consent_page, model, oauth, OneShotFault};

/// The consent page (on Looker's web host; the emulator has one host).
pub(crate) const AUTH: &str = "/auth";
/// Where the consent form posts.
pub(crate) const DECISION: &str = "/auth/decision";
/// The token endpoint (on Looker's API host), outside `/api/4.0`.
pub(crate) const TOKEN: &str = "/api/token";

/// `GET /auth?response_type=code&client_id=…&redirect_uri=…&scope=cors_api
/// &state=…&code_challenge=…&code_challenge_method=S256`.
pub(crate) fn authorize<B>(ctx: &Ctx, req: &Request<B>) -> Answer {
    let pairs: Vec<(String, String)> =
        req.uri().query().and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default();
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let params = AuthorizeParams {
        response_type: get("response_type"),
        client_id: get("client_id"),
        redirect_uri: get("redirect_uri"),
        scope: get("scope"),
        state: get("state"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
    };
    let auto = ctx.state.consent_auto_submit().then(|| match get("auto").as_deref() {
        Some("deny") => "deny",
        _ => "allow",
    });
    match ctx.state.authorize(params) {
        Ok(consent) => Ok(html(StatusCode::OK, consent_page::consent(&consent, DECISION, auto))),
        Err(AuthorizeRefusal::Page(message)) => {
            Ok(html(StatusCode::BAD_REQUEST, consent_page::error(&message)))
        }
        Err(AuthorizeRefusal::Redirect { redirect_uri, error, description, state }) => {
            let mut params = vec![("error", error), ("error_description", description.as_str())];
            if let Some(state) = &state {
                params.push(("state", state));
            }
            Ok(redirect(&oauth::redirect_url(&redirect_uri, &params)))
        }
    }
}

/// `POST /auth/decision`, form `consent=ID&decision=allow|deny`.
pub(crate) async fn decision<B>(ctx: &Ctx, req: Request<B>) -> Answer
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let Some(body) = read_small_body(req).await else {
        return Ok(html(StatusCode::BAD_REQUEST, consent_page::error("the form is too large")));
    };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let allow = match get("decision") {
        Some("allow") => true,
        Some("deny") => false,
        _ => return Ok(html(StatusCode::BAD_REQUEST, consent_page::error("decision must be allow or deny"))),
    };
    match ctx.state.decide(get("consent").unwrap_or(""), allow) {
        Ok(url) => Ok(redirect(&url)),
        Err(message) => Ok(html(StatusCode::BAD_REQUEST, consent_page::error(&message))),
    }
}

/// `POST /api/token`, a JSON body (what gzr sends) or a form. A login as
/// far as the faults go (`login_delay`, `drop_connections`,
/// `login_status`), plus the one-shot token fault.
pub(crate) async fn token<B>(ctx: &Ctx, req: Request<B>) -> Answer
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let is_form = is_form(&req);
    let body = read_small_body(req).await;
    let faults = delay_then_drop(ctx, |f| f.login_delay)
        .await
        .inspect_err(|_| ctx.state.count_failed_token_request())?;
    if let Some(status) = faults.login_status {
        ctx.state.count_failed_token_request();
        return Ok(refused(&status_refusal(status)));
    }
    let fault = ctx.state.take_oauth_token_fault();
    if let Some(OneShotFault::Status(status)) = fault {
        ctx.state.count_failed_token_request();
        return Ok(refused(&status_refusal(status)));
    }
    let fields = match body.and_then(|b| parse_body(&b, is_form)) {
        Some(fields) => fields,
        None => {
            ctx.state.count_failed_token_request();
            return Ok(refused(&TokenRefusal::invalid_request("the body is not a JSON object or a form")));
        }
    };
    let get = |name: &str| {
        fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    };
    let outcome = match get("grant_type") {
        Some("authorization_code") => {
            match (get("client_id"), get("redirect_uri"), get("code"), get("code_verifier")) {
                (Some(client), Some(redirect_uri), Some(code), Some(verifier)) => {
                    ctx.state.exchange_code(client, redirect_uri, code, verifier)
                }
                _ => Err(TokenRefusal::invalid_request(
                    "client_id, redirect_uri, code and code_verifier are required",
                )),
            }
        }
        Some("refresh_token") => match (get("client_id"), get("refresh_token")) {
            (Some(client), Some(refresh_token)) => ctx.state.refresh(client, refresh_token),
            _ => Err(TokenRefusal::invalid_request("client_id and refresh_token are required")),
        },
        Some(_) => Err(TokenRefusal {
            status: 400,
            error: "unsupported_grant_type",
            description: "grant_type must be authorization_code or refresh_token",
        }),
        None => Err(TokenRefusal::invalid_request("grant_type is required")),
    };
    match outcome {
        Ok(_) if fault == Some(OneShotFault::DropAfterApplying) => Err(Dropped),
        Ok(Tokens { access_token, lifetime, refresh_token }) => {
            let expires_in = expires_in(&faults, lifetime);
            Ok(no_store(json(StatusCode::OK, model::oauth_tokens(&access_token, expires_in, &refresh_token))))
        }
        Err(refusal) => {
            ctx.state.count_failed_token_request();
            tracing::debug!(error = refusal.error, "emulator: token request refused");
            Ok(refused(&refusal))
        }
    }
}

/// The string fields of a JSON object body, or of a form.
fn parse_body(body: &[u8], is_form: bool) -> Option<Vec<(String, String)>> {
    if is_form {
        return serde_urlencoded::from_bytes(body).ok();
    }
    match serde_json::from_slice::<Value>(body).ok()? {
        Value::Object(map) => {
            Some(map.into_iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned()))).collect())
        }
        _ => None,
    }
}

/// A fault's status, in OAuth's error shape.
fn status_refusal(status: u16) -> TokenRefusal {
    let error = match status {
        503 => "temporarily_unavailable",
        400..=499 => "invalid_request",
        _ => "server_error",
    };
    TokenRefusal { status, error, description: "injected by the emulator's faults" }
}

/// OAuth's error answer.
fn refused(refusal: &TokenRefusal) -> Response<EmuBody> {
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST);
    no_store(json(status, model::oauth_error(refusal.error, refusal.description)))
}

/// A page, never cached.
fn html(status: StatusCode, page: String) -> Response<EmuBody> {
    no_store(with_type(status, Bytes::from(page), "text/html; charset=utf-8"))
}

/// `resp` marked `Cache-Control: no-store`: OAuth wants no answer that carries
/// a token, a code or a consent kept by a cache.
fn no_store(mut resp: Response<EmuBody>) -> Response<EmuBody> {
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `302 Found` to `url`.
fn redirect(url: &str) -> Response<EmuBody> {
    let mut resp = with_type(StatusCode::FOUND, Bytes::new(), "text/html; charset=utf-8");
    match HeaderValue::from_str(url) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => {
            // A registered redirect_uri with bytes a header cannot carry.
            return html(
                StatusCode::BAD_REQUEST,
                consent_page::error("the redirect_uri cannot be redirected to"),
            );
        }
    }
    no_store(resp)
}
