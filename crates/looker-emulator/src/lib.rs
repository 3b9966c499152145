//! looker-emulator: a stand-in for the Looker API, for `looker-agent --dev`
//! (the agent's `dev-emulator` feature), its integration tests and benchmarks.
//! A crate of its own so that none of it ships in the agent unless dev mode is
//! built in; it knows nothing of the agent.
//!
//! It speaks the part of Looker 4.0 the agent and the official SDKs use,
//! with Looker's paths, statuses and bodies (checked against the Python
//! `looker_sdk` by `tests/python_sdk.rs`):
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /api/4.0/login`, form body (or query) `client_id`, `client_secret` | `200 {"access_token","token_type":"Bearer","expires_in","refresh_token":null}`; wrong or missing credentials `404`; unparsable form `400` |
//! | `POST /api/4.0/login/{user_id}` (sudo, `?associative=` ignored) with an admin's token | the login answer, a new token acting as that user (counted in `sudo_logins`, not `logins`); caller not an admin `403`; unknown user `404` |
//! | `DELETE /api/4.0/logout`, `DELETE /api/logout` (the Python SDK's) | `204`, revoking only that token (a sudo token's logout leaves the admin's); unknown, revoked or expired token `404`; no token `401` |
//! | `GET /api/4.0/user` | the user the token acts as (`?fields=a,b` honoured) |
//! | `GET /api/4.0/users/{id}`, `GET /api/4.0/users/{id}/roles` | a known user (of a credential, [`Emulator::add_user`] or [`Emulator::set_oauth_user`]) and its roles (`Admin`, id `"2"`, for admins); the user's `credentials_api3` are its keys |
//! | `GET /api/4.0/session` | `{"can":{…},"workspace_id":"production"\|"dev","sudo_user_id":null\|"<admin's id>"}` (Looker's ApiSession: `sudo_user_id` is the actual user behind a sudo token) |
//! | `PATCH /api/4.0/session`, JSON `{"workspace_id":"dev"\|"production"}` | moves THAT TOKEN only (at Looker the workspace belongs to the token; new tokens start in production); answers the session; another value `422` Validation Failed; a body that is not a JSON object `400` |
//! | `GET /api/4.0/lookml_models`, `GET /api/4.0/lookml_models/{name}` | one model, `thelook`, with explores `order_items` and `users` (what looker-mcp-server's `list_models`/`get_model` read); another name `404` |
//! | `GET /api/4.0/emulator/download?bytes=N` | `200 application/octet-stream`, `Content-Length: N`, byte `i` = `(i % 251) as u8`, generated as it is sent; bad or missing `bytes` `400`. Fault knobs: `&cut_at=M` breaks the body off after M bytes (the connection is dropped mid-body), `&chunked=1` frames it in chunks with no length |
//! | `POST /api/4.0/emulator/upload` | reads the body as it streams in (never whole), `200 {"bytes":N,"pattern_ok":true\|false}` against the same pattern |
//! | `GET /api/4.0/users/{id}/credentials_api3` | the user's API3 keys, `[CredentialsApi3]` (`can`, `id`, `client_id`, `created_at` like `2024-01-01T00:00:00.000+00:00`, `is_disabled`, `type:"api3"`, `purpose`, `url`), never a secret |
//! | `GET /api/4.0/users/{id}/credentials_api3/{key_id}` | one key, same shape; not that user's key `404` |
//! | `POST /api/4.0/users/{id}/credentials_api3`, no body or JSON `{"purpose":…}` | `200` CreateCredentialsApi3: the same plus `client_secret`, the ONLY answer that holds it; the new key (20-character client_id, 24-character secret) logs in at once; another body `400` |
//! | `DELETE /api/4.0/users/{id}/credentials_api3/{key_id}` | `204`, empty; the key no longer logs in (`404`); the tokens it issued stay live until they expire (Looker's docs do not say they are revoked, so a client must log them out itself; [`Emulator::set_api3_delete_revokes_tokens`] revokes them instead); unknown key `404` |
//! | (the four above, who may) | the caller's own user when self-service is on (the default; [`Emulator::set_api3_self_service`]), any user when the caller is an admin; else `403`; an admin naming an unknown user `404`; no live token `401`. Sudo and OAuth tokens count as the user they act as |
//! | `GET /auth?response_type=code&client_id=GUID&redirect_uri=URI&scope=cors_api&state=S&code_challenge=C&code_challenge_method=S256` | `200 text/html`, the consent page of the user signed in ([`Emulator::set_oauth_user`]): a `<form id="consent" method="post" action="/auth/decision">` with a hidden `consent` id and two submit buttons `id="allow"`/`id="deny"` (`name="decision"`). An unknown client_id, a redirect_uri other than the one registered for it ([`Emulator::register_oauth_app`], exact match), a missing or non-`S256` method, a missing or malformed challenge, nobody signed in: `400` error page, never a redirect. Trusted app and redirect but `response_type` not `code`, or a scope without `cors_api`: `302` to `URI?error=unsupported_response_type\|invalid_scope&error_description=…&state=S` |
//! | `POST /auth/decision`, form `consent=ID&decision=allow\|deny` | Allow: `302` to `URI?code=CODE&state=S` (the code lives 5 minutes on the emulator's clock); Deny: `302` to `URI?error=access_denied&error_description=…&state=S`; `state` left out when the app sent none; an unknown or already answered consent id (each page answers once, and lives 10 minutes) `400` page |
//! | `POST /api/token`, JSON (what gzr sends) or form: `grant_type=authorization_code`, `client_id`, `redirect_uri`, `code`, `code_verifier` | `200 {"access_token","token_type":"Bearer","expires_in","refresh_token"}` (`Cache-Control: no-store`) when the code is this app's, unexpired, never presented before, `redirect_uri` equal to the authorization's and `BASE64URL(SHA256(verifier))` equal to the challenge; the access token acts as the approving user. Else `400 {"error":"invalid_grant","error_description":…}`. A code is spent by its first presentation, right or wrong; presenting an exchanged code again also revokes what it gave (RFC 6749 §4.1.2) |
//! | `POST /api/token`: `grant_type=refresh_token`, `client_id`, `refresh_token` | the same answer with a new access token; the refresh token is rotated (a new one answered, the old one refused from then on, no grace) unless [`Emulator::set_rotate_refresh_tokens`]`(false)`, then the same one comes back. Unknown, rotated or revoked ([`Emulator::revoke_oauth_grants`]) token, or another app's: `400 invalid_grant` |
//! | `POST /api/token` errors | missing fields or a body that is neither a JSON object nor a form `400 invalid_request`; other grant types `400 unsupported_grant_type`; unregistered client_id `401 invalid_client`; faults: `login_status` N (and [`OneShotFault::Status`]) answer N with `temporarily_unavailable` (503), `invalid_request` (4xx) or `server_error` |
//! | `GET /alive` | `200`, no token needed |
//! | `GET /versions`, `GET /api/4.0/versions` | Looker's ApiVersion (`looker_release_version`, `current_version{version,full_version,status,swagger_url}`, `supported_versions`, `api_server_url`, `web_server_url`), the URLs built from the `Host` the client used; no token needed |
//! | anything else | `404 {"message":"Not found","documentation_url":…}` |
//!
//! The two `emulator/` routes are not Looker's: they carry large bodies
//! for the gateway's streaming tests and benchmarks.
//!
//! ## OAuth
//!
//! Looker's OAuth, as Google's looker-cli (gzr, `internal/client/oauth.go`)
//! uses it: PKCE S256 with 32 random bytes as verifier, `scope=cors_api`,
//! the code exchanged with a JSON body. A Looker admin registers the app
//! (`register_oauth_client_app`: a `client_guid`, looker-agent's default is
//! `looker-agent`, and one exact `redirect_uri`); here that is
//! [`Emulator::register_oauth_app`]. The approving user is whoever is
//! signed in to the web UI: [`Emulator::set_oauth_user`] (or
//! [`Emulator::set_oauth_user_id`] for a credential's user); the tokens act
//! as that user, show in [`Emulator::live_tokens`] as [`TokenKind::OAuth`],
//! count in `Counters::live_tokens` (not in `logins`) and in
//! [`Emulator::oauth_counters`]. [`Emulator::refresh_tokens`] lists the
//! live refresh tokens (to check where a client stored them).
//!
//! A browser completes the consent by itself when
//! [`Emulator::set_consent_auto_submit`]`(true)`: the page then ends with
//! `<script>document.getElementById("allow").click();</script>` (`"deny"`
//! when the `/auth` URL also carries `&auto=deny`; without the knob the
//! query does nothing). Headless Chromium then posts the form, follows the
//! `302` to the redirect URI and prints that page's DOM, e.g. as `$BROWSER`:
//!
//! ```sh
//! #!/bin/sh
//! profile="$(mktemp -d)"; trap 'rm -rf "$profile"' EXIT
//! chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
//!     --disable-background-networking --disable-component-update --disable-sync \
//!     --user-data-dir="$profile" --dump-dom "$1"
//! ```
//!
//! It exits once the redirect target has loaded (about a second); after the
//! callback the browser also asks the redirect's host for `/favicon.ico`.
//! `tests/consent_browser.rs` runs exactly this.
//!
//! ## API3 keys
//!
//! Keys created through `credentials_api3` and keys added with
//! [`Emulator::add_credential`] are the same kind of credential: both log
//! in, both are listed, both can be deleted. Key ids are digits, unique
//! on the emulator. [`Emulator::api3_keys`] lists a user's keys,
//! [`Emulator::api3_counters`] counts those created and deleted through the
//! API, [`Emulator::set_api3_key_created_at`] ages a key.
//!
//! ## One-shot faults
//!
//! [`Emulator::fail_next_api3_create`], [`Emulator::fail_next_api3_delete`],
//! [`Emulator::fail_next_login`] (one client_id) and
//! [`Emulator::fail_next_oauth_token`] spoil exactly the next such request
//! (one that passed the permission check, for the key routes), then disarm:
//! [`OneShotFault::Status`] answers that status and does nothing;
//! [`OneShotFault::DropAfterApplying`] does the work (creates or deletes the
//! key, issues the token, rotates the refresh token) and closes the
//! connection unanswered, so the client cannot know. With strict rotation a
//! refresh answer lost that way leaves the client's refresh token dead.
//! [`Emulator::clear_one_shot_faults`] disarms them all.
//!
//! Every answered request is recorded ([`Emulator::requests`]: method,
//! path without the query, status; the last few thousand), so tests can
//! say exactly what a real client called.
//!
//! API calls take `Authorization: token <t>` or `Authorization: Bearer <t>`;
//! a missing, unknown, revoked or expired token gets
//! `401 {"message":"Requires authentication.",…}`. Tokens are 40 random
//! letters and digits; expiry runs on tokio's clock, so tests may use
//! `tokio::time::pause()`/`advance()`, or [`Emulator::advance_clock`].
//!
//! [`Faults`] make it misbehave the ways a real instance or a proxy in
//! front of it does.
//!
//! It speaks plain HTTP on loopback by default (what `--dev` uses), or HTTPS
//! with a certificate the caller provides ([`Emulator::start_tls`]), for the TLS
//! tests: a private CA, a wrong host name, an expired certificate.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![warn(missing_docs)]

