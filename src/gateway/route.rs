//! Which Looker call a gateway request is: the few the gateway answers itself
//! (login, sudo, logout, the workspace switch) and everything else, forwarded.
//! Paths are Looker's own; the gateway's only addition is the optional
//! `/looker/{profile}` prefix (on the socket door it is required).

use hyper::Method;
use std::borrow::Cow;

/// The agent-socket path prefix of the gateway: `/looker/{profile}/{looker path}`.
pub const PREFIX: &str = "/looker/";

/// What a request asks of Looker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call<'a> {
    /// `POST /api/{ver}/login`: emulated with a gateway credential.
    Login,
    /// `POST /api/{ver}/login/{user_id}`: a sudo session.
    Sudo(Cow<'a, str>),
    /// `DELETE /api/{ver}/logout` or `DELETE /api/logout`: ends that session only.
    Logout,
    /// `PATCH /api/{ver}/session`: the workspace switch, per session.
    SetWorkspace,
    /// `/alive`, `/versions`, `/api/{ver}/versions`: Looker answers these without a token.
    Open,
    /// Anything else: forwarded with the session's real token.
    Api,
}

/// Classifies `method` and `path` (the Looker path, prefix removed).
pub fn classify<'a>(method: &Method, path: &'a str) -> Call<'a> {
    let mut segs = path.trim_start_matches('/').split('/');
    let first = segs.next().unwrap_or("");
    let rest: Vec<&str> = segs.collect();
    if first != "api" {
        let open = matches!(first, "alive" | "versions") && rest.iter().all(|s| s.is_empty());
        return if open && (*method == Method::GET || *method == Method::HEAD) {
            Call::Open
        } else {
            Call::Api
        };
    }
    match (method, rest.as_slice()) {
        (&Method::DELETE, ["logout"]) => Call::Logout,
        (_, [ver, ..]) if !is_version(ver) => Call::Api,
        (&Method::POST, [_, "login"]) => Call::Login,
        (&Method::POST, [_, "login", id]) if !id.is_empty() => {
            let id = percent_encoding::percent_decode_str(id).decode_utf8_lossy();
            Call::Sudo(id)
        }
        (&Method::DELETE, [_, "logout"]) => Call::Logout,
        (&Method::PATCH, [_, "session"]) => Call::SetWorkspace,
        (&Method::GET | &Method::HEAD, [_, "versions"]) => Call::Open,
        _ => Call::Api,
    }
}

/// `4.0`, `3.1`: an API version segment.
fn is_version(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') && s.as_bytes()[0].is_ascii_digit()
}

/// Splits `/looker/{profile}/{rest}` into the profile and `/{rest}`; `None` when the
/// path has no such prefix. A `:PORT` after the profile is ignored: tools that build
/// `{base_url}:{port}/api/...` themselves (spectacles) produce `/looker/prod:19999/api/...`
/// from a base URL of `http://127.0.0.1:PORT/looker/prod`.
pub fn split_prefix(path: &str) -> Option<(Cow<'_, str>, &str)> {
    let after = path.strip_prefix(PREFIX)?;
    let (seg, rest) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, "/"),
    };
    let seg = match seg.rfind(':') {
        Some(i) if seg[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &seg[..i],
        _ => seg,
    };
    if seg.is_empty() {
        return None;
    }
    Some((percent_encoding::percent_decode_str(seg).decode_utf8_lossy(), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls() {
        assert_eq!(classify(&Method::POST, "/api/4.0/login"), Call::Login);
        assert_eq!(classify(&Method::POST, "/api/3.1/login"), Call::Login);
        assert_eq!(classify(&Method::POST, "/api/4.0/login/42"), Call::Sudo("42".into()));
        assert_eq!(classify(&Method::DELETE, "/api/4.0/logout"), Call::Logout);
        assert_eq!(classify(&Method::DELETE, "/api/logout"), Call::Logout);
        assert_eq!(classify(&Method::PATCH, "/api/4.0/session"), Call::SetWorkspace);
        assert_eq!(classify(&Method::GET, "/api/4.0/session"), Call::Api);
        assert_eq!(classify(&Method::GET, "/alive"), Call::Open);
        assert_eq!(classify(&Method::GET, "/versions"), Call::Open);
        assert_eq!(classify(&Method::GET, "/api/4.0/versions"), Call::Open);
        assert_eq!(classify(&Method::POST, "/alive"), Call::Api);
        assert_eq!(classify(&Method::GET, "/api/4.0/user"), Call::Api);
        assert_eq!(classify(&Method::GET, "/api/4.0/login"), Call::Api);
        assert_eq!(classify(&Method::POST, "/api/x/login"), Call::Api);
    }

    #[test]
    fn prefixes() {
        assert_eq!(split_prefix("/looker/prod/api/4.0/user"), Some(("prod".into(), "/api/4.0/user")));
        assert_eq!(split_prefix("/looker/prod:19999/api/4.0/"), Some(("prod".into(), "/api/4.0/")));
        assert_eq!(split_prefix("/looker/pr%20od/alive"), Some(("pr od".into(), "/alive")));
        assert_eq!(split_prefix("/looker/prod"), Some(("prod".into(), "/")));
        assert_eq!(split_prefix("/looker//x"), None);
        assert_eq!(split_prefix("/api/4.0/user"), None);
    }
}
