//! What a client can ask of the agent ([`Request`]), whatever door it comes in by,
//! and the socket routes that carry them ([`Route`]).
//!
//! The socket handler decodes a route and its query or body into a [`Request`];
//! the D-Bus object builds one from its method arguments; `lookerctl` builds one
//! and sends it with [`Request::to_http`]. Routes are spelled here and nowhere else.

use super::{echo, GatewayCredentialRequest, GatewayRevokeRequest, RevokeRequest, DEFAULT_PROFILE_SEGMENT};
use hyper::Method;
use std::borrow::Cow;
use std::time::Duration;

/// A request to the agent. Names borrow from the wire where they can: a cached
/// token is handed out without allocating for the request itself. `None` for a
/// profile or credential means "the default" on every door.
#[derive(Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// Is the agent up?
    Health,
    /// A token for a profile (`None`: the default) from a credential set (`None`: the
    /// first healthy one), with at least `min_ttl` left.
    Token {
        /// The profile asked for.
        profile: Option<Cow<'a, str>>,
        /// The credential set asked for.
        credential: Option<Cow<'a, str>>,
        /// Time the token must have left.
        min_ttl: Duration,
    },
    /// The client saw this token rejected: stop handing it out.
    Invalidate {
        /// The profile it belongs to.
        profile: Option<Cow<'a, str>>,
        /// The rejected token.
        access_token: Cow<'a, str>,
    },
    /// Profiles, credential sets and token state (never tokens).
    Status,
    /// Revoke the live tokens of a credential set, a profile, or all.
    Revoke {
        /// Only this profile's.
        profile: Option<Cow<'a, str>>,
        /// Only this credential set's (needs a profile).
        credential: Option<Cow<'a, str>>,
    },
    /// Read the config again.
    Reload,
    /// The configured profile names.
    ListProfiles,
    /// Mint a gateway credential (`lookerctl exec`, `lookerctl gateway credential`).
    GatewayCredential(GatewayCredentialRequest),
    /// End gateway credentials and their sessions (`lookerctl gateway revoke`).
    GatewayRevoke(GatewayRevokeRequest),
}

/// The token a request carries stays out of logs.
impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Invalidate { profile, .. } => f
                .debug_struct("Invalidate")
                .field("profile", profile)
                .field("access_token", &"<redacted>")
                .finish(),
            Request::Health => f.write_str("Health"),
            Request::Token { profile, credential, min_ttl } => f
                .debug_struct("Token")
                .field("profile", profile)
                .field("credential", credential)
                .field("min_ttl", min_ttl)
                .finish(),
            Request::Status => f.write_str("Status"),
            Request::Revoke { profile, credential } => {
                f.debug_struct("Revoke").field("profile", profile).field("credential", credential).finish()
            }
            Request::Reload => f.write_str("Reload"),
            Request::ListProfiles => f.write_str("ListProfiles"),
            Request::GatewayCredential(r) => f.debug_tuple("GatewayCredential").field(r).finish(),
            Request::GatewayRevoke(r) => f.debug_tuple("GatewayRevoke").field(r).finish(),
        }
    }
}

/// A socket route: which request a method and path stand for, before its query
/// or body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET /v1/health`
    Health,
    /// `GET /v1/profiles/{profile}/token?credential=NAME&min_ttl=SECONDS`
    Token {
        /// The profile segment, decoded (`None` for `_`, the default).
        profile: Option<Cow<'a, str>>,
    },
    /// `POST /v1/profiles/{profile}/invalidate` with `{"access_token":"…"}`
    Invalidate {
        /// The profile segment, decoded (`None` for `_`, the default).
        profile: Option<Cow<'a, str>>,
    },
    /// `GET /v1/status`
    Status,
    /// `POST /v1/revoke` with `{"profile":"…","credential":"…"}` (both optional)
    Revoke,
    /// `POST /v1/reload`
    Reload,
    /// `POST /v1/gateway/credentials` with a [`GatewayCredentialRequest`]
    GatewayCredential,
    /// `POST /v1/gateway/revoke` with a [`GatewayRevokeRequest`]
    GatewayRevoke,
}

/// Why a method and path are no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMiss {
    /// No route has this path.
    NotFound,
    /// The path is a route, for another method.
    WrongMethod,
    /// A path segment is not valid percent-encoded UTF-8.
    BadSegment(String),
}

