//! OAuth sign-in with Looker, for people who have no API key (`lookerctl login`).
//!
//! The flow is the one Google's own looker-cli uses: the authorization code grant
//! with PKCE S256 at `{base_url}/auth` (scope `cors_api`), the browser redirected to
//! a loopback port this process listens on, the code exchanged at
//! `POST {base_url}/api/token`. What comes out is a refresh token: the credential
//! set's secret, kept in the secret store like an API key's client secret.
//!
//! - [`pkce`]: the verifier, its challenge and the `state` value;
//! - [`callback`]: the one-shot loopback listener the browser comes back to;
//! - [`browser`]: opening the consent page with `$BROWSER` or `xdg-open`;
//! - [`grant`]: using a stored grant (the broker's login for an OAuth credential
//!   set), keeping the rotated refresh token safe.

pub mod browser;
pub mod callback;
pub mod grant;
pub mod pkce;

/// The scope Looker's API access needs.
pub const SCOPE: &str = "cors_api";

/// The OAuth client app `lookerctl login` signs in with unless told otherwise; a
/// Looker admin registers it once per instance (docs/oauth.md).
pub const DEFAULT_CLIENT_GUID: &str = "looker-agent";

/// The credential set name `lookerctl login` stores the grant under unless `--name`.
pub const DEFAULT_CREDENTIAL_NAME: &str = "oauth";

/// The loopback port the redirect comes back to unless told otherwise (the one
/// Google's looker-cli uses too, so SSH users forward one well-known port).
pub const DEFAULT_REDIRECT_PORT: u16 = 7777;

/// The redirect URI for a loopback port, exactly as it must be registered.
pub fn redirect_uri(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// The consent page's URL: `{base_url}/auth?…`.
pub fn authorize_url(
    base_url: &str,
    client_guid: &str,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_guid)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", SCOPE)
        .append_pair("state", state)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    format!("{}/auth?{query}", base_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consent_url_carries_every_parameter() {
        let url = authorize_url("https://l.example.com/", "looker-agent", &redirect_uri(7777), "s t", "ch");
        assert_eq!(
            url,
            "https://l.example.com/auth?response_type=code&client_id=looker-agent\
             &redirect_uri=http%3A%2F%2F127.0.0.1%3A7777&scope=cors_api&state=s+t\
             &code_challenge=ch&code_challenge_method=S256"
        );
    }
}
