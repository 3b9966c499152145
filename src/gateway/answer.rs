//! The gateway's own answers, in Looker's shapes and statuses, so that SDK error
//! handling works on them: `{"message","documentation_url"}` errors and the login answer.

use crate::broker::BrokerError;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};

/// Where Looker's own error answers point.
const DOCUMENTATION_URL: &str = "https://cloud.google.com/looker/docs/r/api/support";

fn json(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A Looker-shaped error: `{"message": …, "documentation_url": …}`.
pub fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "message": message, "documentation_url": DOCUMENTATION_URL });
    json(status, serde_json::to_vec(&body).unwrap_or_default())
}

/// Looker's answer to a wrong login: `404 Not found`.
pub fn not_found() -> Response<Full<Bytes>> {
    error(StatusCode::NOT_FOUND, "Not found")
}

/// Looker's answer to a call without a valid token.
pub fn requires_authentication() -> Response<Full<Bytes>> {
    error(StatusCode::UNAUTHORIZED, "Requires authentication.")
}

/// Exactly Looker's login answer (spectacles feeds it to a constructor that
/// rejects unknown keys), with a session token in place of a real one.
pub fn login(session_token: &str, expires_in: u64) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "access_token": session_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "refresh_token": null,
    });
    json(StatusCode::OK, serde_json::to_vec(&body).unwrap_or_default())
}

/// `204` with no body (a logout).
pub fn no_content() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

/// Why the gateway could not get a real token for a call, as a Looker-shaped answer.
/// The message is the broker's (it names what to do, never a token or secret).
pub fn from_broker(e: &BrokerError) -> Response<Full<Bytes>> {
    let status = match e {
        BrokerError::Refused { status, .. } => {
            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
        }
        BrokerError::UnknownProfile { .. }
        | BrokerError::NoDefaultProfile { .. }
        | BrokerError::UnknownCredential { .. } => StatusCode::NOT_FOUND,
        BrokerError::BadRequest(_) => StatusCode::BAD_REQUEST,
        BrokerError::Forbidden(_) => StatusCode::FORBIDDEN,
        BrokerError::Rejected { .. } | BrokerError::SignInAgain { .. } => StatusCode::BAD_GATEWAY,
        BrokerError::Unavailable { .. } | BrokerError::Store(_) | BrokerError::ShuttingDown => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    let message = match e {
        // Looker's own words, as Looker would have answered the client.
        BrokerError::Refused { message, .. } => message.clone(),
        e => format!("looker-agent: {}", e.to_api().message),
    };
    error(status, &message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(r: Response<Full<Bytes>>) -> serde_json::Value {
        serde_json::from_slice(&r.into_body().collect().await.unwrap().to_bytes()).unwrap()
    }

    #[tokio::test]
    async fn shapes() {
        let v = body(login("abc", 3600)).await;
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["access_token", "expires_in", "refresh_token", "token_type"]);
        assert_eq!(v["refresh_token"], serde_json::Value::Null);
        let r = not_found();
        assert_eq!(r.status(), 404);
        assert_eq!(body(r).await["message"], "Not found");
        let r = from_broker(&BrokerError::Refused { status: 403, message: "nope".into() });
        assert_eq!(r.status(), 403);
        assert_eq!(body(r).await["message"], "nope");
    }
}
