//! OAuth sign-in, as Looker does it for its registered OAuth client apps
//! (and as Google's looker-cli, gzr, uses it): the authorization code flow
//! with PKCE S256 at `/auth`, the code and refresh-token grants at
//! `POST /api/token`, refresh tokens rotated on use. This file holds the
//! rules and the bookkeeping; `oauth_http.rs` speaks HTTP.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use tokio::time::Instant;

use super::state::{random_token, State};
use super::{EmulatorUser, OAuthCounters, RefreshTokenInfo, TokenKind};

/// How long a consent page stays answerable.
const CONSENT_LIFETIME: Duration = Duration::from_secs(600);
/// How long an authorization code may be exchanged (RFC 6749 advises at
/// most ten minutes).
const CODE_LIFETIME: Duration = Duration::from_secs(300);
/// Length of codes, consent ids and refresh tokens.
const SECRET_LEN: usize = 40;
/// The scope Looker's API access needs (what gzr asks for).
pub(crate) const SCOPE: &str = "cors_api";

/// The OAuth tables and knobs.
pub(crate) struct OAuth {
    /// Registered client apps: client_guid -> redirect_uri.
    pub(crate) apps: HashMap<String, String>,
    /// The user signed in to the emulator's "web UI", who approves.
    pub(crate) approver: Option<Arc<EmulatorUser>>,
    /// Whether a refresh hands out a new refresh token and retires the old.
    pub(crate) rotate_refresh_tokens: bool,
    /// Whether consent pages click a button by themselves (`?auto=`).
    pub(crate) consent_auto_submit: bool,
    /// Consent pages shown and not yet answered, by their form's id.
    pending: HashMap<String, Authorization>,
    /// Codes issued and not yet exchanged.
    codes: HashMap<String, Authorization>,
    /// Codes presented once, with the grant they produced, if any.
    spent_codes: HashMap<String, Option<u64>>,
    grants: HashMap<u64, Grant>,
    /// Live refresh tokens -> their grant.
    refresh_tokens: HashMap<String, u64>,
    last_grant: u64,
    pub(crate) counters: OAuthCounters,
}

impl Default for OAuth {
    fn default() -> Self {
        Self {
            apps: HashMap::new(),
            approver: None,
            rotate_refresh_tokens: true,
            consent_auto_submit: false,
            pending: HashMap::new(),
            codes: HashMap::new(),
            spent_codes: HashMap::new(),
            grants: HashMap::new(),
            refresh_tokens: HashMap::new(),
            last_grant: 0,
            counters: OAuthCounters::default(),
        }
    }
}

/// One authorization request, from the consent page to the code exchange.
#[derive(Clone)]
pub(crate) struct Authorization {
    pub(crate) client_guid: String,
    pub(crate) redirect_uri: String,
    pub(crate) state: Option<String>,
    challenge: String,
    pub(crate) user: Arc<EmulatorUser>,
    expires_at: Instant,
}

/// A user's approval of an app: what a refresh token stands for.
struct Grant {
    client_guid: String,
    user: Arc<EmulatorUser>,
}

/// The query of `GET /auth`.
#[derive(Default)]
pub(crate) struct AuthorizeParams {
    pub(crate) response_type: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) redirect_uri: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) state: Option<String>,
    pub(crate) code_challenge: Option<String>,
    pub(crate) code_challenge_method: Option<String>,
}

/// Why `/auth` shows no consent page.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AuthorizeRefusal {
    /// The app or its redirect cannot be trusted (or nobody can approve):
    /// an error page, never a redirect.
    Page(String),
    /// The app is known and the redirect registered: tell the app.
    Redirect {
        /// Where to.
        redirect_uri: String,
        /// The OAuth error code.
        error: &'static str,
        /// Its description.
        description: String,
        /// The app's state, echoed.
        state: Option<String>,
    },
}

/// What the consent page shows and posts back.
pub(crate) struct Consent {
    /// The form's id, posted back with the decision.
    pub(crate) id: String,
    pub(crate) authorization: Authorization,
}

