//! Values that must never reach a log, an error message or a core dump.

use std::fmt;
use zeroize::Zeroizing;

/// A client secret or an access token: zeroed on drop, redacted in `Debug`/`Display`.
///
/// Read the value with [`Secret::expose`] only where it leaves the process on
/// purpose (a login form, an `Authorization` header, a token answer).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a value; the caller's copy should be dropped right after.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// The plain value. Every call site is a place where the secret leaves on purpose.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the value is empty (an empty secret is never valid).
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }
}