mod api3;
mod api3_http;
mod body;
mod consent_page;
mod handler;
mod model;
mod oauth;
mod oauth_http;
mod one_shot;
mod request_log;
mod state;
mod timestamp;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use handler::Ctx;
use request_log::RequestLog;
use state::State;

/// Pending connections the kernel may queue (capped by `somaxconn`);
/// benchmarks open a thousand at once.
const BACKLOG: u32 = 4096;

/// How long [`Emulator::shutdown`] lets in-flight requests finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// How long a client has to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server certificate (chain, leaf first) and private key of an HTTPS
/// emulator, both PEM. `Debug` leaves the key out.
#[derive(Clone)]
pub struct TlsIdentity {
    /// The certificate chain, PEM, leaf first.
    pub cert_chain_pem: String,
    /// The private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").field("cert_chain_pem", &self.cert_chain_pem).finish_non_exhaustive()
    }
}

impl TlsIdentity {
    fn acceptor(&self) -> io::Result<TlsAcceptor> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {e}"))
        };
        let certs = CertificateDer::pem_slice_iter(self.cert_chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("TLS certificate chain", &e))?;
        if certs.is_empty() {
            return Err(bad("TLS certificate chain", &"no PEM certificate"));
        }
        let key =
            PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| bad("TLS private key", &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("TLS versions", &e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| bad("TLS certificate", &e))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// How the emulator starts out; every knob can be changed later on the
/// running [`Emulator`].
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Lifetime of the tokens issued (Looker's is 3600 s), reported as
    /// `expires_in` in whole seconds.
    pub token_lifetime: Duration,
    /// The faults in force from the start.
    pub faults: Faults,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self { token_lifetime: Duration::from_secs(3600), faults: Faults::default() }
    }
}

