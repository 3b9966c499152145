//! [`LookerClient`]: the real Looker API over reqwest + rustls.

use super::{Api3Key, LoginToken, LookerApi, LookerError, LookerUser, NewApi3Key, OAuthTokens, Role};
use crate::config::{CaFile, Profile};
use crate::secret::Secret;
use async_trait::async_trait;
use reqwest::header::{HeaderValue, AUTHORIZATION, LOCATION, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use std::time::Duration;

/// Looker answers are small; anything larger is not a Looker answer.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// A client for one profile's Looker instance.
#[derive(Debug, Clone)]
pub struct LookerClient {
    http: reqwest::Client,
    base_url: String,
    /// The profile's ca_file, for messages about a failed handshake.
    ca_file: Option<std::path::PathBuf>,
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
    /// The CA file as read at load (its certificates, not only its path: a renewed
    /// file must give a new client); only with `verify_tls`, which it would not change otherwise.
    ca: Option<CaFile>,
    timeout: Duration,
}

/// The process's HTTP clients, one per distinct [`HttpSettings`].
static HTTP_CLIENTS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<HttpSettings, reqwest::Client>>,
> = std::sync::LazyLock::new(Default::default);

fn shared_http_client(profile: &Profile) -> Result<reqwest::Client, LookerError> {
    let ca = profile.ca_file.clone().filter(|_| profile.verify_tls);
    let key = HttpSettings { verify_tls: profile.verify_tls, ca, timeout: profile.timeout() };
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
    if let Some(ca) = &key.ca {
        b = b.use_preconfigured_tls(super::tls::config_with_ca_file(ca).map_err(LookerError::Config)?);
    }
    b.build().map_err(|e| LookerError::Config(format!("cannot set up HTTP client: {e}")))
}

impl LookerClient {
    /// Builds a client from a profile's settings. Refuses plain http to a
    /// non-loopback host unless the profile allows it, and a CA file that could not be
    /// used when the config was loaded.
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
        Ok(LookerClient {
            http,
            base_url: profile.base_url.clone(),
            ca_file: profile.ca_file.as_ref().map(|c| c.path().to_path_buf()),
        })
    }

    /// The base URL this client talks to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/4.0/{path}", self.base_url)
    }

    /// Sends a request and reads its (capped) answer.
    async fn exchange(&self, req: reqwest::RequestBuilder) -> Result<Answer, LookerError> {
        let resp = req.send().await.map_err(|e| transport_error(e, self.ca_file.as_deref()))?;
        let status = resp.status();
        let retry_after = retry_after(&resp);
        let location = resp.headers().get(LOCATION).map(|l| {
            String::from_utf8_lossy(l.as_bytes()).chars().filter(|c| !c.is_control()).take(200).collect()
        });
        Ok(Answer { status, retry_after, location, body: read_body(resp).await? })
    }

    /// An authenticated `GET /api/4.0/{path}` whose answer is JSON.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: &Secret,
    ) -> Result<T, LookerError> {
        let req = self.http.get(self.api(path)).header(AUTHORIZATION, auth_header(token)?);
        let answer = self.exchange(req).await?;
        if answer.status != StatusCode::OK {
            return Err(answer.error(false));
        }
        serde_json::from_slice(&answer.body).map_err(|e| LookerError::BadAnswer {
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

/// Describes a transport error with its whole cause chain; a TLS failure (found by
/// its rustls cause, not by its wording) says what to do about it.
fn transport_error(e: reqwest::Error, ca_file: Option<&std::path::Path>) -> LookerError {
    let mut chain = super::causes::text(&e);
    if let Some(tls) = super::tls::rustls_cause(&e) {
        if !chain.contains(&tls.to_string()) {
            chain.push_str(&format!(": {tls}"));
        }
        let what = if matches!(tls, rustls::Error::InvalidCertificate(_)) {
            "TLS certificate problem"
        } else {
            "TLS handshake failed"
        };
        return LookerError::Config(format!("{what}: {chain}; {}", super::tls::advice(tls, ca_file)));
    }
    if super::causes::find::<hyper::Error>(&e).is_some_and(super::causes::is_not_http) {
        // A setting to fix, not an outage to wait out.
        return LookerError::Config(format!(
            "Looker's answer cannot be read as HTTP ({chain}); {}",
            super::causes::NOT_HTTP_ADVICE
        ));
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
    // Mid-body failures are never a handshake: no ca_file advice needed.
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(e, None))? {
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
    let when = httpdate::parse_http_date(v).ok()?;
    when.duration_since(std::time::SystemTime::now()).ok()
}

/// Looker's `message` field (OAuth's `error: error_description` at `/api/token`),
/// or the start of the body.
fn looker_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(m) = v.get("message").and_then(|m| m.as_str()) {
            return m.chars().take(200).collect();
        }
        if let Some(e) = v.get("error").and_then(|m| m.as_str()) {
            let text = match v.get("error_description").and_then(|m| m.as_str()) {
                Some(d) => format!("{e}: {d}"),
                None => e.to_string(),
            };
            return text.chars().filter(|c| !c.is_control()).take(200).collect();
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

/// One answer from Looker, its body read (and capped).
struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    /// Where a redirect points, cleaned for a message.
    location: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    /// Maps a non-success status to the error that drives the broker.
    fn error(&self, login: bool) -> LookerError {
        let code = self.status.as_u16();
        match code {
            429 | 500..=599 => LookerError::Unavailable {
                reason: format!("HTTP {code} {}", looker_message(&self.body)),
                retry_after: self.retry_after,
            },
            400 | 401 | 403 | 404 if login => {
                LookerError::Rejected { status: code, message: looker_message(&self.body) }
            }
            401 => LookerError::TokenExpired,
            300..=399 => LookerError::BadAnswer {
                reason: match &self.location {
                    Some(to) => format!(
                        "Looker answered HTTP {code}, a redirect to {to}, which the agent never follows; \
                         set base_url to where the API really is (no /api/... suffix)"
                    ),
                    None => format!(
                        "Looker answered HTTP {code}, a redirect without a Location; is base_url right?"
                    ),
                },
            },
            _ => LookerError::BadAnswer {
                reason: format!(
                    "unexpected HTTP {code} ({}); is base_url right?",
                    looker_message(&self.body)
                ),
            },
        }
    }
}

/// Parses the body of a `200` answer to `POST /login`: a printable `access_token`
/// and an `expires_in` of 1 s to a year (a number or a numeric string), else
/// [`LookerError::BadAnswer`]. `token_type` defaults to `Bearer`.
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

/// Parses a `200` answer of `POST /api/token`: a login answer plus an optional
/// `refresh_token` (printable, as an access token must be).
pub fn parse_oauth_answer(body: &[u8]) -> Result<OAuthTokens, LookerError> {
    let token = parse_login_answer(body)?;
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| LookerError::BadAnswer { reason: format!("token answer is not JSON ({e})") })?;
    let refresh_token = match v.get("refresh_token") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(t)) if t.is_empty() => None,
        Some(serde_json::Value::String(t))
            if t.len() <= 4096 && t.bytes().all(|b| (0x21..0x7f).contains(&b)) =>
        {
            Some(Secret::new(t.as_str()))
        }
        Some(_) => {
            return Err(LookerError::BadAnswer {
                reason: "token answer's refresh_token is not a printable token".into(),
            })
        }
    };
    Ok(OAuthTokens { token, refresh_token })
}

impl LookerClient {
    /// `POST /api/token` with a JSON body; OAuth's refusals (400 `invalid_grant`,
    /// 401 `invalid_client`) are [`LookerError::Rejected`].
    async fn token_grant(&self, body: serde_json::Value) -> Result<OAuthTokens, LookerError> {
        let req = self.http.post(format!("{}/api/token", self.base_url)).json(&body);
        drop(body);
        let answer = self.exchange(req).await?;
        if answer.status == StatusCode::OK {
            parse_oauth_answer(&answer.body)
        } else {
            Err(answer.error(true))
        }
    }
}

#[async_trait]
impl LookerApi for LookerClient {
    async fn refresh_grant(
        &self,
        client_guid: &str,
        refresh_token: &Secret,
    ) -> Result<OAuthTokens, LookerError> {
        self.token_grant(serde_json::json!({
            "grant_type": "refresh_token",
            "client_id": client_guid,
            "refresh_token": refresh_token.expose(),
        }))
        .await
    }

    async fn exchange_code(
        &self,
        client_guid: &str,
        redirect_uri: &str,
        code: &Secret,
        code_verifier: &Secret,
    ) -> Result<OAuthTokens, LookerError> {
        self.token_grant(serde_json::json!({
            "grant_type": "authorization_code",
            "client_id": client_guid,
            "redirect_uri": redirect_uri,
            "code": code.expose(),
            "code_verifier": code_verifier.expose(),
        }))
        .await
    }

    async fn login(&self, client_id: &str, client_secret: &Secret) -> Result<LoginToken, LookerError> {
        let req = self
            .http
            .post(self.api("login"))
            .form(&[("client_id", client_id), ("client_secret", client_secret.expose())]);
        let answer = self.exchange(req).await?;
        if answer.status == StatusCode::OK {
            parse_login_answer(&answer.body)
        } else {
            Err(answer.error(true))
        }
    }

    async fn logout(&self, access_token: &Secret) -> Result<(), LookerError> {
        let req = self.http.delete(self.api("logout")).header(AUTHORIZATION, auth_header(access_token)?);
        let answer = self.exchange(req).await?;
        match answer.status.as_u16() {
            // 404: already revoked; 401: already expired. Either way it is gone.
            200 | 204 | 401 | 404 => Ok(()),
            _ => Err(answer.error(false)),
        }
    }

    async fn alive(&self) -> Result<(), LookerError> {
        let answer = self.exchange(self.http.get(format!("{}/alive", self.base_url))).await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(answer.error(false))
        }
    }

    async fn user(&self, access_token: &Secret) -> Result<LookerUser, LookerError> {
        self.get_json("user", access_token).await
    }

    async fn user_roles(&self, access_token: &Secret, user_id: &str) -> Result<Vec<Role>, LookerError> {
        let id: String = url::form_urlencoded::byte_serialize(user_id.as_bytes()).collect();
        self.get_json(&format!("users/{id}/roles"), access_token).await
    }

    async fn login_user(&self, access_token: &Secret, user_id: &str) -> Result<LoginToken, LookerError> {
        let id: String = url::form_urlencoded::byte_serialize(user_id.as_bytes()).collect();
        let req = self
            .http
            .post(self.api(&format!("login/{id}")))
            .header(AUTHORIZATION, auth_header(access_token)?);
        let answer = self.exchange(req).await?;
        match answer.status.as_u16() {
            200 => parse_login_answer(&answer.body),
            401 => Err(LookerError::TokenExpired),
            // Not allowed to sudo, or no such user: Looker's own words go back to the client.
            400 | 403 | 404 | 422 => Err(LookerError::Rejected {
                status: answer.status.as_u16(),
                message: looker_message(&answer.body),
            }),
            _ => Err(answer.error(false)),
        }
    }

    async fn set_workspace(&self, access_token: &Secret, workspace: &str) -> Result<(), LookerError> {
        let req = self
            .http
            .patch(self.api("session"))
            .header(AUTHORIZATION, auth_header(access_token)?)
            .json(&serde_json::json!({ "workspace_id": workspace }));
        let answer = self.exchange(req).await?;
        match answer.status.as_u16() {
            200 | 204 => Ok(()),
            401 => Err(LookerError::TokenExpired),
            400 | 403 | 404 | 422 => Err(LookerError::Rejected {
                status: answer.status.as_u16(),
                message: looker_message(&answer.body),
            }),
            _ => Err(answer.error(false)),
        }
    }

    async fn api3_keys(&self, access_token: &Secret, user_id: &str) -> Result<Vec<Api3Key>, LookerError> {
        let id: String = url::form_urlencoded::byte_serialize(user_id.as_bytes()).collect();
        let req = self
            .http
            .get(self.api(&format!("users/{id}/credentials_api3")))
            .header(AUTHORIZATION, auth_header(access_token)?);
        let answer = self.exchange(req).await?;
        match answer.status.as_u16() {
            200 => serde_json::from_slice(&answer.body).map_err(|e| LookerError::BadAnswer {
                reason: format!("the list of API keys is not the expected JSON ({e})"),
            }),
            401 => Err(LookerError::TokenExpired),
            403 | 404 => Err(LookerError::Rejected {
                status: answer.status.as_u16(),
                message: looker_message(&answer.body),
            }),
            _ => Err(answer.error(false)),
        }
    }

    async fn create_api3_key(
        &self,
        access_token: &Secret,
        user_id: &str,
        purpose: &str,
    ) -> Result<NewApi3Key, LookerError> {
        let id: String = url::form_urlencoded::byte_serialize(user_id.as_bytes()).collect();
        let req = self
            .http
            .post(self.api(&format!("users/{id}/credentials_api3")))
            .header(AUTHORIZATION, auth_header(access_token)?)
            .json(&serde_json::json!({ "purpose": purpose }));
        let answer = self.exchange(req).await?;
        match answer.status.as_u16() {
            200 => parse_new_api3_key(&answer.body),
            401 => Err(LookerError::TokenExpired),
            400 | 403 | 404 | 422 => Err(LookerError::Rejected {
                status: answer.status.as_u16(),
                message: looker_message(&answer.body),
            }),
            _ => Err(answer.error(false)),
        }
    }

    async fn delete_api3_key(
        &self,
        access_token: &Secret,
        user_id: &str,
        key_id: &str,
    ) -> Result<bool, LookerError> {
        let id: String = url::form_urlencoded::byte_serialize(user_id.as_bytes()).collect();
        let key: String = url::form_urlencoded::byte_serialize(key_id.as_bytes()).collect();
        let req = self
            .http
            .delete(self.api(&format!("users/{id}/credentials_api3/{key}")))
            .header(AUTHORIZATION, auth_header(access_token)?);
        let answer = self.exchange(req).await?;
        match answer.status.as_u16() {
            200 | 204 => Ok(true),
            404 => Ok(false),
            401 => Err(LookerError::TokenExpired),
            403 => Err(LookerError::Rejected { status: 403, message: looker_message(&answer.body) }),
            _ => Err(answer.error(false)),
        }
    }
}