/// A successful answer of `POST /api/token`.
pub(crate) struct Tokens {
    pub(crate) access_token: String,
    pub(crate) lifetime: Duration,
    pub(crate) refresh_token: String,
}

/// A refused `POST /api/token`, in OAuth's terms (RFC 6749 §5.2).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TokenRefusal {
    pub(crate) status: u16,
    pub(crate) error: &'static str,
    pub(crate) description: &'static str,
}

impl TokenRefusal {
    fn invalid_grant(description: &'static str) -> Self {
        Self { status: 400, error: "invalid_grant", description }
    }

    pub(crate) fn invalid_request(description: &'static str) -> Self {
        Self { status: 400, error: "invalid_request", description }
    }
}

/// `BASE64URL(SHA256(verifier))`, PKCE's S256 (RFC 7636 §4.2).
pub(crate) fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

/// RFC 7636's form of a verifier or an S256 challenge: 43 to 128
/// characters of `[A-Za-z0-9-._~]`.
fn well_formed(v: &str) -> bool {
    (43..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Where to send the browser: `base` with `params` appended to its query.
pub(crate) fn redirect_url(base: &str, params: &[(&str, &str)]) -> String {
    let query = serde_urlencoded::to_string(params).unwrap_or_default();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{query}")
}

impl State {
    pub(crate) fn register_oauth_app(&self, client_guid: &str, redirect_uri: &str) {
        self.lock().oauth.apps.insert(client_guid.to_owned(), redirect_uri.to_owned());
    }

    pub(crate) fn set_oauth_user(&self, user: EmulatorUser) {
        let mut tables = self.lock();
        let user = tables.add_user(user);
        tables.oauth.approver = Some(user);
    }

    pub(crate) fn set_oauth_user_id(&self, user_id: &str) -> bool {
        let mut tables = self.lock();
        let user = tables.find_user(user_id);
        let found = user.is_some();
        tables.oauth.approver = user;
        found
    }

    pub(crate) fn set_rotate_refresh_tokens(&self, on: bool) {
        self.lock().oauth.rotate_refresh_tokens = on;
    }

    pub(crate) fn set_consent_auto_submit(&self, on: bool) {
        self.lock().oauth.consent_auto_submit = on;
    }

    pub(crate) fn consent_auto_submit(&self) -> bool {
        self.lock().oauth.consent_auto_submit
    }

    pub(crate) fn oauth_counters(&self) -> OAuthCounters {
        self.lock().oauth.counters
    }

    pub(crate) fn count_failed_token_request(&self) {
        self.lock().oauth.counters.failed_token_requests += 1;
    }

    /// Checks an authorization request; on success the consent page's id.
    pub(crate) fn authorize(&self, p: AuthorizeParams) -> Result<Consent, AuthorizeRefusal> {
        let page = |m: &str| AuthorizeRefusal::Page(m.to_owned());
        let mut tables = self.lock();
        let client_guid =
            p.client_id.filter(|c| !c.is_empty()).ok_or_else(|| page("client_id is missing"))?;
        let registered = tables
            .oauth
            .apps
            .get(&client_guid)
            .cloned()
            .ok_or_else(|| page("client_id is not a registered OAuth client app"))?;
        let redirect_uri = p.redirect_uri.ok_or_else(|| page("redirect_uri is missing"))?;
        if redirect_uri != registered {
            return Err(page("redirect_uri is not the one registered for this app"));
        }
        let to_app = |error: &'static str, description: &str| AuthorizeRefusal::Redirect {
            redirect_uri: redirect_uri.clone(),
            error,
            description: description.to_owned(),
            state: p.state.clone(),
        };
        if p.response_type.as_deref() != Some("code") {
            return Err(to_app("unsupported_response_type", "response_type must be code"));
        }
        match p.code_challenge_method.as_deref() {
            Some("S256") => {}
            None => return Err(page("code_challenge_method is missing (PKCE S256 is required)")),
            Some(_) => return Err(page("code_challenge_method must be S256")),
        }
        let challenge = p
            .code_challenge
            .filter(|c| well_formed(c))
            .ok_or_else(|| page("code_challenge is missing or malformed"))?;
        if !p.scope.as_deref().unwrap_or("").split(' ').any(|s| s == SCOPE) {
            return Err(to_app("invalid_scope", "scope must include cors_api"));
        }
        let user = tables
            .oauth
            .approver
            .clone()
            .ok_or_else(|| page("nobody is signed in to the emulator (Emulator::set_oauth_user)"))?;
        let now = tables.now();
        tables.oauth.pending.retain(|_, a| a.expires_at > now);
        let id = random_token(SECRET_LEN);
        let authorization = Authorization {
            client_guid,
            redirect_uri,
            state: p.state,
            challenge,
            user,
            expires_at: now + CONSENT_LIFETIME,
        };
        tables.oauth.pending.insert(id.clone(), authorization.clone());
        Ok(Consent { id, authorization })
    }

    /// The user's answer on a consent page: the URL to redirect to, or
    /// why there is none (an unknown, answered or stale page).
    pub(crate) fn decide(&self, consent_id: &str, allow: bool) -> Result<String, String> {
        let mut tables = self.lock();
        let now = tables.now();
        let Some(auth) = tables.oauth.pending.remove(consent_id).filter(|a| a.expires_at > now) else {
            return Err("this consent page is unknown, already answered or expired".to_owned());
        };
        let code = allow.then(|| random_token(SECRET_LEN));
        let mut params: Vec<(&str, &str)> = match &code {
            Some(code) => vec![("code", code.as_str())],
            None => vec![("error", "access_denied"), ("error_description", "The user denied access")],
        };
        if let Some(state) = &auth.state {
            params.push(("state", state));
        }
        let url = redirect_url(&auth.redirect_uri, &params);
        match code {
            Some(code) => {
                tables.oauth.counters.consents_allowed += 1;
                tables.oauth.codes.retain(|_, a| a.expires_at > now);
                tables.oauth.codes.insert(code, Authorization { expires_at: now + CODE_LIFETIME, ..auth });
            }
            None => tables.oauth.counters.consents_denied += 1,
        }
        Ok(url)
    }

    /// `grant_type=authorization_code`.
    pub(crate) fn exchange_code(
        &self,
        client_id: &str,
        redirect_uri: &str,
        code: &str,
        verifier: &str,
    ) -> Result<Tokens, TokenRefusal> {
        let mut tables = self.lock();
        if !tables.oauth.apps.contains_key(client_id) {
            return Err(TokenRefusal {
                status: 401,
                error: "invalid_client",
                description: "client_id is not a registered OAuth client app",
            });
        }
        if let Some(grant) = tables.oauth.spent_codes.get(code).copied() {
            // RFC 6749 §4.1.2: a code used twice revokes what it gave.
            if let Some(grant) = grant {
                tables.revoke_grants(|id, _| id == grant);
            }
            return Err(TokenRefusal::invalid_grant("authorization code already used"));
        }
        let Some(auth) = tables.oauth.codes.remove(code) else {
            return Err(TokenRefusal::invalid_grant("unknown authorization code"));
        };
        // Presented once, right or wrong, a code is spent.
        tables.oauth.spent_codes.insert(code.to_owned(), None);
        if auth.expires_at <= tables.now() {
            return Err(TokenRefusal::invalid_grant("authorization code expired"));
        }
        if auth.client_guid != client_id {
            return Err(TokenRefusal::invalid_grant("authorization code was issued to another client"));
        }
        if auth.redirect_uri != redirect_uri {
            return Err(TokenRefusal::invalid_grant("redirect_uri does not match the authorization request"));
        }
        if !well_formed(verifier) || s256(verifier) != auth.challenge {
            return Err(TokenRefusal::invalid_grant("code_verifier does not match the code_challenge"));
        }
        tables.oauth.last_grant += 1;
        let grant = tables.oauth.last_grant;
        tables
            .oauth
            .grants
            .insert(grant, Grant { client_guid: auth.client_guid.clone(), user: Arc::clone(&auth.user) });
        tables.oauth.spent_codes.insert(code.to_owned(), Some(grant));
        let refresh_token = random_token(SECRET_LEN);
        tables.oauth.refresh_tokens.insert(refresh_token.clone(), grant);
        let (access_token, lifetime) =
            tables.issue(auth.user, TokenKind::OAuth { client_guid: auth.client_guid }, Some(grant));
        tables.oauth.counters.oauth_tokens += 1;
        Ok(Tokens { access_token, lifetime, refresh_token })
    }

    /// `grant_type=refresh_token`.
    pub(crate) fn refresh(&self, client_id: &str, refresh_token: &str) -> Result<Tokens, TokenRefusal> {
        let mut tables = self.lock();
        let Some(grant_id) = tables.oauth.refresh_tokens.get(refresh_token).copied() else {
            return Err(TokenRefusal::invalid_grant("unknown, rotated or revoked refresh token"));
        };
        let Some((client_guid, user)) =
            tables.oauth.grants.get(&grant_id).map(|g| (g.client_guid.clone(), Arc::clone(&g.user)))
        else {
            return Err(TokenRefusal::invalid_grant("unknown, rotated or revoked refresh token"));
        };
        if client_guid != client_id {
            return Err(TokenRefusal::invalid_grant("refresh token was issued to another client"));
        }
        let refresh_token = if tables.oauth.rotate_refresh_tokens {
            tables.oauth.refresh_tokens.remove(refresh_token);
            let new = random_token(SECRET_LEN);
            tables.oauth.refresh_tokens.insert(new.clone(), grant_id);
            new
        } else {
            refresh_token.to_owned()
        };
        let (access_token, lifetime) = tables.issue(user, TokenKind::OAuth { client_guid }, Some(grant_id));
        tables.oauth.counters.refreshes += 1;
        Ok(Tokens { access_token, lifetime, refresh_token })
    }

    /// Revokes every grant the user gave (its refresh tokens, the access
    /// tokens they produced, codes not yet exchanged); returns how many grants.
    pub(crate) fn revoke_oauth_grants(&self, user_id: &str) -> usize {
        let mut tables = self.lock();
        tables.oauth.codes.retain(|_, a| a.user.id != user_id);
        tables.revoke_grants(|_, g| g.user.id == user_id)
    }

    /// The live refresh tokens.
    pub(crate) fn refresh_tokens(&self) -> Vec<RefreshTokenInfo> {
        let tables = self.lock();
        let mut live: Vec<RefreshTokenInfo> = tables
            .oauth
            .refresh_tokens
            .iter()
            .filter_map(|(token, id)| {
                tables.oauth.grants.get(id).map(|g| RefreshTokenInfo {
                    refresh_token: token.clone(),
                    client_guid: g.client_guid.clone(),
                    user_id: g.user.id.clone(),
                })
            })
            .collect();
        live.sort_by(|a, b| a.refresh_token.cmp(&b.refresh_token));
        live
    }
}

impl super::state::Tables {
    /// Drops the grants `which` picks, their refresh tokens and access tokens.
    fn revoke_grants(&mut self, which: impl Fn(u64, &Grant) -> bool) -> usize {
        let gone: Vec<u64> =
            self.oauth.grants.iter().filter(|(id, g)| which(**id, g)).map(|(id, _)| *id).collect();
        for id in &gone {
            self.oauth.grants.remove(id);
        }
        self.oauth.refresh_tokens.retain(|_, g| !gone.contains(g));
        self.tokens.retain(|_, t| t.grant.is_none_or(|g| !gone.contains(&g)));
        gone.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_pythons_hashlib() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K9uhvzPU8Sc7wHb6nm5h5QYmvw"),
            // python3: base64.urlsafe_b64encode(hashlib.sha256(v).digest()).rstrip(b"=")
            "p1-q4t94ovRDXgNceEMkJYC3VS0HCafIe1vK1QXUtnY"
        );
    }

    #[test]
    fn redirects_keep_an_existing_query() {
        assert_eq!(
            redirect_url("http://127.0.0.1:7777", &[("code", "a b")]),
            "http://127.0.0.1:7777?code=a+b"
        );
        assert_eq!(redirect_url("http://h/cb?x=1", &[("state", "s")]), "http://h/cb?x=1&state=s");
    }
}
