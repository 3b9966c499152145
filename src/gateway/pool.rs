//! The gateway's own pool of HTTP/1.1 connections to Looker, each driven by the task
//! whose call it carries.
//!
//! hyper-util's pooled client spawns a task per connection and hands every request
//! to it through a channel, and the answer back through another: two task wake-ups per
//! call, often across worker threads. Here the caller polls the connection itself:
//! while it waits for the answer's head ([`Conn::send`]), then while it reads the
//! answer's body ([`UpstreamBody`]), which puts the connection back in the pool once
//! the body has ended. A connection nobody polls notices nothing; it is looked at
//! again (closed by Looker? still usable?) when it is taken out, and idle ones are
//! dropped by [`Pool::sweep`].

use super::replay::OutBody;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper::{Request, Response};
use hyper_rustls::MaybeHttpsStream;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A connection's transport: TCP, with TLS for https.
pub(crate) type Io = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;

/// One HTTP/1.1 connection to Looker: the half that sends requests, the half that
/// does the I/O (polled by whoever holds the connection; `None` once it has ended), and
/// the pool it goes back to (weakly: an idle connection is in its pool, and a strong
/// reference back would keep a dropped pool and every connection in it alive).
/// Always boxed: its I/O half holds the TLS state and buffers, a few KiB that would
/// otherwise be copied at every move of a call's future and of the answer's body.
pub(crate) struct Conn {
    sender: http1::SendRequest<OutBody>,
    driver: Option<http1::Connection<Io, OutBody>>,
    pool: Weak<Pool>,
    origin: Arc<str>,
}

impl Conn {
    /// Handshakes HTTP/1.1 over a transport connected to `origin` (nothing is sent yet);
    /// the connection belongs to `pool`.
    pub(crate) async fn handshake(
        io: Io,
        pool: &Arc<Pool>,
        origin: Arc<str>,
    ) -> Result<Box<Conn>, hyper::Error> {
        let (sender, driver) = http1::Builder::new().handshake(io).await?;
        Ok(Box::new(Conn { sender, driver: Some(driver), pool: Arc::downgrade(pool), origin }))
    }

    /// Polls the I/O half once: it notices a close by Looker, finishes what an answer
    /// left (its end, the keep-alive bookkeeping) and makes the connection ready again.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some(d) = &mut self.driver {
            if Pin::new(d).poll(cx).is_ready() {
                self.driver = None;
            }
        }
    }

    /// True when a new request can go out on this connection now.
    fn is_ready(&self) -> bool {
        self.driver.is_some() && self.sender.is_ready()
    }

    /// Sends `req` and waits for the answer's head, driving the connection meanwhile.
    /// A request that never left (the connection was found closed first) comes back
    /// in the error.
    pub(crate) async fn send(
        &mut self,
        req: Request<OutBody>,
    ) -> Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<OutBody>>> {
        let answer = self.sender.try_send_request(req);
        let mut answer = std::pin::pin!(answer);
        poll_fn(|cx| {
            // The I/O first: it writes the request and reads the answer, which then
            // completes `answer` in the same poll (no wake-up in between).
            self.drive(cx);
            answer.as_mut().poll(cx)
        })
        .await
    }
}

/// Connections not in use, per Looker origin (scheme, host and port).
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<String, Vec<Idle>>>,
}

struct Idle {
    conn: Box<Conn>,
    since: Instant,
}

impl Pool {
    /// A usable idle connection to `origin`, the most recently used first; closed or
    /// unusable ones met on the way are dropped.
    pub(crate) fn take(&self, origin: &str) -> Option<Box<Conn>> {
        loop {
            let mut conn = self.lock().get_mut(origin)?.pop()?.conn;
            // Polled without a task to wake: this looks at what already happened (an
            // end of stream from Looker) and registers interest in nothing.
            conn.drive(&mut Context::from_waker(Waker::noop()));
            if conn.is_ready() {
                return Some(conn);
            }
        }
    }

    /// Puts a connection whose last answer has ended back, if it can carry another.
    fn put(&self, mut conn: Box<Conn>) {
        // One more turn finishes the answer's bookkeeping; no task is to be woken by
        // what happens on an idle connection.
        conn.drive(&mut Context::from_waker(Waker::noop()));
        if !conn.is_ready() {
            return;
        }
        let idle = Idle { conn, since: Instant::now() };
        let mut map = self.lock();
        match map.get_mut(&*idle.conn.origin) {
            Some(list) => list.push(idle),
            None => {
                map.insert(idle.conn.origin.to_string(), vec![idle]);
            }
        }
    }

    /// Drops connections idle for longer than `max_idle`, and those Looker closed.
    pub(crate) fn sweep(&self, max_idle: Duration) {
        let now = Instant::now();
        let mut noop = Context::from_waker(Waker::noop());
        let mut map = self.lock();
        for list in map.values_mut() {
            list.retain_mut(|i| {
                i.conn.drive(&mut noop);
                i.conn.driver.is_some() && now.duration_since(i.since) <= max_idle
            });
        }
        map.retain(|_, list| !list.is_empty());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Idle>>> {
        // Every list is whole at each unlock: a poisoned lock is safe to reuse.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The body of Looker's answer, streamed from the connection it came on, which the
/// body drives as it is read. Dropped before its end, it closes the connection.
pub struct UpstreamBody {
    body: Incoming,
    /// `None` once the connection has gone back to the pool (or ended).
    conn: Option<Box<Conn>>,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody").field("body", &self.body).finish_non_exhaustive()
    }
}

impl UpstreamBody {
    pub(crate) fn new(body: Incoming, conn: Box<Conn>) -> UpstreamBody {
        UpstreamBody { body, conn: Some(conn) }
    }

    /// The answer has ended: its connection can carry the next call (unless its pool
    /// was dropped meanwhile: then it is closed).
    fn give_back(&mut self) {
        if let Some(c) = self.conn.take() {
            if let Some(pool) = c.pool.upgrade() {
                pool.put(c);
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let mut polled = Pin::new(&mut this.body).poll_frame(cx);
        if polled.is_pending() {
            if let Some(c) = &mut this.conn {
                // The connection reads the next part of the body into `body`.
                c.drive(cx);
                polled = Pin::new(&mut this.body).poll_frame(cx);
            }
        }
        match &polled {
            Poll::Ready(None) => this.give_back(),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.give_back(),
            // A broken body leaves the connection in no state to reuse.
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // An answer without a body (204, 304, a HEAD) may be dropped unread.
        if self.body.is_end_stream() {
            self.give_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A pool holds its idle connections and they point back at it: only weakly, or a
    /// pool dropped (its client swept after a reload, the gateway shut down) would keep
    /// itself and every idle connection to Looker open for ever.
    #[tokio::test]
    async fn a_dropped_pool_closes_its_idle_connections() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut looker, _) = listener.accept().await.unwrap();
        let pool = Arc::new(Pool::default());
        let io = MaybeHttpsStream::Http(TokioIo::new(tcp));
        let conn = Conn::handshake(io, &pool, "http://looker".into()).await.unwrap();
        pool.put(conn);
        let conn = pool.take("http://looker").expect("the connection was pooled");
        pool.put(conn);
        drop(pool);
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(30), looker.read(&mut buf))
            .await
            .expect("the idle connection is still open after its pool was dropped");
        assert_eq!(read.unwrap(), 0, "Looker's side sees the connection end");
    }
}