/// The Looker user a credential acts as.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmulatorUser {
    /// Looker's user id, a string of digits by convention (`"42"`).
    pub id: String,
    /// Full name; `first_name`/`last_name` are split from it at the first space.
    pub display_name: String,
    /// E-mail address.
    pub email: String,
    /// Whether the user has Looker's Admin role (role id `"2"`); others
    /// get the `User` role (id `"3"`).
    pub is_admin: bool,
}

impl EmulatorUser {
    /// A user without the Admin role.
    pub fn new(id: &str, display_name: &str, email: &str) -> Self {
        Self {
            id: id.to_owned(),
            display_name: display_name.to_owned(),
            email: email.to_owned(),
            is_admin: false,
        }
    }

    /// A user with the Admin role.
    pub fn admin(id: &str, display_name: &str, email: &str) -> Self {
        Self { is_admin: true, ..Self::new(id, display_name, email) }
    }
}

/// What the emulator has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// API logins (`POST /login`) that issued a token (including under
    /// `bad_expires_in`); sudo logins are counted in `sudo_logins`.
    pub logins: u64,
    /// Login requests that issued no token: wrong or missing credentials,
    /// bad bodies, and every login answered by a fault.
    pub failed_logins: u64,
    /// Tokens revoked by a logout (answered `204`).
    pub logouts: u64,
    /// Tokens issued, not revoked and not expired, right now (sudo tokens
    /// included).
    pub live_tokens: u64,
    /// Sudo logins (`POST /login/{user_id}`) that issued a token; not
    /// counted in `logins`.
    pub sudo_logins: u64,
}

