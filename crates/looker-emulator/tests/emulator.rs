//! The Looker API emulator, driven over real HTTP with reqwest.

use std::time::{Duration, Instant};

use looker_emulator::{Counters, Emulator, EmulatorConfig, EmulatorUser, Faults, TokenKind, Workspace};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const ID: &str = "abcdef0123456789";
const SECRET: &str = "s3cr3t-s3cr3t";
const NOT_FOUND: &str =
    r#"{"message":"Not found","documentation_url":"https://cloud.google.com/looker/docs/"}"#;

async fn emulator() -> Emulator {
    emulator_with(EmulatorConfig::default()).await
}

async fn emulator_with(config: EmulatorConfig) -> Emulator {
    let emu = Emulator::start(config).await.expect("start emulator");
    emu.add_credential(ID, SECRET, EmulatorUser::new("7", "Ada Lovelace", "ada@example.com"));
    emu.add_credential(
        "admin-id",
        "admin-secret",
        EmulatorUser::admin("1", "Grace Hopper", "grace@example.com"),
    );
    emu
}

fn client() -> Client {
    Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().expect("client")
}

async fn login_as(emu: &Emulator, id: &str, secret: &str) -> reqwest::Response {
    client()
        .post(format!("{}/api/4.0/login", emu.base_url()))
        .form(&[("client_id", id), ("client_secret", secret)])
        .send()
        .await
        .expect("login request")
}

async fn token(emu: &Emulator) -> String {
    let resp = login_as(emu, ID, SECRET).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    body["access_token"].as_str().expect("access_token").to_owned()
}

async fn get(emu: &Emulator, path: &str, auth: Option<&str>) -> reqwest::Response {
    let mut req = client().get(format!("{}{path}", emu.base_url()));
    if let Some(auth) = auth {
        req = req.header("Authorization", auth);
    }
    req.send().await.expect("request")
}

async fn delete(emu: &Emulator, path: &str, auth: Option<&str>) -> reqwest::Response {
    let mut req = client().delete(format!("{}{path}", emu.base_url()));
    if let Some(auth) = auth {
        req = req.header("Authorization", auth);
    }
    req.send().await.expect("request")
}

fn counters(logins: u64, failed_logins: u64, logouts: u64, live_tokens: u64) -> Counters {
    Counters { logins, failed_logins, logouts, live_tokens, sudo_logins: 0 }
}