/// Parses the answer to `POST …/credentials_api3`. Errors never quote the body: it
/// holds the new secret.
pub fn parse_new_api3_key(body: &[u8]) -> Result<NewApi3Key, LookerError> {
    #[derive(serde::Deserialize)]
    struct Created {
        #[serde(flatten)]
        key: Api3Key,
        #[serde(default)]
        client_secret: Option<String>,
    }
    let bad = |what: &str| LookerError::BadAnswer { reason: format!("the new API key's answer {what}") };
    let created: Created = serde_json::from_slice(body).map_err(|_| bad("is not the expected JSON"))?;
    let secret =
        created.client_secret.filter(|s| !s.is_empty()).ok_or_else(|| bad("has no client_secret"))?;
    if created.key.client_id.is_empty() || created.key.id.is_empty() {
        return Err(bad("has no id or client_id"));
    }
    Ok(NewApi3Key { key: created.key, client_secret: Secret::new(secret) })
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

    fn status_error(
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
        login: bool,
    ) -> LookerError {
        Answer { status, retry_after, location: None, body: body.to_vec() }.error(login)
    }

    #[test]
    fn a_redirect_names_where_it_points() {
        let answer = Answer {
            status: StatusCode::FOUND,
            retry_after: None,
            location: Some("https://sso.example.com/login".into()),
            body: Vec::new(),
        };
        let msg = answer.error(true).to_string();
        assert!(msg.contains("HTTP 302") && msg.contains("https://sso.example.com/login"), "{msg}");
        assert!(msg.contains("base_url") && !msg.contains("no message"), "{msg}");
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
}