/// The dev/production workspace of a token (`GET /session`'s `workspace_id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Workspace {
    /// `"production"`, where every token starts.
    Production,
    /// `"dev"`.
    Dev,
}

impl Workspace {
    /// Looker's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Workspace::Production => "production",
            Workspace::Dev => "dev",
        }
    }

    /// The workspace Looker calls `name`, if any.
    pub fn from_name(name: &str) -> Option<Workspace> {
        match name {
            "production" => Some(Workspace::Production),
            "dev" => Some(Workspace::Dev),
            _ => None,
        }
    }
}

/// How a token was obtained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// `POST /login` with this API credential.
    ApiLogin {
        /// The credential's client_id.
        client_id: String,
    },
    /// `POST /login/{user_id}` with the token of this admin.
    Sudo {
        /// The id of the admin whose token asked.
        admin_user_id: String,
    },
    /// `POST /api/token` (an authorization code or a refresh token) for
    /// this OAuth client app.
    OAuth {
        /// The app's client_guid.
        client_guid: String,
    },
}

/// What the OAuth side has done so far ([`Emulator::oauth_counters`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OAuthCounters {
    /// Consent pages answered Allow (each made an authorization code).
    pub consents_allowed: u64,
    /// Consent pages answered Deny.
    pub consents_denied: u64,
    /// Authorization codes exchanged for tokens (`grant_type=authorization_code`).
    pub oauth_tokens: u64,
    /// Successful `grant_type=refresh_token` requests.
    pub refreshes: u64,
    /// `POST /api/token` requests that issued nothing (refused, or
    /// answered by a fault).
    pub failed_token_requests: u64,
}

