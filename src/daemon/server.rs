//! The accept loop: caps connections, applies time and size limits, and hands
//! each connection to hyper with the peer's credentials attached. The same loop
//! serves the agent socket and the gateway's loopback TCP listener ([`Accept`]).

use super::handler::{self, Ctx};
pub use super::limits::Limits;
use super::listener::Peer;
use crate::protocol::ErrorCode;
use hyper::header::{HeaderValue, CONNECTION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// File descriptors kept free of client connections: the runtime, the store's files,
/// connections to Looker, the journal, the bus, logging.
pub const FD_RESERVE: u64 = 32;

/// Connections over the cap answered with a 503 (each one request, then closed) at once.
const MAX_BUSY_ANSWERS: usize = 16;

/// How long a connection over the cap may take to send the request its 503 answers.
const BUSY_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest pause between accept attempts while the process is out of descriptors.
const ACCEPT_BACKOFF_CAP: Duration = Duration::from_secs(1);

/// The connection pools' sizes, within the configured limits and the descriptors the
/// process may open (its soft RLIMIT_NOFILE less [`FD_RESERVE`]): without that cap,
/// connections use up every descriptor and accept, the store and logins all fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pools {
    /// The agent's own user's connections.
    pub own: usize,
    /// Other users' connections (each answered 403).
    pub foreign: usize,
    /// Own connections over the cap, answered 503 `upstream_unavailable` rather than dropped.
    pub busy: usize,
}

impl Pools {
    /// The pools for `limits` under a descriptor limit of `nofile` (`None`: unlimited).
    pub fn new(limits: &Limits, nofile: Option<u64>) -> Pools {
        let wanted = Pools {
            own: limits.max_connections.max(1),
            foreign: limits.max_foreign_connections,
            busy: MAX_BUSY_ANSWERS,
        };
        let Some(nofile) = nofile else { return wanted };
        let avail = usize::try_from(nofile.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX);
        let foreign = wanted.foreign.min(avail / 8);
        let busy = wanted.busy.min(avail / 8).max(1);
        let own = wanted.own.min(avail.saturating_sub(foreign + busy)).max(1);
        Pools { own, foreign, busy }
    }

    /// The pools under this process's current soft RLIMIT_NOFILE.
    pub fn for_process(limits: &Limits) -> Pools {
        let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        Pools::new(limits, nofile)
    }
}

/// True for accept errors that mean "out of descriptors or memory": worth waiting
/// for a connection to close, not worth a log line per attempt.
fn out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// A listener the accept loop serves: it accepts a stream and says who is on the
/// other end, and which handler answers its requests.
pub trait Accept: Send + 'static {
    /// The connection type.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection and its peer.
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, Peer)>> + Send;
    /// Answers one request of a connection.
    fn handle(
        ctx: Arc<Ctx>,
        peer: Peer,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> impl Future<Output = Result<hyper::Response<crate::gateway::Body>, std::convert::Infallible>> + Send;
    /// A connection ended in an HTTP error (its client already got hyper's answer, if
    /// any): what the agent's log should say about it. Nothing, by default.
    fn connection_failed(_error: &hyper::Error) {}
}

impl Accept for UnixListener {
    type Stream = tokio::net::UnixStream;

    async fn accept(&self) -> io::Result<(Self::Stream, Peer)> {
        let (s, _) = UnixListener::accept(self).await?;
        let peer = Peer::of(&s);
        Ok((s, peer))
    }

    fn handle(
        ctx: Arc<Ctx>,
        peer: Peer,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> impl Future<Output = Result<hyper::Response<crate::gateway::Body>, std::convert::Infallible>> + Send
    {
        handler::handle(ctx, peer, req)
    }
}

/// The gateway's loopback TCP door: the peer's uid comes from the kernel's socket
/// table (both ends are on this machine), its program is not known.
impl Accept for TcpListener {
    type Stream = tokio::net::TcpStream;

