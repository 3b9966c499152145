//! The Looker API gateway end to end: a real looker-agent (file store, its own XDG
//! tree), real lookerctl, the emulator as Looker, and real unmodified clients (the
//! Python looker_sdk, @looker/sdk-node, spectacles, looker-mcp-server, Google's MCP
//! Toolbox) under `lookerctl exec` from an
//! empty folder. What each test checks is what Looker (the emulator) saw.

#[path = "clients/real_clients.rs"]
mod real_clients;

mod common;

use common::{BgEmulator, TestEnv};
use looker_emulator::{EmulatorUser, TokenKind, Workspace};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const ID: &str = "gwclient0123456789ab";
const SECRET: &str = "gw-real-secret/with+odd&chars=";
/// Another Looker user, for sudo.
const OTHER_USER: &str = "7";

struct Setup {
    env: TestEnv,
    emu: BgEmulator,
    agent: common::AgentProc,
    /// `http://127.0.0.1:PORT`
    url: String,
}

/// An emulator with an admin API user, an agent with profile `prod` on it, and the
/// gateway's URL from `lookerctl status --json`.
fn setup() -> Setup {
    setup_logging("info")
}

/// [`setup`] with the agent logging at `rust_log`.
fn setup_logging(rust_log: &str) -> Setup {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[]);
    emu.emu().add_credential(ID, SECRET, EmulatorUser::admin("42", "Ada Lovelace", "ada@example.com"));
    emu.emu().add_credential(
        "other-client",
        "other",
        EmulatorUser::new(OTHER_USER, "Alan", "alan@example.com"),
    );
    let mut env = TestEnv::new("file");
    env.vars.insert("RUST_LOG".into(), rust_log.into());
    env.add_profile("prod", &emu.url(), &[("api", ID, SECRET)]);
    let agent = env.start_agent(&[]);
    let status: Value = serde_json::from_str(&env.ctl_ok(&["status", "--json"], None)).unwrap();
    let url = status["gateway"]["url"].as_str().expect("status names the gateway URL").to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    Setup { env, emu, agent, url }
}

/// curl, returning (status, body).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--noproxy", "*", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

/// A gateway credential from `lookerctl gateway credential prod --json`.
fn gateway_credential(s: &Setup) -> (String, String) {
    let v: Value = serde_json::from_str(
        &s.env.ctl_ok(&["gateway", "credential", "prod", "--json", "--ttl", "1h"], None),
    )
    .unwrap();
    assert_eq!(v["base_url"], s.url.as_str());
    assert!(v["expires_at"].is_string());
    (v["client_id"].as_str().unwrap().to_string(), v["client_secret"].as_str().unwrap().to_string())
}

/// `POST /api/4.0/login` at the gateway as the SDKs send it: (status, body).
fn try_login(s: &Setup, id: &str, secret: &str) -> (u16, String) {
    curl(&[
        "-X",
        "POST",
        "--data-urlencode",
        &format!("client_id={id}"),
        "--data-urlencode",
        &format!("client_secret={secret}"),
        &format!("{}/api/4.0/login", s.url),
    ])
}

/// Logs in to the gateway as the SDKs do; the session token.
fn login(s: &Setup, id: &str, secret: &str) -> String {
    let (code, body) = try_login(s, id, secret);
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["access_token", "expires_in", "refresh_token", "token_type"], "Looker's exact shape");
    v["access_token"].as_str().unwrap().to_string()
}

fn get(s: &Setup, token: &str, path: &str) -> (u16, String) {
    curl(&["-H", &format!("Authorization: token {token}"), &format!("{}{path}", s.url)])
}