/// What the API3 key routes have done so far ([`Emulator::api3_counters`]).
/// Keys added with [`Emulator::add_credential`] are not counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Api3Counters {
    /// Keys created by `POST /users/{id}/credentials_api3`.
    pub created: u64,
    /// Keys deleted by `DELETE /users/{id}/credentials_api3/{key_id}`.
    pub deleted: u64,
}

/// One API3 key, as [`Emulator::api3_keys`] reports it (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Api3KeyInfo {
    /// Looker's credentials_api3 id (digits).
    pub id: String,
    /// The key's client_id.
    pub client_id: String,
    /// The user it acts as.
    pub user_id: String,
    /// When it was created (wall clock; see [`Emulator::set_api3_key_created_at`]).
    pub created_at: SystemTime,
    /// The `purpose` given at creation, if any.
    pub purpose: Option<String>,
}

/// One live OAuth refresh token ([`Emulator::refresh_tokens`]). `Debug`
/// leaves the token out.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshTokenInfo {
    /// The refresh token itself, to look for where a client keeps it.
    pub refresh_token: String,
    /// The app it was issued to.
    pub client_guid: String,
    /// The user who approved.
    pub user_id: String,
}

impl std::fmt::Debug for RefreshTokenInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshTokenInfo")
            .field("client_guid", &self.client_guid)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// How a one-shot fault ([`Emulator::fail_next_login`] and friends)
/// spoils the one request it meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OneShotFault {
    /// Answer with this status (e.g. 503) and Looker's error body, doing
    /// nothing (OAuth's JSON error shape on `POST /api/token`).
    Status(u16),
    /// Do the work (issue the token, create or delete the key, rotate the
    /// refresh token), then close the connection without answering: the
    /// client cannot know it happened.
    DropAfterApplying,
}

/// One live token, as [`Emulator::live_tokens`] reports it. `Debug` leaves
/// the token out.
#[derive(Clone, PartialEq, Eq)]
pub struct LiveTokenInfo {
    /// The access token itself, to match against what a client holds.
    pub token: String,
    /// How it was obtained.
    pub kind: TokenKind,
    /// The user it acts as (the sudo target for a sudo token).
    pub user_id: String,
    /// Its workspace.
    pub workspace: Workspace,
    /// Time left before it expires (on the emulator's clock).
    pub expires_in: Duration,
}

impl std::fmt::Debug for LiveTokenInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveTokenInfo")
            .field("kind", &self.kind)
            .field("user_id", &self.user_id)
            .field("workspace", &self.workspace)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// One request the emulator answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query string (which may carry credentials).
    pub path: String,
    /// The status sent, or `None` when a fault dropped the connection.
    pub status: Option<u16>,
}

