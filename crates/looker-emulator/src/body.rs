//! Response bodies: a small JSON document held whole, or the large-body
//! test pattern generated as it is sent (so a 512 MiB download never sits in
//! memory), and the check of that pattern on an upload as it streams in.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// The pattern's period: byte `i` of a large body is `(i % 251) as u8`. A
/// prime, so the pattern never lines up with a power-of-two chunk size and a
/// dropped, repeated or reordered chunk shows.
pub(crate) const PERIOD: usize = 251;

/// Largest chunk the download sends at once: whole periods, about 64 KiB.
const CHUNK: usize = PERIOD * 261;

/// `CHUNK` bytes starting at any phase `0..PERIOD` fit in this.
const PATTERN_LEN: usize = CHUNK + PERIOD;

/// The pattern from phase 0, long enough that every chunk of a download is
/// a zero-copy slice of it.
pub(crate) fn pattern() -> Bytes {
    (0..PATTERN_LEN).map(|i| (i % PERIOD) as u8).collect::<Vec<u8>>().into()
}

/// The body of every emulator response.
pub(crate) enum EmuBody {
    /// A body held whole (JSON, or nothing).
    Full(Option<Bytes>),
    /// `len` bytes of the pattern, `sent` of them already out.
    Pattern {
        /// [`pattern`], shared by every download.
        source: Bytes,
        /// The total length.
        len: u64,
        /// Bytes already produced.
        sent: u64,
        /// A fault: the body breaks off (an error, so the server drops the
        /// connection) once this many bytes are out; always before `len`.
        cut_at: Option<u64>,
        /// Announce no length (the server then frames the body in chunks).
        chunked: bool,
    },
}

/// The error a download with a `cut_at` ends in.
#[derive(Debug)]
pub(crate) struct CutOff(u64);

impl std::fmt::Display for CutOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "emulator fault: the body broke off after {} bytes", self.0)
    }
}

impl std::error::Error for CutOff {}

impl EmuBody {
    /// A body holding `bytes` (no frame at all when empty).
    pub(crate) fn full(bytes: Bytes) -> Self {
        EmuBody::Full((!bytes.is_empty()).then_some(bytes))
    }

    /// `len` bytes of the pattern, generated as the client reads them; with faults:
    /// broken off after `cut_at` bytes, framed in chunks (no length announced) when
    /// `chunked`.
    pub(crate) fn pattern(source: Bytes, len: u64, cut_at: Option<u64>, chunked: bool) -> Self {
        // A cut at or past the end is no cut.
        EmuBody::Pattern { source, len, sent: 0, cut_at: cut_at.filter(|c| *c < len), chunked }
    }
}

impl Body for EmuBody {
    type Data = Bytes;
    type Error = CutOff;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, CutOff>>> {
        let this = self.get_mut();
        match this {
            EmuBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            EmuBody::Pattern { source, len, sent, cut_at, .. } => {
                if cut_at.is_some_and(|c| *sent >= c) {
                    return Poll::Ready(Some(Err(CutOff(*sent))));
                }
                // Up to the cut, if there is one (always before the end).
                let end = cut_at.unwrap_or(*len);
                let left = end - *sent;
                if left == 0 {
                    return Poll::Ready(None);
                }
                let n = usize::try_from(left).map_or(CHUNK, |left| left.min(CHUNK));
                // `sent % PERIOD` is below PERIOD, so the slice stays inside the source.
                let phase = usize::try_from(*sent % PERIOD as u64).unwrap_or(0);
                let chunk = source.slice(phase..phase + n);
                *sent += n as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            EmuBody::Full(bytes) => bytes.is_none(),
            EmuBody::Pattern { len, sent, .. } => sent == len,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            EmuBody::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            EmuBody::Pattern { chunked: true, .. } => SizeHint::default(),
            EmuBody::Pattern { len, sent, .. } => SizeHint::with_exact(*len - *sent),
        }
    }
}

/// Checks a stream of chunks against the pattern without keeping them:
/// slices compared with [`pattern`] (a `memcmp`, fast even in debug
/// builds, where the gateway's tests push hundreds of MiB through).
pub(crate) struct PatternCheck {
    /// [`pattern`].
    source: Bytes,
    /// Bytes seen so far.
    pub(crate) bytes: u64,
    /// Whether every byte so far matched.
    pub(crate) ok: bool,
}

impl PatternCheck {
    /// A check that has seen nothing (and so matches).
    pub(crate) fn new(source: Bytes) -> Self {
        Self { source, bytes: 0, ok: true }
    }

    /// Takes the next chunk.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        let mut at = self.bytes;
        while self.ok && !rest.is_empty() {
            let phase = usize::try_from(at % PERIOD as u64).unwrap_or(0);
            let n = rest.len().min(CHUNK);
            self.ok = self.source.get(phase..phase + n) == Some(&rest[..n]);
            rest = &rest[n..];
            at += n as u64;
        }
        self.bytes += chunk.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_download_is_the_pattern_in_bounded_chunks() {
        for len in [0u64, 1, 250, 251, 252, CHUNK as u64, CHUNK as u64 + 1, 3 * CHUNK as u64 + 17] {
            let mut body = EmuBody::pattern(pattern(), len, None, false);
            assert_eq!(body.size_hint().exact(), Some(len));
            let mut check = PatternCheck::new(pattern());
            while let Some(frame) = body.frame().await {
                let data = frame.expect("no cut").into_data().expect("data frame");
                assert!(!data.is_empty() && data.len() <= CHUNK);
                check.feed(&data);
            }
            assert_eq!((check.bytes, check.ok), (len, true), "len {len}");
        }
    }

    #[tokio::test]
    async fn a_cut_download_breaks_off_after_exactly_its_bytes() {
        let len = 3 * CHUNK as u64;
        for (cut, chunked) in [(0, false), (1000, false), (CHUNK as u64 + 5, true)] {
            let mut body = EmuBody::pattern(pattern(), len, Some(cut), chunked);
            assert_eq!(body.size_hint().exact(), (!chunked).then_some(len));
            let mut got = 0u64;
            let err = loop {
                match body.frame().await {
                    Some(Ok(f)) => got += f.into_data().unwrap().len() as u64,
                    Some(Err(e)) => break e,
                    None => panic!("a cut body ended cleanly after {got} bytes"),
                }
            };
            assert_eq!(got, cut);
            assert!(err.to_string().contains(&format!("after {cut} bytes")), "{err}");
        }
        // A cut at the end is none.
        let mut whole = EmuBody::pattern(pattern(), 10, Some(10), false);
        assert_eq!(whole.frame().await.unwrap().unwrap().into_data().unwrap().len(), 10);
        assert!(whole.frame().await.is_none());
    }

    #[test]
    fn the_check_spots_a_wrong_byte_across_chunks() {
        let len = 3 * CHUNK + 1000;
        let all: Vec<u8> = (0..len).map(|i| (i % PERIOD) as u8).collect();
        for split in [0, 1, 300, CHUNK, CHUNK + 7, len] {
            let mut check = PatternCheck::new(pattern());
            check.feed(&all[..split]);
            check.feed(&all[split..]);
            assert_eq!((check.bytes, check.ok), (len as u64, true), "split {split}");
        }
        for wrong in [0, 600, CHUNK, 2 * CHUNK + 5, len - 1] {
            let mut bad = all.clone();
            bad[wrong] ^= 1;
            let mut check = PatternCheck::new(pattern());
            check.feed(&bad[..300]);
            check.feed(&bad[300..]);
            assert_eq!((check.bytes, check.ok), (len as u64, false), "wrong byte {wrong}");
        }
    }
}
