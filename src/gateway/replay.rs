//! The client's request body, kept for one replay when it is small, and Looker's
//! answer on its way back to the client.
//!
//! An upstream `401` is answered by a new login and one replay of the request, so
//! the body must still be at hand after it was sent. Only a small body is kept
//! ([`REPLAY_LIMIT`]); a larger one, or one the client is slow to send, is forwarded
//! as the part already read followed by the rest, never buffered beyond that, and
//! the 401 then goes to the client as it is.

use super::forward::strip_hop_by_hop;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::Response;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// The largest request body kept whole for a replay (1 MiB).
pub const REPLAY_LIMIT: usize = 1 << 20;

/// A sensible time to wait for a small body to arrive whole before forwarding starts.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A client's request body, read as far as a replay needs.
#[derive(Debug)]
pub enum RequestBody {
    /// The whole body, at most [`REPLAY_LIMIT`] bytes: replayable, cheap to clone.
    Whole(Bytes),
    /// A body larger than [`REPLAY_LIMIT`], or not complete within the timeout: the
    /// bytes read so far, then the rest as it arrives. Sent once, never replayed.
    Streaming {
        /// What was read before giving up on keeping the body (may be empty).
        prefix: Bytes,
        /// The body's remainder, still on the client's connection.
        rest: Incoming,
    },
}

impl RequestBody {
    /// Reads `body` until it ends, until more than [`REPLAY_LIMIT`] bytes came, or until
    /// `timeout` passes, whichever is first. A body that declares a length above the
    /// limit is not read at all. Request trailers are dropped (Looker uses none).
    ///
    /// Fails only when the client's body itself fails (a broken connection, a bad
    /// chunk): there is nothing to forward then.
    pub async fn read(mut body: Incoming, timeout: Duration) -> Result<RequestBody, hyper::Error> {
        if body.is_end_stream() {
            return Ok(RequestBody::Whole(Bytes::new()));
        }
        if body.size_hint().lower() > REPLAY_LIMIT as u64 {
            return Ok(RequestBody::Streaming { prefix: Bytes::new(), rest: body });
        }
        let mut buf = BytesMut::new();
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                biased;
                frame = body.frame() => match frame {
                    None => return Ok(RequestBody::Whole(buf.freeze())),
                    Some(Err(e)) => return Err(e),
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            buf.extend_from_slice(&data);
                        }
                        if body.is_end_stream() {
                            return Ok(RequestBody::Whole(buf.freeze()));
                        }
                        if buf.len() > REPLAY_LIMIT {
                            return Ok(RequestBody::Streaming { prefix: buf.freeze(), rest: body });
                        }
                    }
                },
                () = &mut deadline => {
                    return Ok(RequestBody::Streaming { prefix: buf.freeze(), rest: body });
                }
            }
        }
    }

    /// True for a body that can be sent a second time.
    pub fn is_replayable(&self) -> bool {
        matches!(self, RequestBody::Whole(_))
    }

    /// A copy to send again after an upstream 401 (`None` for a streaming body).
    /// Call it before the body is sent: the copy shares the bytes, it does not copy them.
    pub fn replay_copy(&self) -> Option<OutBody> {
        match self {
            RequestBody::Whole(b) => Some(OutBody::full(b.clone())),
            RequestBody::Streaming { .. } => None,
        }
    }
}

impl From<RequestBody> for OutBody {
    fn from(body: RequestBody) -> OutBody {
        match body {
            RequestBody::Whole(b) => OutBody::full(b),
            RequestBody::Streaming { prefix, rest } => {
                let prefix = if prefix.is_empty() { None } else { Some(prefix) };
                OutBody(Inner::Streaming { prefix, rest })
            }
        }
    }
}

/// The body of a request sent to Looker: nothing, a few bytes in memory, or a
/// client's body streamed through. Reports its exact length when it knows it, so
/// that the upstream request keeps a `Content-Length` rather than going chunked.
#[derive(Debug)]
pub struct OutBody(Inner);

#[derive(Debug)]
enum Inner {
    Full(Option<Bytes>),
    Streaming { prefix: Option<Bytes>, rest: Incoming },
}

impl OutBody {
    /// No body.
    pub fn empty() -> OutBody {
        OutBody(Inner::Full(None))
    }

    /// A body held in memory (a login form, a replayed body).
    pub fn full(bytes: Bytes) -> OutBody {
        OutBody(Inner::Full(if bytes.is_empty() { None } else { Some(bytes) }))
    }
}

impl Body for OutBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.get_mut().0 {
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Streaming { prefix, rest } => match prefix.take() {
                Some(p) => Poll::Ready(Some(Ok(Frame::data(p)))),
                None => Pin::new(rest).poll_frame(cx),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Inner::Full(bytes) => bytes.is_none(),
            Inner::Streaming { prefix, rest } => prefix.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::Streaming { prefix, rest } => {
                let before = prefix.as_ref().map_or(0, |b| b.len() as u64);
                let hint = rest.size_hint();
                let mut out = SizeHint::new();
                out.set_lower(hint.lower().saturating_add(before));
                if let Some(upper) = hint.upper() {
                    out.set_upper(upper.saturating_add(before));
                }
                out
            }
        }
    }
}

/// Looker's answer as the client gets it: hop-by-hop headers (those of the hop
/// between agent and Looker) removed, the status, every other header and the body
/// (streamed) unchanged. The client's connection frames the body anew.
pub fn answer_back<B>(mut answer: Response<B>) -> Response<B> {
    strip_hop_by_hop(answer.headers_mut());
    answer
}