impl RequestRecord {
    /// `"METHOD /path"`, handy for comparing with a list of expected calls.
    pub fn call(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Ways to make the emulator misbehave. Replace them all at once with
/// [`Emulator::set_faults`]; the default is a healthy Looker.
///
/// A login meets the knobs in this order: `login_delay`,
/// `drop_connections`, `login_status`, `malformed_body`,
/// `missing_access_token`, then the credential check, then
/// `bad_expires_in`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Answer every login with this status (e.g. 503, 429, 400, 403) and a
    /// Looker-like JSON error body, whatever the credentials.
    pub login_status: Option<u16>,
    /// Seconds for a `Retry-After` header on the `login_status` answers.
    pub retry_after: Option<u64>,
    /// Wait this long (on tokio's clock) before answering a login.
    pub login_delay: Duration,
    /// Wait this long before answering a logout.
    pub logout_delay: Duration,
    /// Wait this long before answering any other request.
    pub api_delay: Duration,
    /// Close the connection without answering, for every request
    /// (after the delay that applies to it).
    pub drop_connections: bool,
    /// Answer logins `200` with a body that is not JSON.
    pub malformed_body: bool,
    /// Answer logins `200` with JSON that lacks `access_token`.
    pub missing_access_token: bool,
    /// Report this `expires_in` (e.g. 0 or -5) on successful logins; the
    /// token issued still lives for the configured lifetime.
    pub bad_expires_in: Option<i64>,
}

/// A running Looker API emulator. Stops serving when shut down or dropped.
///
/// All methods take `&self`; share it behind an `Arc` where several tasks
/// need it.
pub struct Emulator {
    ctx: Arc<Ctx>,
    addr: SocketAddr,
    stop: Option<watch::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Starts an emulator on `127.0.0.1` and a free port.
    pub async fn start(config: EmulatorConfig) -> io::Result<Emulator> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Starts an emulator on the given address (port 0 picks a free one).
    pub async fn start_on(addr: SocketAddr, config: EmulatorConfig) -> io::Result<Emulator> {
        Self::start_with(addr, config, None).await
    }

    /// Starts an HTTPS emulator on `127.0.0.1` and a free port, presenting
    /// `identity`; its [`base_url`](Emulator::base_url) is `https://127.0.0.1:PORT`,
    /// so the certificate should name the IP address `127.0.0.1`.
    pub async fn start_tls(config: EmulatorConfig, identity: &TlsIdentity) -> io::Result<Emulator> {
        let acceptor = identity.acceptor()?;
        Self::start_with(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config, Some(acceptor)).await
    }

    async fn start_with(
        addr: SocketAddr,
        config: EmulatorConfig,
        tls: Option<TlsAcceptor>,
    ) -> io::Result<Emulator> {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(BACKLOG)?;
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let ctx = Arc::new(Ctx {
            state: State::new(config.token_lifetime, config.faults),
            base_url: format!("{scheme}://{addr}"),
            scheme,
            pattern: body::pattern(),
            log: RequestLog::default(),
        });
        let (stop, stopped) = watch::channel(());
        let task = tokio::spawn(serve(listener, Arc::clone(&ctx), stopped, tls));
        tracing::debug!(%addr, "Looker API emulator listening");
        Ok(Emulator { ctx, addr, stop: Some(stop), task: Some(task) })
    }

    /// The base URL to configure a profile or SDK with:
    /// `http://127.0.0.1:PORT` (`https://` with TLS), without `/api/4.0`.
    pub fn base_url(&self) -> String {
        self.ctx.base_url.clone()
    }

    /// The address the emulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Registers (or replaces) an API credential acting as `user`.
    pub fn add_credential(&self, client_id: &str, client_secret: &str, user: EmulatorUser) {
        self.ctx.state.add_credential(client_id, client_secret, user);
    }

    /// Forgets a credential: its next logins answer `404`. Tokens it
    /// already obtained stay valid until they expire or are revoked.
    pub fn remove_credential(&self, client_id: &str) {
        self.ctx.state.remove_credential(client_id);
    }

    /// Makes a user known without giving it a key (replacing a known user
    /// with the same id), e.g. the target of an admin's key management.
    pub fn add_user(&self, user: EmulatorUser) {
        self.ctx.state.add_user(user);
    }

    /// The API3 keys of a user, by id, whether added with
    /// [`add_credential`](Emulator::add_credential) or created through the API.
    pub fn api3_keys(&self, user_id: &str) -> Vec<Api3KeyInfo> {
        self.ctx.state.api3_keys(user_id)
    }

    /// Keys created and deleted through the API so far.
    pub fn api3_counters(&self) -> Api3Counters {
        self.ctx.state.api3_counters()
    }

    /// Turns Looker's API key self-service on (the default) or off: when
    /// off, a non-admin gets `403` even for its own keys.
    pub fn set_api3_self_service(&self, on: bool) {
        self.ctx.state.set_api3_self_service(on);
    }

