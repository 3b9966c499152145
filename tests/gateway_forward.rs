//! Issue 13, the gateway's forwarding pieces on their own: `gateway::forward` (the
//! upstream client) and `gateway::replay` (the client's body kept for one replay, the
//! answer going back). Against the real emulator (plain and HTTPS with a private CA)
//! and a small hand-made hyper upstream that records what it sees; the large bodies
//! go through a miniature gateway (RequestBody::read, Forwarder::send, answer_back)
//! between real TCP connections.

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use looker_agent::config::Profile;
use looker_agent::gateway::forward::{ForwardError, Forwarder, Outbound};
use looker_agent::gateway::pool::UpstreamBody;
use looker_agent::gateway::replay::{answer_back, OutBody, RequestBody, REPLAY_LIMIT};
use looker_agent::secret::Secret;
use looker_emulator::{Emulator, EmulatorConfig, EmulatorUser, TlsIdentity};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

/// Guards against a hang (a test that would deadlock fails instead).
const HANG_GUARD: Duration = Duration::from_secs(60);

/// A loaded profile, as the broker hands it to the gateway (a reload loads a new one).
fn profile(toml_text: &str) -> Arc<Profile> {
    Arc::new(toml::from_str(toml_text).unwrap())
}

fn plain_profile(addr: SocketAddr) -> Arc<Profile> {
    profile(&format!("base_url = \"http://{addr}\""))
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).map(|v| v.to_str().unwrap().to_string())
}

async fn body_bytes<B: hyper::body::Body>(resp: Response<B>) -> Bytes
where
    B::Error: std::fmt::Debug,
{
    resp.into_body().collect().await.unwrap().to_bytes()
}

/// The client sent no headers (`Outbound` borrows them, so they must outlive it).
static NO_HEADERS: LazyLock<HeaderMap> = LazyLock::new(HeaderMap::new);

/// A request with no client headers, no body and no token. Most tests vary one or
/// two of those: they set them with struct update syntax over this, so what a test
/// changes is all that its request spells out.
fn outbound(method: Method, path_and_query: &str) -> Outbound<'_> {
    Outbound { method, path_and_query, headers: &NO_HEADERS, body: OutBody::empty(), auth: None }
}

// ---------------------------------------------------------------------------
// A recording upstream.

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    uri: String,
    headers: HeaderMap,
    body_len: u64,
}

/// Bytes produced by one side and consumed by the other; the producer stops while
/// more than [`WINDOW`] are in flight. A chain that held a whole large body would
/// never let the consumer see enough to free the window: it would deadlock, and
/// the hang guard fails the test. So a transfer that completes proves the chain
/// held less than the window at every moment.
#[derive(Default)]
struct Window {
    produced: AtomicU64,
    consumed: AtomicU64,
    notify: Notify,
}

/// Far below the 64 MiB transferred, above the 1 MiB a replay may keep.
const WINDOW: u64 = 4 << 20;
const MIB_64: u64 = 64 << 20;

