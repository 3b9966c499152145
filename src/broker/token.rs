//! A token the agent obtained ([`LiveToken`]) and a token handed to a client ([`IssuedToken`]).

use super::clock::Stamp;
use crate::secret::Secret;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A token obtained from Looker and not yet revoked by the agent.
///
/// Expiry is kept on the broker's [clock](super::clock): it never jumps back with the
/// wall clock (which cannot extend a token's life) and keeps counting while the
/// machine is suspended (so a night asleep cannot either). It already includes the
/// safety margin.
#[derive(Debug)]
pub struct LiveToken {
    /// The token value.
    pub token: Secret,
    /// When the login request was sent (the token cannot be older than this).
    pub obtained: Stamp,
    /// When the agent stops considering it usable (Looker's expiry minus the margin).
    pub expires: Stamp,
    /// Looker's own expiry (no margin): after this, revoking is pointless.
    pub hard_expires: Stamp,
    /// Set once a client received it: from then on it must live until `expires`.
    pub handed_out: AtomicBool,
    /// Its entry in the secret store's token journal, if it was journaled.
    pub journal_id: Option<String>,
}

impl LiveToken {
    /// A token obtained at `obtained` whose login answer arrived at `received`,
    /// valid for `expires_in` according to Looker.
    pub fn new(token: Secret, obtained: Stamp, received: Stamp, expires_in: Duration) -> LiveToken {
        LiveToken {
            token,
            obtained,
            expires: obtained + expires_in - safety_margin(expires_in),
            hard_expires: received + expires_in,
            handed_out: AtomicBool::new(false),
            journal_id: None,
        }
    }

    /// Records that a client holds this token (it was promised until `expires`).
    pub fn mark_handed_out(&self) {
        // A plain load first keeps the hot path free of cache-line writes.
        if !self.handed_out.load(Ordering::Relaxed) {
            self.handed_out.store(true, Ordering::Relaxed);
        }
    }

    /// True once a client received this token.
    pub fn was_handed_out(&self) -> bool {
        self.handed_out.load(Ordering::Relaxed)
    }

    /// Time left before [`LiveToken::expires`], zero when past.
    pub fn remaining(&self, now: Stamp) -> Duration {
        self.expires.saturating_duration_since(now)
    }

    /// Usable lifetime this token was born with (after the margin).
    pub fn lifetime(&self) -> Duration {
        self.expires.saturating_duration_since(self.obtained)
    }

    /// True while Looker may still accept it (so revoking it is worth a request).
    pub fn may_be_live(&self, now: Stamp) -> bool {
        now < self.hard_expires
    }
}

/// The safety margin taken off Looker's `expires_in`: clock skew and request
/// latency must never make the agent hand out a token Looker already dropped.
/// A tenth of the lifetime, between 1 s and 30 s.
pub fn safety_margin(expires_in: Duration) -> Duration {
    (expires_in / 10).clamp(Duration::from_secs(1), Duration::from_secs(30)).min(expires_in / 2)
}

/// What a client receives: a live token plus where it belongs.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The token.
    pub token: Arc<LiveToken>,
    /// Profile name.
    pub profile: Arc<str>,
    /// Credential set name.
    pub credential: Arc<str>,
    /// The profile's base URL.
    pub base_url: Arc<str>,
    /// When it was handed out, on the broker's clock: its time left is counted from here.
    pub issued: Stamp,
}

impl IssuedToken {
    /// Whole seconds left, as of `now` (read it from [`Broker::now`](super::Broker::now)).
    pub fn expires_in(&self, now: Stamp) -> u64 {
        self.token.remaining(now).as_secs()
    }

    /// Wall-clock expiry for `expires_in` seconds from now.
    pub fn expires_at_wall(&self, now: Stamp) -> SystemTime {
        SystemTime::now() + Duration::from_secs(self.expires_in(now))
    }

    /// Unix time of the expiry.
    pub fn expires_at_unix(&self, now: Stamp) -> i64 {
        self.expires_at_wall(now)
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    /// The socket API's token object as JSON. This is the hot path: it is written into
    /// a per-thread scratch buffer (wiped afterwards, it held the token) and copied
    /// once into an exactly-sized answer, so the answer is the only allocation.
    pub fn to_json(&self, now: Stamp) -> Vec<u8> {
        thread_local! {
            static SCRATCH: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(512));
        }
        SCRATCH.with(|cell| {
            let mut out = cell.borrow_mut();
            out.clear();
            self.write_json(&mut out, now);
            let answer = out.as_bytes().to_vec();
            zeroize::Zeroize::zeroize(&mut *out);
            answer
        })
    }

    fn write_json(&self, out: &mut String, now: Stamp) {
        let expires_in = self.expires_in(now);
        out.push_str("{\"access_token\":");
        json_str(out, self.token.token.expose());
        let _ = write!(out, ",\"token_type\":\"Bearer\",\"expires_in\":{expires_in},\"expires_at\":\"");
        let _ = write!(out, "{}", humantime::format_rfc3339_seconds(self.expires_at_wall(now)));
        out.push_str("\",\"profile\":");
        json_str(out, &self.profile);
        out.push_str(",\"credential\":");
        json_str(out, &self.credential);
        out.push_str(",\"base_url\":");
        json_str(out, &self.base_url);
        out.push('}');
    }
}

/// Appends `s` as a JSON string literal, copying runs that need no escaping whole.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b if b < 0x20 => "",
            _ => continue,
        };
        // Only ASCII bytes are escaped, so `i` is always a char boundary.
        out.push_str(&s[start..i]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(escaped);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::TokenObject;

    #[test]
    fn margin_bounds() {
        assert_eq!(safety_margin(Duration::from_secs(3600)), Duration::from_secs(30));
        assert_eq!(safety_margin(Duration::from_secs(40)), Duration::from_secs(4));
        assert_eq!(safety_margin(Duration::from_secs(2)), Duration::from_secs(1));
    }

    #[test]
    fn json_matches_protocol_type() {
        let now = Stamp::START;
        let t = IssuedToken {
            token: Arc::new(LiveToken::new(Secret::new("tok\"en"), now, now, Duration::from_secs(111))),
            profile: "prod".into(),
            credential: "c\\1\n\u{1}é".into(),
            base_url: "https://x".into(),
            issued: now,
        };
        let o: TokenObject = serde_json::from_slice(&t.to_json(now)).unwrap();
        assert_eq!(o.access_token, "tok\"en");
        // 111 s less the 11.1 s margin, in whole seconds.
        assert_eq!(o.expires_in, 99);
        assert_eq!(o.credential, "c\\1\n\u{1}é");
        assert_eq!(o.token_type, "Bearer");
        assert!(humantime::parse_rfc3339(&o.expires_at).is_ok());
    }
}
