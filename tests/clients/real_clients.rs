//! Where the real Looker clients are, and how to run one cleanly. Shared by
//! the tests that run them (`#[path = "clients/real_clients.rs"] mod real_clients;`).
//!
//! `scripts/test.sh` installs them (scripts/clients.sh) and exports:
//!
//! | variable | what |
//! | --- | --- |
//! | `LOOKER_AGENT_NODE_MODULES` | a `node_modules` holding `@looker/sdk` and `@looker/sdk-node` |
//! | `LOOKER_AGENT_SPECTACLES` | the `spectacles` executable |
//! | `LOOKER_AGENT_MCP` | the `looker-mcp-server` executable |
//! | `LOOKER_AGENT_TOOLBOX` | the `toolbox` executable of Google's MCP Toolbox (`@toolbox-sdk/server`) |
//!
//! A variable that is set must point at something that exists (else the
//! test fails). One that is not set fails the test under `CI=true` (CI
//! must run every client) and skips it otherwise, saying why.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;

use looker_emulator::{Emulator, EmulatorConfig, EmulatorUser};
use tokio::process::Command;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether we run under CI, where a missing client is a failure.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The path in `var`, or `None` (after printing why) when the test should
/// skip. Panics when the variable names nothing that exists, or when it is
/// unset under CI.
pub fn locate(var: &str, what: &str, test: &str) -> Option<PathBuf> {
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(
                p.exists(),
                "{var}={} does not exist: run scripts/clients.sh to install {what}",
                p.display()
            );
            Some(p)
        }
        None if under_ci() => panic!(
            "{var} is not set under CI=true: {what} must be installed for {test} \
             (scripts/test.sh runs scripts/clients.sh and exports it)"
        ),
        None => {
            eprintln!(
                "SKIPPED {test}: {var} is not set, so {what} is not installed \
                 (run the tests with scripts/test.sh, or export {var} from scripts/clients.sh)"
            );
            None
        }
    }
}

/// `node_modules` with `@looker/sdk-node`.
pub fn node_modules(test: &str) -> Option<PathBuf> {
    locate("LOOKER_AGENT_NODE_MODULES", "@looker/sdk-node (npm)", test)
}

/// The `spectacles` executable.
pub fn spectacles(test: &str) -> Option<PathBuf> {
    locate("LOOKER_AGENT_SPECTACLES", "spectacles (PyPI)", test)
}

/// The `looker-mcp-server` executable.
pub fn mcp_server(test: &str) -> Option<PathBuf> {
    locate("LOOKER_AGENT_MCP", "looker-mcp-server (PyPI)", test)
}

/// The `toolbox` executable of Google's MCP Toolbox (Looker's Go SDK inside).
pub fn toolbox(test: &str) -> Option<PathBuf> {
    locate("LOOKER_AGENT_TOOLBOX", "Google's MCP Toolbox (npm @toolbox-sdk/server)", test)
}

/// Debian's `chromium`, the real browser of the OAuth sign-in tests.
pub fn chromium(test: &str) -> Option<PathBuf> {
    locate("LOOKER_AGENT_CHROMIUM", "Debian's chromium", test)
}

/// An emulator with the two users the client runs meet: Ada Lovelace (id 42,
/// an admin), as whom the client logs in with `client_id` and `client_secret`;
/// and Alan Turing (id 7, `other-client` / `other-secret`), a bystander whose
/// session the client must leave alone, or the user it sudoes as.
pub async fn emulator_with_ada_and_alan(client_id: &str, client_secret: &str) -> Emulator {
    let emu = Emulator::start(EmulatorConfig::default()).await.expect("start emulator");
    emu.add_credential(
        client_id,
        client_secret,
        EmulatorUser::admin("42", "Ada Lovelace", "ada@example.com"),
    );
    emu.add_credential(
        "other-client",
        "other-secret",
        EmulatorUser::new("7", "Alan Turing", "alan@example.com"),
    );
    emu
}

/// The calls the emulator answered, as `"METHOD /path STATUS"` (`dropped` where
/// it closed the connection instead): what a client run is checked against.
pub fn calls(emu: &Emulator) -> Vec<String> {
    emu.requests()
        .iter()
        .map(|r| format!("{} {}", r.call(), r.status.map_or_else(|| "dropped".to_owned(), |s| s.to_string())))
        .collect()
}

/// tests/clients/node_sdk.js, the Node SDK script.
pub fn node_script() -> PathBuf {
    repo().join("tests/clients/node_sdk.js")
}

/// A command for `program` that nothing in the caller's environment can
/// redirect: no LOOKER*/LOOKERSDK* variables, no proxies (and `no_proxy`
/// covering loopback, since Python's requests and httpx otherwise send
/// loopback calls to an HTTP_PROXY), run in `cwd` (an empty folder: the
/// clients read ./looker.ini or ./.env and write ./logs), stdio piped.
pub fn clean_command(program: &Path, cwd: &Path) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy().to_ascii_lowercase();
        if k.starts_with("looker") || k.ends_with("_proxy") || k == "node_path" || k == "node_options" {
            cmd.env_remove(&key);
        }
    }
    cmd.env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}