impl Window {
    async fn room(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.produced.load(Ordering::SeqCst) - self.consumed.load(Ordering::SeqCst) < WINDOW {
                return;
            }
            notified.await;
        }
    }

    fn consumed(&self, n: u64) {
        self.consumed.fetch_add(n, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// A pattern whose byte at absolute offset `o` is `o % 251`; every chunk starts at
/// a multiple of 251, so the whole stream keeps the pattern.
fn pattern_chunk() -> Bytes {
    Bytes::from((0..251 * 261).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

/// A body of `total` pattern bytes, produced only while the window has room.
fn gated_body(
    window: Arc<Window>,
    total: u64,
) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + 'static> {
    let chunk = pattern_chunk();
    let stream = futures_util::stream::unfold((window, 0u64), move |(w, sent)| {
        let chunk = chunk.clone();
        async move {
            if sent == total {
                return None;
            }
            w.room().await;
            let n = (chunk.len() as u64).min(total - sent);
            w.produced.fetch_add(n, Ordering::SeqCst);
            Some((Ok(Frame::data(chunk.slice(..n as usize))), (w, sent + n)))
        }
    });
    StreamBody::new(Box::pin(stream))
}

/// Reads a body to its end, checking the pattern and telling the window.
async fn drain_checked(mut body: Incoming, window: &Window) -> u64 {
    let mut at = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        if let Ok(data) = frame.into_data() {
            for (i, b) in data.iter().enumerate() {
                assert_eq!(*b, ((at + i as u64) % 251) as u8, "byte {} is wrong", at + i as u64);
            }
            at += data.len() as u64;
            window.consumed(data.len() as u64);
        }
    }
    at
}

struct Upstream {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// The download window (the upstream produces, the test client consumes).
    download: Arc<Window>,
    /// The upload window (the test client produces, the upstream consumes).
    upload: Arc<Window>,
}

type UpBody = Either<Full<Bytes>, http_body_util::combinators::BoxBody<Bytes, Infallible>>;

impl Upstream {
    async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = Upstream {
            addr: listener.local_addr().unwrap(),
            connections: Arc::default(),
            seen: Arc::default(),
            download: Arc::default(),
            upload: Arc::default(),
        };
        let (connections, seen, download, upload) =
            (up.connections.clone(), up.seen.clone(), up.download.clone(), up.upload.clone());
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                connections.fetch_add(1, Ordering::SeqCst);
                let (seen, download, upload) = (seen.clone(), download.clone(), upload.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let (seen, download, upload) = (seen.clone(), download.clone(), upload.clone());
                        async move { Ok::<_, Infallible>(upstream_answer(req, &seen, download, &upload).await) }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
                });
            }
        });
        up
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn upstream_answer(
    req: Request<Incoming>,
    seen: &Mutex<Vec<Seen>>,
    download: Arc<Window>,
    upload: &Window,
) -> Response<UpBody> {
    let (parts, mut body) = req.into_parts();
    let mut body_len = 0u64;
    while let Some(frame) = body.frame().await {
        // A body that broke off (the client went away) ends the request here.
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            body_len += data.len() as u64;
            if parts.uri.path() == "/upload" {
                upload.consumed(data.len() as u64);
            }
        }
    }
    seen.lock().unwrap().push(Seen {
        method: parts.method.clone(),
        uri: parts.uri.to_string(),
        headers: parts.headers.clone(),
        body_len,
    });
    let full = |status: StatusCode, body: &'static [u8]| {
        let mut r = Response::new(Either::Left(Full::new(Bytes::from_static(body))));
        *r.status_mut() = status;
        r
    };
    match parts.uri.path() {
        "/headers" => {
            let mut r = full(StatusCode::OK, b"\x1f\x8b\x08\x00not-really-gzip");
            let h = r.headers_mut();
            h.insert("connection", HeaderValue::from_static("keep-alive, x-hop-resp"));
            h.insert("x-hop-resp", HeaderValue::from_static("1"));
            h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
            h.insert("proxy-authenticate", HeaderValue::from_static("Basic"));
            h.insert("trailer", HeaderValue::from_static("x-t"));
            h.insert("upgrade", HeaderValue::from_static("h2c"));
            h.insert("content-encoding", HeaderValue::from_static("gzip"));
            h.insert("x-kept", HeaderValue::from_static("yes"));
            h.append("set-cookie", HeaderValue::from_static("a=1"));
            h.append("set-cookie", HeaderValue::from_static("b=2"));
            *r.status_mut() = StatusCode::CREATED;
            r
        }
        "/redirect" => {
            let mut r = full(StatusCode::FOUND, b"");
            r.headers_mut().insert("location", HeaderValue::from_static("/redirected"));
            r
        }
        "/download" => {
            let total: u64 = parts.uri.query().unwrap().parse().unwrap();
            Response::new(Either::Right(BodyExt::boxed(gated_body(download, total))))
        }
        "/upload" => {
            let mut r = Response::new(Either::Left(Full::new(Bytes::from(body_len.to_string()))));
            *r.status_mut() = StatusCode::OK;
            r
        }
        _ => full(StatusCode::OK, b"ok"),
    }
}

// ---------------------------------------------------------------------------
// A miniature gateway: the lead's wiring in a few lines.

