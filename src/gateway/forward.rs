//! [`Forwarder`]: the gateway's upstream HTTP client. One call goes to the profile's
//! Looker with the real token, its answer comes back as a stream.
//!
//! HTTP/1.1 keep-alive connections from the gateway's own pool ([`super::pool`]: each
//! driven by the call it carries) over rustls, configured from the profile's TLS
//! settings exactly as [`crate::looker::client::LookerClient`] is.
//! Unlike that client it has no request timeout (a LookML validation call can take
//! two hours), only a connect timeout; it never follows a redirect (the client
//! gets it) and never decompresses (the client asked for the encoding, it gets it).

use super::pool::{Conn, Pool, UpstreamBody};
use super::replay::OutBody;
use crate::config::{CaFile, Profile};
use crate::looker::client::is_loopback;
use crate::looker::{causes, tls};
use crate::secret::Secret;
use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONNECTION, HOST};
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::collections::HashMap;
use std::error::Error as _;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// The longest wait for a TCP connection to Looker (shorter when the profile's
/// timeout is).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an idle pooled connection to Looker is kept (dropped by [`Forwarder::sweep`]).
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

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

/// One call to forward. `Debug` shows the method and header names only: a header
/// value, the query or the body may hold a secret.
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

impl std::fmt::Debug for Outbound<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("method", &self.method)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("body", &self.body)
            .field("auth", &self.auth.map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
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
    /// Looker's answer could not be read as HTTP (most often: `http://` for a port
    /// that serves HTTPS).
    #[error(
        "Looker at {origin} answered with something that cannot be read as HTTP ({reason}); {}",
        causes::NOT_HTTP_ADVICE
    )]
    NotHttp {
        /// Looker's scheme, host and port.
        origin: String,
        /// The cause chain.
        reason: String,
    },
    /// Anything else: an I/O error mid-request.
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
            | ForwardError::NotHttp { .. }
            | ForwardError::Failed { .. } => StatusCode::BAD_GATEWAY,
        }
    }
}

/// True for a header of the fixed hop-by-hop set.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// The header names a `Connection` header lists (they belong to this hop too).
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect()
}

/// Removes the headers of one hop: `Connection`, every header it names, and the
/// fixed hop-by-hop set. Used on the way to Looker and on the way back.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Per call on every answer: most have none of them (and any `Connection` is one),
    // so one look at the names spares the removals.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    for name in connection_named(headers) {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The headers sent to Looker: the client's, without those of its hop, its `Host`,
/// its `Authorization` and the agent's own (`Looker-Agent-*`); then `host`. Built in
/// one pass (the values are shared, not copied) rather than copied whole and pruned.
fn upstream_headers(client: &HeaderMap, host: HeaderValue) -> HeaderMap {
    let named = if client.contains_key(CONNECTION) { connection_named(client) } else { Vec::new() };
    let mut out = HeaderMap::with_capacity(client.keys_len() + 2);
    for (name, value) in client {
        let dropped = name == AUTHORIZATION
            || name == HOST
            || is_hop_by_hop(name)
            || name.as_str().starts_with(AGENT_HEADER_PREFIX)
            || named.contains(name);
        if !dropped {
            out.append(name.clone(), value.clone());
        }
    }
    out.insert(HOST, host);
    out
}

/// `Authorization: token <t>`, marked sensitive; built in one buffer (the value is the
/// only copy of the token it makes).
fn token_header(token: &Secret) -> Result<HeaderValue, ForwardError> {
    let t = token.expose().as_bytes();
    let mut v = Vec::with_capacity(6 + t.len());
    v.extend_from_slice(b"token ");
    v.extend_from_slice(t);
    let mut v = HeaderValue::from_maybe_shared(Bytes::from(v)).map_err(|_| ForwardError::BadToken)?;
    v.set_sensitive(true);
    Ok(v)
}

/// The process's upstream clients, one per distinct TLS settings (a root store and
/// TLS session cache are the costly part; each client pools per host anyway).
/// Cheap to clone; clones share the clients and their pools.
#[derive(Clone, Default)]
pub struct Forwarder {
    state: Arc<Mutex<State>>,
}