    async fn accept(&self) -> io::Result<(Self::Stream, Peer)> {
        let (s, remote) = TcpListener::accept(self).await?;
        let _ = s.set_nodelay(true);
        let uid = match s.local_addr() {
            Ok(local) => crate::gateway::tcp_peer::peer_uid(local, remote).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot tell the uid of a gateway client; refusing it");
                None
            }),
            Err(_) => None,
        };
        Ok((s, Peer::new(uid, None, None)))
    }

    fn handle(
        ctx: Arc<Ctx>,
        peer: Peer,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> impl Future<Output = Result<hyper::Response<crate::gateway::Body>, std::convert::Infallible>> + Send
    {
        handler::handle_gateway(ctx, peer, req)
    }

    /// A request that is not HTTP at all is most often a TLS handshake: a client told
    /// to use https (Google's looker-cli does unless `--ssl=false`). It gets hyper's
    /// `400`, which such a client reports as a handshake failure, so the log says what
    /// happened (once at warn: any local program can cause it; then at debug).
    fn connection_failed(error: &hyper::Error) {
        static TOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        // Oversized headers are HTTP, just too much of it: their 431 says so.
        if !error.is_parse() || error.is_parse_too_large() {
            return;
        }
        let hint = "a gateway client sent something that is not HTTP/1.1, most likely a TLS handshake: \
                    the gateway speaks plain http on loopback; point the client at http:// \
                    (looker-cli: --ssl=false)";
        if TOLD.swap(true, Ordering::Relaxed) {
            tracing::debug!(error = %error, "{hint}");
        } else {
            tracing::warn!(error = %error, "{hint}");
        }
    }
}

/// Serves `listener` until `shutdown` turns true, then lets open connections
/// finish their current request (bounded by `drain_timeout`).
pub async fn serve<L: Accept>(listener: L, ctx: Arc<Ctx>, mut shutdown: watch::Receiver<bool>) {
    let pools = Pools::for_process(&ctx.limits);
    if pools.own < ctx.limits.max_connections {
        tracing::info!(
            max_connections = pools.own,
            configured = ctx.limits.max_connections,
            "the file descriptor limit (RLIMIT_NOFILE) caps the connections served at once"
        );
    }
    let slots = Arc::new(Semaphore::new(pools.own));
    let foreign_slots = Arc::new(Semaphore::new(pools.foreign));
    let busy_slots = Arc::new(Semaphore::new(pools.busy));
    let mut conns = JoinSet::new();
    let builder = Arc::new(http1_builder(&ctx.limits));
    let mut busy_builder = http1_builder(&ctx.limits);
    busy_builder.header_read_timeout(BUSY_HEADER_TIMEOUT.min(ctx.limits.header_timeout)).keep_alive(false);
    let busy_builder = Arc::new(busy_builder);
    let mut full_warned = false;
    // Failed accepts in the current episode (out of descriptors): logged once, retried
    // as connections close or after a growing pause, never in a tight loop.
    let mut accept_failures: u32 = 0;
    loop {
        let stream = tokio::select! {
            biased;
            _ = stopped(&mut shutdown) => break,
            r = listener.accept() => match r {
                Ok(accepted) => {
                    if accept_failures > 0 {
                        tracing::info!(failed_attempts = accept_failures, "accepting connections again");
                        accept_failures = 0;
                    }
                    accepted
                }
                Err(e) => {
                    if accept_failures == 0 {
                        tracing::warn!(error = %e, open_connections = conns.len(),
                            "accept failed; retrying as connections close (logged once until it recovers)");
                    }
                    accept_failures = accept_failures.saturating_add(1);
                    let pause = if out_of_resources(&e) {
                        Duration::from_millis(50).saturating_mul(1 << accept_failures.min(5)).min(ACCEPT_BACKOFF_CAP)
                    } else {
                        Duration::from_millis(50)
                    };
                    tokio::select! {
                        biased;
                        _ = stopped(&mut shutdown) => break,
                        Some(_) = conns.join_next(), if !conns.is_empty() => {}
                        _ = tokio::time::sleep(pause) => {}
                    }
                    continue;
                }
            },
        };
        while conns.try_join_next().is_some() {}
        let (stream, peer) = stream;
        // Another user's connections (each only gets its 403) come from a pool of their
        // own, so they cannot take the slots of the agent's own user.
        let own = peer.is_uid(ctx.service.uid());
        let pool = if own { &slots } else { &foreign_slots };
        let Ok(permit) = pool.clone().try_acquire_owned() else {
            if own && !full_warned {
                tracing::warn!(
                    max = pools.own,
                    "connection limit reached; answering new connections 503 until some close (logged once per episode)"
                );
                full_warned = true;
            }
            if let (true, Ok(permit)) = (own, busy_slots.clone().try_acquire_owned()) {
                let answer = answer_busy(stream, pools.own, ctx.limits.write_timeout, busy_builder.clone());
                conns.spawn(async move {
                    let _permit = permit;
                    answer.await;
                });
            }
            continue;
        };
        full_warned &= !own;
        let conn = serve_connection::<L>(stream, peer, ctx.clone(), builder.clone(), shutdown.clone());
        conns.spawn(async move {
            let _permit = permit;
            conn.await;
        });
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(ctx.limits.drain_timeout, drain).await.is_err() {
        conns.abort_all();
    }
}

/// Answers the one request of a connection over the cap with a 503 and closes it,
/// so the client learns why (and can retry) instead of seeing its connection dropped.
async fn answer_busy<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    cap: usize,
    write_timeout: Duration,
    builder: Arc<http1::Builder>,
) {
    let stream = WriteDeadline::new(stream, write_timeout);
    let svc = service_fn(move |_req| async move {
        let mut resp = handler::error(
            ErrorCode::UpstreamUnavailable,
            format!(
                "the agent is serving its limit of {cap} connections at once; try again shortly (idle connections close after a few seconds)"
            ),
        );
        resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        Ok::<_, std::convert::Infallible>(resp)
    });
    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
}

