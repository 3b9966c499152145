//! The gateway's audit line per call (target `looker_agent::audit`, debug): method,
//! path (never the query: it may carry a secret), status, the bytes of the answer's
//! body that reached the client, and the time until the answer ended.
//!
//! A streamed answer's size is only known at its end (a chunked one has no
//! `Content-Length`, and a client may go away half-way), so the line is written when
//! the body ends or is dropped, by [`Audited`], which counts what passes through it.
//! With the audit target off, nothing is counted and the clock is not read.

use crate::protocol::echo;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::Method;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::Instant;

/// One call being audited: what its line will say.
#[derive(Debug)]
pub struct CallRecord {
    transport: &'static str,
    method: Method,
    path: String,
    status: u16,
    started: Instant,
    bytes: u64,
}

impl CallRecord {
    /// A call that came through `transport` and started at `started`, now answered
    /// with `status`.
    pub fn new(transport: &'static str, method: &Method, path: &str, status: u16, started: Instant) -> Self {
        CallRecord {
            transport,
            method: method.clone(),
            path: echo(path).to_string(),
            status,
            started,
            bytes: 0,
        }
    }

    /// Counts `n` more bytes of the answer's body as sent.
    pub fn add_bytes(&mut self, n: u64) {
        self.bytes += n;
    }

    /// Writes the line; `complete` is false when the body was cut (the client left, or
    /// Looker's answer broke off).
    pub fn log(&self, complete: bool) {
        tracing::debug!(target: "looker_agent::audit", transport = self.transport, method = %self.method,
            path = %self.path, status = self.status, bytes = self.bytes, complete,
            ms = self.started.elapsed().as_millis() as u64, "gateway call");
    }
}

/// True when audit lines are written (checked once per call, before it starts).
pub fn enabled() -> bool {
    tracing::enabled!(target: "looker_agent::audit", tracing::Level::DEBUG)
}

/// A streamed answer body that writes its call's audit line when it ends.
#[derive(Debug)]
pub struct Audited<B> {
    body: B,
    /// `None` when the audit is off, or once the line is written.
    call: Option<Box<CallRecord>>,
}

impl<B: Body> Audited<B> {
    /// `body`, not audited (yet).
    pub fn new(body: B) -> Self {
        Audited { body, call: None }
    }

    /// The same body, writing `call`'s line at its end. An answer with no body at all
    /// (a 204, a HEAD answer) is never polled: its line is written now.
    pub fn audit(mut self, call: CallRecord) -> Self {
        self.call = Some(Box::new(call));
        if self.body.is_end_stream() {
            self.finish(true);
        }
        self
    }
}

impl<B> Audited<B> {
    fn finish(&mut self, complete: bool) {
        if let Some(c) = self.call.take() {
            c.log(complete);
        }
    }
}

impl<B> Body for Audited<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if this.call.is_some() {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let (Some(c), Some(data)) = (&mut this.call, frame.data_ref()) {
                        c.add_bytes(data.len() as u64);
                    }
                    if this.body.is_end_stream() {
                        this.finish(true);
                    }
                }
                Poll::Ready(None) => this.finish(true),
                Poll::Ready(Some(Err(_))) => this.finish(false),
                Poll::Pending => {}
            }
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

impl<B> Drop for Audited<B> {
    fn drop(&mut self) {
        // Dropped before its end: the client went away, or the connection broke.
        self.finish(false);
    }
}