/// The clients, and what each loaded profile resolved to (one lock per call for both).
#[derive(Default)]
struct State {
    /// Behind an `Arc`: a call borrows its client, where a clone of one would copy
    /// (and drop) every part of its connector.
    clients: HashMap<ClientSettings, Arc<UpstreamClient>>,
    /// Per loaded profile, keyed by its address: the `Weak` in each entry keeps that
    /// allocation, so no other profile can come to live at the same address while the
    /// entry exists. A reload loads new profiles (with their CA files read again), which
    /// resolve afresh; entries of profiles no longer loaded are dropped as new ones come.
    loaded: HashMap<usize, Loaded>,
}

/// What a loaded profile's calls need, resolved on its first call: its base URL parsed,
/// its client, its connect timeout.
#[derive(Clone)]
struct Loaded {
    profile: Weak<Profile>,
    base: Arc<Base>,
    client: Arc<UpstreamClient>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").finish_non_exhaustive()
    }
}

/// What connects to Looker with one set of TLS settings, and the connections it made.
struct UpstreamClient {
    connector: HttpsConnector<HttpConnector>,
    pool: Arc<Pool>,
}

/// Why no connection carried a call: the connect failed, or HTTP on it did.
enum SendFail {
    Connect(Box<dyn std::error::Error + Send + Sync>),
    Http(hyper::Error),
}

impl UpstreamClient {
    /// A new connection to `base`, handshaken.
    async fn connect(&self, base: &Base) -> Result<Box<Conn>, SendFail> {
        use tower_service::Service as _;
        let mut connector = self.connector.clone();
        let io = connector.call(base.root.clone()).await.map_err(SendFail::Connect)?;
        Conn::handshake(io, &self.pool, base.origin.clone()).await.map_err(SendFail::Http)
    }

    /// Sends `req` to `base` on an idle connection, else a new one, and returns the
    /// answer with its connection in the body. A request that never left on an idle
    /// connection (Looker had closed it) is sent again on a new one.
    async fn send(&self, base: &Base, req: Request<OutBody>) -> Result<Response<UpstreamBody>, SendFail> {
        let (mut conn, reused) = match self.pool.take(&base.origin) {
            Some(c) => (c, true),
            None => (self.connect(base).await?, false),
        };
        let head = match conn.send(req).await {
            Ok(head) => head,
            Err(mut e) => match e.take_message() {
                Some(req) if reused => {
                    conn = self.connect(base).await?;
                    conn.send(req).await.map_err(|e| SendFail::Http(e.into_error()))?
                }
                _ => return Err(SendFail::Http(e.into_error())),
            },
        };
        Ok(head.map(|body| UpstreamBody::new(body, conn)))
    }
}

/// What shapes an upstream client, apart from the URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientSettings {
    verify_tls: bool,
    /// The CA file as read at load (its certificates, not only its path: a renewed
    /// file must give a new client); only with `verify_tls`, which it would not change otherwise.
    ca: Option<CaFile>,
    connect_timeout: Duration,
}

/// A profile's base URL, parsed and checked once: what every call to it needs.
#[derive(Debug)]
struct Base {
    /// The `Host` header.
    host: HeaderValue,
    /// Scheme, host and port, for messages and as the pool's key.
    origin: Arc<str>,
    /// `scheme://authority/`, what the connector connects to.
    root: Uri,
    /// The URL's path without its trailing `/` (usually empty).
    prefix: String,
    /// Plain http to a host that is not loopback (refused unless the profile allows it).
    remote_plain_http: bool,
}

impl Forwarder {
    /// A forwarder with no client yet; clients are made on first use.
    pub fn new() -> Forwarder {
        Forwarder::default()
    }

    /// Sends one call to `profile`'s Looker and returns its answer as soon as the
    /// head arrived; the body streams from Looker as the caller reads it. Looker's
    /// own error statuses (401, 404, 5xx) are answers, not errors.
    ///
    /// `profile` is the loaded profile (the broker's, replaced by a reload): its base URL
    /// and CA file are resolved on its first call and kept for the next ones.
    pub async fn send(
        &self,
        profile: &Arc<Profile>,
        out: Outbound<'_>,
    ) -> Result<Response<UpstreamBody>, ForwardError> {
        let Loaded { base, client, connect_timeout, .. } = self.loaded(profile)?;
        if base.remote_plain_http && !profile.allow_insecure_http {
            return Err(ForwardError::Config(format!(
                "refusing plain http to {}: tokens would cross the network unencrypted; \
                 use https, or set allow_insecure_http = true in the profile if you really mean it",
                base.origin
            )));
        }
        let uri = base.target(out.path_and_query)?;
        let mut headers = upstream_headers(out.headers, base.host.clone());
        if let Some(token) = out.auth {
            headers.insert(AUTHORIZATION, token_header(token)?);
        }
        let mut req = Request::new(out.body);
        *req.method_mut() = out.method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        client.send(&base, req).await.map_err(|e| {
            let origin = base.origin.to_string();
            let ca_file = profile.ca_file.as_ref().map(CaFile::path);
            match e {
                SendFail::Connect(e) => classify(&*e, true, origin, connect_timeout, ca_file),
                SendFail::Http(e) => classify(&e, false, origin, connect_timeout, ca_file),
            }
        })
    }