/// What the gateway made of each request body: replayable, and the prefix length.
type Kinds = mpsc::UnboundedReceiver<(bool, usize)>;

/// The forwarding errors the gateway met.
static ERRORS: Mutex<Vec<(SocketAddr, ForwardError)>> = Mutex::new(Vec::new());

fn errors_of(gw: SocketAddr) -> Vec<ForwardError> {
    ERRORS.lock().unwrap().iter().filter(|(a, _)| *a == gw).map(|(_, e)| e.clone()).collect()
}

async fn mini_gateway(profile: Arc<Profile>, token: Option<&'static str>) -> (SocketAddr, Kinds) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let fwd = Forwarder::new();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (fwd, profile, tx) = (fwd.clone(), profile.clone(), tx.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let (fwd, profile, tx) = (fwd.clone(), profile.clone(), tx.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        // Longer than the hang guard: a read that held the body would stall the test.
                        let body = match RequestBody::read(body, 2 * HANG_GUARD).await {
                            Ok(b) => b,
                            Err(_) => return Ok(Response::new(Either::Right(Full::new(Bytes::new())))),
                        };
                        let prefix = match &body {
                            RequestBody::Whole(b) => b.len(),
                            RequestBody::Streaming { prefix, .. } => prefix.len(),
                        };
                        tx.send((body.is_replayable(), prefix)).unwrap();
                        let secret = token.map(Secret::new);
                        let out = Outbound {
                            method: parts.method,
                            path_and_query: parts.uri.path_and_query().unwrap().as_str(),
                            headers: &parts.headers,
                            body: body.into(),
                            auth: secret.as_ref(),
                        };
                        let answer: Response<Either<UpstreamBody, Full<Bytes>>> =
                            match fwd.send(&profile, out).await {
                                Ok(r) => answer_back(r).map(Either::Left),
                                Err(e) => {
                                    ERRORS.lock().unwrap().push((addr, e.clone()));
                                    let mut r =
                                        Response::new(Either::Right(Full::new(Bytes::from(e.to_string()))));
                                    *r.status_mut() = e.status();
                                    r
                                }
                            };
                        Ok::<_, Infallible>(answer)
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
            });
        }
    });
    (addr, rx)
}

/// A hyper client connection to `addr`.
async fn connect<B>(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    send
}

// ---------------------------------------------------------------------------
// Headers, both ways.

#[tokio::test]
async fn hop_by_hop_host_authorization_and_agent_headers_are_handled_on_the_way_up() {
    let up = Upstream::start().await;
    let fwd = Forwarder::new();
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("connection", "keep-alive, x-hop-req"),
        ("x-hop-req", "1"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("proxy-authorization", "Basic cHJveHk6c2VjcmV0"),
        ("te", "trailers"),
        ("trailer", "x-t"),
        ("upgrade", "websocket"),
        ("expect", "100-continue"),
        ("authorization", "token the-clients-session-token"),
        ("host", "evil.example:1234"),
        ("looker-agent-credential", "other-set"),
        ("Looker-Agent-Something", "x"),
        ("accept-encoding", "gzip"),
        ("user-agent", "looker-sdk-python/24"),
        ("x-kept", "yes"),
    ] {
        h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_static(v));
    }
    h.append("x-multi", HeaderValue::from_static("1"));
    h.append("x-multi", HeaderValue::from_static("2"));
    let token = Secret::new("real-upstream-token");
    let out = Outbound {
        method: Method::PATCH,
        path_and_query: "/headers?fields=id,name",
        headers: &h,
        body: OutBody::full(Bytes::from_static(b"{\"a\":1}")),
        auth: Some(&token),
    };
    let resp = fwd.send(&plain_profile(up.addr), out).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.method, Method::PATCH);
    assert_eq!(s.uri, "/headers?fields=id,name");
    assert_eq!(s.body_len, 7);
    for gone in [
        "x-hop-req",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "looker-agent-credential",
        "looker-agent-something",
        "transfer-encoding",
    ] {
        assert_eq!(header(&s.headers, gone), None, "{gone} reached Looker");
    }
    // hyper's own connection management may add nothing but keep-alive semantics.
    assert_ne!(header(&s.headers, "connection").as_deref(), Some("keep-alive, x-hop-req"));
    assert_eq!(header(&s.headers, "host"), Some(up.addr.to_string()));
    assert_eq!(s.headers.get_all("authorization").iter().count(), 1);
    assert_eq!(header(&s.headers, "authorization").as_deref(), Some("token real-upstream-token"));
    assert_eq!(header(&s.headers, "accept-encoding").as_deref(), Some("gzip"));
    assert_eq!(header(&s.headers, "user-agent").as_deref(), Some("looker-sdk-python/24"));
    assert_eq!(header(&s.headers, "x-kept").as_deref(), Some("yes"));
    assert_eq!(header(&s.headers, "content-length").as_deref(), Some("7"));
    let multi: Vec<_> = s.headers.get_all("x-multi").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(multi, ["1", "2"]);

    // On the way back: the raw answer still has the hop's headers, answer_back removes them.
    assert_eq!(header(resp.headers(), "x-hop-resp").as_deref(), Some("1"));
    let back = answer_back(resp);
    assert_eq!(back.status(), StatusCode::CREATED);
    for gone in ["connection", "x-hop-resp", "keep-alive", "proxy-authenticate", "trailer", "upgrade"] {
        assert_eq!(header(back.headers(), gone), None, "{gone} went back to the client");
    }
    assert_eq!(header(back.headers(), "x-kept").as_deref(), Some("yes"));
    assert_eq!(header(back.headers(), "content-encoding").as_deref(), Some("gzip"));
    assert_eq!(back.headers().get_all("set-cookie").iter().count(), 2);
    // Not decompressed: the bytes are Looker's.
    assert_eq!(&body_bytes(back).await[..], b"\x1f\x8b\x08\x00not-really-gzip");
}