#[tokio::test]
async fn login_answers_like_looker() {
    let emu = emulator().await;
    assert!(emu.base_url().starts_with("http://127.0.0.1:"));
    assert!(!emu.base_url().ends_with('/'));
    let resp = login_as(&emu, ID, SECRET).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers()["content-type"].to_str().expect("ascii").to_owned();
    assert!(ct.starts_with("application/json"), "{ct}");
    let body: Value = resp.json().await.expect("json");
    let token = body["access_token"].as_str().expect("access_token");
    assert_eq!(token.len(), 40);
    assert!(token.chars().all(|c| c.is_ascii_alphanumeric()), "{token}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert!(body.as_object().expect("object").contains_key("refresh_token"));
    assert_eq!(body["refresh_token"], Value::Null);
    assert!(emu.is_live(token));
    assert_eq!(emu.counters(), counters(1, 0, 0, 1));

    // Every login makes a new token.
    let second = self::token(&emu).await;
    assert_ne!(second, token);
    assert_eq!(emu.counters(), counters(2, 0, 0, 2));
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_404() {
    let emu = emulator().await;
    for (id, secret) in [(ID, "wrong"), ("nobody", SECRET), (ID, ""), ("", ""), ("admin-id", SECRET)] {
        let resp = login_as(&emu, id, secret).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{id}/{secret}");
        assert_eq!(resp.text().await.expect("body"), NOT_FOUND);
    }
    let base = emu.base_url();
    let c = client();
    // Only one of the two fields, and no body at all.
    let resp = c.post(format!("{base}/api/4.0/login")).form(&[("client_id", ID)]).send().await.expect("send");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = c.post(format!("{base}/api/4.0/login")).send().await.expect("send");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // A form body not declared as one is not read.
    let resp = c
        .post(format!("{base}/api/4.0/login"))
        .header("Content-Type", "application/json")
        .body(format!("client_id={ID}&client_secret={SECRET}"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // Login is POST only.
    let resp = c.get(format!("{base}/api/4.0/login")).send().await.expect("send");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // An absurd body is refused rather than read.
    let resp = c
        .post(format!("{base}/api/4.0/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 200 * 1024])
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["message"], "Bad Request");

    assert_eq!(emu.counters(), counters(0, 9, 0, 0));
}

#[tokio::test]
async fn credentials_in_the_query_string_are_accepted() {
    let emu = emulator().await;
    let resp = client()
        .post(format!("{}/api/4.0/login", emu.base_url()))
        .query(&[("client_id", ID), ("client_secret", SECRET)])
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    assert!(emu.is_live(body["access_token"].as_str().expect("token")));

    // Secrets with reserved characters survive form encoding.
    emu.add_credential("weird", "a&b=c d+%", EmulatorUser::new("9", "W", "w@example.com"));
    assert_eq!(login_as(&emu, "weird", "a&b=c d+%").await.status(), StatusCode::OK);
    assert_eq!(emu.counters(), counters(2, 0, 0, 2));
}

#[tokio::test]
async fn token_reads_the_user_with_either_scheme() {
    let emu = emulator().await;
    let t = token(&emu).await;
    for auth in [format!("token {t}"), format!("Bearer {t}"), format!("bearer {t}")] {
        let resp = get(&emu, "/api/4.0/user", Some(&auth)).await;
        assert_eq!(resp.status(), StatusCode::OK, "{auth}");
        let user: Value = resp.json().await.expect("json");
        assert_eq!(user["id"], "7");
        assert_eq!(user["display_name"], "Ada Lovelace");
        assert_eq!(user["first_name"], "Ada");
        assert_eq!(user["last_name"], "Lovelace");
        assert_eq!(user["email"], "ada@example.com");
        assert_eq!(user["is_disabled"], false);
        assert_eq!(user["role_ids"], json!(["3"]));
        assert_eq!(user["credentials_api3"][0]["client_id"], ID);
        assert_eq!(user["url"], format!("{}/api/4.0/users/7", emu.base_url()).as_str());
    }
    let resp = get(&emu, "/api/4.0/user?fields=id,email", Some(&format!("token {t}"))).await;
    let user: Value = resp.json().await.expect("json");
    assert_eq!(user, json!({"id": "7", "email": "ada@example.com"}));
    assert_eq!(emu.api_calls(), 4);
}

#[tokio::test]
async fn users_and_roles_tell_admins_apart() {
    let emu = emulator().await;
    let t = token(&emu).await;
    let auth = format!("token {t}");

    let resp = get(&emu, "/api/4.0/users/1/roles", Some(&auth)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let roles: Value = resp.json().await.expect("json");
    assert_eq!(roles[0]["id"], "2");
    assert_eq!(roles[0]["name"], "Admin");
    assert_eq!(roles[0]["permission_set"]["all_access"], true);

    let roles: Value = get(&emu, "/api/4.0/users/7/roles", Some(&auth)).await.json().await.expect("json");
    assert_eq!(roles.as_array().expect("array").len(), 1);
    assert_ne!(roles[0]["name"], "Admin");

    let admin: Value = get(&emu, "/api/4.0/users/1", Some(&auth)).await.json().await.expect("json");
    assert_eq!(admin["role_ids"], json!(["2"]));
    assert_eq!(admin["email"], "grace@example.com");

    for path in ["/api/4.0/users/99", "/api/4.0/users/99/roles", "/api/4.0/users/7/x", "/api/4.0/users/"] {
        let resp = get(&emu, path, Some(&auth)).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // Without a token they are 401, like every API call.
    let resp = get(&emu, "/api/4.0/users/1/roles", None).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn missing_or_bad_tokens_are_401() {
    let emu = emulator().await;
    let t = token(&emu).await;
    for auth in [
        None,
        Some("token".to_owned()),
        Some("token ".to_owned()),
        Some(format!("Basic {t}")),
        Some(format!("token {t}x")),
        Some("token 0123456789012345678901234567890123456789".to_owned()),
    ] {
        let resp = get(&emu, "/api/4.0/user", auth.as_deref()).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["message"], "Requires authentication.");
        assert!(body["documentation_url"].is_string());
    }
}

#[tokio::test]
async fn tokens_expire_on_tokios_clock() {
    let emu = emulator().await;
    emu.set_token_lifetime(Duration::from_secs(60));
    let resp = login_as(&emu, ID, SECRET).await;
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["expires_in"], 60);
    let t = body["access_token"].as_str().expect("token").to_owned();
    let auth = format!("token {t}");
    assert_eq!(get(&emu, "/api/4.0/user", Some(&auth)).await.status(), StatusCode::OK);

    // Jump tokio's clock past the lifetime; resuming keeps the jump.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(59)).await;
    tokio::time::resume();
    assert!(emu.is_live(&t));
    assert_eq!(get(&emu, "/api/4.0/user", Some(&auth)).await.status(), StatusCode::OK);
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(2)).await;
    tokio::time::resume();

    assert!(!emu.is_live(&t));
    let resp = get(&emu, "/api/4.0/user", Some(&auth)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // An expired token cannot be logged out either.
    assert_eq!(delete(&emu, "/api/4.0/logout", Some(&auth)).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(emu.counters(), counters(1, 0, 0, 0));
}

#[tokio::test]
async fn advance_clock_expires_tokens_early() {
    let emu = emulator().await;
    let t = token(&emu).await;
    emu.advance_clock(Duration::from_secs(3599));
    assert!(emu.is_live(&t));
    emu.advance_clock(Duration::from_secs(1));
    assert!(!emu.is_live(&t));
    let resp = get(&emu, "/api/4.0/user", Some(&format!("token {t}"))).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // New tokens live a full lifetime from the advanced clock.
    let t2 = token(&emu).await;
    assert!(emu.is_live(&t2));
    assert_eq!(emu.counters().live_tokens, 1);
}

#[tokio::test]
async fn logout_revokes_once() {
    let emu = emulator().await;
    let t = token(&emu).await;
    let auth = format!("token {t}");
    let resp = delete(&emu, "/api/4.0/logout", Some(&auth)).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.bytes().await.expect("body").is_empty());
    assert!(!emu.is_live(&t));
    assert_eq!(emu.counters(), counters(1, 0, 1, 0));

    let resp = delete(&emu, "/api/4.0/logout", Some(&auth)).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.text().await.expect("body"), NOT_FOUND);
    assert_eq!(get(&emu, "/api/4.0/user", Some(&auth)).await.status(), StatusCode::UNAUTHORIZED);

    // Unknown token, no token, wrong method.
    let resp = delete(&emu, "/api/4.0/logout", Some("token nope")).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = delete(&emu, "/api/4.0/logout", None).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let t2 = token(&emu).await;
    let resp = get(&emu, "/api/4.0/logout", Some(&format!("token {t2}"))).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(emu.is_live(&t2));
    assert_eq!(emu.counters(), counters(2, 0, 1, 1));
}

#[tokio::test]
async fn unversioned_logout_is_what_the_python_sdk_calls() {
    let emu = emulator().await;
    let t = token(&emu).await;
    let resp = delete(&emu, "/api/logout", Some(&format!("Bearer {t}"))).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = delete(&emu, "/api/logout", Some(&format!("Bearer {t}"))).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(emu.counters(), counters(1, 0, 1, 0));
}

#[tokio::test]
async fn alive_versions_and_unknown_paths() {
    let emu = emulator().await;
    let resp = get(&emu, "/alive", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let versions: Value = get(&emu, "/versions", None).await.json().await.expect("json");
    assert_eq!(versions["current_version"]["version"], "4.0");
    assert_eq!(versions["api_server_url"], emu.base_url().as_str());

    let t = token(&emu).await;
    let auth = format!("token {t}");
    for path in ["/", "/api/4.0", "/api/4.0/", "/api/3.1/user", "/api/4.0/dashboards", "/alive/x"] {
        let resp = get(&emu, path, Some(&auth)).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(resp.text().await.expect("body"), NOT_FOUND, "{path}");
    }
    let resp = client()
        .post(format!("{}/api/4.0/user", emu.base_url()))
        .header("Authorization", &auth)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn removed_credentials_stop_logging_in_but_tokens_live_on() {
    let emu = emulator().await;
    let t = token(&emu).await;
    emu.remove_credential(ID);
    assert_eq!(login_as(&emu, ID, SECRET).await.status(), StatusCode::NOT_FOUND);
    assert!(emu.is_live(&t));
    assert_eq!(emu.revoke_all(), 1);
    assert!(!emu.is_live(&t));
    assert_eq!(emu.counters(), counters(1, 1, 0, 0));
}

#[tokio::test]
async fn fault_login_status_with_retry_after() {
    let emu = emulator().await;
    for status in [503u16, 429, 400, 403, 500] {
        emu.set_faults(Faults { login_status: Some(status), retry_after: Some(7), ..Faults::default() });
        let resp = login_as(&emu, ID, SECRET).await;
        assert_eq!(resp.status().as_u16(), status);
        assert_eq!(resp.headers()["retry-after"], "7");
        let body: Value = resp.json().await.expect("json");
        assert!(body["message"].is_string());
        assert!(body["documentation_url"].is_string());
    }
    emu.set_faults(Faults { login_status: Some(503), ..Faults::default() });
    let resp = login_as(&emu, ID, SECRET).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().get("retry-after").is_none());
    assert_eq!(emu.counters(), counters(0, 6, 0, 0));

    emu.set_faults(Faults::default());
    assert_eq!(login_as(&emu, ID, SECRET).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn fault_drop_connections() {
    let emu = emulator().await;
    let t = token(&emu).await;
    emu.set_faults(Faults { drop_connections: true, ..Faults::default() });
    let c = client();
    let login = c
        .post(format!("{}/api/4.0/login", emu.base_url()))
        .form(&[("client_id", ID), ("client_secret", SECRET)])
        .send()
        .await;
    assert!(login.is_err(), "{login:?}");
    let user = c
        .get(format!("{}/api/4.0/user", emu.base_url()))
        .header("Authorization", format!("token {t}"))
        .send()
        .await;
    assert!(user.is_err(), "{user:?}");
    let logout = c
        .delete(format!("{}/api/4.0/logout", emu.base_url()))
        .header("Authorization", format!("token {t}"))
        .send()
        .await;
    assert!(logout.is_err(), "{logout:?}");
    assert!(emu.is_live(&t));
    assert_eq!(emu.counters(), counters(1, 1, 0, 1));

    emu.set_faults(Faults::default());
    assert_eq!(
        delete(&emu, "/api/4.0/logout", Some(&format!("token {t}"))).await.status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn fault_malformed_body() {
    let emu = emulator().await;
    emu.set_faults(Faults { malformed_body: true, ..Faults::default() });
    let resp = login_as(&emu, ID, SECRET).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.expect("body");
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    assert_eq!(emu.counters(), counters(0, 1, 0, 0));
}

#[tokio::test]
async fn fault_missing_access_token() {
    let emu = emulator().await;
    emu.set_faults(Faults { missing_access_token: true, ..Faults::default() });
    let resp = login_as(&emu, ID, SECRET).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    assert!(body.get("access_token").is_none(), "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(emu.counters(), counters(0, 1, 0, 0));
}

#[tokio::test]
async fn fault_bad_expires_in() {
    let emu = emulator().await;
    for bad in [0i64, -5] {
        emu.set_faults(Faults { bad_expires_in: Some(bad), ..Faults::default() });
        let body: Value = login_as(&emu, ID, SECRET).await.json().await.expect("json");
        assert_eq!(body["expires_in"], bad);
        assert!(emu.is_live(body["access_token"].as_str().expect("token")));
    }
    assert_eq!(emu.counters(), counters(2, 0, 0, 2));
}

#[tokio::test]
async fn fault_delays() {
    let delay = Duration::from_millis(300);
    let emu = emulator().await;
    let t = token(&emu).await;
    let auth = format!("token {t}");

    emu.set_faults(Faults { login_delay: delay, ..Faults::default() });
    let start = Instant::now();
    assert_eq!(login_as(&emu, ID, SECRET).await.status(), StatusCode::OK);
    assert!(start.elapsed() >= delay);
    let start = Instant::now();
    assert_eq!(get(&emu, "/api/4.0/user", Some(&auth)).await.status(), StatusCode::OK);
    assert!(start.elapsed() < delay, "only logins are slowed");

    emu.set_faults(Faults { api_delay: delay, ..Faults::default() });
    let start = Instant::now();
    assert_eq!(get(&emu, "/api/4.0/user", Some(&auth)).await.status(), StatusCode::OK);
    assert!(start.elapsed() >= delay);

    emu.set_faults(Faults { logout_delay: delay, ..Faults::default() });
    let start = Instant::now();
    assert_eq!(delete(&emu, "/api/4.0/logout", Some(&auth)).await.status(), StatusCode::NO_CONTENT);
    assert!(start.elapsed() >= delay);
}

#[tokio::test]
async fn login_delay_runs_on_tokios_clock() {
    let emu = emulator().await;
    emu.set_faults(Faults { login_delay: Duration::from_secs(3600), ..Faults::default() });
    let base = emu.base_url();
    let login = tokio::spawn(async move {
        // No client timeout: it would fire when the clock jumps.
        Client::builder()
            .no_proxy()
            .build()
            .expect("client")
            .post(format!("{base}/api/4.0/login"))
            .form(&[("client_id", ID), ("client_secret", SECRET)])
            .send()
            .await
            .map(|r| r.status())
    });
    // Skip the hour once the request is parked in its sleep. When that is cannot be
    // seen from here, so jump again every little while (a loaded machine may take
    // long to get the request that far); a few seconds of real time at most.
    let mut jumps = 0;
    while !login.is_finished() {
        assert!(jumps < 200, "the login never finished although the clock jumped {jumps} hours");
        tokio::time::sleep(Duration::from_millis(50)).await;
        tokio::time::pause();
        tokio::time::advance(Duration::from_secs(3601)).await;
        tokio::time::resume();
        jumps += 1;
    }
    let status = login.await.expect("task").expect("request");
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_connections() {
    const N: usize = 1000;
    let emu = emulator().await;
    emu.set_faults(Faults {
        login_delay: Duration::from_millis(50),
        logout_delay: Duration::from_millis(5),
        ..Faults::default()
    });
    let base = emu.base_url();
    let start = Instant::now();
    // One client: with N requests in flight at once it opens N connections.
    let shared = client();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..N {
        let base = base.clone();
        let c = shared.clone();
        tasks.spawn(async move {
            let body: Value = c
                .post(format!("{base}/api/4.0/login"))
                .form(&[("client_id", ID), ("client_secret", SECRET)])
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let t = body["access_token"].as_str().unwrap_or_default().to_owned();
            let status = c
                .delete(format!("{base}/api/4.0/logout"))
                .header("Authorization", format!("token {t}"))
                .send()
                .await?
                .status();
            Ok::<_, reqwest::Error>(status)
        });
    }
    while let Some(res) = tasks.join_next().await {
        assert_eq!(res.expect("task").expect("request"), StatusCode::NO_CONTENT);
    }
    let elapsed = start.elapsed();
    assert_eq!(emu.counters(), counters(N as u64, 0, N as u64, 0));
    // 50 ms logins in parallel, not in series (which would take 50 s).
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
}

#[tokio::test]
async fn shutdown_releases_the_port() {
    let emu = emulator().await;
    let addr = emu.addr();
    let t = token(&emu).await;
    assert!(!t.is_empty());
    emu.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    // And the port can be served again.
    let again = Emulator::start_on(addr, EmulatorConfig::default()).await.expect("rebind");
    assert_eq!(get(&again, "/alive", None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn drop_stops_serving() {
    let emu = emulator().await;
    let addr = emu.addr();
    drop(emu);
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "still accepting after drop");
}

#[tokio::test]
async fn keep_alive_connections_are_reused() {
    let emu = emulator().await;
    let c = client();
    let base = emu.base_url();
    for _ in 0..20 {
        let resp = c.get(format!("{base}/alive")).send().await.expect("send");
        assert_eq!(resp.status(), StatusCode::OK);
    }
}

#[test]
fn the_handle_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Emulator>();
    let config = EmulatorConfig::default();
    assert_eq!(config.token_lifetime, Duration::from_secs(3600));
    assert_eq!(config.faults, Faults::default());
}

async fn admin_token(emu: &Emulator) -> String {
    let resp = login_as(emu, "admin-id", "admin-secret").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    body["access_token"].as_str().expect("access_token").to_owned()
}

async fn patch_session(emu: &Emulator, auth: Option<&str>, body: &str) -> reqwest::Response {
    let mut req = client()
        .patch(format!("{}/api/4.0/session", emu.base_url()))
        .header("Content-Type", "application/json")
        .body(body.to_owned());
    if let Some(auth) = auth {
        req = req.header("Authorization", auth);
    }
    req.send().await.expect("request")
}

async fn sudo(emu: &Emulator, auth: Option<&str>, user_id: &str) -> reqwest::Response {
    let mut req = client().post(format!("{}/api/4.0/login/{user_id}", emu.base_url()));
    if let Some(auth) = auth {
        req = req.header("Authorization", auth);
    }
    req.send().await.expect("request")
}

async fn json_of(resp: reqwest::Response) -> Value {
    resp.json().await.expect("json")
}

#[tokio::test]
async fn the_workspace_belongs_to_the_token() {
    let emu = emulator().await;
    let (a, b) = (token(&emu).await, token(&emu).await);
    let (auth_a, auth_b) = (format!("token {a}"), format!("Bearer {b}"));
    let session = json_of(get(&emu, "/api/4.0/session", Some(&auth_a)).await).await;
    assert_eq!(session["workspace_id"], "production");
    assert_eq!(session["sudo_user_id"], Value::Null);
    assert!(session["can"].is_object(), "{session}");

    let resp = patch_session(&emu, Some(&auth_a), r#"{"workspace_id":"dev"}"#).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(json_of(resp).await["workspace_id"], "dev");
    // Same credential, same user, another token: still production.
    assert_eq!(json_of(get(&emu, "/api/4.0/session", Some(&auth_a)).await).await["workspace_id"], "dev");
    assert_eq!(
        json_of(get(&emu, "/api/4.0/session", Some(&auth_b)).await).await["workspace_id"],
        "production"
    );
    assert_eq!(emu.token_info(&a).expect("live").workspace, Workspace::Dev);
    assert_eq!(emu.token_info(&b).expect("live").workspace, Workspace::Production);

    // A body without workspace_id changes nothing; back to production works.
    let resp = patch_session(&emu, Some(&auth_a), "{}").await;
    assert_eq!(json_of(resp).await["workspace_id"], "dev");
    let resp = patch_session(&emu, Some(&auth_a), r#"{"workspace_id":"production"}"#).await;
    assert_eq!(json_of(resp).await["workspace_id"], "production");
    // A new token starts in production even after others moved.
    patch_session(&emu, Some(&auth_b), r#"{"workspace_id":"dev"}"#).await;
    let c = token(&emu).await;
    assert_eq!(emu.token_info(&c).expect("live").workspace, Workspace::Production);
}

#[tokio::test]
async fn bad_session_updates_are_refused_like_looker() {
    let emu = emulator().await;
    let t = token(&emu).await;
    let auth = format!("token {t}");
    for bad in [r#"{"workspace_id":"staging"}"#, r#"{"workspace_id":1}"#, r#"{"workspace_id":"DEV"}"#] {
        let resp = patch_session(&emu, Some(&auth), bad).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let body = json_of(resp).await;
        assert_eq!(body["message"], "Validation Failed", "{bad}");
        assert_eq!(body["errors"][0]["field"], "workspace_id", "{bad}");
    }
    for bad in ["", "not json", "[]", r#""dev""#] {
        let resp = patch_session(&emu, Some(&auth), bad).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad:?}");
    }
    assert_eq!(emu.token_info(&t).expect("live").workspace, Workspace::Production);
    let resp = patch_session(&emu, None, r#"{"workspace_id":"dev"}"#).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = patch_session(&emu, Some("token nope"), r#"{"workspace_id":"dev"}"#).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get(&emu, "/api/4.0/session", None).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sudo_gives_a_token_of_its_own_acting_as_the_user() {
    let emu = emulator().await;
    let admin = admin_token(&emu).await;
    let admin_auth = format!("Bearer {admin}");
    let resp = sudo(&emu, Some(&admin_auth), "7").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.expect("body");
    let body: Value = serde_json::from_str(&text).expect("json");
    let sudo_token = body["access_token"].as_str().expect("access_token").to_owned();
    assert_eq!(sudo_token.len(), 40);
    assert_ne!(sudo_token, admin);
    // Exactly the login shape, in Looker's order: spectacles-style strict
    // constructors take it.
    assert_eq!(
        text,
        format!(
            r#"{{"access_token":"{sudo_token}","token_type":"Bearer","expires_in":3600,"refresh_token":null}}"#
        )
    );

    let sudo_auth = format!("token {sudo_token}");
    let me = json_of(get(&emu, "/api/4.0/user", Some(&sudo_auth)).await).await;
    assert_eq!(me["id"], "7");
    let session = json_of(get(&emu, "/api/4.0/session", Some(&sudo_auth)).await).await;
    assert_eq!(session["sudo_user_id"], "1", "the actual user behind the sudo token");
    assert_eq!(session["workspace_id"], "production");
    let admin_session = json_of(get(&emu, "/api/4.0/session", Some(&admin_auth)).await).await;
    assert_eq!(admin_session["sudo_user_id"], Value::Null);
    assert_eq!(json_of(get(&emu, "/api/4.0/user", Some(&admin_auth)).await).await["id"], "1");

    assert_eq!(emu.counters(), Counters { logins: 1, sudo_logins: 1, live_tokens: 2, ..Counters::default() });
    let info = emu.token_info(&sudo_token).expect("live");
    assert_eq!(info.kind, TokenKind::Sudo { admin_user_id: "1".into() });
    assert_eq!(info.user_id, "7");
    assert_eq!(
        emu.token_info(&admin).expect("live").kind,
        TokenKind::ApiLogin { client_id: "admin-id".into() }
    );
    // Debug output never carries the token.
    assert!(!format!("{info:?}").contains(&sudo_token));

    // The sudo token's logout leaves the admin's token alone.
    let resp = delete(&emu, "/api/logout", Some(&sudo_auth)).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(!emu.is_live(&sudo_token));
    assert!(emu.is_live(&admin));
    assert_eq!(json_of(get(&emu, "/api/4.0/user", Some(&admin_auth)).await).await["id"], "1");
    let live = emu.live_tokens();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].token, admin);
}

#[tokio::test]
async fn sudo_needs_an_admin_and_a_known_user() {
    let emu = emulator().await;
    let user = token(&emu).await;
    let resp = sudo(&emu, Some(&format!("token {user}")), "1").await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(json_of(resp).await["message"], "Forbidden");
    let admin = admin_token(&emu).await;
    let resp = sudo(&emu, Some(&format!("token {admin}")), "999").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(sudo(&emu, None, "7").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sudo(&emu, Some("token nope"), "7").await.status(), StatusCode::UNAUTHORIZED);
    // `login/{id}/more` is no route at all.
    let resp = client()
        .post(format!("{}/api/4.0/login/7/x", emu.base_url()))
        .header("Authorization", format!("token {admin}"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(emu.counters(), Counters { logins: 2, live_tokens: 2, ..Counters::default() });
    // A revoked admin token cannot sudo either.
    emu.revoke_all();
    assert_eq!(sudo(&emu, Some(&format!("token {admin}")), "7").await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn versions_need_no_token_and_follow_the_host() {
    let emu = emulator().await;
    for path in ["/versions", "/api/4.0/versions"] {
        let resp = get(&emu, path, None).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let v = json_of(resp).await;
        assert_eq!(v["looker_release_version"], "25.18.0", "{path}");
        assert_eq!(
            v["current_version"],
            json!({
                "version": "4.0",
                "full_version": "4.0.25.18",
                "status": "current",
                "swagger_url": format!("{}/api/4.0/swagger.json", emu.base_url()),
            }),
            "{path}"
        );
        assert_eq!(v["supported_versions"], json!([v["current_version"]]), "{path}");
        assert_eq!(v["api_server_url"], emu.base_url(), "{path}");
        assert_eq!(v["web_server_url"], emu.base_url(), "{path}");
    }
    // The URLs name the host the client used (a gateway in front, a name).
    let port = emu.addr().port();
    let resp = client()
        .get(format!("{}/api/4.0/versions", emu.base_url()))
        .header("Host", format!("localhost:{port}"))
        .send()
        .await
        .expect("send");
    let v = json_of(resp).await;
    assert_eq!(v["api_server_url"], format!("http://localhost:{port}"));
    assert_eq!(v["current_version"]["swagger_url"], format!("http://localhost:{port}/api/4.0/swagger.json"));
    // A Host that is not a host name falls back to the emulator's address.
    let resp = client()
        .get(format!("{}/versions", emu.base_url()))
        .header("Host", "a\"b")
        .send()
        .await
        .expect("send");
    assert_eq!(json_of(resp).await["api_server_url"], emu.base_url());
    // An invalid token does not matter either.
    assert_eq!(get(&emu, "/api/4.0/versions", Some("token nope")).await.status(), StatusCode::OK);
}

/// Byte `i` of the large-body pattern.
fn pattern_byte(i: usize) -> u8 {
    (i % 251) as u8
}

#[tokio::test]
async fn download_streams_exactly_n_bytes_of_the_pattern() {
    let emu = emulator().await;
    let auth = format!("token {}", token(&emu).await);
    for n in [0usize, 1, 250, 251, 65_511, 65_512, 5 * 1024 * 1024 + 3] {
        let resp = get(&emu, &format!("/api/4.0/emulator/download?bytes={n}"), Some(&auth)).await;
        assert_eq!(resp.status(), StatusCode::OK, "{n}");
        assert_eq!(resp.headers()["content-type"], "application/octet-stream");
        assert_eq!(resp.headers()["content-length"], n.to_string().as_str());
        let body = resp.bytes().await.expect("body");
        assert_eq!(body.len(), n);
        if let Some(i) = body.iter().enumerate().position(|(i, &b)| b != pattern_byte(i)) {
            panic!("byte {i} of {n} is {}, want {}", body[i], pattern_byte(i));
        }
    }
    for bad in ["", "?bytes=", "?bytes=-1", "?bytes=ten", "?other=1"] {
        let resp = get(&emu, &format!("/api/4.0/emulator/download{bad}"), Some(&auth)).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let resp = get(&emu, "/api/4.0/emulator/download?bytes=10", None).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn upload_counts_and_checks_the_pattern() {
    let emu = emulator().await;
    let auth = format!("token {}", token(&emu).await);
    let upload = |body: Vec<u8>, auth: Option<String>| {
        let mut req = client().post(format!("{}/api/4.0/emulator/upload", emu.base_url())).body(body);
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        req.send()
    };
    for n in [0usize, 1, 251, 300_000] {
        let body: Vec<u8> = (0..n).map(pattern_byte).collect();
        let resp = upload(body, Some(auth.clone())).await.expect("send");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(json_of(resp).await, json!({"bytes": n, "pattern_ok": true}), "{n}");
    }
    let mut body: Vec<u8> = (0..300_000).map(pattern_byte).collect();
    body[299_999] ^= 0x55;
    let resp = upload(body, Some(auth.clone())).await.expect("send");
    assert_eq!(json_of(resp).await, json!({"bytes": 300_000, "pattern_ok": false}));
    let resp = upload(vec![0; 10], None).await.expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn lookml_models_answer_one_model() {
    let emu = emulator().await;
    let auth = format!("token {}", token(&emu).await);
    let models = json_of(get(&emu, "/api/4.0/lookml_models", Some(&auth)).await).await;
    let models = models.as_array().expect("array");
    assert_eq!(models.len(), 1);
    assert_eq!(models[0]["name"], "thelook");
    let explores: Vec<&str> = models[0]["explores"]
        .as_array()
        .expect("explores")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(explores, ["order_items", "users"]);
    let one = json_of(get(&emu, "/api/4.0/lookml_models/thelook", Some(&auth)).await).await;
    assert_eq!(&one, &models[0]);
    assert_eq!(get(&emu, "/api/4.0/lookml_models/nope", Some(&auth)).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(get(&emu, "/api/4.0/lookml_models", None).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn requests_are_recorded_without_their_query() {
    let emu = emulator().await;
    let resp = client()
        .post(format!("{}/api/4.0/login?client_id={ID}&client_secret={SECRET}", emu.base_url()))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    get(&emu, "/api/4.0/user?fields=id", None).await;
    get(&emu, "/nowhere", None).await;
    let calls: Vec<(String, Option<u16>)> =
        emu.requests().into_iter().map(|r| (r.call(), r.status)).collect();
    assert_eq!(
        calls,
        [
            ("POST /api/4.0/login".to_owned(), Some(200)),
            ("GET /api/4.0/user".to_owned(), Some(401)),
            ("GET /nowhere".to_owned(), Some(404)),
        ]
    );
    emu.set_faults(Faults { drop_connections: true, ..Faults::default() });
    let _ = client().get(format!("{}/alive", emu.base_url())).send().await;
    assert_eq!(emu.requests().last().map(|r| r.status), Some(None), "a dropped request has no status");
    emu.clear_requests();
    assert!(emu.requests().is_empty());
}