impl<'a> Route<'a> {
    /// The route for `method` and `path`. Segments are percent-decoded; the path
    /// is split without allocating.
    pub fn decode(method: &Method, path: &'a str) -> Result<Route<'a>, RouteMiss> {
        let mut buf = [""; 5];
        let n = split_path(path, &mut buf);
        let segs = &buf[..n];
        let profile = |seg: &'a str| -> Result<Option<Cow<'a, str>>, RouteMiss> {
            if seg == DEFAULT_PROFILE_SEGMENT {
                return Ok(None);
            }
            decode_segment(seg).map(Some).map_err(RouteMiss::BadSegment)
        };
        let (route, want) = match segs {
            ["v1", "health"] => (Route::Health, Method::GET),
            ["v1", "status"] => (Route::Status, Method::GET),
            ["v1", "revoke"] => (Route::Revoke, Method::POST),
            ["v1", "reload"] => (Route::Reload, Method::POST),
            ["v1", "gateway", "credentials"] => (Route::GatewayCredential, Method::POST),
            ["v1", "gateway", "revoke"] => (Route::GatewayRevoke, Method::POST),
            ["v1", "profiles", p, "token"] => (Route::Token { profile: profile(p)? }, Method::GET),
            ["v1", "profiles", p, "invalidate"] => (Route::Invalidate { profile: profile(p)? }, Method::POST),
            _ => return Err(RouteMiss::NotFound),
        };
        if *method == want {
            Ok(route)
        } else {
            Err(RouteMiss::WrongMethod)
        }
    }
}

impl Request<'_> {
    /// How `lookerctl` sends this request over the socket: method, path with
    /// query, and JSON body. `None` for a request only the D-Bus API offers.
    pub fn to_http(&self) -> Option<(Method, String, Option<Vec<u8>>)> {
        let profile_seg =
            |p: &Option<Cow<'_, str>>| encode_segment(p.as_deref().unwrap_or(DEFAULT_PROFILE_SEGMENT));
        Some(match self {
            Request::Health => (Method::GET, "/v1/health".into(), None),
            Request::Status => (Method::GET, "/v1/status".into(), None),
            Request::Reload => (Method::POST, "/v1/reload".into(), Some(b"{}".to_vec())),
            Request::Token { profile, credential, min_ttl } => {
                let mut path =
                    format!("/v1/profiles/{}/token?min_ttl={}", profile_seg(profile), min_ttl.as_secs());
                if let Some(c) = credential {
                    path.push_str(&format!("&credential={}", encode(c)));
                }
                (Method::GET, path, None)
            }
            Request::Invalidate { profile, access_token } => {
                let body = serde_json::to_vec(&serde_json::json!({ "access_token": access_token })).ok()?;
                (Method::POST, format!("/v1/profiles/{}/invalidate", profile_seg(profile)), Some(body))
            }
            Request::Revoke { profile, credential } => {
                let body = RevokeRequest {
                    profile: profile.as_ref().map(|p| p.to_string()),
                    credential: credential.as_ref().map(|c| c.to_string()),
                };
                (Method::POST, "/v1/revoke".into(), Some(serde_json::to_vec(&body).ok()?))
            }
            Request::GatewayCredential(r) => {
                (Method::POST, "/v1/gateway/credentials".into(), Some(serde_json::to_vec(r).ok()?))
            }
            Request::GatewayRevoke(r) => {
                (Method::POST, "/v1/gateway/revoke".into(), Some(serde_json::to_vec(r).ok()?))
            }
            Request::ListProfiles => return None,
        })
    }
}

/// A query value (`+` for a space, as the server's form decoding reads it).
fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A path segment: everything but unreserved characters percent-encoded, which
/// [`decode_segment`] turns back.
fn encode_segment(s: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// Splits `/a/b/c` into `buf` without allocating; returns how many segments were
/// found, or 0 (matching no route) when there are more than `buf` holds.
fn split_path<'a>(path: &'a str, buf: &mut [&'a str]) -> usize {
    let mut n = 0;
    for seg in path.trim_matches('/').split('/') {
        if n == buf.len() {
            return 0;
        }
        buf[n] = seg;
        n += 1;
    }
    n
}

/// Percent-decodes one path segment (`pro%64` is `prod`); borrowed when there is
/// nothing to decode. Unlike a lenient decoder, a broken escape is an error, so a
/// typo is a 400 rather than a lookup of a name nobody has.
fn decode_segment(seg: &str) -> Result<Cow<'_, str>, String> {
    if !seg.contains('%') {
        return Ok(Cow::Borrowed(seg));
    }
    let bad = || format!("path segment {:?} is not valid percent-encoded UTF-8", echo(seg));
    let raw = seg.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = raw.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_decode_what_requests_encode() {
        let reqs = [
            Request::Health,
            Request::Status,
            Request::Reload,
            Request::Token {
                profile: Some("pr od".into()),
                credential: Some("a&b".into()),
                min_ttl: Duration::from_secs(90),
            },
            Request::Token { profile: None, credential: None, min_ttl: Duration::from_secs(60) },
            Request::Invalidate { profile: Some("prod".into()), access_token: "t".into() },
            Request::Revoke { profile: None, credential: None },
            Request::GatewayCredential(GatewayCredentialRequest::default()),
            Request::GatewayRevoke(GatewayRevokeRequest::default()),
        ];
        for r in reqs {
            let (method, path_q, _) = r.to_http().unwrap();
            let path = path_q.split('?').next().unwrap();
            let route = Route::decode(&method, path).unwrap();
            let want_profile = match &r {
                Request::Token { profile, .. } | Request::Invalidate { profile, .. } => profile.clone(),
                _ => None,
            };
            match route {
                Route::Token { profile } | Route::Invalidate { profile } => assert_eq!(profile, want_profile),
                _ => assert_eq!(want_profile, None),
            }
        }
        assert!(Request::ListProfiles.to_http().is_none());
    }

    #[test]
    fn misses() {
        assert_eq!(Route::decode(&Method::POST, "/v1/health"), Err(RouteMiss::WrongMethod));
        assert_eq!(Route::decode(&Method::GET, "/v2/health"), Err(RouteMiss::NotFound));
        assert_eq!(Route::decode(&Method::GET, "/a/b/c/d/e/f"), Err(RouteMiss::NotFound));
        assert!(matches!(
            Route::decode(&Method::GET, "/v1/profiles/%zz/token"),
            Err(RouteMiss::BadSegment(_))
        ));
        assert_eq!(
            Route::decode(&Method::GET, "/v1/profiles/pro%64/token"),
            Ok(Route::Token { profile: Some("prod".into()) })
        );
        assert_eq!(Route::decode(&Method::GET, "/v1/profiles/_/token"), Ok(Route::Token { profile: None }));
    }
}
