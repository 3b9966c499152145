//! Reading an error's cause chain: its whole text for a message, the first cause of a
//! type (what decides the error's class, never its wording), and the diagnoses made
//! from them that both upstream clients share.

use std::error::Error;

/// What to do when Looker's answer cannot be read as HTTP. Most often base_url says
/// `http://` for a port that serves HTTPS: what comes back is the TLS server's alert
/// or handshake, which no HTTP parser can read (a server that answers malformed HTTP
/// is the rarer case, and the advice still points at the setting to check).
pub(crate) const NOT_HTTP_ADVICE: &str =
    "check base_url's scheme and port: a port that serves HTTPS needs https://";

/// The whole cause chain of an error in one line, each cause once (wrappers often
/// repeat their cause's text).
pub(crate) fn text(e: &(dyn Error + 'static)) -> String {
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

/// The first error of type `T` in a cause chain. `std::io::Error::source` skips the
/// error it wraps, so an io::Error is followed into its inner error instead
/// (tokio-rustls reports handshake failures as an io::Error around the rustls error,
/// which hyper wraps in another io::Error).
pub(crate) fn find<'a, T: Error + 'static>(e: &'a (dyn Error + 'static)) -> Option<&'a T> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<T>() {
            return Some(t);
        }
        cur = match err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// True when hyper could not read the answer as HTTP (its parse error; an oversized
/// head is HTTP, only too large, and not meant).
pub(crate) fn is_not_http(h: &hyper::Error) -> bool {
    h.is_parse() && !h.is_parse_too_large()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("inner {0}")]
    struct Inner(u8);

    #[test]
    fn finds_a_cause_inside_an_io_error_and_writes_each_text_once() {
        let e = Outer(std::io::Error::other(Inner(7)));
        assert_eq!(find::<Inner>(&e).map(|i| i.0), Some(7));
        assert!(find::<std::fmt::Error>(&e).is_none());
        // io::Error's text is its inner error's: written once.
        assert_eq!(text(&e), "outer: inner 7");
    }
}