/// The HTTP/1.1 settings every connection is served with.
fn http1_builder(limits: &Limits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        // A client that hangs up right after sending its request (EOF on read) still
        // has it carried out (a revoke, a login for the herd): without this, hyper
        // would drop the request's handler midway.
        .half_close(true)
        .keep_alive(true);
    builder
}

/// Serves one accepted connection until the client is done, or until `shutdown`
/// turns true and its current request is answered.
async fn serve_connection<L: Accept>(
    stream: L::Stream,
    peer: Peer,
    ctx: Arc<Ctx>,
    builder: Arc<http1::Builder>,
    mut shutdown: watch::Receiver<bool>,
) {
    let stream = WriteDeadline::new(stream, ctx.limits.write_timeout);
    let foreign = !peer.is_uid(ctx.service.uid());
    let served = Arc::new(AtomicU32::new(0));
    let max = ctx.limits.max_requests_per_connection;
    let svc = service_fn(move |req| {
        let ctx = ctx.clone();
        let n = served.fetch_add(1, Ordering::Relaxed) + 1;
        let peer = peer.clone();
        async move {
            let mut resp = L::handle(ctx, peer, req).await?;
            // Another user gets one answer (its 403) per connection.
            if n >= max || foreign {
                resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => r,
        _ = stopped(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        L::connection_failed(&e);
    }
}

/// Completes once the shutdown flag is set (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// A connection whose writes fail once they have been stuck for `limit`: a client
/// that stopped reading its answers (the socket buffer is full) is disconnected.
/// hyper reads no further request until an answer is out, so without this such a
/// client would hold its connection, and a connection slot, for ever.
struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    /// Running while a write or flush is stuck; allocated only then.
    stuck: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, limit: Duration) -> Self {
        WriteDeadline { inner, limit, stuck: None }
    }

    /// After the inner stream said Pending: still waiting, or the error ending the connection.
    fn poll_stuck<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let limit = self.limit;
        let timer = self.stuck.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {limit:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => self.poll_stuck(cx),
            ready => {
                self.stuck = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progress(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progress(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.progress(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.progress(cx, r)
    }
}
