//! The `gateway_request` target: arbitrary bytes as one client connection to the
//! gateway's loopback TCP door, with a live gateway credential and session to use,
//! and a real HTTP upstream in Looker's place that checks what reaches it.
//!
//! The fuzzer cannot guess a session token, so an input names the live ones with
//! placeholders, replaced before it is sent: `@S@` a session token, `@I@` and `@K@`
//! the gateway credential's client_id and client_secret, `@H@` the gateway's
//! `127.0.0.1:PORT`. The seeds (`fuzz/corpus/gateway_request/`) use them, and
//! mutations keep them, so logins, forwarded calls, logouts, sudo and workspace
//! switches are all reached. An input that starts with `@U@` is sent to the socket
//! door instead (the rest of it), where `/looker/{profile}/…` calls need no session.
//!
//! The upstream answers by path, so the gateway's other paths are reached too:
//! `/fuzz401` answers 401 (the gateway invalidates, logs in again and replays once),
//! `/fuzzbig` streams 256 KiB without a length, `/fuzzclose` closes its connection
//! after the answer, `/fuzzhop` answers with hop-by-hop headers (the gateway must
//! drop them), `/fuzz204` has no body; anything else answers a small JSON object.

use super::{
    agent_options, contains, fuzz_broker, runtime_and_folder, send_and_read, with_agent, write_config,
    FakeLooker, FUZZ_SECRET, PANICKED,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use looker_agent::config::Config;
use looker_agent::daemon::Daemon;
use looker_agent::secret::Secret;
use looker_agent::store::memory::MemoryStore;
use looker_agent::store::{SecretKey, SecretStore};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An input that starts with this goes to the socket door (`/looker/{profile}/…` on the
/// agent socket, where a call needs no session) instead of the TCP one.
const SOCKET_DOOR: &[u8] = b"@U@";

/// How long one gateway input may take before it counts as a hang.
const GATEWAY_DEADLINE: Duration = Duration::from_secs(10);

/// What the real tokens from [`FakeLooker`] start with: never in an answer to a client.
const REAL_TOKEN_PREFIX: &str = "fuzztoken";

/// Headers of one hop that must never reach Looker (`transfer-encoding` is left out:
/// the gateway's own HTTP client frames a streamed body with it).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

/// Feeds bytes to the gateway's TCP door as one client connection: for every input, a
/// fresh agent (as [`super::SocketHarness`] starts one) whose profiles point at the
/// harness's upstream, and a gateway credential with a session minted over the agent
/// socket, as `lookerctl gateway credential` mints one.
pub struct GatewayHarness {
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    config: Config,
    looker: Arc<FakeLooker>,
    upstream: Upstream,
}

/// The HTTP server in Looker's place, serving for as long as the harness lives (its
/// task runs whenever the harness's runtime does), and what it found wrong.
struct Upstream {
    addr: SocketAddr,
    broken: Arc<Mutex<Vec<String>>>,
}

/// The live credential an input's placeholders stand for.
struct Live {
    session: String,
    client_id: String,
    client_secret: String,
    gateway: String,
}

impl GatewayHarness {
    /// A harness with its own single-threaded runtime, private folder and upstream.
    pub fn new() -> Result<GatewayHarness, String> {
        let (rt, dir) = runtime_and_folder("looker-agent-fuzz-gateway-")?;
        let upstream = rt.block_on(Upstream::start())?;
        let text = format!(
            "default_profile = \"p\"\n\
             [profiles.p]\nbase_url = \"http://{a}\"\n\
             [[profiles.p.credentials]]\nname = \"a\"\nclient_id = \"id-a\"\n\
             [profiles.q]\nbase_url = \"http://{a}/prefix/\"\n\
             [[profiles.q.credentials]]\nname = \"a\"\nclient_id = \"id-q\"\n",
            a = upstream.addr
        );
        let (_, config) = write_config(dir.path(), &text)?;
        Ok(GatewayHarness {
            rt,
            dir,
            config,
            looker: Arc::new(FakeLooker { logins: AtomicU64::new(0) }),
            upstream,
        })
    }

    /// Sends `input` (placeholders replaced) on a fresh connection to a fresh agent's
    /// gateway, closes the sending side, and returns everything the gateway wrote
    /// back. Fails when the exchange and the agent's shutdown do not finish within
    /// 10 s, anything panics, the agent fails, an answer holds a real token or secret
    /// the client did not send, the gateway writes something that is not an HTTP
    /// response or an answer's hop-by-hop headers, or a call reaches Looker with
    /// anything but the real token, with the agent's own or hop-by-hop headers, or
    /// with another Host.
    pub fn run(&self, input: &[u8]) -> Result<Vec<u8>, String> {
        PANICKED.with(|p| p.set(false));
        self.upstream.broken.lock().unwrap().clear();
        let out = self.rt.block_on(self.exchange(input));
        if PANICKED.with(|p| p.get()) {
            return Err("something panicked while serving the input".into());
        }
        let (sent, out) = out?;
        if let Some(e) = self.upstream.broken.lock().unwrap().first() {
            return Err(e.clone());
        }
        check_gateway_output(&sent, &out)?;
        Ok(out)
    }

    async fn exchange(&self, input: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
        let store = MemoryStore::new();
        for (profile, id) in [("p", "id-a"), ("q", "id-q")] {
            store
                .set(&SecretKey::new(profile, "a"), id, &Secret::new(FUZZ_SECRET))
                .await
                .map_err(|e| e.to_string())?;
        }
        let broker = fuzz_broker(&self.config, store, &self.looker);
        let daemon = Daemon::bind(agent_options(self.dir.path()))
            .map_err(|e| format!("cannot start the agent: {e}"))?;
        let socket = daemon.socket_path().to_path_buf();
        let gateway = daemon.gateway_addr().ok_or("the gateway does not listen")?;
        with_agent(daemon, broker, GATEWAY_DEADLINE, async {
            let live = mint(&socket, gateway).await?;
            let sent = live.fill(input);
            let out = match sent.strip_prefix(SOCKET_DOOR) {
                Some(rest) => send_and_read(connect_unix(&socket).await?, rest).await,
                None => {
                    let tcp = tokio::net::TcpStream::connect(gateway)
                        .await
                        .map_err(|e| format!("cannot connect: {e}"))?;
                    send_and_read(tcp, &sent).await
                }
            };
            Ok((sent, out))
        })
        .await
    }
}

impl Live {
    /// `input` with its placeholders replaced by the live values.
    fn fill(&self, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for (from, to) in [
            ("@S@", &self.session),
            ("@I@", &self.client_id),
            ("@K@", &self.client_secret),
            ("@H@", &self.gateway),
        ] {
            out = replace(&out, from.as_bytes(), to.as_bytes());
        }
        out
    }
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(i) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(to);
        rest = &rest[i + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

async fn connect_unix(socket: &Path) -> Result<tokio::net::UnixStream, String> {
    tokio::net::UnixStream::connect(socket).await.map_err(|e| format!("cannot connect: {e}"))
}

/// Mints a gateway credential of profile `p` with a session, over the agent socket.
async fn mint(socket: &Path, gateway: SocketAddr) -> Result<Live, String> {
    let body = br#"{"profile":"p","session":true}"#;
    let mut req = format!(
        "POST /v1/gateway/credentials HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let mut s = connect_unix(socket).await?;
    s.write_all(&req).await.map_err(|e| format!("cannot ask for a credential: {e}"))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.map_err(|e| format!("cannot read the credential: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let json = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(json).map_err(|_| format!("no credential: {text}"))?;
    let field = |k: &str| v[k].as_str().map(str::to_string).ok_or_else(|| format!("no {k} in: {text}"));
    Ok(Live {
        session: field("access_token")?,
        client_id: field("client_id")?,
        client_secret: field("client_secret")?,
        gateway: gateway.to_string(),
    })
}

fn check_gateway_output(sent: &[u8], out: &[u8]) -> Result<(), String> {
    for (what, secret) in [("a real token", REAL_TOKEN_PREFIX), ("the real client secret", FUZZ_SECRET)] {
        if contains(out, secret.as_bytes()) && !contains(sent, secret.as_bytes()) {
            return Err(format!("the gateway wrote {what} back: {:?}", String::from_utf8_lossy(out)));
        }
    }
    if !out.is_empty() && !out.starts_with(b"HTTP/1.1 ") && !out.starts_with(b"HTTP/1.0 ") {
        return Err(format!(
            "the gateway wrote something else than a response: {:?}",
            String::from_utf8_lossy(out)
        ));
    }
    let lower = out.to_ascii_lowercase();
    for hop in [&b"x-fuzz-hop:"[..], b"keep-alive: timeout=7", b"upgrade: fuzz"] {
        if contains(&lower, hop) {
            return Err(format!(
                "an answer kept a hop-by-hop header of Looker's: {:?}",
                String::from_utf8_lossy(out)
            ));
        }
    }
    Ok(())
}

type UpstreamBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

impl Upstream {
    async fn start() -> Result<Upstream, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot bind the upstream: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let broken = Arc::new(Mutex::new(Vec::new()));
        let seen = broken.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let seen = seen.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(req, addr, &seen).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Upstream { addr, broken })
    }
}

/// What a call that reached Looker must look like, and Looker's answer to it.
async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
    addr: SocketAddr,
    broken: &Mutex<Vec<String>>,
) -> hyper::Response<UpstreamBody> {
    let problems = inspect(&req, addr);
    if !problems.is_empty() {
        broken.lock().unwrap().extend(problems);
    }
    let path = req.uri().path().to_string();
    // The body is read (and dropped) whole, as Looker reads it before answering.
    let _ = req.into_body().collect().await;
    let small = |status: u16, body: &'static str| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body.as_bytes())).boxed())
            .unwrap()
    };
    if path.contains("/fuzz401") {
        small(
            401,
            r#"{"message":"Requires authentication.","documentation_url":"https://cloud.google.com/looker/docs/"}"#,
        )
    } else if path.contains("/fuzz204") {
        hyper::Response::builder().status(204).body(Full::new(Bytes::new()).boxed()).unwrap()
    } else if path.contains("/fuzzbig") {
        let chunks = (0..64).map(|i| Ok(Frame::data(Bytes::from(vec![b'a' + (i % 26) as u8; 4096]))));
        let body = StreamBody::new(futures_util::stream::iter(chunks));
        hyper::Response::builder().status(200).body(BodyExt::boxed(body)).unwrap()
    } else if path.contains("/fuzzhop") {
        hyper::Response::builder()
            .status(200)
            .header("connection", "x-fuzz-hop")
            .header("x-fuzz-hop", "1")
            .header("keep-alive", "timeout=7")
            .header("upgrade", "fuzz")
            .body(Full::new(Bytes::from_static(b"{}")).boxed())
            .unwrap()
    } else if path.contains("/fuzzclose") {
        let mut r = small(200, r#"{"closing":true}"#);
        r.headers_mut().insert("connection", hyper::header::HeaderValue::from_static("close"));
        r
    } else {
        small(200, r#"{"id":"1","display_name":"Fuzz User"}"#)
    }
}

/// What is wrong with a call as it reached Looker.
fn inspect(req: &hyper::Request<hyper::body::Incoming>, addr: SocketAddr) -> Vec<String> {
    let mut problems = Vec::new();
    let h = req.headers();
    let auth: Vec<_> = h.get_all(hyper::header::AUTHORIZATION).iter().collect();
    match auth.as_slice() {
        [] => {}
        [one] if one.as_bytes().starts_with(format!("token {REAL_TOKEN_PREFIX}").as_bytes()) => {}
        more => problems.push(format!("Looker got Authorization {more:?}, not one real token")),
    }
    for name in h.keys() {
        if name.as_str().starts_with("looker-agent-") || HOP_BY_HOP.contains(&name.as_str()) {
            problems.push(format!("Looker got the header {name}"));
        }
    }
    let host = h.get_all(hyper::header::HOST).iter().collect::<Vec<_>>();
    if host.len() != 1 || host[0].as_bytes() != addr.to_string().as_bytes() {
        problems.push(format!("Looker got Host {host:?}, not {addr}"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_harness_forwards_with_the_real_token_only() {
        let h = GatewayHarness::new().unwrap();
        let out =
            h.run(b"GET /api/4.0/user HTTP/1.1\r\nHost: @H@\r\nAuthorization: token @S@\r\n\r\n").unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200") && text.contains("Fuzz User"), "{text}");
        let out = h.run(b"GET /api/4.0/user HTTP/1.1\r\nHost: @H@\r\n\r\n").unwrap();
        assert!(out.starts_with(b"HTTP/1.1 401"), "{}", String::from_utf8_lossy(&out));
        let out = h
            .run(b"GET /api/4.0/user HTTP/1.1\r\nHost: evil.example\r\nAuthorization: token @S@\r\n\r\n")
            .unwrap();
        assert!(out.starts_with(b"HTTP/1.1 403"), "{}", String::from_utf8_lossy(&out));
        assert!(h.run(b"").unwrap().is_empty());
    }

    #[test]
    fn gateway_output_checks_catch_leaks_and_hop_headers() {
        assert!(check_gateway_output(b"", b"HTTP/1.1 200 OK\r\n\r\nfuzztoken00000001").is_err());
        assert!(check_gateway_output(b"", b"HTTP/1.1 200 OK\r\nX-Fuzz-Hop: 1\r\n\r\n").is_err());
        assert!(check_gateway_output(b"", b"garbage").is_err());
        assert!(check_gateway_output(b"", b"HTTP/1.1 200 OK\r\n\r\n{}").is_ok());
        assert_eq!(replace(b"a@S@b@S@", b"@S@", b"x"), b"axbx");
    }
}
