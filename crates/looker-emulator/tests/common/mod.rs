//! What the OAuth and API3 test files share: an emulator with users, a
//! client that does not follow redirects, PKCE as gzr makes it, and the
//! steps of a sign-in.
// Each test file uses part of it.
#![allow(dead_code)]

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use looker_emulator::{Emulator, EmulatorConfig, EmulatorUser};
use rand::RngCore;
use reqwest::{Client, StatusCode};
use serde_json::Value;

/// Ada, user 7, a non-admin with one key.
pub const ADA_ID: &str = "abcdef0123456789";
pub const ADA_SECRET: &str = "s3cr3t-s3cr3t";
/// Grace, user 1, an admin with one key.
pub const ADMIN_ID: &str = "admin-id";
pub const ADMIN_SECRET: &str = "admin-secret";
/// The app looker-agent registers by default, and where it is redirected.
pub const GUID: &str = "looker-agent";
pub const REDIRECT: &str = "http://127.0.0.1:7777/callback";

pub async fn emulator() -> Emulator {
    let emu = Emulator::start(EmulatorConfig::default()).await.expect("start emulator");
    emu.add_credential(ADA_ID, ADA_SECRET, EmulatorUser::new("7", "Ada Lovelace", "ada@example.com"));
    emu.add_credential(ADMIN_ID, ADMIN_SECRET, EmulatorUser::admin("1", "Grace Hopper", "grace@example.com"));
    emu
}

/// An emulator where `looker-agent` is registered with [`REDIRECT`] and
/// Ada is signed in to approve.
pub async fn oauth_emulator() -> Emulator {
    let emu = emulator().await;
    emu.register_oauth_app(GUID, REDIRECT);
    assert!(emu.set_oauth_user_id("7"));
    emu
}

/// A client that shows redirects instead of following them.
pub fn client() -> Client {
    Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// `(verifier, challenge)` as gzr's generatePKCE makes them: 32 random
/// bytes, base64url; the challenge is base64url(sha256(verifier)).
pub fn pkce() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()));
    (verifier, challenge)
}

/// The `/auth` URL gzr opens (plus a state, which lookerctl sends).
pub fn auth_url(base: &str, client_id: &str, redirect_uri: &str, state: &str, challenge: &str) -> String {
    let query = serde_urlencoded::to_string([
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("response_type", "code"),
        ("scope", "cors_api"),
        ("state", state),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ])
    .expect("query");
    format!("{base}/auth?{query}")
}

/// The consent form's hidden id, from the page.
pub fn consent_id(page: &str) -> String {
    let marker = "name=\"consent\" value=\"";
    let start = page.find(marker).expect("consent field") + marker.len();
    let len = page[start..].find('"').expect("end of value");
    page[start..start + len].to_owned()
}

/// The query parameters of a redirect's `Location`.
pub fn location_params(resp: &reqwest::Response) -> (String, Vec<(String, String)>) {
    let location = resp.headers().get("location").expect("Location").to_str().expect("ascii").to_owned();
    let (base, query) = location.split_once('?').expect("a query");
    (base.to_owned(), serde_urlencoded::from_str(query).expect("query"))
}

pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Shows the consent page for `challenge` and answers it; the redirect.
pub async fn consent(emu: &Emulator, state: &str, challenge: &str, decision: &str) -> reqwest::Response {
    let c = client();
    let page =
        c.get(auth_url(&emu.base_url(), GUID, REDIRECT, state, challenge)).send().await.expect("GET /auth");
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.expect("page");
    c.post(format!("{}/auth/decision", emu.base_url()))
        .form(&[("consent", consent_id(&page).as_str()), ("decision", decision)])
        .send()
        .await
        .expect("POST /auth/decision")
}

/// Allows on the consent page; the code.
pub async fn code(emu: &Emulator, challenge: &str) -> String {
    let resp = consent(emu, "st", challenge, "allow").await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let (_, params) = location_params(&resp);
    param(&params, "code").expect("code").to_owned()
}

/// `POST /api/token` with a JSON body, as gzr sends it.
pub async fn token_request(emu: &Emulator, body: Value) -> reqwest::Response {
    client().post(format!("{}/api/token", emu.base_url())).json(&body).send().await.expect("POST /api/token")
}

/// Exchanges a code (gzr's body).
pub async fn exchange(emu: &Emulator, code: &str, verifier: &str) -> reqwest::Response {
    token_request(
        emu,
        serde_json::json!({
            "grant_type": "authorization_code",
            "client_id": GUID,
            "redirect_uri": REDIRECT,
            "code": code,
            "code_verifier": verifier,
        }),
    )
    .await
}

/// Refreshes (gzr's body).
pub async fn refresh(emu: &Emulator, refresh_token: &str) -> reqwest::Response {
    token_request(
        emu,
        serde_json::json!({ "grant_type": "refresh_token", "client_id": GUID, "refresh_token": refresh_token }),
    )
    .await
}

/// A whole sign-in; the `(access_token, refresh_token)`.
pub async fn sign_in(emu: &Emulator) -> (String, String) {
    let (verifier, challenge) = pkce();
    let code = code(emu, &challenge).await;
    let resp = exchange(emu, &code, &verifier).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    (
        body["access_token"].as_str().expect("access").to_owned(),
        body["refresh_token"].as_str().expect("refresh").to_owned(),
    )
}

/// The error code of an OAuth error answer, after checking its shape.
pub async fn oauth_error(resp: reqwest::Response, status: StatusCode) -> String {
    assert_eq!(resp.status(), status);
    let body: Value = resp.json().await.expect("json");
    assert!(body["error_description"].is_string(), "{body}");
    body["error"].as_str().expect("error").to_owned()
}

/// `GET path` with a token.
pub async fn get(emu: &Emulator, path: &str, token: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", emu.base_url()))
        .header("Authorization", format!("token {token}"))
        .send()
        .await
        .expect("GET")
}

/// An API login; the response.
pub async fn login(emu: &Emulator, id: &str, secret: &str) -> reqwest::Response {
    client()
        .post(format!("{}/api/4.0/login", emu.base_url()))
        .form(&[("client_id", id), ("client_secret", secret)])
        .send()
        .await
        .expect("login")
}

/// An API login that must work; the token.
pub async fn token(emu: &Emulator, id: &str, secret: &str) -> String {
    let resp = login(emu, id, secret).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    body["access_token"].as_str().expect("token").to_owned()
}
