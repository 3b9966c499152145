//! The accept loop: caps connections, applies time and size limits, and hands
//! each connection to hyper with the peer's credentials attached.

use super::handler::{self, Ctx};
use super::listener::Peer;
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
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Size, count and time limits of the socket server, and how it treats a closing client.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
    /// Connections of other users served at once (each only gets its 403), apart from
    /// `max_connections`, so another user cannot take every slot.
    pub max_foreign_connections: usize,
    /// Largest request body accepted.
    pub max_body: usize,
    /// Largest request line plus headers.
    pub max_header_bytes: usize,
    /// Time a client has to send a request's headers (also bounds idle connections).
    pub header_timeout: Duration,
    /// Time a client has to send a request's body.
    pub body_timeout: Duration,
    /// Time an answer may wait for the client to read it; a client that stopped
    /// reading is disconnected rather than holding its connection for ever.
    pub write_timeout: Duration,
    /// Requests served on one connection before it is closed.
    pub max_requests_per_connection: u32,
    /// How long open connections get to finish at shutdown.
    pub drain_timeout: Duration,
    /// Keep answering the requests a client has sent after it shut down its sending
    /// side (HTTP half-close). Off by default: a client that closes its end has gone,
    /// and its unanswered requests are dropped. The socket fuzz target turns it on, so
    /// that pipelined requests followed by the end of the input are all answered.
    pub half_close: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            max_foreign_connections: 16,
            max_body: 64 * 1024,
            max_header_bytes: 16 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_requests_per_connection: 100_000,
            drain_timeout: Duration::from_secs(1),
            half_close: false,
        }
    }
}

/// Serves `listener` until `shutdown` turns true, then lets open connections
/// finish their current request (bounded by `drain_timeout`).
pub async fn serve(listener: UnixListener, ctx: Arc<Ctx>, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(ctx.limits.max_connections));
    let foreign_slots = Arc::new(Semaphore::new(ctx.limits.max_foreign_connections));
    let mut conns = JoinSet::new();
    let builder = Arc::new(http1_builder(&ctx.limits));
    let mut full_warned = false;
    loop {
        let stream = tokio::select! {
            biased;
            _ = stopped(&mut shutdown) => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while conns.try_join_next().is_some() {}
        let peer = Peer::of(&stream);
        // Another user's connections (each only gets its 403) come from a pool of their
        // own, so they cannot take the slots of the agent's own user.
        let own = peer.is_uid(ctx.uid);
        let pool = if own { &slots } else { &foreign_slots };
        let Ok(permit) = pool.clone().try_acquire_owned() else {
            if own && !full_warned {
                tracing::warn!(
                    max = ctx.limits.max_connections,
                    "connection limit reached; closing new connections"
                );
                full_warned = true;
            }
            drop(stream);
            continue;
        };
        full_warned &= !own;
        let conn = serve_connection(stream, peer, ctx.clone(), builder.clone(), shutdown.clone());
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

/// The HTTP/1.1 settings every connection is served with.
fn http1_builder(limits: &Limits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .half_close(limits.half_close)
        .keep_alive(true);
    builder
}

/// Serves one accepted connection until the client is done, or until `shutdown`
/// turns true and its current request is answered.
async fn serve_connection(
    stream: UnixStream,
    peer: Peer,
    ctx: Arc<Ctx>,
    builder: Arc<http1::Builder>,
    mut shutdown: watch::Receiver<bool>,
) {
    let stream = WriteDeadline::new(stream, ctx.limits.write_timeout);
    let foreign = !peer.is_uid(ctx.uid);
    let served = Arc::new(AtomicU32::new(0));
    let max = ctx.limits.max_requests_per_connection;
    let svc = service_fn(move |req| {
        let ctx = ctx.clone();
        let n = served.fetch_add(1, Ordering::Relaxed) + 1;
        async move {
            let mut resp = handler::handle(ctx, peer, req).await?;
            // Another user gets one answer (its 403) per connection.
            if n >= max || foreign {
                resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stopped(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
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
