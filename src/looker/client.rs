//! [`LookerClient`]: the real Looker API over reqwest + rustls.

use super::{LoginToken, LookerApi, LookerError, LookerUser, Role};
use crate::config::Profile;
use crate::secret::Secret;
use async_trait::async_trait;
use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use std::error::Error as _;
use std::time::Duration;

/// Looker answers are small; anything larger is not a Looker answer.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// A client for one profile's Looker instance.
#[derive(Debug, Clone)]
pub struct LookerClient {
    http: reqwest::Client,
    base_url: String,
}

/// True when a URL's host is a loopback address or `localhost`.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost"),
        None => false,
    }
}

/// What shapes an HTTP client, apart from the URL. Profiles that agree on these
/// share one client: its root store and TLS session cache are by far the largest
/// thing a profile costs (about 100 KiB each), and its connection pool is per host anyway.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct HttpSettings {
    verify_tls: bool,
    /// The CA file's contents (not its path: an edited file must give a new client).
    ca_pem: Option<(std::path::PathBuf, Vec<u8>)>,
    timeout: Duration,
}

/// The process's HTTP clients, one per distinct [`HttpSettings`].
static HTTP_CLIENTS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<HttpSettings, reqwest::Client>>,
> = std::sync::LazyLock::new(Default::default);

fn shared_http_client(profile: &Profile) -> Result<reqwest::Client, LookerError> {
    let ca_pem = match &profile.ca_file {
        Some(ca) => Some((
            ca.clone(),
            std::fs::read(ca)
                .map_err(|e| LookerError::Config(format!("cannot read ca_file {}: {e}", ca.display())))?,
        )),
        None => None,
    };
    let key = HttpSettings { verify_tls: profile.verify_tls, ca_pem, timeout: profile.timeout() };
    let mut clients = HTTP_CLIENTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = clients.get(&key) {
        return Ok(c.clone());
    }
    let client = build_http_client(&key)?;
    clients.insert(key, client.clone());
    Ok(client)
}

fn build_http_client(key: &HttpSettings) -> Result<reqwest::Client, LookerError> {
    let timeout = key.timeout;
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        // A redirect would carry the form body or token to another place: never follow.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("looker-agent/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(90));
    if !key.verify_tls {
        b = b.danger_accept_invalid_certs(true);
    }
    if let Some((ca, pem)) = &key.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
            LookerError::Config(format!("ca_file {} holds no usable PEM certificate: {e}", ca.display()))
        })?;
        if certs.is_empty() {
            return Err(LookerError::Config(format!("ca_file {} holds no PEM certificate", ca.display())));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(|e| LookerError::Config(format!("cannot set up HTTP client: {e}")))
}

impl LookerClient {
    /// Builds a client from a profile's settings. Refuses plain http to a
    /// non-loopback host unless the profile allows it, and an unreadable CA file.
    pub fn new(profile: &Profile) -> Result<LookerClient, LookerError> {
        let url = url::Url::parse(&profile.base_url)
            .map_err(|e| LookerError::Config(format!("invalid base_url {:?}: {e}", profile.base_url)))?;
        if url.scheme() == "http" && !is_loopback(&url) && !profile.allow_insecure_http {
            return Err(LookerError::Config(format!(
                "refusing plain http to {}: client secrets and tokens would cross the network unencrypted; \
                 use https, or set allow_insecure_http = true in the profile if you really mean it",
                profile.base_url
            )));
        }
        let http = shared_http_client(profile)?;
        Ok(LookerClient { http, base_url: profile.base_url.clone() })
    }

    /// The base URL this client talks to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/4.0/{path}", self.base_url)
    }

    /// Sends a request; returns the status, any `Retry-After` and the (capped) body.
    async fn exchange(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Option<Duration>, Vec<u8>), LookerError> {
        let resp = req.send().await.map_err(transport_error)?;
        let status = resp.status();
        let retry = retry_after(&resp);
        Ok((status, retry, read_body(resp).await?))
    }

    /// An authenticated `GET /api/4.0/{path}` whose answer is JSON.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: &Secret,
    ) -> Result<T, LookerError> {
        let req = self.http.get(self.api(path)).header(AUTHORIZATION, auth_header(token)?);
        let (status, retry, body) = self.exchange(req).await?;
        if status != StatusCode::OK {
            return Err(status_error(status, retry, &body, false));
        }
        serde_json::from_slice(&body).map_err(|e| LookerError::BadAnswer {
            reason: format!("GET /api/4.0/{path}: the answer is not the expected JSON ({e})"),
        })
    }
}