#[tokio::test]
async fn without_auth_the_clients_authorization_is_still_removed() {
    let up = Upstream::start().await;
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_static("token leaked?"));
    let out = Outbound { headers: &h, ..outbound(Method::GET, "/versions") };
    let resp = Forwarder::new().send(&plain_profile(up.addr), out).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&up.seen()[0].headers, "authorization"), None);
}

// ---------------------------------------------------------------------------
// The pool, redirects, errors.

#[tokio::test]
async fn ten_sequential_calls_share_one_upstream_connection() {
    let up = Upstream::start().await;
    let fwd = Forwarder::new();
    let p = plain_profile(up.addr);
    for _ in 0..10 {
        let resp = fwd.send(&p, outbound(Method::GET, "/x")).await.unwrap();
        assert_eq!(&body_bytes(resp).await[..], b"ok");
    }
    assert_eq!(up.seen().len(), 10);
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_redirect_is_answered_not_followed() {
    let up = Upstream::start().await;
    let out = outbound(Method::GET, "/redirect");
    let resp = Forwarder::new().send(&plain_profile(up.addr), out).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(header(resp.headers(), "location").as_deref(), Some("/redirected"));
    let seen = up.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
}

#[tokio::test]
async fn a_closed_port_is_refused_with_503_and_no_secret_in_the_message() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let token = Secret::new("sekrit-token-value");
    let out =
        Outbound { auth: Some(&token), ..outbound(Method::GET, "/api/4.0/login?client_secret=sekrit-query") };
    let err = Forwarder::new().send(&plain_profile(addr), out).await.unwrap_err();
    assert!(matches!(err, ForwardError::Refused { .. }), "{err:?}");
    assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    let msg = format!("{err} {err:?}");
    assert!(msg.contains(&format!("http://{addr}")), "{msg}");
    assert!(!msg.contains("sekrit"), "{msg}");
}

