//! Fidelity of the emulator with real, unmodified Looker clients (the Python
//! SDK has tests/python_sdk.rs): @looker/sdk-node, `spectacles connect` and
//! looker-mcp-server over MCP stdio, each run straight against the emulator
//! (no agent) from an empty folder. Each test checks that the client
//! succeeded and what the emulator saw: the calls, the logins, the tokens.
//!
//! The clients come from scripts/clients.sh via scripts/test.sh; see
//! tests/clients/real_clients.rs for what happens when one is missing.

#[path = "clients/real_clients.rs"]
mod real_clients;

use std::process::Output;
use std::time::Duration;

use looker_emulator::{Counters, Emulator, TokenKind, Workspace};
use real_clients::calls;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const CLIENT_ID: &str = "fidelity0123456789ab";
const CLIENT_SECRET: &str = "fidelity-secret/with+odd&chars=";
/// How long one client run may take (a cold Python start is a few seconds).
const RUN_LIMIT: Duration = Duration::from_secs(120);

async fn emulator() -> Emulator {
    real_clients::emulator_with_ada_and_alan(CLIENT_ID, CLIENT_SECRET).await
}

async fn run(what: &str, mut cmd: tokio::process::Command) -> Output {
    let out = tokio::time::timeout(RUN_LIMIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {RUN_LIMIT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A token of another credential, taken before the client runs: whatever
/// the client does to its own session must leave this one alone.
async fn bystander_token(emu: &Emulator) -> String {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(format!("{}/api/4.0/login", emu.base_url()))
        .form(&[("client_id", "other-client"), ("client_secret", "other-secret")])
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    body["access_token"].as_str().expect("access_token").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_logs_in_switches_its_own_workspace_and_logs_out() {
    let Some(node_modules) =
        real_clients::node_modules("node_sdk_logs_in_switches_its_own_workspace_and_logs_out")
    else {
        return;
    };
    let emu = emulator().await;
    let bystander = bystander_token(&emu).await;
    emu.clear_requests();
    let folder = tempfile::tempdir().expect("temp dir");
    let mut cmd = real_clients::clean_command("node".as_ref(), folder.path());
    cmd.arg(real_clients::node_script())
        .env("NODE_PATH", &node_modules)
        .env("LOOKERSDK_BASE_URL", emu.base_url())
        .env("LOOKERSDK_CLIENT_ID", CLIENT_ID)
        .env("LOOKERSDK_CLIENT_SECRET", CLIENT_SECRET)
        .env("LOOKERSDK_VERIFY_SSL", "false");
    let out = run("node tests/clients/node_sdk.js", cmd).await;
    let seen = calls(&emu);
    eprintln!("@looker/sdk-node called: {seen:#?}");

    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let report: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("node_sdk.js printed {stdout:?}: {e}"));
    assert_eq!(
        report,
        json!({
            "me_id": "42",
            "me_display_name": "Ada Lovelace",
            "workspace_before": "production",
            "workspace_updated": "dev",
            "workspace_after": "dev",
            "sudo_user_id": null,
            "token_type": "Bearer",
            "token_length": 40,
            "logged_out": true,
            "authenticated_after_logout": false,
        })
    );
    assert_eq!(
        seen,
        [
            "POST /api/4.0/login 200",
            "GET /api/4.0/user 200",
            "GET /api/4.0/session 200",
            "PATCH /api/4.0/session 200",
            "GET /api/4.0/session 200",
            "DELETE /api/4.0/logout 204",
        ]
    );
    assert_eq!(
        emu.counters(),
        Counters { logins: 2, logouts: 1, live_tokens: 1, ..Counters::default() },
        "one login for the bystander, one for the SDK, which logged out"
    );
    let live = emu.live_tokens();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].token, bystander);
    assert_eq!(live[0].workspace, Workspace::Production, "the SDK's switch to dev moved another token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spectacles_connect_logs_in_and_reads_the_version() {
    let Some(spectacles) = real_clients::spectacles("spectacles_connect_logs_in_and_reads_the_version")
    else {
        return;
    };
    let emu = emulator().await;
    let folder = tempfile::tempdir().expect("temp dir");
    let mut cmd = real_clients::clean_command(&spectacles, folder.path());
    // spectacles builds `{base_url}:{port or 19999}/api/4.0/` itself.
    cmd.arg("connect")
        .env("LOOKER_BASE_URL", "http://127.0.0.1")
        .env("LOOKER_PORT", emu.addr().port().to_string())
        .env("LOOKER_CLIENT_ID", CLIENT_ID)
        .env("LOOKER_CLIENT_SECRET", CLIENT_SECRET);
    let out = run("spectacles connect", cmd).await;
    let seen = calls(&emu);
    eprintln!("spectacles connect called: {seen:#?}");

    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        output.contains("Connected to Looker version 25.18.0 using Looker API 4.0"),
        "spectacles connect said:\n{output}"
    );
    assert_eq!(seen, ["POST /api/4.0/login 200", "GET /api/4.0/versions 200"]);
    // spectacles never logs out: its one token stays live, in production.
    assert_eq!(emu.counters(), Counters { logins: 1, live_tokens: 1, ..Counters::default() });
    let live = emu.live_tokens();
    assert_eq!(live[0].kind, TokenKind::ApiLogin { client_id: CLIENT_ID.to_owned() });
    assert_eq!(live[0].workspace, Workspace::Production);
}

/// Reads JSON-RPC lines from the server until the answer to `id`.
async fn answer_to<R>(lines: &mut tokio::io::Lines<R>, id: u64, transcript: &mut Vec<String>) -> Value
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    loop {
        let line = tokio::time::timeout(RUN_LIMIT, lines.next_line())
            .await
            .unwrap_or_else(|_| {
                panic!("no answer to request {id} within {RUN_LIMIT:?}; so far: {transcript:#?}")
            })
            .expect("read the server's stdout")
            .unwrap_or_else(|| {
                panic!("the server closed stdout before answering {id}; so far: {transcript:#?}")
            });
        transcript.push(line.clone());
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if msg["id"] == json!(id) {
            assert!(msg.get("error").is_none(), "request {id} failed: {msg}");
            return msg["result"].clone();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_server_lists_models_over_stdio() {
    let Some(server) = real_clients::mcp_server("mcp_server_lists_models_over_stdio") else {
        return;
    };
    let emu = emulator().await;
    let folder = tempfile::tempdir().expect("temp dir");
    let mut cmd = real_clients::clean_command(&server, folder.path());
    cmd.stdin(std::process::Stdio::piped())
        .env("LOOKER_BASE_URL", emu.base_url())
        .env("LOOKER_CLIENT_ID", CLIENT_ID)
        .env("LOOKER_CLIENT_SECRET", CLIENT_SECRET)
        .env("LOOKER_VERIFY_SSL", "false");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", server.display()));
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut transcript = Vec::new();
    let mut send = async |msg: Value| {
        let mut line = msg.to_string();
        line.push('\n');
        stdin.write_all(line.as_bytes()).await.expect("write to the server");
        stdin.flush().await.expect("flush");
    };

    send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26",
        "capabilities": {},
        "clientInfo": {"name": "looker-agent-tests", "version": "0"},
    }}))
    .await;
    let init = answer_to(&mut lines, 1, &mut transcript).await;
    assert!(init["serverInfo"]["name"].is_string(), "initialize answered {init}");
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})).await;
    let tools = answer_to(&mut lines, 2, &mut transcript).await;
    let names: Vec<&str> =
        tools["tools"].as_array().expect("tools").iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"list_models"), "tools/list: {names:?}");
    send(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "list_models", "arguments": {},
    }}))
    .await;
    let result = answer_to(&mut lines, 3, &mut transcript).await;
    drop(stdin);
    let status =
        tokio::time::timeout(RUN_LIMIT, child.wait()).await.expect("the server exits when stdin closes");
    let seen = calls(&emu);
    eprintln!("looker-mcp-server (initialize, tools/list, tools/call list_models) called: {seen:#?}");

    assert_ne!(result["isError"], json!(true), "list_models failed: {result}");
    let text =
        result["content"][0]["text"].as_str().unwrap_or_else(|| panic!("list_models answered {result}"));
    let models: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("list_models text {text:?}: {e}"));
    assert_eq!(models[0]["name"], "thelook", "list_models: {models}");
    assert_eq!(models[0]["explores"][0]["name"], "order_items", "list_models: {models}");
    assert_eq!(
        seen,
        ["POST /api/4.0/login 200", "GET /api/4.0/lookml_models 200", "DELETE /api/4.0/logout 204"]
    );
    // Login, call, logout per tool call: nothing left behind.
    assert_eq!(emu.counters(), Counters { logins: 1, logouts: 1, ..Counters::default() });
    let status = status.expect("wait for the server");
    assert!(status.success(), "looker-mcp-server exited with {status} after stdin closed");
}
