//! [`Forwarder`]: the gateway's upstream HTTP client. One call goes to the profile's
//! Looker with the real token, its answer comes back as a stream.
//!
//! hyper's pooled client (HTTP/1.1 keep-alive) over rustls, configured from the
//! profile's TLS settings exactly as [`crate::looker::client::LookerClient`] is.
//! Unlike that client it has no request timeout (a LookML validation call can take
//! two hours), only a connect timeout; it never follows a redirect (the client
//! gets it) and never decompresses (the client asked for the encoding, it gets it).

use super::replay::OutBody;
use crate::config::Profile;
use crate::looker::client::is_loopback;
use crate::looker::tls;
use crate::secret::Secret;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONNECTION, HOST};
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::collections::HashMap;
use std::error::Error as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest wait for a TCP connection to Looker (shorter when the profile's
/// timeout is).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an idle pooled connection to Looker is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// TCP keep-alive on upstream connections: a two-hour call sends nothing while
/// Looker works, and a middlebox must not forget the connection meanwhile.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Headers that belong to one hop (RFC 9110 section 7.6.1, plus the old
/// `Proxy-Connection`, and `Expect`: the agent's own server answers `100-continue`
/// to its client, and the upstream client never waits for one).
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
];

/// Headers meant for the agent itself (`Looker-Agent-Credential`, ...), never for Looker.
const AGENT_HEADER_PREFIX: &str = "looker-agent-";

/// One call to forward.
#[derive(Debug)]
pub struct Outbound<'a> {
    /// The client's method, sent as it is.
    pub method: Method,
    /// The target after the profile's base URL: `/api/4.0/user?fields=id`. Must start
    /// with `/`. Never named in an error (a query may hold a secret).
    pub path_and_query: &'a str,
    /// The client's headers; hop-by-hop ones, `Host`, `Authorization` and
    /// `Looker-Agent-*` are not forwarded.
    pub headers: &'a HeaderMap,
    /// The body, streamed.
    pub body: OutBody,
    /// The real token, sent as `Authorization: token <t>`; `None` for Looker's
    /// unauthenticated endpoints (`/alive`, `/versions`) and the client's own login.
    pub auth: Option<&'a Secret>,
}

/// Why a call did not reach Looker or got no answer; [`ForwardError::status`] is what
/// the client should be told, the `Display` text the message (no token, no secret,
/// no path or query: only Looker's scheme, host and port).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// The profile cannot be used: bad base_url, plain http to a remote host,
    /// unreadable or unusable ca_file.
    #[error("{0}")]
    Config(String),
    /// `path_and_query` is not an origin-form request target.
    #[error("the request target is not a path the gateway can forward")]
    BadTarget,
    /// The token cannot be put in a header.
    #[error("the access token holds characters not allowed in a header")]
    BadToken,
    /// Nothing listens at Looker's address (restarting, down, wrong port).
    #[error(
        "cannot connect to Looker at {origin}: connection refused; is the instance up and base_url right?"
    )]
    Refused {
        /// Looker's scheme, host and port.
        origin: String,
    },
    /// The TCP connection was not made within the connect timeout.
    #[error("cannot connect to Looker at {origin}: no answer within {}s", after.as_secs())]
    ConnectTimeout {
        /// Looker's scheme, host and port.
        origin: String,
        /// The connect timeout in force.
        after: Duration,
    },
    /// Any other failure to connect (name resolution, no route, ...).
    #[error("cannot connect to Looker at {origin}: {reason}")]
    Connect {
        /// Looker's scheme, host and port.
        origin: String,
        /// The cause chain.
        reason: String,
    },
    /// The TLS handshake failed; `advice` says what to do.
    #[error("{what} with Looker at {origin}: {reason}; {advice}")]
    Tls {
        /// "TLS certificate problem" or "TLS handshake failed".
        what: &'static str,
        /// Looker's scheme, host and port.
        origin: String,
        /// The cause chain.
        reason: String,
        /// What to do about it.
        advice: String,
    },
    /// Looker closed the connection before its answer's head was complete.
    #[error("Looker at {origin} closed the connection before answering")]
    ClosedEarly {
        /// Looker's scheme, host and port.
        origin: String,
    },
    /// The client's own request body failed while it was being sent (the client
    /// went away or sent a broken chunk).
    #[error("the request body broke off before it was sent whole")]
    ClientBody,
    /// Anything else: an answer that is not HTTP, an I/O error mid-request.
    #[error("the call to Looker at {origin} failed: {reason}")]
    Failed {
        /// Looker's scheme, host and port.
        origin: String,
        /// The cause chain.
        reason: String,
    },
}