fn auth_header(token: &Secret) -> Result<HeaderValue, LookerError> {
    let mut v = HeaderValue::from_str(&format!("token {}", token.expose())).map_err(|_| {
        LookerError::Config("the access token holds characters not allowed in a header".into())
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// Describes a transport error with its whole cause chain, calling out TLS problems.
fn transport_error(e: reqwest::Error) -> LookerError {
    let mut chain = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    let lower = chain.to_ascii_lowercase();
    if lower.contains("certificate")
        || lower.contains("invalidcertificate")
        || lower.contains("unknownissuer")
    {
        const CA_FILE: &str = "if the instance uses a private CA, set ca_file in the profile \
                               (`lookerctl profile add NAME --base-url URL --ca-file PATH`)";
        let hint = if lower.contains("unknownissuer") || lower.contains("unknown issuer") {
            format!("the certificate is signed by a CA this machine does not trust; {CA_FILE}")
        } else if lower.contains("not valid for name") || lower.contains("notvalidforname") {
            "the certificate is not for the host in base_url; use the host name it was issued for".into()
        } else if lower.contains("expired")
            || lower.contains("not valid before")
            || lower.contains("notvalidyet")
        {
            "the certificate is outside its validity period; renew it on the server, or check this machine's clock"
                .into()
        } else {
            CA_FILE.into()
        };
        return LookerError::Config(format!("TLS certificate problem: {chain}; {hint}"));
    }
    let reason = if e.is_timeout() {
        format!("timed out ({chain})")
    } else if e.is_connect() {
        format!("cannot connect ({chain})")
    } else {
        chain
    };
    LookerError::Unavailable { reason, retry_after: None }
}

async fn read_body(mut resp: Response) -> Result<Vec<u8>, LookerError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(LookerError::BadAnswer { reason: "answer larger than 1 MiB".into() });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn retry_after(resp: &Response) -> Option<Duration> {
    let v = resp.headers().get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate_parse(v)?;
    when.duration_since(std::time::SystemTime::now()).ok()
}

fn httpdate_parse(v: &str) -> Option<std::time::SystemTime> {
    // Retry-After may be an HTTP date: humantime reads RFC 3339 only, so accept
    // the IMF-fixdate form by rewriting it (`Sun, 06 Nov 1994 08:49:37 GMT`).
    let parts: Vec<&str> = v.split_whitespace().collect();
    if parts.len() != 6 {
        return None;
    }
    let month = match parts[2] {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let rfc = format!("{}-{:02}-{:0>2}T{}Z", parts[3], month, parts[1], parts[4]);
    humantime::parse_rfc3339(&rfc).ok()
}

/// Looker's `message` field, or the start of the body.
fn looker_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(m) = v.get("message").and_then(|m| m.as_str()) {
            return m.chars().take(200).collect();
        }
    }
    let text = String::from_utf8_lossy(body);
    let t: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    if t.is_empty() {
        "no message".into()
    } else {
        t
    }
}

/// Maps a non-success status to the error that drives the broker.
fn status_error(status: StatusCode, retry: Option<Duration>, body: &[u8], login: bool) -> LookerError {
    let code = status.as_u16();
    match code {
        429 | 500..=599 => LookerError::Unavailable {
            reason: format!("HTTP {code} {}", looker_message(body)),
            retry_after: retry,
        },
        400 | 401 | 403 | 404 if login => {
            LookerError::Rejected { status: code, message: looker_message(body) }
        }
        401 => LookerError::TokenExpired,
        _ => LookerError::BadAnswer {
            reason: format!("unexpected HTTP {code} ({}); is base_url right?", looker_message(body)),
        },
    }
}

/// Parses a login answer; public for fuzzing and tests.
pub fn parse_login_answer(body: &[u8]) -> Result<LoginToken, LookerError> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| LookerError::BadAnswer { reason: format!("login answer is not JSON ({e})") })?;
    let token = v
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| LookerError::BadAnswer { reason: "login answer has no access_token".into() })?;
    if token.len() > 4096 || token.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
        return Err(LookerError::BadAnswer {
            reason: "login answer's access_token is not a printable token".into(),
        });
    }
    let expires_in = match v.get("expires_in") {
        Some(serde_json::Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().unwrap_or(0.0),
        _ => 0.0,
    };
    if !(1.0..=31_536_000.0).contains(&expires_in) {
        return Err(LookerError::BadAnswer {
            reason: "login answer's expires_in is missing, not positive or absurd".into(),
        });
    }
    let token_type = v.get("token_type").and_then(|t| t.as_str()).unwrap_or("Bearer").to_string();
    Ok(LoginToken { access_token: Secret::new(token), token_type, expires_in: expires_in as u64 })
}

