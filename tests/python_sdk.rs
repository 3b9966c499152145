//! Fidelity check: the official Python `looker_sdk` logs in to the emulator,
//! reads the user and its roles, its session (moved to dev), the versions, a
//! large download, sudoes as another user and back, and logs out
//! (tests/python/sdk_fidelity.py); the test checks what the emulator saw.
//!
//! The interpreter comes from `LOOKER_AGENT_PYTHON`, or else from
//! `scripts/python-venv.sh` (which creates a venv with looker_sdk from PyPI).
//! When neither works the test fails under `CI=true`; otherwise (or with
//! `LOOKER_AGENT_SKIP_PYTHON=1`) it skips, saying why.

#[path = "clients/real_clients.rs"]
mod real_clients;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use looker_emulator::Counters;
use real_clients::{repo, under_ci};
use tokio::process::Command;

const CLIENT_ID: &str = "pyclient0123456789ab";
const CLIENT_SECRET: &str = "py-secret/with+odd&chars=";

/// The length of the download the script reads: more than one chunk.
const DOWNLOAD_BYTES: u64 = 3 * 1024 * 1024 + 5;

/// The python to run the script with, or why there is none.
async fn find_python() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("LOOKER_AGENT_PYTHON").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        let ok = Command::new(&p)
            .args(["-c", "import looker_sdk"])
            .stdin(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!(
                "LOOKER_AGENT_PYTHON={} cannot `import looker_sdk` (scripts/python-venv.sh prints a python that can)",
                p.display()
            ));
        }
        return Ok(p);
    }
    let script = repo().join("scripts/python-venv.sh");
    let out = tokio::time::timeout(
        Duration::from_secs(600),
        Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output(),
    )
    .await
    .map_err(|_| format!("{} took more than 10 minutes", script.display()))?
    .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}):\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout.lines().last().unwrap_or("").trim();
    if path.is_empty() || !Path::new(path).exists() {
        return Err(format!("{} printed no usable python path (stdout {stdout:?})", script.display()));
    }
    Ok(PathBuf::from(path))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_logs_in_reads_me_and_logs_out() {
    let python = match find_python().await {
        Ok(p) => p,
        Err(why) if std::env::var("LOOKER_AGENT_SKIP_PYTHON").as_deref() == Ok("1") => {
            eprintln!("SKIPPED python_sdk fidelity check (LOOKER_AGENT_SKIP_PYTHON=1): {why}");
            return;
        }
        Err(why) if std::env::var_os("LOOKER_AGENT_PYTHON").is_none() && !under_ci() => {
            eprintln!("SKIPPED python_sdk fidelity check (not under CI=true): {why}");
            return;
        }
        Err(why) => panic!(
            "no Python with looker_sdk for the SDK fidelity check: {why}\n\
             Install python3 with venv and pip (Debian: apt-get install python3-venv python3-pip), \
             or point LOOKER_AGENT_PYTHON at a python that can `import looker_sdk`, \
             or set LOOKER_AGENT_SKIP_PYTHON=1 to skip this check."
        ),
    };

    let emu = real_clients::emulator_with_ada_and_alan(CLIENT_ID, CLIENT_SECRET).await;

    let script = repo().join("tests/python/sdk_fidelity.py");
    let mut cmd = Command::new(&python);
    cmd.arg("-I")
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Nothing from the caller's environment may redirect the SDK.
    for (key, _) in std::env::vars_os() {
        let key_str = key.to_string_lossy().to_ascii_lowercase();
        if key_str.starts_with("lookersdk_") || key_str.ends_with("_proxy") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("LOOKERSDK_BASE_URL", emu.base_url())
        .env("LOOKERSDK_CLIENT_ID", CLIENT_ID)
        .env("LOOKERSDK_CLIENT_SECRET", CLIENT_SECRET)
        .env("LOOKERSDK_VERIFY_SSL", "false")
        .env("LOOKERSDK_TIMEOUT", "30")
        .env("NO_PROXY", "*")
        .env("EXPECT_USER_ID", "42")
        .env("EXPECT_DISPLAY_NAME", "Ada Lovelace")
        .env("EXPECT_EMAIL", "ada@example.com")
        .env("EXPECT_ADMIN", "1")
        .env("EXPECT_SUDO_ID", "7")
        .env("EXPECT_SUDO_NAME", "Alan Turing")
        .env("DOWNLOAD_BYTES", DOWNLOAD_BYTES.to_string());

    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the SDK script finished within 2 minutes")
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "sdk_fidelity.py failed ({}) with {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status,
        python.display()
    );
    eprint!("{stdout}");
    let seen = real_clients::calls(&emu);
    eprintln!("looker_sdk called: {seen:#?}");

    assert_eq!(
        emu.counters(),
        Counters { logins: 1, failed_logins: 1, logouts: 2, live_tokens: 0, sudo_logins: 1 },
        "the SDK should have logged in once, sudoed once, logged both out, and failed once with the wrong secret"
    );
    assert_eq!(
        seen,
        [
            "POST /api/4.0/login 200",
            "GET /api/4.0/user 200",
            "GET /api/4.0/user 200",
            "GET /api/4.0/users/42/roles 200",
            "GET /api/4.0/users/999999 404",
            "GET /api/4.0/session 200",
            "PATCH /api/4.0/session 200",
            "GET /api/4.0/session 200",
            "PATCH /api/4.0/session 422",
            "GET /api/4.0/versions 200",
            "GET /api/4.0/emulator/download 200",
            "POST /api/4.0/login/7 200",
            "GET /api/4.0/user 200",
            "GET /api/4.0/session 200",
            "DELETE /api/logout 204",
            "GET /api/4.0/user 200",
            "GET /api/4.0/session 200",
            "DELETE /api/logout 204",
            "POST /api/4.0/login 404",
        ]
    );
}
