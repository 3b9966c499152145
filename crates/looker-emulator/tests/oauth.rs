//! OAuth sign-in against the emulator, over real HTTP: the consent page,
//! PKCE, the code and refresh-token grants, rotation, revocation.

mod common;

use std::time::Duration;

use common::*;
use looker_emulator::{OAuthCounters, OneShotFault, TokenKind};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn a_sign_in_gives_tokens_that_act_as_the_approver() {
    let emu = oauth_emulator().await;
    let (verifier, challenge) = pkce();
    let c = client();

    let page =
        c.get(auth_url(&emu.base_url(), GUID, REDIRECT, "st-1", &challenge)).send().await.expect("GET /auth");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"].to_str().expect("ascii").starts_with("text/html"));
    assert_eq!(page.headers()["cache-control"], "no-store");
    let page = page.text().await.expect("page");
    assert!(page.contains(r#"<form id="consent" method="post" action="/auth/decision">"#), "{page}");
    assert!(page.contains(r#"id="allow" name="decision" value="allow""#), "{page}");
    assert!(page.contains(r#"id="deny" name="decision" value="deny""#), "{page}");
    assert!(page.contains("Ada Lovelace"), "{page}");
    // Without the knob the page clicks nothing by itself.
    assert!(!page.contains("<script"), "{page}");

    let resp = c
        .post(format!("{}/auth/decision", emu.base_url()))
        .form(&[("consent", consent_id(&page).as_str()), ("decision", "allow")])
        .send()
        .await
        .expect("decision");
    assert_eq!(resp.status(), StatusCode::FOUND);
    let (base, params) = location_params(&resp);
    assert_eq!(base, REDIRECT);
    assert_eq!(param(&params, "state"), Some("st-1"));
    let code = param(&params, "code").expect("code").to_owned();
    assert_eq!(params.len(), 2, "{params:?}");

    let resp = exchange(&emu, &code, &verifier).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let text = resp.text().await.expect("body");
    let body: Value = serde_json::from_str(&text).expect("json");
    let access = body["access_token"].as_str().expect("access_token");
    let refresh = body["refresh_token"].as_str().expect("refresh_token");
    assert!(text.starts_with(r#"{"access_token":""#), "{text}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(access.len(), 40);
    assert_ne!(access, refresh);

    let user: Value = get(&emu, "/api/4.0/user", access).await.json().await.expect("json");
    assert_eq!(user["id"], "7");
    let session: Value = get(&emu, "/api/4.0/session", access).await.json().await.expect("json");
    assert_eq!(session["sudo_user_id"], Value::Null);

    let info = emu.token_info(access).expect("live");
    assert_eq!(info.kind, TokenKind::OAuth { client_guid: GUID.to_owned() });
    assert_eq!(info.user_id, "7");
    let live = emu.refresh_tokens();
    assert_eq!(live.len(), 1);
    assert_eq!(
        (live[0].refresh_token.as_str(), live[0].client_guid.as_str(), live[0].user_id.as_str()),
        (refresh, GUID, "7")
    );
    assert!(!format!("{live:?}").contains(refresh));
    assert_eq!(
        emu.oauth_counters(),
        OAuthCounters { consents_allowed: 1, oauth_tokens: 1, ..OAuthCounters::default() }
    );
    // OAuth tokens are tokens like any other, but not API logins.
    assert_eq!(emu.counters().live_tokens, 1);
    assert_eq!(emu.counters().logins, 0);
}

#[tokio::test]
async fn a_wrong_verifier_is_refused_and_spends_the_code() {
    let emu = oauth_emulator().await;
    let (verifier, challenge) = pkce();
    let (other, _) = pkce();
    let code = code(&emu, &challenge).await;
    assert_eq!(
        oauth_error(exchange(&emu, &code, &other).await, StatusCode::BAD_REQUEST).await,
        "invalid_grant"
    );
    // A verifier RFC 7636 forbids (too short) is refused the same way.
    let code2 = common::code(&emu, &challenge).await;
    assert_eq!(
        oauth_error(exchange(&emu, &code2, "short").await, StatusCode::BAD_REQUEST).await,
        "invalid_grant"
    );
    // The right verifier comes too late: each code was presented once.
    assert_eq!(
        oauth_error(exchange(&emu, &code, &verifier).await, StatusCode::BAD_REQUEST).await,
        "invalid_grant"
    );
    assert_eq!(emu.counters().live_tokens, 0);
    assert_eq!(emu.oauth_counters().failed_token_requests, 3);
}

#[tokio::test]
async fn a_code_works_once_and_its_reuse_revokes_what_it_gave() {
    let emu = oauth_emulator().await;
    let (verifier, challenge) = pkce();
    let code = code(&emu, &challenge).await;
    let body: Value = exchange(&emu, &code, &verifier).await.json().await.expect("json");
    let access = body["access_token"].as_str().expect("access");
    let refresh_token = body["refresh_token"].as_str().expect("refresh");
    assert!(emu.is_live(access));

    assert_eq!(
        oauth_error(exchange(&emu, &code, &verifier).await, StatusCode::BAD_REQUEST).await,
        "invalid_grant"
    );
    assert!(!emu.is_live(access));
    assert!(emu.refresh_tokens().is_empty());
    assert_eq!(
        oauth_error(refresh(&emu, refresh_token).await, StatusCode::BAD_REQUEST).await,
        "invalid_grant"
    );
}

#[tokio::test]
async fn codes_expire_after_five_minutes() {
    let emu = oauth_emulator().await;
    let (verifier, challenge) = pkce();
    let code = code(&emu, &challenge).await;
    emu.advance_clock(Duration::from_secs(301));
    assert_eq!(
        oauth_error(exchange(&emu, &code, &verifier).await, StatusCode::BAD_REQUEST).await,
        "invalid_grant"
    );

    // Within the five minutes it works.
    let code = common::code(&emu, &challenge).await;
    emu.advance_clock(Duration::from_secs(290));
    assert_eq!(exchange(&emu, &code, &verifier).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_redirect_uri_must_match_at_both_ends() {
    let emu = oauth_emulator().await;
    let (verifier, challenge) = pkce();
    let c = client();
    for other in
        ["http://127.0.0.1:7778/callback", "http://127.0.0.1:7777/callback/", "http://evil.example/cb"]
    {
        let resp = c.get(auth_url(&emu.base_url(), GUID, other, "s", &challenge)).send().await.expect("send");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{other}");
        assert!(resp.headers().get("location").is_none(), "{other}");
        assert!(resp.text().await.expect("page").contains("redirect_uri"), "{other}");
    }

    let code = code(&emu, &challenge).await;
    let resp = token_request(
        &emu,
        json!({
            "grant_type": "authorization_code",
            "client_id": GUID,
            "redirect_uri": "http://127.0.0.1:7778/callback",
            "code": code,
            "code_verifier": verifier,
        }),
    )
    .await;
    assert_eq!(oauth_error(resp, StatusCode::BAD_REQUEST).await, "invalid_grant");
    assert_eq!(emu.counters().live_tokens, 0);
}

#[tokio::test]
async fn untrusted_requests_get_an_error_page_never_a_redirect() {
    let emu = oauth_emulator().await;
    emu.register_oauth_app("other-app", "http://127.0.0.1:9999/cb");
    let (_, challenge) = pkce();
    let base = emu.base_url();
    let good = auth_url(&base, GUID, REDIRECT, "s", &challenge);
    let cases = [
        ("unknown client", auth_url(&base, "nobody", REDIRECT, "s", &challenge)),
        ("another app's redirect", auth_url(&base, "other-app", REDIRECT, "s", &challenge)),
        ("no client_id", good.replace("client_id=looker-agent&", "")),
        ("no challenge method", good.replace("&code_challenge_method=S256", "")),
        ("plain challenge method", good.replace("code_challenge_method=S256", "code_challenge_method=plain")),
        ("no challenge", good.replace(&format!("&code_challenge={challenge}"), "")),
        ("short challenge", good.replace(&challenge, "abc")),
    ];
    let c = client();
    for (what, url) in cases {
        let resp = c.get(&url).send().await.expect("send");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{what}: {url}");
        assert!(resp.headers().get("location").is_none(), "{what}");
        assert!(resp.headers()["content-type"].to_str().expect("ascii").starts_with("text/html"), "{what}");
        let page = resp.text().await.expect("page");
        assert!(page.contains(r#"<p id="error">"#) && !page.contains("<form"), "{what}: {page}");
    }

    // Nobody signed in to approve: an error page too.
    let emu2 = emulator().await;
    emu2.register_oauth_app(GUID, REDIRECT);
    let resp = c.get(auth_url(&emu2.base_url(), GUID, REDIRECT, "s", &challenge)).send().await.expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.expect("page").contains("set_oauth_user"));
    assert!(!emu2.set_oauth_user_id("404"));

    // With the app and its redirect trusted, other mistakes go back to the app.
    for (what, url, error) in [
        (
            "implicit flow",
            good.replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        ("no scope", good.replace("&scope=cors_api", ""), "invalid_scope"),
        ("other scope", good.replace("scope=cors_api", "scope=admin"), "invalid_scope"),
    ] {
        let resp = c.get(&url).send().await.expect("send");
        assert_eq!(resp.status(), StatusCode::FOUND, "{what}");
        let (to, params) = location_params(&resp);
        assert_eq!(to, REDIRECT, "{what}");
        assert_eq!(param(&params, "error"), Some(error), "{what}");
        assert_eq!(param(&params, "state"), Some("s"), "{what}");
        assert_eq!(param(&params, "code"), None, "{what}");
    }
    assert_eq!(emu.oauth_counters(), OAuthCounters::default());
}

#[tokio::test]
async fn deny_redirects_with_access_denied() {
    let emu = oauth_emulator().await;
    let (_, challenge) = pkce();
    let resp = consent(&emu, "st & <x>", &challenge, "deny").await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let (to, params) = location_params(&resp);
    assert_eq!(to, REDIRECT);
    assert_eq!(param(&params, "error"), Some("access_denied"));
    assert_eq!(param(&params, "state"), Some("st & <x>"));
    assert_eq!(param(&params, "code"), None);
    assert_eq!(emu.oauth_counters(), OAuthCounters { consents_denied: 1, ..OAuthCounters::default() });
    assert_eq!(emu.counters().live_tokens, 0);
}

#[tokio::test]
async fn a_consent_page_is_answered_once() {
    let emu = oauth_emulator().await;
    let (_, challenge) = pkce();
    let c = client();
    let page = c
        .get(auth_url(&emu.base_url(), GUID, REDIRECT, "<b>\"s\"</b>", &challenge))
        .send()
        .await
        .expect("send");
    let page = page.text().await.expect("page");
    // What the app sent is never markup on the page.
    assert!(!page.contains("<b>"), "{page}");
    let id = consent_id(&page);
    let answer = |decision: &'static str| {
        let (c, id, url) = (c.clone(), id.clone(), format!("{}/auth/decision", emu.base_url()));
        async move {
            c.post(url).form(&[("consent", id.as_str()), ("decision", decision)]).send().await.expect("send")
        }
    };
    assert_eq!(answer("allow").await.status(), StatusCode::FOUND);
    assert_eq!(answer("allow").await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(answer("deny").await.status(), StatusCode::BAD_REQUEST);
    let resp = c
        .post(format!("{}/auth/decision", emu.base_url()))
        .form(&[("consent", "forged"), ("decision", "allow")])
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get("location").is_none());
    assert_eq!(emu.oauth_counters().consents_allowed, 1);
}

#[tokio::test]
async fn refresh_rotates_and_retires_the_old_token() {
    let emu = oauth_emulator().await;
    let (access, first) = sign_in(&emu).await;

    let resp = refresh(&emu, &first).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    let second = body["refresh_token"].as_str().expect("refresh").to_owned();
    let access2 = body["access_token"].as_str().expect("access").to_owned();
    assert_ne!(second, first);
    assert_ne!(access2, access);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    // The earlier access token is not revoked by a refresh.
    assert!(emu.is_live(&access) && emu.is_live(&access2));
    let user: Value = get(&emu, "/api/4.0/user", &access2).await.json().await.expect("json");
    assert_eq!(user["id"], "7");

    // The old refresh token stopped working at once; the new one works.
    assert_eq!(oauth_error(refresh(&emu, &first).await, StatusCode::BAD_REQUEST).await, "invalid_grant");
    let body: Value = refresh(&emu, &second).await.json().await.expect("json");
    let third = body["refresh_token"].as_str().expect("refresh").to_owned();
    assert_eq!(
        emu.refresh_tokens().iter().map(|r| r.refresh_token.clone()).collect::<Vec<_>>(),
        vec![third.clone()]
    );
    assert_eq!(emu.oauth_counters().refreshes, 2);

    // Without rotation the same refresh token comes back and keeps working.
    emu.set_rotate_refresh_tokens(false);
    for _ in 0..2 {
        let body: Value = refresh(&emu, &third).await.json().await.expect("json");
        assert_eq!(body["refresh_token"], third.as_str());
    }
    assert_eq!(emu.oauth_counters().refreshes, 4);
}

#[tokio::test]
async fn a_revoked_grant_needs_a_new_sign_in() {
    let emu = oauth_emulator().await;
    let (access, refresh_token) = sign_in(&emu).await;
    let api = token(&emu, ADA_ID, ADA_SECRET).await;
    assert_eq!(emu.revoke_oauth_grants("8"), 0);
    assert_eq!(emu.revoke_oauth_grants("7"), 1);
    assert_eq!(get(&emu, "/api/4.0/user", &access).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        oauth_error(refresh(&emu, &refresh_token).await, StatusCode::BAD_REQUEST).await,
        "invalid_grant"
    );
    // API logins of the same user are not OAuth grants.
    assert!(emu.is_live(&api));
    // Signing in again works.
    let (access, _) = sign_in(&emu).await;
    assert_eq!(get(&emu, "/api/4.0/user", &access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn token_requests_are_checked() {
    let emu = oauth_emulator().await;
    emu.register_oauth_app("other-app", "http://127.0.0.1:9999/cb");
    let (_, refresh_token) = sign_in(&emu).await;
    let cases = [
        (
            json!({"grant_type": "password", "client_id": GUID}),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (json!({"client_id": GUID}), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            json!({"grant_type": "authorization_code", "client_id": GUID, "code": "x"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"grant_type": "refresh_token", "client_id": GUID}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"grant_type": "refresh_token", "client_id": GUID, "refresh_token": "nope"}),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            json!({"grant_type": "refresh_token", "client_id": "other-app", "refresh_token": refresh_token}),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            json!({"grant_type": "authorization_code", "client_id": "nobody", "redirect_uri": REDIRECT, "code": "x", "code_verifier": "y"}),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (json!(["not", "an", "object"]), StatusCode::BAD_REQUEST, "invalid_request"),
    ];
    for (body, status, error) in cases {
        let resp = token_request(&emu, body.clone()).await;
        assert_eq!(oauth_error(resp, status).await, error, "{body}");
    }
    let resp = client()
        .post(format!("{}/api/token", emu.base_url()))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(oauth_error(resp, StatusCode::BAD_REQUEST).await, "invalid_request");
    // Refusing a refresh for another app did not spend the token.
    assert_eq!(refresh(&emu, &refresh_token).await.status(), StatusCode::OK);
    assert_eq!(emu.oauth_counters().failed_token_requests, 9);
}

#[tokio::test]
async fn form_bodies_are_accepted_too() {
    let emu = oauth_emulator().await;
    let (verifier, challenge) = pkce();
    let code = code(&emu, &challenge).await;
    let resp = client()
        .post(format!("{}/api/token", emu.base_url()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", GUID),
            ("redirect_uri", REDIRECT),
            ("code", code.as_str()),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    let resp = client()
        .post(format!("{}/api/token", emu.base_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", GUID),
            ("refresh_token", body["refresh_token"].as_str().expect("r")),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn one_shot_token_faults() {
    let emu = oauth_emulator().await;
    let (_, first) = sign_in(&emu).await;

    emu.fail_next_oauth_token(OneShotFault::Status(503));
    assert_eq!(
        oauth_error(refresh(&emu, &first).await, StatusCode::SERVICE_UNAVAILABLE).await,
        "temporarily_unavailable"
    );
    // Refused, so nothing rotated: the same token works next time.
    let body: Value = refresh(&emu, &first).await.json().await.expect("json");
    let second = body["refresh_token"].as_str().expect("refresh").to_owned();

    // Rotated at the emulator, answer lost: the client's token is dead,
    // and only the emulator knows the new one (no grace period).
    emu.fail_next_oauth_token(OneShotFault::DropAfterApplying);
    let lost = client()
        .post(format!("{}/api/token", emu.base_url()))
        .json(&json!({"grant_type": "refresh_token", "client_id": GUID, "refresh_token": second}))
        .send()
        .await;
    assert!(lost.is_err(), "{lost:?}");
    assert_eq!(oauth_error(refresh(&emu, &second).await, StatusCode::BAD_REQUEST).await, "invalid_grant");
    let live = emu.refresh_tokens();
    assert_eq!(live.len(), 1);
    assert_ne!(live[0].refresh_token, second);
    assert_eq!(refresh(&emu, &live[0].refresh_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn token_requests_meet_the_login_faults() {
    let emu = oauth_emulator().await;
    let (_, refresh_token) = sign_in(&emu).await;
    emu.set_faults(looker_emulator::Faults { login_status: Some(503), ..Default::default() });
    assert_eq!(
        oauth_error(refresh(&emu, &refresh_token).await, StatusCode::SERVICE_UNAVAILABLE).await,
        "temporarily_unavailable"
    );
    emu.set_faults(looker_emulator::Faults { drop_connections: true, ..Default::default() });
    let resp = client()
        .post(format!("{}/api/token", emu.base_url()))
        .json(&json!({"grant_type": "refresh_token", "client_id": GUID, "refresh_token": refresh_token}))
        .send()
        .await;
    assert!(resp.is_err());
    emu.set_faults(looker_emulator::Faults::default());
    assert_eq!(refresh(&emu, &refresh_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn short_lived_oauth_tokens_expire_and_refresh() {
    let emu = oauth_emulator().await;
    emu.set_token_lifetime(Duration::from_secs(60));
    let (access, refresh_token) = sign_in(&emu).await;
    emu.advance_clock(Duration::from_secs(61));
    assert_eq!(get(&emu, "/api/4.0/user", &access).await.status(), StatusCode::UNAUTHORIZED);
    let body: Value = refresh(&emu, &refresh_token).await.json().await.expect("json");
    assert_eq!(body["expires_in"], 60);
    let access = body["access_token"].as_str().expect("access");
    assert_eq!(get(&emu, "/api/4.0/user", access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_auto_submit_knob_makes_the_page_click_by_itself() {
    let emu = oauth_emulator().await;
    let (_, challenge) = pkce();
    let url = auth_url(&emu.base_url(), GUID, REDIRECT, "s", &challenge);
    let c = client();
    // The query alone does nothing.
    let page = c.get(format!("{url}&auto=allow")).send().await.expect("send").text().await.expect("page");
    assert!(!page.contains("<script"), "{page}");

    emu.set_consent_auto_submit(true);
    let page = c.get(&url).send().await.expect("send").text().await.expect("page");
    assert!(page.contains(r#"<script>document.getElementById("allow").click();</script>"#), "{page}");
    let page = c.get(format!("{url}&auto=deny")).send().await.expect("send").text().await.expect("page");
    assert!(page.contains(r#"<script>document.getElementById("deny").click();</script>"#), "{page}");
}