/// curl's download of `url` with `token`: its exit code, the status and the bytes it got.
fn download(url: &str, token: &str) -> (Option<i32>, String, u64) {
    let out = Command::new("curl")
        .args(["-s", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code} %{size_download}"])
        .args(["-H", &format!("Authorization: token {token}"), url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (status, bytes) = text.split_once(' ').unwrap();
    (out.status.code(), status.to_string(), bytes.parse().unwrap())
}

/// `PATCH /api/4.0/session {"workspace_id": ws}` with session `token`, as the SDKs send it.
fn set_workspace(s: &Setup, token: &str, ws: &str) -> (u16, String) {
    curl(&[
        "-X",
        "PATCH",
        "-H",
        &format!("Authorization: token {token}"),
        "-H",
        "Content-Type: application/json",
        "-d",
        &format!(r#"{{"workspace_id":"{ws}"}}"#),
        &format!("{}/api/4.0/session", s.url),
    ])
}

/// `POST /api/4.0/login/{OTHER_USER}` (sudo) with session `token`.
fn sudo(s: &Setup, token: &str) -> (u16, String) {
    curl(&[
        "-X",
        "POST",
        "-H",
        &format!("Authorization: token {token}"),
        &format!("{}/api/4.0/login/{OTHER_USER}", s.url),
    ])
}

/// Every token the emulator holds for the agent's credential, and the values.
fn live_real_tokens(s: &Setup) -> Vec<String> {
    s.emu.emu().live_tokens().into_iter().map(|t| t.token).collect()
}

fn python(test: &str) -> Option<PathBuf> {
    real_clients::locate("LOOKER_AGENT_PYTHON", "the Python looker_sdk (scripts/python-venv.sh)", test)
}

/// `lookerctl exec prod -- PROGRAM ARGS…` from an empty folder, with nothing of the
/// caller's Looker or proxy settings inherited.
fn exec(s: &Setup, program: &Path, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let folder = tempfile::tempdir().unwrap();
    let mut cmd = exec_command(s, program, args, folder.path());
    cmd.envs(extra.iter().copied());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "lookerctl exec {program:?} failed ({})\n--- stdout\n{}\n--- stderr\n{}\n--- agent log\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        s.agent.log_text()
    );
    out
}

/// The command [`exec`] runs, in `folder`, for a test to run or spawn itself.
fn exec_command(s: &Setup, program: &Path, args: &[&str], folder: &Path) -> Command {
    let mut cmd = Command::new(common::ctl_bin());
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy().to_ascii_lowercase();
        if k.starts_with("lookersdk")
            || k.starts_with("looker_") && !k.starts_with("looker_agent")
            || k.ends_with("_proxy")
        {
            cmd.env_remove(&key);
        }
    }
    for (k, v) in &s.env.vars {
        cmd.env(k, v);
    }
    cmd.args(["exec", "prod", "--"]).arg(program).args(args).current_dir(folder).stdin(Stdio::null());
    cmd
}

fn last_json_line(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("printed {stdout:?}: {e}"))
}

/// The child's environment holds neither the real secret nor any real token.
fn assert_nothing_real(s: &Setup, env_text: &str) {
    assert!(!env_text.contains(SECRET), "the real client secret reached the child");
    for t in live_real_tokens(s) {
        assert!(!env_text.contains(&t), "a real token reached the child");
    }
}

#[test]
fn python_sdk_runs_unchanged_and_sudo_twice_is_one_sudo_login() {
    let Some(py) = python("python_sdk_runs_unchanged_and_sudo_twice_is_one_sudo_login") else { return };
    let s = setup();
    let env_file = s.env.dir.path().join("child-env.json");
    let script = real_clients::repo().join("tests/python/gateway_client.py");
    let out = exec(&s, &py, &[script.to_str().unwrap(), env_file.to_str().unwrap(), OTHER_USER], &[]);
    let report = last_json_line(&out);
    assert_eq!(report["me_id"], "42");
    assert_eq!(report["workspace"], "production");
    assert_eq!(report["sudo_me_1"], OTHER_USER);
    assert_eq!(report["sudo_me_2"], OTHER_USER);
    assert_eq!(report["back_me_1"], "42", "logging out of sudo returns to the API user");
    let c = s.emu.emu().counters();
    assert_eq!(c.logins, 1, "one real login serves the SDK: {c:?}");
    assert_eq!(c.sudo_logins, 1, "two login_user calls, one sudo login at Looker: {c:?}");
    let env_text = std::fs::read_to_string(&env_file).unwrap();
    let child_env: Value = serde_json::from_str(&env_text).unwrap();
    assert_eq!(child_env["LOOKERSDK_BASE_URL"], s.url.as_str());
    assert!(child_env["no_proxy"].as_str().unwrap().contains("127.0.0.1"));
    assert_nothing_real(&s, &env_text);
    // The SDK logged out of its session: the shared real token still serves others.
    let (id, secret) = gateway_credential(&s);
    let t = login(&s, &id, &secret);
    assert_eq!(get(&s, &t, "/api/4.0/user").0, 200);
    assert_eq!(s.emu.emu().counters().logins, 1);
}

#[test]
fn node_sdk_moves_only_its_own_session_to_dev() {
    let Some(node_modules) = real_clients::node_modules("node_sdk_moves_only_its_own_session_to_dev") else {
        return;
    };
    let s = setup();
    // A bystander session in production, before and after.
    let (id, secret) = gateway_credential(&s);
    let bystander = login(&s, &id, &secret);
    let node = PathBuf::from("node");
    let script = real_clients::node_script();
    let nm = node_modules.to_str().unwrap().to_string();
    let out = exec(&s, &node, &[script.to_str().unwrap()], &[("NODE_PATH", &nm)]);
    let report = last_json_line(&out);
    assert_eq!(report["me_id"], "42");
    assert_eq!(report["workspace_before"], "production");
    assert_eq!(report["workspace_after"], "dev");
    assert_eq!(report["logged_out"], true);
    let (code, body) = get(&s, &bystander, "/api/4.0/session");
    assert_eq!(code, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["workspace_id"], "production");
    // The Node SDK's logout ended its session, and its dev token with it (in the
    // background); the shared token lives on.
    common::wait_for("the dev token's revocation", Duration::from_secs(10), || {
        s.emu.emu().live_tokens().iter().all(|t| t.workspace == Workspace::Production)
    });
    assert_eq!(s.emu.emu().live_tokens().len(), 1);
    assert_eq!(get(&s, &bystander, "/api/4.0/user").0, 200);
}

#[test]
fn spectacles_connects_through_the_gateway() {
    let Some(spectacles) = real_clients::spectacles("spectacles_connects_through_the_gateway") else {
        return;
    };
    let s = setup();
    let out = exec(&s, &spectacles, &["connect"], &[]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Connected to Looker"), "{text}");
    // spectacles logs in to the gateway and reads /api/4.0/versions, which Looker
    // answers without a token: Looker sees the call and no login at all.
    let seen: Vec<String> = s.emu.emu().requests().iter().map(|r| r.call()).collect();
    assert!(seen.iter().any(|c| c == "GET /api/4.0/versions"), "{seen:?}");
    assert_eq!(s.emu.emu().counters().logins, 0, "{seen:?}");
}

#[test]
fn an_exec_credential_dies_with_its_child_and_is_never_real() {
    let s = setup();
    let dump = s.env.dir.path().join("dump");
    let sh = PathBuf::from("/bin/sh");
    let script = format!(
        "printf '%s\\n%s\\n%s\\n' \"$LOOKERSDK_CLIENT_ID\" \"$LOOKERSDK_CLIENT_SECRET\" \"$LOOKER_ACCESS_TOKEN\" > '{}'; \
         env > '{}.env'",
        dump.display(),
        dump.display()
    );
    exec(&s, &sh, &["-c", &script], &[]);
    let text = std::fs::read_to_string(&dump).unwrap();
    let mut lines = text.lines();
    let (id, secret, token) = (lines.next().unwrap(), lines.next().unwrap(), lines.next().unwrap());
    assert!(!id.is_empty() && !secret.is_empty() && !token.is_empty());
    assert_nothing_real(&s, &std::fs::read_to_string(format!("{}.env", dump.display())).unwrap());
    common::wait_for("the exec credential to end with its process", Duration::from_secs(10), || {
        let v: Value = serde_json::from_str(&s.env.ctl_ok(&["status", "--json"], None)).unwrap();
        v["gateway"]["credentials"] == 0 && v["gateway"]["sessions"].as_array().is_some_and(|a| a.is_empty())
    });
    let (code, body) = try_login(&s, id, secret);
    assert_eq!(code, 404, "a dead exec credential logs in no more: {body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["message"], "Not found");
    // The log says why such a login fails and what to do, never the secret.
    let log = s.agent.log_text();
    assert!(log.contains("gateway login refused") && log.contains("mint a new one"), "{log}");
    assert!(!log.contains(secret), "the refused secret is not logged");
    let (code, body) = get(&s, token, "/api/4.0/user");
    assert_eq!(code, 401, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["message"], "Requires authentication.");
}

#[test]
fn an_upstream_401_is_one_login_and_one_replay() {
    let s = setup();
    let (id, secret) = gateway_credential(&s);
    let a = login(&s, &id, &secret);
    let b = login(&s, &id, &secret);
    assert_eq!(get(&s, &a, "/api/4.0/user").0, 200);
    assert_eq!(s.emu.emu().counters().logins, 1);
    // Looker drops every token mid-run.
    assert_eq!(s.emu.emu().revoke_all(), 1);
    let (code, body) = get(&s, &a, "/api/4.0/user");
    assert_eq!(code, 200, "the client never sees that 401: {body}");
    assert_eq!(get(&s, &b, "/api/4.0/user").0, 200);
    assert_eq!(s.emu.emu().counters().logins, 2, "exactly one new login");
    // A body is replayed too: Looker drops the tokens again, the upload still arrives whole.
    let body_file = s.env.dir.path().join("pattern");
    std::fs::write(&body_file, (0..100_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>()).unwrap();
    assert_eq!(s.emu.emu().revoke_all(), 1);
    let (code, body) = curl(&[
        "-X",
        "POST",
        "-H",
        &format!("Authorization: Bearer {a}"),
        "--data-binary",
        &format!("@{}", body_file.display()),
        &format!("{}/api/4.0/emulator/upload", s.url),
    ]);
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((v["bytes"].as_u64(), v["pattern_ok"].as_bool()), (Some(100_000), Some(true)));
    assert_eq!(s.emu.emu().counters().logins, 3, "one new login per drop");
}

#[test]
fn sessions_switch_workspaces_alone() {
    let s = setup();
    let (id, secret) = gateway_credential(&s);
    let a = login(&s, &id, &secret);
    let b = login(&s, &id, &secret);
    let (code, body) = set_workspace(&s, &a, "dev");
    assert_eq!(code, 200, "{body}");
    let ws = |t: &str| {
        serde_json::from_str::<Value>(&get(&s, t, "/api/4.0/session").1).unwrap()["workspace_id"].clone()
    };
    assert_eq!(ws(&a), "dev");
    assert_eq!(ws(&b), "production", "the other session stays in production");
    let live = s.emu.emu().live_tokens();
    assert_eq!(live.iter().filter(|t| t.workspace == Workspace::Dev).count(), 1);
    assert_eq!(live.iter().filter(|t| t.workspace == Workspace::Production).count(), 1);
    let v: Value = serde_json::from_str(&s.env.ctl_ok(&["status", "--json"], None)).unwrap();
    let sessions = v["gateway"]["sessions"].as_array().unwrap();
    assert_eq!(sessions.iter().filter(|x| x["workspace"] == "dev").count(), 1);
    let human = s.env.ctl_ok(&["status"], None);
    assert!(human.contains(&s.url) && human.contains("dev"), "{human}");
}

/// Removing a credential set revokes the sudo and dev tokens got from it at once, not
/// at shutdown; sessions not pinned to it go on with the set that is left, and a dev
/// session pinned to it is not stranded.
#[test]
fn removing_a_credential_set_revokes_its_sudo_and_dev_tokens() {
    let s = setup();
    s.emu.emu().add_credential(
        "second-client",
        "second",
        EmulatorUser::admin("43", "Grace", "g@example.com"),
    );
    let (id, secret) = gateway_credential(&s);
    let a = login(&s, &id, &secret);
    let b = login(&s, &id, &secret);
    let (code, body) = set_workspace(&s, &b, "dev");
    assert_eq!(code, 200, "{body}");
    let (code, body) = sudo(&s, &a);
    assert_eq!(code, 200, "{body}");
    let first: Vec<String> = live_real_tokens(&s);
    assert_eq!(first.len(), 3, "shared, dev and sudo of the first set");
    s.env.ctl_ok(&["credential", "add", "prod", "second", "--client-id", "second-client"], Some("second"));
    s.env.ctl_ok(&["credential", "remove", "prod", "api"], None);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while first.iter().any(|t| s.emu.emu().is_live(t)) {
        assert!(std::time::Instant::now() < deadline, "still live: {:?}", s.emu.emu().live_tokens());
        std::thread::sleep(Duration::from_millis(20));
    }
    // a was not pinned: its calls use the second set's shared token. b's dev workspace
    // was the first set's user's: its calls say the set is gone until it moves back to
    // production, after which it can go to dev again, with the second set.
    assert_eq!(get(&s, &a, "/api/4.0/user").0, 200);
    let (code, body) = get(&s, &b, "/api/4.0/session");
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("api"), "the answer names the set: {body}");
    let workspace = |ws: &str| set_workspace(&s, &b, ws);
    assert_eq!(workspace("production").0, 200);
    assert_eq!(workspace("dev").0, 200);
    let (code, body) = get(&s, &b, "/api/4.0/session");
    assert_eq!(
        (code, serde_json::from_str::<Value>(&body).unwrap()["workspace_id"].clone()),
        (200, "dev".into())
    );
    let live = s.emu.emu().live_tokens();
    assert_eq!(live.len(), 2, "{live:?}");
    assert!(
        live.iter().all(|t| t.kind == TokenKind::ApiLogin { client_id: "second-client".into() }),
        "{live:?}"
    );
}

/// One audit line per call, written when the answer has ended: the body bytes that went
/// out (a streamed answer counted, one the client cut short marked incomplete), never
/// the query, a session token or a real one.
#[test]
fn each_call_has_an_audit_line_with_the_bytes_sent() {
    let s = setup_logging("info,looker_agent::audit=debug");
    let (id, secret) = gateway_credential(&s);
    let a = login(&s, &id, &secret);
    let (_, status, bytes) =
        download(&format!("{}/api/4.0/emulator/download?bytes=300000&client_secret=hush-hush", s.url), &a);
    assert_eq!((status.as_str(), bytes), ("200", 300000));
    // A client that stops reading after one byte: the agent's side of the answer is cut.
    let cut = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "curl -s --noproxy '*' -H 'Authorization: token {a}' '{}/api/4.0/emulator/download?bytes=268435456' | head -c 1 >/dev/null",
            s.url
        ))
        .status()
        .unwrap();
    assert!(cut.success());
    let calls = |s: &Setup| -> Vec<String> {
        s.agent.log_text().lines().filter(|l| l.contains("gateway call")).map(str::to_string).collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while calls(&s).len() < 3 {
        assert!(std::time::Instant::now() < deadline, "audit lines: {:#?}", calls(&s));
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines = calls(&s);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let login_line = &lines[0];
    assert!(login_line.contains("/api/4.0/login") && login_line.contains("status=200"), "{login_line}");
    assert!(login_line.contains("complete=true") && !login_line.contains("bytes=0"), "{login_line}");
    let whole = &lines[1];
    assert!(whole.contains("path=/api/4.0/emulator/download"), "{whole}");
    assert!(whole.contains("bytes=300000") && whole.contains("complete=true"), "{whole}");
    let cut_line = &lines[2];
    assert!(cut_line.contains("complete=false"), "{cut_line}");
    let sent: u64 = cut_line.split("bytes=").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(sent < 268_435_456, "{cut_line}");
    let log = s.agent.log_text();
    assert!(!log.contains("hush-hush") && !log.contains("client_secret="), "the query reached the log");
    assert!(!log.contains(&a) && !log.contains(&secret), "a session token or credential in the log");
    for t in live_real_tokens(&s) {
        assert!(!log.contains(&t), "a real token in the log");
    }
}

#[test]
fn the_socket_door_adds_the_real_token_itself() {
    let s = setup();
    let sock = s.env.socket.to_str().unwrap().to_string();
    let (code, body) = curl(&["--unix-socket", &sock, "http://agent/looker/prod/api/4.0/user"]);
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["id"], "42");
    let (code, _) = curl(&[
        "--unix-socket",
        &sock,
        "-H",
        "Looker-Agent-Credential: nope",
        "http://agent/looker/prod/api/4.0/user",
    ]);
    assert_eq!(code, 404, "an unknown credential set");
    let (code, _) = curl(&["--unix-socket", &sock, "http://agent/looker/prod/alive"]);
    assert_eq!(code, 200);
    // A client's logout there never revokes the shared token.
    let (code, _) =
        curl(&["--unix-socket", &sock, "-X", "DELETE", "http://agent/looker/prod/api/4.0/logout"]);
    assert_eq!(code, 204);
    assert_eq!(live_real_tokens(&s).len(), 1);
}

#[test]
fn a_tls_client_on_the_plain_http_port_is_told_in_the_log() {
    // As Google's looker-cli does without --ssl=false: https to the gateway's port.
    let s = setup();
    let https = s.url.replacen("http://", "https://", 1);
    let out =
        Command::new("curl").args(["-sk", "--noproxy", "*", &format!("{https}/versions")]).output().unwrap();
    assert!(!out.status.success(), "a TLS handshake cannot succeed on the plain-http port");
    common::wait_for("the hint in the log", Duration::from_secs(20), || {
        s.agent.log_text().contains("most likely a TLS handshake")
    });
    assert!(s.agent.log_text().contains("--ssl=false"));
    // The port still serves plain http.
    assert_eq!(curl(&[&format!("{}/versions", s.url)]).0, 200);
}

#[test]
fn foreign_hosts_and_users_are_refused() {
    let s = setup();
    let (id, secret) = gateway_credential(&s);
    let t = login(&s, &id, &secret);
    let port = s.url.rsplit(':').next().unwrap().to_string();
    let (code, body) = curl(&[
        "-H",
        "Host: evil.example",
        "-H",
        &format!("Authorization: token {t}"),
        &format!("{}/api/4.0/user", s.url),
    ]);
    assert_eq!(code, 403, "DNS rebinding: {body}");
    assert_eq!(get(&s, &t, "/api/4.0/user").0, 200);
    // Unauthenticated Looker endpoints pass through; the rest needs a session.
    assert_eq!(curl(&[&format!("{}/versions", s.url)]).0, 200);
    assert_eq!(curl(&[&format!("{}/api/4.0/user", s.url)]).0, 401);
    if rustix::process::getuid().as_raw() != 0 {
        eprintln!("SKIPPED the other-uid half: needs root for setpriv");
        return;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "curl", "-s", "--noproxy", "*"])
        .args(["-w", "\n%{http_code}", "-H", &format!("Authorization: token {t}")])
        .arg(format!("http://127.0.0.1:{port}/api/4.0/user"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.trim_end().ends_with("403"), "another uid with a valid session token: {text}");
}

/// The agent's peak resident set (VmHWM), in KiB.
fn peak_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn half_a_gigabyte_streams_through_with_flat_memory() {
    let s = setup();
    let (id, secret) = gateway_credential(&s);
    let t = login(&s, &id, &secret);
    assert_eq!(get(&s, &t, "/api/4.0/user").0, 200);
    let before = peak_rss_kib(s.agent.pid());
    let bytes: u64 = 512 * 1024 * 1024;
    let (_, status, got) = download(&format!("{}/api/4.0/emulator/download?bytes={bytes}", s.url), &t);
    assert_eq!((status.as_str(), got), ("200", bytes), "whole");
    let growth = peak_rss_kib(s.agent.pid()).saturating_sub(before);
    assert!(growth <= 32 * 1024, "the agent's peak RSS grew {growth} KiB for a 512 MiB answer");
}

/// Looker's answer breaking off mid-body (a restart, a dropped connection) reaches the
/// client broken, as it would from Looker itself, never as a shorter answer that looks
/// whole, whether it had a length or came in chunks; the connection it broke on is not
/// used again.
#[test]
fn an_answer_that_breaks_off_reaches_the_client_broken_not_short() {
    let s = setup();
    let (id, secret) = gateway_credential(&s);
    let t = login(&s, &id, &secret);
    let real = s.env.ctl_ok(&["token", "prod"], None).trim().to_string();
    // Far enough in that the emulator has sent the head and part of the body (a cut
    // within its first write buffer would be an empty answer, a 502 at the gateway).
    let cut = 2_000_000u64;
    for (fault, framing) in [("", "with a length"), ("&chunked=1", "in chunks")] {
        let path = format!("/api/4.0/emulator/download?bytes=4000000&cut_at={cut}{fault}");
        let (direct, ..) = download(&format!("{}{path}", s.emu.url()), &real);
        let (code, status, bytes) = download(&format!("{}{path}", s.url), &t);
        assert_eq!(status, "200", "{framing}");
        assert!(bytes <= cut, "{framing}: {bytes} bytes of a body cut at {cut}");
        assert!(
            code.is_some_and(|c| c != 0),
            "{framing}: curl took an answer that broke off after {bytes} bytes as whole (exit {code:?})"
        );
        assert_eq!(code, direct, "{framing}: the client sees what it would see from Looker");
        assert_eq!(get(&s, &t, "/api/4.0/user").0, 200, "the next call works");
    }
    // And a whole answer still is whole, in chunks too.
    let (code, status, bytes) =
        download(&format!("{}/api/4.0/emulator/download?bytes=1000000&chunked=1", s.url), &t);
    assert_eq!((code, status.as_str(), bytes), (Some(0), "200", 1_000_000));
}

#[test]
fn sigterm_leaves_no_live_token_at_looker() {
    let mut s = setup();
    let (id, secret) = gateway_credential(&s);
    let a = login(&s, &id, &secret);
    let b = login(&s, &id, &secret);
    assert_eq!(get(&s, &a, "/api/4.0/user").0, 200);
    let (code, _) = set_workspace(&s, &b, "dev");
    assert_eq!(code, 200);
    let (code, body) = sudo(&s, &a);
    assert_eq!(code, 200, "{body}");
    let sudo = serde_json::from_str::<Value>(&body).unwrap()["access_token"].as_str().unwrap().to_string();
    let (code, body) = get(&s, &sudo, "/api/4.0/user");
    assert_eq!(
        (code, serde_json::from_str::<Value>(&body).unwrap()["id"].clone()),
        (200, Value::from(OTHER_USER))
    );
    let live = s.emu.emu().live_tokens();
    assert_eq!(live.len(), 3, "shared, dev and sudo: {live:?}");
    assert!(live.iter().any(|t| matches!(t.kind, TokenKind::Sudo { .. })));
    let (status, _) = s.agent.stop_with(libc::SIGTERM);
    assert!(status.success(), "{}", s.agent.log_text());
    assert!(
        s.emu.emu().live_tokens().is_empty(),
        "tokens left live at Looker: {:?}",
        s.emu.emu().live_tokens()
    );
    let log = s.agent.log_text();
    assert!(
        !log.contains(SECRET) && !log.contains(&a) && !log.contains(&sudo),
        "a secret or token in the log"
    );
}

/// The agent's gateway state file for this test's socket.
fn state_file(s: &Setup) -> PathBuf {
    let state_home = PathBuf::from(&s.env.vars["XDG_STATE_HOME"]).join("looker-agent");
    let machine = looker_agent::gateway::saved::machine_id();
    looker_agent::gateway::saved::path_for(&state_home, &machine, &s.env.socket)
}

/// An agent restart (an upgrade, `systemctl --user restart`) keeps the gateway for its
/// clients: the same URL, a running `exec` child's credential and session, minted
/// credentials, and each session's workspace and sudo user, on the new run's real
/// tokens; the stopped run revoked all of its own. What ended before stays ended.
#[test]
fn an_agent_restart_keeps_the_gateway_for_its_clients() {
    let mut s = setup();
    let (id, secret) = gateway_credential(&s);
    let plain = login(&s, &id, &secret);
    let dev = login(&s, &id, &secret);
    assert_eq!(set_workspace(&s, &dev, "dev").0, 200);
    let (code, body) = sudo(&s, &plain);
    assert_eq!(code, 200, "{body}");
    let sudo = serde_json::from_str::<Value>(&body).unwrap()["access_token"].as_str().unwrap().to_string();
    let gone = login(&s, &id, &secret);
    let (code, _) = curl(&[
        "-X",
        "DELETE",
        "-H",
        &format!("Authorization: token {gone}"),
        &format!("{}/api/logout", s.url),
    ]);
    assert_eq!(code, 204);

    // An exec child that makes one call now and one when told to (after the restart).
    let go = s.env.dir.path().join("go");
    let out = s.env.dir.path().join("child-out");
    assert!(Command::new("mkfifo").arg(&go).status().unwrap().success());
    let call = "curl -s --noproxy '*' -o /dev/null -w '%{http_code}' -H \"Authorization: token $LOOKER_ACCESS_TOKEN\" \
                \"$LOOKERSDK_BASE_URL/api/4.0/user\"";
    let script = format!(
        "echo \"$LOOKERSDK_CLIENT_ID $LOOKERSDK_CLIENT_SECRET $({call})\" > '{out}.tmp' && mv '{out}.tmp' '{out}'; \
         read _ < '{go}'; {call} > '{out}.after'",
        out = out.display(),
        go = go.display()
    );
    let mut child =
        exec_command(&s, Path::new("/bin/sh"), &["-c", &script], s.env.dir.path()).spawn().unwrap();
    common::wait_for("the exec child's first call", Duration::from_secs(20), || out.exists());
    let first = std::fs::read_to_string(&out).unwrap();
    let [child_id, child_secret, status] = first.split_whitespace().collect::<Vec<_>>()[..] else {
        panic!("the child printed {first:?}")
    };
    assert_eq!(status, "200", "{first}");

    let (stopped, _) = s.agent.stop_with(libc::SIGTERM);
    assert!(stopped.success(), "{}", s.agent.log_text());
    assert!(s.emu.emu().live_tokens().is_empty(), "the stopped run revoked its real tokens");
    let state = std::fs::read_to_string(state_file(&s)).unwrap();
    for value in [secret.as_str(), child_secret, &plain, &dev, &sudo, SECRET] {
        assert!(!state.contains(value), "a secret or token in the state file: {state}");
    }
    let logins_before = s.emu.emu().counters();

    s.agent = s.env.start_agent(&[]);
    let v: Value = serde_json::from_str(&s.env.ctl_ok(&["status", "--json"], None)).unwrap();
    assert_eq!(v["gateway"]["url"], s.url.as_str(), "the same base URL: the last port is bound again");
    assert_eq!(v["gateway"]["credentials"], 2, "{v}");
    assert_eq!(v["gateway"]["sessions"].as_array().unwrap().len(), 4, "{v}");
    let ws = |t: &str| {
        serde_json::from_str::<Value>(&get(&s, t, "/api/4.0/session").1).unwrap()["workspace_id"].clone()
    };
    assert_eq!(ws(&plain), "production");
    assert_eq!(ws(&dev), "dev", "a session in dev stays in dev");
    let (code, body) = get(&s, &sudo, "/api/4.0/user");
    assert_eq!(
        (code, serde_json::from_str::<Value>(&body).unwrap()["id"].clone()),
        (200, Value::from(OTHER_USER))
    );
    assert_eq!(get(&s, &gone, "/api/4.0/user").0, 401, "a session that logged out stays ended");
    login(&s, &id, &secret);
    login(&s, child_id, child_secret);
    let after = s.emu.emu().counters();
    assert_eq!(after.logins - logins_before.logins, 2, "one shared and one dev login for every session");
    assert_eq!(after.sudo_logins - logins_before.sudo_logins, 1);

    // The child goes on, and its credential still ends with it.
    std::fs::write(&go, "\n").unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(format!("{}.after", out.display())).unwrap(), "200");
    common::wait_for("the exec credential to end with its process", Duration::from_secs(10), || {
        let v: Value = serde_json::from_str(&s.env.ctl_ok(&["status", "--json"], None)).unwrap();
        v["gateway"]["credentials"] == 1
    });
    let (code, _) = try_login(&s, child_id, child_secret);
    assert_eq!(code, 404, "the exited child's credential logs in no more");
}

/// The Python looker_sdk, unmodified, goes on across an agent restart with the session
/// it holds: no error, no new login of its own, one new real login at Looker.
#[test]
fn the_python_sdk_goes_on_across_an_agent_restart() {
    let Some(py) = python("the_python_sdk_goes_on_across_an_agent_restart") else { return };
    let mut s = setup();
    let ready = s.env.dir.path().join("ready");
    let go = s.env.dir.path().join("go");
    assert!(Command::new("mkfifo").arg(&go).status().unwrap().success());
    let script = real_clients::repo().join("tests/python/across_restart.py");
    let (script, ready_arg, go_arg) =
        (script.display().to_string(), ready.display().to_string(), go.display().to_string());
    let child = exec_command(&s, &py, &[&script, &ready_arg, &go_arg], s.env.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_for("the SDK's first call", Duration::from_secs(60), || ready.exists());
    let (stopped, _) = s.agent.stop_with(libc::SIGTERM);
    assert!(stopped.success(), "{}", s.agent.log_text());
    let logins = s.emu.emu().counters().logins;
    s.agent = s.env.start_agent(&[]);
    std::fs::write(&go, "go").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the SDK failed across the restart\n--- stderr\n{}\n--- agent log\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.agent.log_text()
    );
    assert_eq!(last_json_line(&out), serde_json::json!({"first": "42", "second": "42"}));
    assert_eq!(s.emu.emu().counters().logins - logins, 1, "the new run's one real login");
}

/// `lookerctl gateway revoke` ends a leaked credential and its sessions at once, and for
/// good (a restart does not bring it back); the others go on.
#[test]
fn a_revoked_gateway_credential_ends_with_its_sessions_for_good() {
    let mut s = setup();
    let (leaked, leaked_secret) = gateway_credential(&s);
    let (kept, kept_secret) = gateway_credential(&s);
    let a = login(&s, &leaked, &leaked_secret);
    let b = login(&s, &leaked, &leaked_secret);
    let c = login(&s, &kept, &kept_secret);
    let status: Value = serde_json::from_str(&s.env.ctl_ok(&["status", "--json"], None)).unwrap();
    let minted: Vec<&str> = status["gateway"]["minted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(minted, [leaked.as_str(), kept.as_str()], "status lists them by client_id");
    assert!(s.env.ctl_ok(&["status"], None).contains(&leaked));

    let out = s.env.ctl_ok(&["gateway", "revoke", "prod", "--client-id", &leaked, "--json"], None);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        serde_json::json!({"credentials": 1, "sessions": 2})
    );
    for t in [&a, &b] {
        assert_eq!(get(&s, t, "/api/4.0/user").0, 401);
    }
    assert_eq!(try_login(&s, &leaked, &leaked_secret).0, 404);
    assert_eq!(get(&s, &c, "/api/4.0/user").0, 200, "the other credential's session goes on");
    assert_eq!(s.emu.emu().live_tokens().len(), 1, "the real token stays");

    // Naming one that is not there says so (exit 4), and a profile the agent lacks too.
    let out = s.env.ctl(&["gateway", "revoke", "--client-id", &leaked], None);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no live gateway credential"), "{out:?}");
    let out = s.env.ctl(&["gateway", "revoke", "nosuch"], None);
    assert_eq!(out.status.code(), Some(4), "{out:?}");

    s.agent.stop_with(libc::SIGTERM);
    s.agent = s.env.start_agent(&[]);
    assert_eq!(
        try_login(&s, &leaked, &leaked_secret).0,
        404,
        "a restart does not bring a revoked credential back"
    );
    assert_eq!(get(&s, &a, "/api/4.0/user").0, 401);
    assert_eq!(get(&s, &c, "/api/4.0/user").0, 200);
    assert_eq!(
        s.env.ctl_ok(&["gateway", "revoke"], None).trim(),
        "ended 1 gateway credential(s) and 1 session(s)"
    );
    assert_eq!(get(&s, &c, "/api/4.0/user").0, 401);
}

/// A gateway credential lives a year at most: a longer --ttl (or any number on the
/// socket) is refused with what to do, and the agent goes on.
#[test]
fn a_ttl_beyond_a_year_is_refused_not_a_crash() {
    let s = setup();
    let out = s.env.ctl(&["gateway", "credential", "prod", "--ttl", "400d"], None);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ttl is at most") && stderr.contains("mint a new credential"), "{stderr}");
    let body = format!(r#"{{"profile":"prod","ttl":{}}}"#, u64::MAX);
    let sock = s.env.socket.display().to_string();
    let (code, answer) = curl(&["--unix-socket", &sock, "-d", &body, "http://agent/v1/gateway/credentials"]);
    assert_eq!(code, 400, "{answer}");
    gateway_credential(&s);
}

/// A crash (SIGKILL: no shutdown at all) loses nothing saved: the next run takes up
/// the minted credential and the session, and revokes the killed run's token.
#[test]
fn after_a_crash_the_next_run_takes_up_the_gateway() {
    let mut s = setup();
    let (id, secret) = gateway_credential(&s);
    let token = login(&s, &id, &secret);
    assert_eq!(get(&s, &token, "/api/4.0/user").0, 200);
    let state = state_file(&s);
    common::wait_for("the session to be saved", Duration::from_secs(10), || {
        std::fs::read_to_string(&state).is_ok_and(|t| t.matches("token_sha256").count() == 1)
    });
    let orphan = live_real_tokens(&s);
    s.agent.stop_with(libc::SIGKILL);
    s.agent = s.env.start_agent(&[]);
    assert_eq!(get(&s, &token, "/api/4.0/user").0, 200, "{}", s.agent.log_text());
    login(&s, &id, &secret);
    common::wait_for("the killed run's token to be revoked", Duration::from_secs(10), || {
        orphan.iter().all(|t| !s.emu.emu().is_live(t))
    });

    // The last port taken meanwhile by another program: a new one, the rest is kept.
    s.agent.stop_with(libc::SIGTERM);
    let port: u16 = s.url.rsplit(':').next().unwrap().parse().unwrap();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    s.agent = s.env.start_agent(&[]);
    let v: Value = serde_json::from_str(&s.env.ctl_ok(&["status", "--json"], None)).unwrap();
    let moved = v["gateway"]["url"].as_str().unwrap().to_string();
    assert_ne!(moved, s.url);
    assert!(s.agent.log_text().contains("last port is taken"), "{}", s.agent.log_text());
    s.url = moved;
    assert_eq!(get(&s, &token, "/api/4.0/user").0, 200, "the session is kept at the new URL");
    drop(squatter);

    // A state file broken meanwhile is left aside with a warning; the agent starts.
    s.agent.stop_with(libc::SIGTERM);
    std::fs::write(&state, "{\"version\":1,\"credentials\":[").unwrap();
    s.agent = s.env.start_agent(&[]);
    let log = s.agent.log_text();
    assert!(log.contains("not a gateway state file") && log.contains("starts without"), "{log}");
    let mut aside = state.clone().into_os_string();
    aside.push(".broken");
    assert_eq!(std::fs::read_to_string(aside).unwrap(), "{\"version\":1,\"credentials\":[", "kept aside");
    // Its port was in the file too: the gateway listens on a new one.
    let v: Value = serde_json::from_str(&s.env.ctl_ok(&["status", "--json"], None)).unwrap();
    s.url = v["gateway"]["url"].as_str().unwrap().to_string();
    assert_eq!(get(&s, &token, "/api/4.0/user").0, 401);
    let (id, secret) = gateway_credential(&s);
    let token = login(&s, &id, &secret);
    assert_eq!(get(&s, &token, "/api/4.0/user").0, 200);
}

/// An MCP server (stdio) under `lookerctl exec prod` from an empty folder, with no
/// LOOKER* variable of the test's own environment reaching it.
struct McpServer {
    child: std::process::Child,
    /// Dropping it closes the server's input, and the server exits.
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    next_id: u64,
    _folder: tempfile::TempDir,
}

impl McpServer {
    /// Starts `program args…` and makes the MCP handshake.
    fn start(s: &Setup, program: &Path, args: &[&str]) -> McpServer {
        use std::io::BufRead;
        let folder = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(common::ctl_bin());
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy().to_ascii_lowercase();
            if k.starts_with("looker") && !k.starts_with("looker_agent") || k.ends_with("_proxy") {
                cmd.env_remove(&key);
            }
        }
        let mut child = cmd
            .envs(&s.env.vars)
            .args(["exec", "prod", "--"])
            .arg(program)
            .args(args)
            .current_dir(folder.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let (tx, lines) = std::sync::mpsc::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut server = McpServer { child, stdin, lines, next_id: 1, _folder: folder };
        server.request(
            "initialize",
            serde_json::json!({"protocolVersion": "2025-03-26", "capabilities": {},
                "clientInfo": {"name": "looker-agent-tests", "version": "0"}}),
        );
        server.send(serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        server
    }

    fn send(&mut self, msg: Value) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{msg}").and_then(|_| stdin.flush()).unwrap();
    }

    /// Sends a request and waits for its answer.
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let line =
                self.lines.recv_timeout(Duration::from_secs(120)).expect("an answer from the MCP server");
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if v["id"] == id {
                    return v;
                }
            }
        }
    }

    /// Calls tool `name` with no arguments; the text of its answer, after checking
    /// it is no error.
    fn call_tool(&mut self, name: &str) -> String {
        let v = self.request("tools/call", serde_json::json!({"name": name, "arguments": {}}));
        assert_ne!(v["result"]["isError"], true, "{name} failed: {v}");
        v["result"]["content"][0]["text"].as_str().unwrap_or("").to_string()
    }

    /// Closes the server's input and waits for it to exit.
    fn finish(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

#[test]
fn mcp_server_runs_its_tools_through_the_gateway() {
    let Some(server) = real_clients::mcp_server("mcp_server_runs_its_tools_through_the_gateway") else {
        return;
    };
    let s = setup();
    let mut mcp = McpServer::start(&s, &server, &[]);
    for _ in 0..2 {
        let text = mcp.call_tool("list_models");
        assert!(text.contains("thelook"), "{text}");
    }
    mcp.finish();
    // Every tool call logs in and out (of the gateway): Looker sees one login, and the
    // shared token survives both logouts.
    assert_eq!(s.emu.emu().counters().logins, 1);
    assert_eq!(live_real_tokens(&s).len(), 1);
}

#[test]
fn google_mcp_toolbox_runs_its_looker_tools_through_the_gateway() {
    // The MCP server Looker's own docs set up (`toolbox --prebuilt looker`): a Go
    // program on Looker's Go SDK, configured by LOOKER_BASE_URL, LOOKER_CLIENT_ID and
    // LOOKER_CLIENT_SECRET.
    let test = "google_mcp_toolbox_runs_its_looker_tools_through_the_gateway";
    let Some(toolbox) = real_clients::toolbox(test) else {
        return;
    };
    let s = setup();
    let mut mcp =
        McpServer::start(&s, &toolbox, &["--prebuilt", "looker", "--stdio", "--disable-version-check"]);
    let tools = mcp.request("tools/list", serde_json::json!({}));
    assert!(
        tools["result"]["tools"].as_array().is_some_and(|t| t.iter().any(|t| t["name"] == "get_models")),
        "{tools}"
    );
    for _ in 0..2 {
        let text = mcp.call_tool("get_models");
        assert!(text.contains("thelook"), "{text}");
    }
    mcp.finish();
    // It logged in to the gateway, not to Looker: Looker saw the agent's one login,
    // and that token served both calls.
    assert_eq!(s.emu.emu().counters().logins, 1);
    assert_eq!(live_real_tokens(&s).len(), 1);
    let models: Vec<String> =
        real_clients::calls(s.emu.emu()).into_iter().filter(|c| c.contains("lookml_models")).collect();
    assert_eq!(models.len(), 2, "{models:?}");
    assert!(models.iter().all(|c| c.ends_with(" 200")), "{models:?}");
}

#[test]
fn a_long_call_is_not_cut_by_any_timeout_of_the_agent() {
    // The profile's request timeout (2 s) bounds the agent's own logins, not the calls
    // it forwards: a LookML validation may take hours. Looker here takes 12 s, longer
    // than the profile timeout and than every body, write and header limit of the door.
    let emu = BgEmulator::start(Duration::from_secs(3600), &[]);
    emu.emu().add_credential(ID, SECRET, EmulatorUser::admin("42", "Ada Lovelace", "ada@example.com"));
    let env = TestEnv::new("file");
    env.ctl_ok(&["profile", "add", "prod", "--base-url", &emu.url(), "--timeout", "2s"], None);
    env.ctl_ok(&["credential", "add", "prod", "api", "--client-id", ID], Some(SECRET));
    let agent = env.start_agent(&[]);
    let status: Value = serde_json::from_str(&env.ctl_ok(&["status", "--json"], None)).unwrap();
    let url = status["gateway"]["url"].as_str().unwrap().to_string();
    let s = Setup { env, emu, agent, url };
    let (id, secret) = gateway_credential(&s);
    let t = login(&s, &id, &secret);
    assert_eq!(get(&s, &t, "/api/4.0/user").0, 200, "the login happens before the slow part");
    let mut faults = s.emu.emu().faults();
    faults.api_delay = Duration::from_secs(12);
    s.emu.emu().set_faults(faults);
    let (code, body) = get(&s, &t, "/api/4.0/user");
    assert_eq!(code, 200, "{body}");
}
