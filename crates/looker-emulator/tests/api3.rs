//! API3 keys through `credentials_api3`, over real HTTP: self-service,
//! admins on other users, create-then-login, delete-then-refused, and the
//! one-shot faults a rotation test injects between its steps.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use looker_emulator::{Api3Counters, EmulatorUser, OneShotFault};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn keys_path(user: &str) -> String {
    format!("/api/4.0/users/{user}/credentials_api3")
}

async fn create(emu: &looker_emulator::Emulator, user: &str, token: &str) -> reqwest::Response {
    client()
        .post(format!("{}{}", emu.base_url(), keys_path(user)))
        .header("Authorization", format!("token {token}"))
        .send()
        .await
        .expect("POST credentials_api3")
}

async fn delete(emu: &looker_emulator::Emulator, user: &str, key: &str, token: &str) -> reqwest::Response {
    client()
        .delete(format!("{}{}/{key}", emu.base_url(), keys_path(user)))
        .header("Authorization", format!("token {token}"))
        .send()
        .await
        .expect("DELETE credentials_api3")
}

async fn json_of(resp: reqwest::Response) -> Value {
    resp.json().await.expect("json")
}

#[tokio::test]
async fn a_user_rotates_its_own_key() {
    let emu = emulator().await;
    let t = token(&emu, ADA_ID, ADA_SECRET).await;

    let list = json_of(get(&emu, &keys_path("7"), &t).await).await;
    let old = list.as_array().expect("array");
    assert_eq!(old.len(), 1, "{list}");
    let old_id = old[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(old[0]["client_id"], ADA_ID);
    assert_eq!(old[0]["type"], "api3");
    assert_eq!(old[0]["is_disabled"], false);
    assert!(old[0].get("client_secret").is_none(), "{list}");
    assert_eq!(
        old[0]["url"],
        format!("{}/api/4.0/users/7/credentials_api3/{old_id}", emu.base_url()).as_str()
    );

    // Create: the only answer with the secret; the new key logs in at once.
    let resp = create(&emu, "7", &t).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let created = json_of(resp).await;
    let new_client_id = created["client_id"].as_str().expect("client_id").to_owned();
    let new_secret = created["client_secret"].as_str().expect("client_secret").to_owned();
    let new_id = created["id"].as_str().expect("id").to_owned();
    assert_eq!((new_client_id.len(), new_secret.len()), (20, 24));
    assert_ne!(new_id, old_id);
    assert_eq!(created["type"], "api3");
    let new_token = token(&emu, &new_client_id, &new_secret).await;
    assert_eq!(json_of(get(&emu, "/api/4.0/user", &new_token).await).await["id"], "7");

    // Shown and listed without the secret, here and in the user.
    let shown = json_of(get(&emu, &format!("{}/{new_id}", keys_path("7")), &t).await).await;
    assert_eq!(shown["client_id"], new_client_id.as_str());
    assert!(shown.get("client_secret").is_none(), "{shown}");
    let list = json_of(get(&emu, &keys_path("7"), &t).await).await;
    assert_eq!(list.as_array().expect("array").len(), 2);
    assert!(!list.to_string().contains(&new_secret));
    let ids: Vec<String> = emu.api3_keys("7").into_iter().map(|k| k.client_id).collect();
    assert_eq!(ids, vec![ADA_ID.to_owned(), new_client_id.clone()]);

    // Delete the old key with the new key's token: it no longer logs in.
    assert_eq!(delete(&emu, "7", &old_id, &new_token).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(login(&emu, ADA_ID, ADA_SECRET).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(login(&emu, &new_client_id, &new_secret).await.status(), StatusCode::OK);
    // Tokens the old key issued live on until they expire.
    assert!(emu.is_live(&t));
    assert_eq!(get(&emu, &format!("{}/{old_id}", keys_path("7")), &t).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(delete(&emu, "7", &old_id, &t).await.status(), StatusCode::NOT_FOUND);
    let user = json_of(get(&emu, "/api/4.0/user", &t).await).await;
    assert_eq!(user["credentials_api3"].as_array().expect("array").len(), 1);
    assert_eq!(user["credentials_api3"][0]["client_id"], new_client_id.as_str());

    assert_eq!(emu.api3_counters(), Api3Counters { created: 1, deleted: 1 });
}

#[tokio::test]
async fn without_self_service_a_user_is_refused_and_nothing_changes() {
    let emu = emulator().await;
    let t = token(&emu, ADA_ID, ADA_SECRET).await;
    emu.set_api3_self_service(false);
    let key_id = emu.api3_keys("7")[0].id.clone();
    assert_eq!(get(&emu, &keys_path("7"), &t).await.status(), StatusCode::FORBIDDEN);
    let resp = create(&emu, "7", &t).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(json_of(resp).await["message"], "Forbidden");
    assert_eq!(delete(&emu, "7", &key_id, &t).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(emu.api3_keys("7").len(), 1);
    assert_eq!(emu.api3_counters(), Api3Counters::default());
    assert_eq!(login(&emu, ADA_ID, ADA_SECRET).await.status(), StatusCode::OK);

    // An admin still manages its own keys, and Ada's.
    let admin = token(&emu, ADMIN_ID, ADMIN_SECRET).await;
    assert_eq!(create(&emu, "1", &admin).await.status(), StatusCode::OK);
    assert_eq!(create(&emu, "7", &admin).await.status(), StatusCode::OK);

    // Self-service back on: Ada may again.
    emu.set_api3_self_service(true);
    assert_eq!(create(&emu, "7", &t).await.status(), StatusCode::OK);
    assert_eq!(emu.api3_counters().created, 3);
}

#[tokio::test]
async fn an_admin_manages_other_users_keys_and_a_user_only_its_own() {
    let emu = emulator().await;
    emu.add_user(EmulatorUser::new("8", "Keyless Kim", "kim@example.com"));
    let admin = token(&emu, ADMIN_ID, ADMIN_SECRET).await;
    let ada = token(&emu, ADA_ID, ADA_SECRET).await;

    let created = json_of(create(&emu, "8", &admin).await).await;
    let kim = token(
        &emu,
        created["client_id"].as_str().expect("id"),
        created["client_secret"].as_str().expect("s"),
    )
    .await;
    assert_eq!(json_of(get(&emu, "/api/4.0/user", &kim).await).await["id"], "8");
    assert_eq!(json_of(get(&emu, &keys_path("8"), &admin).await).await.as_array().expect("array").len(), 1);

    for user in ["1", "8"] {
        assert_eq!(get(&emu, &keys_path(user), &ada).await.status(), StatusCode::FORBIDDEN, "{user}");
        assert_eq!(create(&emu, user, &ada).await.status(), StatusCode::FORBIDDEN, "{user}");
    }
    let kims_key = created["id"].as_str().expect("id");
    assert_eq!(delete(&emu, "8", kims_key, &ada).await.status(), StatusCode::FORBIDDEN);
    // Another user's key id under one's own path is not found.
    assert_eq!(delete(&emu, "7", kims_key, &ada).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(get(&emu, &keys_path("99"), &admin).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(create(&emu, "99", &admin).await.status(), StatusCode::NOT_FOUND);

    assert_eq!(delete(&emu, "8", kims_key, &admin).await.status(), StatusCode::NO_CONTENT);
    assert!(emu.api3_keys("8").is_empty());
    // A user without keys is still a user.
    assert_eq!(json_of(get(&emu, &keys_path("8"), &admin).await).await, json!([]));
    assert_eq!(emu.api3_counters(), Api3Counters { created: 1, deleted: 1 });
}

#[tokio::test]
async fn oauth_and_sudo_tokens_manage_the_keys_of_the_user_they_act_as() {
    let emu = oauth_emulator().await;
    let (access, _) = sign_in(&emu).await;
    assert_eq!(create(&emu, "7", &access).await.status(), StatusCode::OK);
    assert_eq!(create(&emu, "1", &access).await.status(), StatusCode::FORBIDDEN);
    let admin = token(&emu, ADMIN_ID, ADMIN_SECRET).await;
    let sudo = client()
        .post(format!("{}/api/4.0/login/7", emu.base_url()))
        .header("Authorization", format!("token {admin}"))
        .send()
        .await
        .expect("sudo");
    let sudo = json_of(sudo).await["access_token"].as_str().expect("token").to_owned();
    assert_eq!(get(&emu, &keys_path("7"), &sudo).await.status(), StatusCode::OK);
    assert_eq!(get(&emu, &keys_path("1"), &sudo).await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn requests_without_a_live_token_or_with_a_bad_body_are_refused() {
    let emu = emulator().await;
    let t = token(&emu, ADA_ID, ADA_SECRET).await;
    let url = format!("{}{}", emu.base_url(), keys_path("7"));
    let c = client();
    assert_eq!(c.get(&url).send().await.expect("send").status(), StatusCode::UNAUTHORIZED);
    assert_eq!(create(&emu, "7", "not-a-token").await.status(), StatusCode::UNAUTHORIZED);
    let resp = c
        .post(&url)
        .header("Authorization", format!("token {t}"))
        .body("not json")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // Looker's newer bodies may carry a purpose; it is kept.
    let resp = c
        .post(&url)
        .header("Authorization", format!("token {t}"))
        .json(&json!({"purpose": "looker-agent rotation"}))
        .send()
        .await
        .expect("send");
    assert_eq!(json_of(resp).await["purpose"], "looker-agent rotation");
    assert_eq!(emu.api3_keys("7")[1].purpose.as_deref(), Some("looker-agent rotation"));
    // No PATCH, and no DELETE of the collection.
    let resp = c.patch(&url).header("Authorization", format!("token {t}")).send().await.expect("send");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = c.delete(&url).header("Authorization", format!("token {t}")).send().await.expect("send");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(emu.api3_counters(), Api3Counters { created: 1, deleted: 0 });
}

#[tokio::test]
async fn created_at_is_lookers_timestamp_and_can_be_backdated() {
    let emu = emulator().await;
    let t = token(&emu, ADA_ID, ADA_SECRET).await;
    let now = SystemTime::now();
    let created = emu.api3_keys("7")[0].created_at;
    assert!(now.duration_since(created).expect("not in the future") < Duration::from_secs(60));

    let leap_day_2024 = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
    assert!(emu.set_api3_key_created_at(ADA_ID, leap_day_2024));
    assert!(!emu.set_api3_key_created_at("nobody", leap_day_2024));
    let list = json_of(get(&emu, &keys_path("7"), &t).await).await;
    assert_eq!(list[0]["created_at"], "2024-02-29T12:34:56.000+00:00");
    assert_eq!(emu.api3_keys("7")[0].created_at, leap_day_2024);
}

#[tokio::test]
async fn the_delete_knob_can_revoke_the_keys_tokens() {
    let emu = emulator().await;
    emu.set_api3_delete_revokes_tokens(true);
    let admin = token(&emu, ADMIN_ID, ADMIN_SECRET).await;
    let t = token(&emu, ADA_ID, ADA_SECRET).await;
    let key_id = emu.api3_keys("7")[0].id.clone();
    assert_eq!(delete(&emu, "7", &key_id, &admin).await.status(), StatusCode::NO_CONTENT);
    assert!(!emu.is_live(&t));
    assert!(emu.is_live(&admin));
}

#[tokio::test]
async fn one_shot_faults_spoil_exactly_the_next_step() {
    let emu = emulator().await;
    let t = token(&emu, ADA_ID, ADA_SECRET).await;

    // Create refused: nothing created; the next create works.
    emu.fail_next_api3_create(OneShotFault::Status(503));
    assert_eq!(create(&emu, "7", &t).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(emu.api3_keys("7").len(), 1);
    let made = json_of(create(&emu, "7", &t).await).await;
    let (made_id, made_secret) = (
        made["client_id"].as_str().expect("id").to_owned(),
        made["client_secret"].as_str().expect("s").to_owned(),
    );

    // Create applied, answer lost: an orphan key only the listing shows.
    emu.fail_next_api3_create(OneShotFault::DropAfterApplying);
    let lost = client()
        .post(format!("{}{}", emu.base_url(), keys_path("7")))
        .header("Authorization", format!("token {t}"))
        .send()
        .await;
    assert!(lost.is_err(), "{lost:?}");
    assert_eq!(emu.api3_keys("7").len(), 3);
    assert_eq!(emu.api3_counters(), Api3Counters { created: 2, deleted: 0 });

    // A fault is met only by a request that passed the permission check.
    emu.set_api3_self_service(false);
    emu.fail_next_api3_delete(OneShotFault::Status(503));
    assert_eq!(delete(&emu, "7", "1", &t).await.status(), StatusCode::FORBIDDEN);
    emu.set_api3_self_service(true);
    // Delete refused: the key still logs in.
    let old_id = emu.api3_keys("7")[0].id.clone();
    assert_eq!(delete(&emu, "7", &old_id, &t).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(login(&emu, ADA_ID, ADA_SECRET).await.status(), StatusCode::OK);
    // Delete applied, answer lost: the key is gone all the same.
    emu.fail_next_api3_delete(OneShotFault::DropAfterApplying);
    let lost = client()
        .delete(format!("{}{}/{old_id}", emu.base_url(), keys_path("7")))
        .header("Authorization", format!("token {t}"))
        .send()
        .await;
    assert!(lost.is_err(), "{lost:?}");
    assert_eq!(login(&emu, ADA_ID, ADA_SECRET).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(emu.api3_counters(), Api3Counters { created: 2, deleted: 1 });

    // A login fault hits one client_id once; the others are untouched.
    emu.fail_next_login(&made_id, OneShotFault::Status(503));
    assert_eq!(login(&emu, ADMIN_ID, ADMIN_SECRET).await.status(), StatusCode::OK);
    let resp = login(&emu, &made_id, &made_secret).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_of(resp).await["message"], "Service Unavailable");
    assert_eq!(login(&emu, &made_id, &made_secret).await.status(), StatusCode::OK);
    // Login applied, answer lost: a token the client never saw is live.
    let live = emu.counters().live_tokens;
    emu.fail_next_login(&made_id, OneShotFault::DropAfterApplying);
    let lost = client()
        .post(format!("{}/api/4.0/login", emu.base_url()))
        .form(&[("client_id", made_id.as_str()), ("client_secret", made_secret.as_str())])
        .send()
        .await;
    assert!(lost.is_err(), "{lost:?}");
    assert_eq!(emu.counters().live_tokens, live + 1);

    // Armed faults can be disarmed.
    emu.fail_next_login(&made_id, OneShotFault::Status(503));
    emu.fail_next_api3_create(OneShotFault::Status(503));
    emu.clear_one_shot_faults();
    assert_eq!(login(&emu, &made_id, &made_secret).await.status(), StatusCode::OK);
    assert_eq!(create(&emu, "7", &t).await.status(), StatusCode::OK);
}