    /// Drops pooled connections idle for longer than [`POOL_IDLE_TIMEOUT`] and those
    /// Looker has closed, what profiles no longer loaded resolved to, and the clients
    /// only those used, with their pools (run every
    /// [`super::SWEEP_EVERY`]).
    pub fn sweep(&self) {
        let pools: Vec<Arc<Pool>> = {
            let mut state = self.lock();
            state.loaded.retain(|_, l| l.profile.strong_count() > 0);
            // A client only the map holds serves no loaded profile any more (its CA file
            // was renewed, its profile removed): nothing would take from its pool again,
            // and each reload with new certificates would otherwise leave one behind.
            state.clients.retain(|_, c| Arc::strong_count(c) > 1);
            state.clients.values().map(|c| c.pool.clone()).collect()
        };
        for pool in pools {
            pool.sweep(POOL_IDLE_TIMEOUT);
        }
    }

    /// What `profile`'s calls need, resolved on its first call and kept while it is loaded.
    /// A failure is not kept (it is cheap to find again: nothing here reads a file).
    fn loaded(&self, profile: &Arc<Profile>) -> Result<Loaded, ForwardError> {
        let key = Arc::as_ptr(profile) as usize;
        if let Some(l) = self.lock().loaded.get(&key) {
            return Ok(l.clone());
        }
        let base = Arc::new(Base::parse(&profile.base_url)?);
        let settings = settings(profile)?;
        let connect_timeout = settings.connect_timeout;
        let mut state = self.lock();
        let client = match state.clients.get(&settings) {
            Some(c) => c.clone(),
            None => {
                let c = Arc::new(build_client(&settings)?);
                state.clients.insert(settings, c.clone());
                c
            }
        };
        let loaded = Loaded { profile: Arc::downgrade(profile), base, client, connect_timeout };
        state.loaded.retain(|_, l| l.profile.strong_count() > 0);
        state.loaded.insert(key, loaded.clone());
        Ok(loaded)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every entry is whole at each unlock: a poisoned lock is safe to reuse.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Base {
    /// Parses and checks a base URL (the checks of `LookerClient::new`; the plain-http
    /// rule, which also depends on the profile's `allow_insecure_http`, is applied per call).
    fn parse(base_url: &str) -> Result<Base, ForwardError> {
        let base = url::Url::parse(base_url)
            .map_err(|e| ForwardError::Config(format!("invalid base_url {base_url:?}: {e}")))?;
        let scheme = base.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(ForwardError::Config(format!("base_url {base_url:?} is not http or https")));
        }
        let host = base
            .host_str()
            .ok_or_else(|| ForwardError::Config(format!("base_url {base_url:?} has no host")))?;
        // The URL's port when it is not the scheme's default; userinfo is left out.
        let authority = match base.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let unusable = || ForwardError::Config(format!("base_url {base_url:?} has an unusable host"));
        // Host and port (the port only when it is not the scheme's default).
        let mut root = hyper::http::uri::Parts::default();
        root.scheme = Some(if scheme == "https" { Scheme::HTTPS } else { Scheme::HTTP });
        root.authority =
            Some(Authority::from_maybe_shared(Bytes::from(authority.clone())).map_err(|_| unusable())?);
        root.path_and_query = Some(PathAndQuery::from_static("/"));
        Ok(Base {
            host: HeaderValue::from_str(&authority).map_err(|_| unusable())?,
            origin: format!("{scheme}://{authority}").into(),
            root: Uri::from_parts(root).map_err(|_| unusable())?,
            prefix: base.path().trim_end_matches('/').to_string(),
            remote_plain_http: scheme == "http" && !is_loopback(&base),
        })
    }

    /// The request target of `path_and_query` (which must start with `/`) at this
    /// base, in origin form (the connection is already the base's): a target cannot
    /// move the call elsewhere (`//host/x` stays a path).
    fn target(&self, path_and_query: &str) -> Result<Uri, ForwardError> {
        if !path_and_query.starts_with('/') {
            return Err(ForwardError::BadTarget);
        }
        let pq = if self.prefix.is_empty() {
            PathAndQuery::try_from(path_and_query)
        } else {
            PathAndQuery::try_from([self.prefix.as_str(), path_and_query].concat())
        }
        .map_err(|_| ForwardError::BadTarget)?;
        Ok(Uri::from(pq))
    }
}

fn settings(profile: &Profile) -> Result<ClientSettings, ForwardError> {
    // verify_tls = false accepts any certificate; a ca_file would change nothing then.
    let ca = match (&profile.ca_file, profile.verify_tls) {
        (Some(ca), true) => {
            // A file that could not be used at load: say why now, not at the handshake.
            ca.certs().map_err(|why| ForwardError::Config(why.to_string()))?;
            Some(ca.clone())
        }
        _ => None,
    };
    Ok(ClientSettings { verify_tls: profile.verify_tls, ca, connect_timeout: connect_timeout(profile) })
}

/// The longest wait for a connection to `profile`'s Looker.
fn connect_timeout(profile: &Profile) -> Duration {
    profile.timeout().min(CONNECT_TIMEOUT)
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
    Ok(UpstreamClient { connector: https, pool: Arc::default() })
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
    if let Some(ca) = &settings.ca {
        return tls::config_with_ca_file(ca).map_err(ForwardError::Config);
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

/// Turns the client's error into the variant that says what happened. Found by the
/// errors' types in the cause chain, never by their wording.
fn classify(
    e: &(dyn std::error::Error + 'static),
    connecting: bool,
    origin: String,
    connect_timeout: Duration,
    ca_file: Option<&std::path::Path>,
) -> ForwardError {
    let reason = causes::text(e);
    if let Some(r) = tls::rustls_cause(e) {
        let what = if matches!(r, rustls::Error::InvalidCertificate(_)) {
            "TLS certificate problem"
        } else {
            "TLS handshake failed"
        };
        let reason = if reason.contains(&r.to_string()) { reason } else { format!("{reason}: {r}") };
        return ForwardError::Tls { what, origin, reason, advice: tls::advice(r, ca_file) };
    }
    if connecting {
        return match causes::find::<std::io::Error>(e).map(|io| io.kind()) {
            Some(std::io::ErrorKind::ConnectionRefused) => ForwardError::Refused { origin },
            Some(std::io::ErrorKind::TimedOut) => {
                ForwardError::ConnectTimeout { origin, after: connect_timeout }
            }
            _ => ForwardError::Connect { origin, reason },
        };
    }
    if let Some(h) = causes::find::<hyper::Error>(e) {
        if h.is_user() && h.source().is_some_and(|s| s.is::<hyper::Error>()) {
            // The client's body (a hyper Incoming) failed under the upstream request.
            return ForwardError::ClientBody;
        }
        if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
            return ForwardError::ClosedEarly { origin };
        }
        if causes::is_not_http(h) {
            return ForwardError::NotHttp { origin, reason };
        }
    }
    ForwardError::Failed { origin, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clients(f: &Forwarder) -> usize {
        f.lock().clients.len()
    }

    #[test]
    fn a_sweep_drops_the_clients_of_profiles_no_longer_loaded() {
        let f = Forwarder::new();
        let kept = Arc::new(Profile::new("http://127.0.0.1:9"));
        let mut other = Profile::new("http://127.0.0.1:9");
        // Other TLS settings: a client of its own.
        other.verify_tls = false;
        let gone = Arc::new(other);
        f.loaded(&kept).unwrap();
        f.loaded(&gone).unwrap();
        assert_eq!(clients(&f), 2);
        f.sweep();
        assert_eq!(clients(&f), 2, "both profiles are loaded");
        drop(gone);
        f.sweep();
        assert_eq!(clients(&f), 1, "the removed profile's client is dropped");
        f.loaded(&kept).unwrap();
        assert_eq!(clients(&f), 1, "the loaded profile keeps its client");
    }
}