    /// Whether deleting a key also revokes the access tokens it issued
    /// (off by default: they live on until they expire, which is what a
    /// client must be ready for).
    pub fn set_api3_delete_revokes_tokens(&self, on: bool) {
        self.ctx.state.set_api3_delete_revokes_tokens(on);
    }

    /// Sets a key's `created_at` (to age it for `rotate_after` tests);
    /// false for an unknown client_id.
    pub fn set_api3_key_created_at(&self, client_id: &str, at: SystemTime) -> bool {
        self.ctx.state.set_api3_key_created_at(client_id, at)
    }

    /// Registers (or re-registers) an OAuth client app, as a Looker admin
    /// does with `register_oauth_client_app`: `/auth` accepts exactly this
    /// `redirect_uri` for it. looker-agent's default guid is `looker-agent`.
    pub fn register_oauth_app(&self, client_guid: &str, redirect_uri: &str) {
        self.ctx.state.register_oauth_app(client_guid, redirect_uri);
    }

    /// The user signed in to the emulator's web UI: the one who approves on
    /// the consent page, and whom the OAuth tokens act as. Also makes the
    /// user known (as [`add_user`](Emulator::add_user)).
    pub fn set_oauth_user(&self, user: EmulatorUser) {
        self.ctx.state.set_oauth_user(user);
    }

    /// Like [`set_oauth_user`](Emulator::set_oauth_user) with a user already
    /// known by id (a credential's); false (and nobody signed in) when unknown.
    pub fn set_oauth_user_id(&self, user_id: &str) -> bool {
        self.ctx.state.set_oauth_user_id(user_id)
    }

    /// Whether a refresh hands out a new refresh token and retires the old
    /// one at once (on by default, no grace period); off, the same refresh
    /// token is returned and stays valid.
    pub fn set_rotate_refresh_tokens(&self, on: bool) {
        self.ctx.state.set_rotate_refresh_tokens(on);
    }

    /// When on, every consent page clicks a button by itself as it loads:
    /// Allow, or Deny when the `/auth` URL carries `auto=deny`. Off by
    /// default. It lets a real headless browser complete a sign-in.
    pub fn set_consent_auto_submit(&self, on: bool) {
        self.ctx.state.set_consent_auto_submit(on);
    }

    /// Revokes every OAuth grant the user gave: its refresh tokens, the
    /// access tokens they produced and codes not yet exchanged (what a
    /// Looker admin's `tokens_invalid_before` or disabling the app does).
    /// Returns how many grants there were.
    pub fn revoke_oauth_grants(&self, user_id: &str) -> usize {
        self.ctx.state.revoke_oauth_grants(user_id)
    }

    /// The live OAuth refresh tokens.
    pub fn refresh_tokens(&self) -> Vec<RefreshTokenInfo> {
        self.ctx.state.refresh_tokens()
    }

    /// What the OAuth side has done so far.
    pub fn oauth_counters(&self) -> OAuthCounters {
        self.ctx.state.oauth_counters()
    }

    /// Spoils the next `POST /users/{id}/credentials_api3` (whoever sends
    /// it); replaces a fault already armed for it.
    pub fn fail_next_api3_create(&self, fault: OneShotFault) {
        self.ctx.state.fail_next_api3_create(fault);
    }

    /// Spoils the next `DELETE /users/{id}/credentials_api3/{key_id}`.
    pub fn fail_next_api3_delete(&self, fault: OneShotFault) {
        self.ctx.state.fail_next_api3_delete(fault);
    }

    /// Spoils the next `POST /login` naming `client_id` (other client_ids
    /// are not affected); counted in `failed_logins` unless it issued a token.
    pub fn fail_next_login(&self, client_id: &str, fault: OneShotFault) {
        self.ctx.state.fail_next_login(client_id, fault);
    }

    /// Spoils the next `POST /api/token`, whatever its grant.
    pub fn fail_next_oauth_token(&self, fault: OneShotFault) {
        self.ctx.state.fail_next_oauth_token(fault);
    }

    /// Disarms every one-shot fault not yet met.
    pub fn clear_one_shot_faults(&self) {
        self.ctx.state.clear_one_shot_faults();
    }