#[async_trait]
impl LookerApi for LookerClient {
    async fn login(&self, client_id: &str, client_secret: &Secret) -> Result<LoginToken, LookerError> {
        let req = self
            .http
            .post(self.api("login"))
            .form(&[("client_id", client_id), ("client_secret", client_secret.expose())]);
        let (status, retry, body) = self.exchange(req).await?;
        if status == StatusCode::OK {
            parse_login_answer(&body)
        } else {
            Err(status_error(status, retry, &body, true))
        }
    }

    async fn logout(&self, access_token: &Secret) -> Result<(), LookerError> {
        let req = self.http.delete(self.api("logout")).header(AUTHORIZATION, auth_header(access_token)?);
        let (status, retry, body) = self.exchange(req).await?;
        match status.as_u16() {
            // 404: already revoked; 401: already expired. Either way it is gone.
            200 | 204 | 401 | 404 => Ok(()),
            _ => Err(status_error(status, retry, &body, false)),
        }
    }

    async fn alive(&self) -> Result<(), LookerError> {
        let (status, retry, body) = self.exchange(self.http.get(format!("{}/alive", self.base_url))).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(status_error(status, retry, &body, false))
        }
    }

    async fn user(&self, access_token: &Secret) -> Result<LookerUser, LookerError> {
        self.get_json("user", access_token).await
    }

    async fn user_roles(&self, access_token: &Secret, user_id: &str) -> Result<Vec<Role>, LookerError> {
        let id: String = url::form_urlencoded::byte_serialize(user_id.as_bytes()).collect();
        self.get_json(&format!("users/{id}/roles"), access_token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_answers() {
        let t = parse_login_answer(
            br#"{"access_token":"abc","token_type":"Bearer","expires_in":3600,"refresh_token":null}"#,
        )
        .unwrap();
        assert_eq!((t.access_token.expose(), t.expires_in), ("abc", 3600));
        for bad in [
            &b"nope"[..],
            br#"{"expires_in":3600}"#,
            br#"{"access_token":"a","expires_in":0}"#,
            br#"{"access_token":"a","expires_in":-5}"#,
            br#"{"access_token":"a b","expires_in":5}"#,
        ] {
            assert!(matches!(parse_login_answer(bad), Err(LookerError::BadAnswer { .. })));
        }
    }

    #[test]
    fn statuses_drive_behaviour() {
        let body = br#"{"message":"Not found","documentation_url":"x"}"#;
        assert_eq!(
            status_error(StatusCode::NOT_FOUND, None, body, true),
            LookerError::Rejected { status: 404, message: "Not found".into() }
        );
        assert!(
            matches!(status_error(StatusCode::TOO_MANY_REQUESTS, Some(Duration::from_secs(7)), b"", true),
            LookerError::Unavailable { retry_after: Some(d), .. } if d.as_secs() == 7)
        );
        assert!(matches!(
            status_error(StatusCode::BAD_GATEWAY, None, b"", true),
            LookerError::Unavailable { .. }
        ));
        assert_eq!(status_error(StatusCode::UNAUTHORIZED, None, b"", false), LookerError::TokenExpired);
    }

    #[test]
    fn plain_http_only_to_loopback() {
        let mk = |u: &str, allow: bool| Profile { allow_insecure_http: allow, ..Profile::new(u) };
        assert!(LookerClient::new(&mk("http://127.0.0.1:9", false)).is_ok());
        assert!(LookerClient::new(&mk("http://localhost:9", false)).is_ok());
        let e = LookerClient::new(&mk("http://looker.example.com", false)).unwrap_err();
        assert!(e.to_string().contains("allow_insecure_http"));
        assert!(LookerClient::new(&mk("http://looker.example.com", true)).is_ok());
    }

    #[test]
    fn http_date_retry_after() {
        assert!(httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT").is_some());
        assert!(httpdate_parse("garbage").is_none());
    }
}