impl ForwardError {
    /// The status the gateway answers with, as a proxy in front of Looker would:
    /// `503` when nothing listens (try again later), `504` when the connection timed
    /// out, `400` for the client's own bad target or body, `502` otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            ForwardError::Refused { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ForwardError::ConnectTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ForwardError::BadTarget | ForwardError::ClientBody => StatusCode::BAD_REQUEST,
            ForwardError::Config(_)
            | ForwardError::BadToken
            | ForwardError::Connect { .. }
            | ForwardError::Tls { .. }
            | ForwardError::ClosedEarly { .. }
            | ForwardError::Failed { .. } => StatusCode::BAD_GATEWAY,
        }
    }
}

/// Removes the headers of one hop: `Connection`, every header it names, and the
/// fixed hop-by-hop set. Used on the way to Looker and on the way back.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The process's upstream clients, one per distinct TLS settings (a root store and
/// TLS session cache are the costly part; each client pools per host anyway).
/// Cheap to clone; clones share the clients and their pools.
#[derive(Clone, Default)]
pub struct Forwarder {
    clients: Arc<Mutex<HashMap<ClientSettings, UpstreamClient>>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").finish_non_exhaustive()
    }
}

type UpstreamClient = Client<HttpsConnector<HttpConnector>, OutBody>;

/// What shapes an upstream client, apart from the URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientSettings {
    verify_tls: bool,
    /// The CA file's contents (not only its path: an edited file must give a new client).
    ca_pem: Option<(PathBuf, Vec<u8>)>,
    connect_timeout: Duration,
}

/// Where a call goes: the full URI, the `Host` header, and the origin for messages.
struct Target {
    uri: Uri,
    host: HeaderValue,
    origin: String,
}

impl Forwarder {
    /// A forwarder with no client yet; clients are made on first use.
    pub fn new() -> Forwarder {
        Forwarder::default()
    }

    /// Sends one call to `profile`'s Looker and returns its answer as soon as the
    /// head arrived; the body streams from Looker as the caller reads it. Looker's
    /// own error statuses (401, 404, 5xx) are answers, not errors.
    pub async fn send(
        &self,
        profile: &Profile,
        out: Outbound<'_>,
    ) -> Result<Response<Incoming>, ForwardError> {
        let target = target(profile, out.path_and_query)?;
        let settings = settings(profile)?;
        let connect_timeout = settings.connect_timeout;
        let client = self.client(settings)?;
        let mut headers = out.headers.clone();
        strip_hop_by_hop(&mut headers);
        headers.remove(AUTHORIZATION);
        let agent_headers: Vec<HeaderName> =
            headers.keys().filter(|n| n.as_str().starts_with(AGENT_HEADER_PREFIX)).cloned().collect();
        for name in agent_headers {
            headers.remove(name);
        }
        headers.insert(HOST, target.host);
        if let Some(token) = out.auth {
            let mut v = HeaderValue::from_str(&format!("token {}", token.expose()))
                .map_err(|_| ForwardError::BadToken)?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        let mut req = Request::new(out.body);
        *req.method_mut() = out.method;
        *req.uri_mut() = target.uri;
        *req.headers_mut() = headers;
        client
            .request(req)
            .await
            .map_err(|e| classify(&e, target.origin, connect_timeout, profile.ca_file.as_deref()))
    }

    fn client(&self, settings: ClientSettings) -> Result<UpstreamClient, ForwardError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&settings) {
            return Ok(c.clone());
        }
        let client = build_client(&settings)?;
        clients.insert(settings, client.clone());
        Ok(client)
    }
}

/// Checks the profile's base URL (the plain-http rule of `LookerClient::new`) and
/// joins the target to it.
fn target(profile: &Profile, path_and_query: &str) -> Result<Target, ForwardError> {
    let base = url::Url::parse(&profile.base_url)
        .map_err(|e| ForwardError::Config(format!("invalid base_url {:?}: {e}", profile.base_url)))?;
    let scheme = base.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(ForwardError::Config(format!("base_url {:?} is not http or https", profile.base_url)));
    }
    let host = base
        .host_str()
        .ok_or_else(|| ForwardError::Config(format!("base_url {:?} has no host", profile.base_url)))?;
    // The URL's port when it is not the scheme's default; userinfo is left out.
    let authority = match base.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    let origin = format!("{scheme}://{authority}");
    if scheme == "http" && !is_loopback(&base) && !profile.allow_insecure_http {
        return Err(ForwardError::Config(format!(
            "refusing plain http to {origin}: tokens would cross the network unencrypted; \
             use https, or set allow_insecure_http = true in the profile if you really mean it"
        )));
    }
    if !path_and_query.starts_with('/') {
        return Err(ForwardError::BadTarget);
    }
    let prefix = base.path().trim_end_matches('/');
    let uri: Uri =
        format!("{origin}{prefix}{path_and_query}").parse().map_err(|_| ForwardError::BadTarget)?;
    // The target cannot move the call elsewhere (`//host` in a path parses as a path here,
    // but check the outcome rather than trust the parse).
    if uri.authority().map(|a| a.as_str()) != Some(authority.as_str()) {
        return Err(ForwardError::BadTarget);
    }
    let host = HeaderValue::from_str(&authority)
        .map_err(|_| ForwardError::Config(format!("base_url {:?} has an unusable host", profile.base_url)))?;
    Ok(Target { uri, host, origin })
}