    /// The counters as of now.
    pub fn counters(&self) -> Counters {
        self.ctx.state.counters()
    }

    /// How many authenticated API calls (other than login and logout)
    /// were answered with data.
    pub fn api_calls(&self) -> u64 {
        self.ctx.state.api_calls()
    }

    /// Whether the token was issued here and is neither revoked nor expired.
    pub fn is_live(&self, token: &str) -> bool {
        self.ctx.state.is_live(token)
    }

    /// Sets the lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, d: Duration) {
        self.ctx.state.set_token_lifetime(d);
    }

    /// Replaces all the fault knobs.
    pub fn set_faults(&self, f: Faults) {
        self.ctx.state.set_faults(f);
    }

    /// The fault knobs in force.
    pub fn faults(&self) -> Faults {
        self.ctx.state.faults()
    }

    /// Moves the emulator's own clock forward, so tokens expire sooner than
    /// their holders expect (like a Looker whose clock runs ahead, or a
    /// token revoked by its lifetime while the client slept).
    pub fn advance_clock(&self, by: Duration) {
        self.ctx.state.advance_clock(by);
    }

    /// Revokes every token, as an admin or a Looker restart would; returns
    /// how many were live. Does not count as logouts.
    pub fn revoke_all(&self) -> usize {
        self.ctx.state.revoke_all()
    }

    /// Every live token with how it was obtained, the user it acts as and
    /// its workspace, in no meaningful order.
    pub fn live_tokens(&self) -> Vec<LiveTokenInfo> {
        self.ctx.state.live_tokens()
    }

    /// What the emulator knows about `token`, when it is live.
    pub fn token_info(&self, token: &str) -> Option<LiveTokenInfo> {
        self.ctx.state.token_info(token)
    }

    /// The requests answered so far (at most the last 4096), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.ctx.log.snapshot()
    }

    /// Forgets the recorded requests (the counters stay).
    pub fn clear_requests(&self) {
        self.ctx.log.clear();
    }

    /// Stops accepting connections, lets in-flight requests finish (for at
    /// most a second), closes every connection and releases the port.
    pub async fn shutdown(mut self) {
        drop(self.stop.take());
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                tracing::debug!(error = %e, "emulator task ended abnormally");
            }
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // Dropping the sender tells the accept loop and every connection to
        // stop; they wind down on their own.
        drop(self.stop.take());
    }
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// The accept loop: one task per connection, until told to stop.
async fn serve(
    listener: TcpListener,
    ctx: Arc<Ctx>,
    mut stop: watch::Receiver<()>,
    tls: Option<TlsAcceptor>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    // Answers are small; do not let Nagle hold them back.
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(error = %e, "emulator: TCP_NODELAY");
                    }
                    let (ctx, stop) = (Arc::clone(&ctx), stop.clone());
                    match &tls {
                        None => {
                            conns.spawn(connection(stream, ctx, stop));
                        }
                        Some(acceptor) => {
                            let handshake = acceptor.accept(stream);
                            conns.spawn(async move {
                                // A client that rejects our certificate ends here, as it should.
                                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
                                    Ok(Ok(tls_stream)) => connection(tls_stream, ctx, stop).await,
                                    Ok(Err(e)) => tracing::debug!(error = %e, "emulator: TLS handshake failed"),
                                    Err(_) => tracing::debug!("emulator: TLS handshake timed out"),
                                }
                            });
                        }
                    }
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off a little.
                    tracing::warn!(error = %e, "emulator: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drained =
        tokio::time::timeout(SHUTDOWN_GRACE, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::debug!(left = conns.len(), "emulator: aborting slow connections");
        conns.shutdown().await;
    }
}

/// Serves one keep-alive connection, shutting it down gracefully on stop.
async fn connection<S>(stream: S, ctx: Arc<Ctx>, mut stop: watch::Receiver<()>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| handler::handle(Arc::clone(&ctx), req));
    let conn = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::trace!(error = %e, "emulator connection ended");
                }
                break;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