#[tokio::test]
async fn an_upstream_that_hangs_up_before_answering_is_closed_early() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
            drop(tcp);
        }
    });
    let out = outbound(Method::GET, "/x");
    let err = Forwarder::new().send(&plain_profile(addr), out).await.unwrap_err();
    assert!(matches!(err, ForwardError::ClosedEarly { .. }), "{err:?}");
    assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn a_connection_that_is_never_accepted_times_out_with_504() {
    // A listener that never accepts, its queue filled: the kernel drops further SYNs.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await {
            fillers.push(s);
        }
    }
    let out = outbound(Method::GET, "/x");
    let p = profile(&format!("base_url = \"http://{addr}\"\ntimeout = \"1s\""));
    let err = tokio::time::timeout(HANG_GUARD, Forwarder::new().send(&p, out)).await.unwrap().unwrap_err();
    assert_eq!(
        err,
        ForwardError::ConnectTimeout { origin: format!("http://{addr}"), after: Duration::from_secs(1) }
    );
    assert_eq!(err.status(), StatusCode::GATEWAY_TIMEOUT);
    drop((listener, fillers));
}

#[tokio::test]
async fn an_ipv6_base_url_works() {
    let Ok(emu) = Emulator::start_on("[::1]:0".parse().unwrap(), EmulatorConfig::default()).await else {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    };
    assert!(emu.base_url().starts_with("http://[::1]:"), "{}", emu.base_url());
    let p = profile(&format!("base_url = \"{}\"", emu.base_url()));
    assert_eq!(get(&Forwarder::new(), &p, "/versions", None, None).await.0, StatusCode::OK);
    emu.shutdown().await;
}

#[test]
fn debug_output_names_no_header_value_query_or_body() {
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_static("token client-tok"));
    let token = Secret::new("real-tok");
    let out = Outbound {
        method: Method::POST,
        path_and_query: "/api/4.0/login?client_secret=q-secret",
        headers: &h,
        body: OutBody::full(Bytes::from_static(b"client_secret=body-secret")),
        auth: Some(&token),
    };
    let text = format!("{out:?} {:?}", RequestBody::Whole(Bytes::from_static(b"client_secret=body-secret")));
    for secret in ["client-tok", "real-tok", "q-secret", "body-secret"] {
        assert!(!text.contains(secret), "{text}");
    }
    assert!(text.contains("authorization") && text.contains("25 bytes"), "{text}");
}

#[tokio::test]
async fn plain_http_to_a_remote_host_is_refused_before_any_traffic() {
    let err = Forwarder::new()
        .send(&profile("base_url = \"http://user:pw@looker.example.com:19999\""), outbound(Method::GET, "/x"))
        .await
        .unwrap_err();
    assert!(matches!(err, ForwardError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("refusing plain http to http://looker.example.com:19999"), "{err}");
    assert!(!err.to_string().contains("pw"), "{err}");
    assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
    // A target that is not a path is the client's mistake.
    let up = Upstream::start().await;
    for bad in ["x", "@evil.example/x", ""] {
        let err =
            Forwarder::new().send(&plain_profile(up.addr), outbound(Method::GET, bad)).await.unwrap_err();
        assert_eq!(err, ForwardError::BadTarget, "{bad:?}");
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }
    assert!(up.seen().is_empty());
}

#[tokio::test]
async fn a_base_url_path_prefix_is_kept() {
    let up = Upstream::start().await;
    let p = profile(&format!("base_url = \"http://{}/looker/\"", up.addr));
    Forwarder::new().send(&p, outbound(Method::GET, "/api/4.0/user")).await.unwrap();
    assert_eq!(up.seen()[0].uri, "/looker/api/4.0/user");
}

// ---------------------------------------------------------------------------
// The emulator, plain and HTTPS.

async fn login_through(fwd: &Forwarder, p: &Arc<Profile>) -> Secret {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/x-www-form-urlencoded"));
    let out = Outbound {
        headers: &h,
        body: OutBody::full(Bytes::from_static(b"client_id=fw-id&client_secret=fw-secret")),
        ..outbound(Method::POST, "/api/4.0/login")
    };
    let resp = fwd.send(p, out).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body_bytes(resp).await).unwrap();
    Secret::new(v["access_token"].as_str().unwrap())
}

async fn get(
    fwd: &Forwarder,
    p: &Arc<Profile>,
    path: &str,
    client_auth: Option<&str>,
    auth: Option<&Secret>,
) -> (StatusCode, Bytes) {
    let mut h = HeaderMap::new();
    if let Some(a) = client_auth {
        h.insert("authorization", HeaderValue::from_str(a).unwrap());
    }
    let out = Outbound { headers: &h, auth, ..outbound(Method::GET, path) };
    let resp = fwd.send(p, out).await.unwrap();
    let status = resp.status();
    (status, body_bytes(resp).await)
}