fn settings(profile: &Profile) -> Result<ClientSettings, ForwardError> {
    // verify_tls = false accepts any certificate; a ca_file would change nothing then.
    let ca_pem = match (&profile.ca_file, profile.verify_tls) {
        (Some(ca), true) => Some((
            ca.clone(),
            std::fs::read(ca)
                .map_err(|e| ForwardError::Config(format!("cannot read ca_file {}: {e}", ca.display())))?,
        )),
        _ => None,
    };
    Ok(ClientSettings {
        verify_tls: profile.verify_tls,
        ca_pem,
        connect_timeout: profile.timeout().min(CONNECT_TIMEOUT),
    })
}

fn build_client(settings: &ClientSettings) -> Result<UpstreamClient, ForwardError> {
    let tls = tls_config(settings)?;
    let mut http = HttpConnector::new();
    // https URLs are handed to the TLS layer; the scheme rule is checked per call.
    http.enforce_http(false);
    http.set_connect_timeout(Some(settings.connect_timeout));
    http.set_nodelay(true);
    http.set_keepalive(Some(TCP_KEEPALIVE));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        // The Host header is set from the profile's base URL in `send`.
        .set_host(false)
        .build(https))
}

fn tls_config(settings: &ClientSettings) -> Result<rustls::ClientConfig, ForwardError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ForwardError::Config(format!("cannot set up TLS: {e}")))?;
    if !settings.verify_tls {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth());
    }
    if let Some((ca, pem)) = &settings.ca_pem {
        return tls::config_with_ca_file(ca, pem).map_err(ForwardError::Config);
    }
    let mut roots = rustls::RootCertStore::empty();
    // As reqwest's native roots do: unreadable ones are skipped, and an https call
    // then fails with advice to name a ca_file.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// `verify_tls = false`: any certificate, any name (the handshake's signatures are
/// still checked, so the connection is at least with the holder of the key).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The whole cause chain of an error, for a message.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = s.source();
    }
    out
}

/// The first error of type `T` in a cause chain (following io::Error into its inner error,
/// which its `source` skips).
fn find<'a, T: std::error::Error + 'static>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a T> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<T>() {
            return Some(t);
        }
        cur = match err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// Turns the client's error into the variant that says what happened. Found by the
/// errors' types in the cause chain, never by their wording.
fn classify(
    e: &hyper_util::client::legacy::Error,
    origin: String,
    connect_timeout: Duration,
    ca_file: Option<&std::path::Path>,
) -> ForwardError {
    let reason = chain(e);
    if let Some(r) = tls::rustls_cause(e) {
        let what = if matches!(r, rustls::Error::InvalidCertificate(_)) {
            "TLS certificate problem"
        } else {
            "TLS handshake failed"
        };
        let reason = if reason.contains(&r.to_string()) { reason } else { format!("{reason}: {r}") };
        return ForwardError::Tls { what, origin, reason, advice: tls::advice(r, ca_file) };
    }
    if e.is_connect() {
        return match find::<std::io::Error>(e).map(|io| io.kind()) {
            Some(std::io::ErrorKind::ConnectionRefused) => ForwardError::Refused { origin },
            Some(std::io::ErrorKind::TimedOut) => {
                ForwardError::ConnectTimeout { origin, after: connect_timeout }
            }
            _ => ForwardError::Connect { origin, reason },
        };
    }
    if let Some(h) = find::<hyper::Error>(e) {
        if h.is_user() && h.source().is_some_and(|s| s.is::<hyper::Error>()) {
            // The client's body (a hyper Incoming) failed under the upstream request.
            return ForwardError::ClientBody;
        }
        if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
            return ForwardError::ClosedEarly { origin };
        }
    }
    ForwardError::Failed { origin, reason }
}