#[tokio::test]
async fn the_emulator_answers_through_the_forwarder_with_the_real_token_only() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emu.add_credential("fw-id", "fw-secret", EmulatorUser::new("7", "Fw Bot", "fw@example.com"));
    let fwd = Forwarder::new();
    let p = profile(&format!("base_url = \"{}\"", emu.base_url()));
    let token = login_through(&fwd, &p).await;
    assert!(emu.is_live(token.expose()));
    let (st, body) =
        get(&fwd, &p, "/api/4.0/user?fields=id", Some("token not-a-real-one"), Some(&token)).await;
    assert_eq!(st, StatusCode::OK, "{body:?}");
    assert!(String::from_utf8_lossy(&body).contains("\"7\""), "{body:?}");
    // The client's own header never reaches Looker, even a valid one.
    let bearer = format!("Bearer {}", token.expose());
    let (st, _) = get(&fwd, &p, "/api/4.0/user", Some(&bearer), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // Unauthenticated endpoints pass.
    assert_eq!(get(&fwd, &p, "/versions", None, None).await.0, StatusCode::OK);
    emu.shutdown().await;
}

mod tls {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

    fn private_ca_and_identity() -> (String, TlsIdentity) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "Gateway Test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(params, ca_key);
        let mut sp = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        sp.distinguished_name.push(DnType::CommonName, "127.0.0.1");
        sp.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = sp.signed_by(&key, &issuer).unwrap();
        (ca_cert.pem(), TlsIdentity { cert_chain_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    #[tokio::test]
    async fn https_with_a_private_ca_in_ca_file() {
        let (ca_pem, identity) = private_ca_and_identity();
        let emu = Emulator::start_tls(EmulatorConfig::default(), &identity).await.unwrap();
        emu.add_credential("fw-id", "fw-secret", EmulatorUser::new("7", "Fw Bot", "fw@example.com"));
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &ca_pem).unwrap();
        let fwd = Forwarder::new();

        // Without the CA: a typed TLS error with advice, 502.
        let bare = profile(&format!("base_url = \"{}\"", emu.base_url()));
        let err = fwd.send(&bare, outbound(Method::GET, "/versions")).await.unwrap_err();
        assert!(matches!(err, ForwardError::Tls { .. }), "{err:?}");
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
        assert!(err.to_string().contains("ca_file"), "{err}");

        // With it: logins and calls work, over one pooled connection.
        let p = profile(&format!("base_url = \"{}\"\nca_file = {:?}", emu.base_url(), ca_file));
        let token = login_through(&fwd, &p).await;
        for _ in 0..3 {
            let (st, body) = get(&fwd, &p, "/api/4.0/user", None, Some(&token)).await;
            assert_eq!(st, StatusCode::OK, "{body:?}");
        }
        assert_eq!(emu.api_calls(), 3);

        // The CA file is read when the profile is loaded, not per call: with the file
        // gone, this profile's calls go on. A profile loaded now (as at a reload) finds
        // it unreadable, and its calls say so. (The broker's reload keeps the earlier
        // certificates instead: tests/tls.rs checks that end to end.)
        std::fs::remove_file(&ca_file).unwrap();
        let (st, body) = get(&fwd, &p, "/api/4.0/user", None, Some(&token)).await;
        assert_eq!(st, StatusCode::OK, "{body:?}");
        let reloaded = profile(&format!("base_url = \"{}\"\nca_file = {:?}", emu.base_url(), ca_file));
        let err = fwd.send(&reloaded, outbound(Method::GET, "/versions")).await.unwrap_err();
        assert!(matches!(err, ForwardError::Config(_)), "{err:?}");
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
        assert!(err.to_string().contains("cannot read ca_file"), "{err}");
        // Put back and loaded again: its calls work.
        std::fs::write(&ca_file, &ca_pem).unwrap();
        let fixed = profile(&format!("base_url = \"{}\"\nca_file = {:?}", emu.base_url(), ca_file));
        assert_eq!(get(&fwd, &fixed, "/versions", None, None).await.0, StatusCode::OK);

        // verify_tls = false: any certificate.
        let lax = profile(&format!("base_url = \"{}\"\nverify_tls = false", emu.base_url()));
        assert_eq!(get(&fwd, &lax, "/versions", None, None).await.0, StatusCode::OK);
        emu.shutdown().await;
    }
}

// ---------------------------------------------------------------------------
// Bodies: replay limits and 64 MiB both ways.

/// Sends `len` bytes with an exact Content-Length, or chunked in 64 KiB frames.
async fn post_through(gw: SocketAddr, path: &str, len: usize, chunked: bool) -> (StatusCode, Bytes) {
    let data = Bytes::from(vec![b'x'; len]);
    let resp = if chunked {
        let frames: Vec<Result<Frame<Bytes>, Infallible>> =
            data.chunks(64 << 10).map(|c| Ok(Frame::data(Bytes::copy_from_slice(c)))).collect();
        let body = StreamBody::new(futures_util::stream::iter(frames));
        let mut send = connect(gw).await;
        send.send_request(Request::post(path).body(body).unwrap()).await.unwrap()
    } else {
        let mut send = connect(gw).await;
        send.send_request(Request::post(path).body(Full::new(data)).unwrap()).await.unwrap()
    };
    let st = resp.status();
    (st, body_bytes(resp).await)
}

#[tokio::test]
async fn a_1_mib_body_is_whole_and_one_byte_more_is_streaming() {
    let up = Upstream::start().await;
    let (gw, mut kinds) = mini_gateway(plain_profile(up.addr), Some("t")).await;
    for chunked in [false, true] {
        let (st, body) = post_through(gw, "/upload", REPLAY_LIMIT, chunked).await;
        assert_eq!((st, &body[..]), (StatusCode::OK, REPLAY_LIMIT.to_string().as_bytes()));
        assert_eq!(kinds.recv().await.unwrap(), (true, REPLAY_LIMIT), "chunked: {chunked}");

        let (st, body) = post_through(gw, "/upload", REPLAY_LIMIT + 1, chunked).await;
        assert_eq!((st, &body[..]), (StatusCode::OK, (REPLAY_LIMIT + 1).to_string().as_bytes()));
        let (replayable, prefix) = kinds.recv().await.unwrap();
        assert!(!replayable, "chunked: {chunked}");
        if chunked {
            // Read up to the limit, then streamed.
            assert!(prefix > REPLAY_LIMIT - (64 << 10) && prefix <= REPLAY_LIMIT + 1, "{prefix}");
        } else {
            // The declared length is over the limit: nothing read ahead.
            assert_eq!(prefix, 0);
        }
    }
    // What Looker got: the client's framing where it had a length, chunked where it had none.
    let seen = up.seen();
    assert_eq!(header(&seen[1].headers, "content-length"), Some((REPLAY_LIMIT + 1).to_string()));
    assert_eq!(header(&seen[3].headers, "transfer-encoding").as_deref(), Some("chunked"));
    assert_eq!(header(&seen[2].headers, "content-length"), Some(REPLAY_LIMIT.to_string()));
}

#[tokio::test]
async fn a_client_that_breaks_off_its_upload_is_a_client_body_error() {
    use tokio::io::AsyncWriteExt;
    let up = Upstream::start().await;
    let (gw, mut kinds) = mini_gateway(plain_profile(up.addr), Some("t")).await;
    let mut tcp = TcpStream::connect(gw).await.unwrap();
    let head = "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3000000\r\n\r\n";
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&vec![b'x'; 2 << 20]).await.unwrap();
    // Streaming (the declared length is over the limit), then the client hangs up.
    assert_eq!(kinds.recv().await.unwrap(), (false, 0));
    drop(tcp);
    tokio::time::timeout(HANG_GUARD, async {
        while errors_of(gw).is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let errors = errors_of(gw);
    assert_eq!(errors, [ForwardError::ClientBody]);
    assert_eq!(errors[0].status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_replay_copy_sends_the_same_bytes_again() {
    let up = Upstream::start().await;
    let body = RequestBody::Whole(Bytes::from_static(b"form=1"));
    let copy = body.replay_copy().unwrap();
    let fwd = Forwarder::new();
    let p = plain_profile(up.addr);
    for b in [OutBody::from(body), copy] {
        let out = Outbound { body: b, ..outbound(Method::POST, "/upload") };
        assert_eq!(&body_bytes(fwd.send(&p, out).await.unwrap()).await[..], b"6");
    }
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_answer_streams_through_with_a_bounded_window() {
    let up = Upstream::start().await;
    let (gw, _kinds) = mini_gateway(plain_profile(up.addr), Some("t")).await;
    let mut send = connect::<Full<Bytes>>(gw).await;
    let req = Request::get(format!("/download?{MIB_64}")).body(Full::new(Bytes::new())).unwrap();
    let got = tokio::time::timeout(HANG_GUARD, async {
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        drain_checked(resp.into_body(), &up.download).await
    })
    .await
    .expect("the download stalled: something held the answer instead of streaming it");
    assert_eq!(got, MIB_64);
    assert_eq!(up.download.produced.load(Ordering::SeqCst), MIB_64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_upload_streams_through_with_a_bounded_window() {
    let up = Upstream::start().await;
    let (gw, mut kinds) = mini_gateway(plain_profile(up.addr), Some("t")).await;
    let mut send = connect(gw).await;
    // Chunked, no length: the gateway reads up to 1 MiB for a replay, then streams.
    let req = Request::post("/upload").body(gated_body(up.upload.clone(), MIB_64)).unwrap();
    let (st, body) = tokio::time::timeout(HANG_GUARD, async {
        let resp = send.send_request(req).await.unwrap();
        let st = resp.status();
        (st, body_bytes(resp).await)
    })
    .await
    .expect("the upload stalled: something held the body instead of streaming it");
    assert_eq!(st, StatusCode::OK);
    assert_eq!(&body[..], MIB_64.to_string().as_bytes());
    assert!(!kinds.recv().await.unwrap().0);
    assert_eq!(up.upload.consumed.load(Ordering::SeqCst), MIB_64);
}

#[tokio::test(start_paused = true)]
async fn a_slow_body_is_streamed_after_the_timeout_instead_of_waited_for() {
    // A server that reports what RequestBody::read made of the body, then collects the rest.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (kind_tx, mut kind_rx) = mpsc::unbounded_channel::<bool>();
    let (whole_tx, mut whole_rx) = mpsc::unbounded_channel::<Bytes>();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let svc = service_fn(move |req: Request<Incoming>| {
            let (kind_tx, whole_tx) = (kind_tx.clone(), whole_tx.clone());
            async move {
                let body = RequestBody::read(req.into_body(), Duration::from_secs(5)).await.unwrap();
                kind_tx.send(body.is_replayable()).unwrap();
                let all = OutBody::from(body).collect().await.unwrap().to_bytes();
                whole_tx.send(all).unwrap();
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }
        });
        let _ = http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
    });
    // The client sends a little, then nothing until the server has decided.
    let (frames_tx, frames_rx) = mpsc::unbounded_channel::<Result<Frame<Bytes>, Infallible>>();
    let body = StreamBody::new(tokio_stream_from(frames_rx));
    let mut send = connect(addr).await;
    frames_tx.send(Ok(Frame::data(Bytes::from_static(b"first part;")))).unwrap();
    let answer =
        tokio::spawn(async move { send.send_request(Request::post("/").body(body).unwrap()).await.unwrap() });
    let replayable =
        tokio::time::timeout(HANG_GUARD, kind_rx.recv()).await.expect("read waited for the body").unwrap();
    assert!(!replayable);
    frames_tx.send(Ok(Frame::data(Bytes::from_static(b"second part")))).unwrap();
    drop(frames_tx);
    assert_eq!(&whole_rx.recv().await.unwrap()[..], b"first part;second part");
    assert_eq!(answer.await.unwrap().status(), StatusCode::OK);
}

/// An unbounded receiver as a stream (tokio-stream is not a dependency).
fn tokio_stream_from<T: Send + 'static>(
    rx: mpsc::UnboundedReceiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) }).boxed()
}
