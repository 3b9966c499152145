//! `lookerctl token` and `lookerctl exec`: ask the agent for a token.

use super::args::{Cli, ExecArgs, TokenArgs, TokenFormat};
use super::exit::{self, CliError};
use crate::client::AgentClient;
use crate::paths;
use crate::protocol::TokenObject;
use std::io::Write;
use std::time::Duration;

/// Default `min_ttl` for `exec`: a child process should not see its token expire soon.
pub const EXEC_MIN_TTL: Duration = Duration::from_secs(600);

/// The client for the configured socket.
pub fn agent(cli: &Cli) -> AgentClient {
    AgentClient::new(cli.socket.clone().unwrap_or_else(paths::default_socket))
}

fn profile<'a>(cli: &'a Cli, positional: &'a Option<String>) -> Option<&'a str> {
    positional.as_deref().or(cli.profile.as_deref()).filter(|p| !p.is_empty())
}

/// Quotes a value for POSIX shells.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `lookerctl token`.
pub async fn token(cli: &Cli, args: &TokenArgs) -> Result<u8, CliError> {
    let t = fetch(cli, profile(cli, &args.profile), args.credential.as_deref(), args.min_ttl).await?;
    let format = if cli.json { TokenFormat::Json } else { args.format };
    let out = match format {
        TokenFormat::Plain => format!("{}\n", t.access_token),
        TokenFormat::Header => format!("Authorization: token {}\n", t.access_token),
        TokenFormat::Env => format!(
            "export LOOKERSDK_BASE_URL={}\nexport LOOKER_ACCESS_TOKEN={}\nexport LOOKER_TOKEN_EXPIRES_AT={}\n",
            shell_quote(&t.base_url),
            shell_quote(&t.access_token),
            shell_quote(&t.expires_at)
        ),
        TokenFormat::Json => {
            let mut s = serde_json::to_string(&t).map_err(|e| CliError::failure(e.to_string()))?;
            s.push('\n');
            s
        }
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes()).and_then(|_| stdout.flush()).map_err(|e| CliError::failure(e.to_string()))?;
    Ok(exit::OK)
}

async fn fetch(
    cli: &Cli,
    profile: Option<&str>,
    credential: Option<&str>,
    min_ttl: Option<Duration>,
) -> Result<TokenObject, CliError> {
    Ok(agent(cli).token(profile, credential, min_ttl).await?)
}

/// `lookerctl exec`: runs COMMAND with the token in its environment and
/// exits with its status; signals sent to lookerctl are passed on to it.
pub async fn exec(cli: &Cli, args: &ExecArgs) -> Result<u8, CliError> {
    let t = fetch(
        cli,
        profile(cli, &args.profile),
        args.credential.as_deref(),
        Some(args.min_ttl.unwrap_or(EXEC_MIN_TTL)),
    )
    .await?;
    let (program, rest) = args.command.split_first().ok_or_else(|| CliError::usage("no command given after --"))?;
    let mut child = tokio::process::Command::new(program)
        .args(rest)
        .env("LOOKERSDK_BASE_URL", &t.base_url)
        .env("LOOKER_ACCESS_TOKEN", &t.access_token)
        .env("LOOKER_TOKEN_EXPIRES_AT", &t.expires_at)
        .spawn()
        .map_err(|e| {
            let code = if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 };
            CliError { code, message: format!("cannot run {}: {e}", program.to_string_lossy()) }
        })?;
    drop(t);
    let pid = child.id();
    let forward = async {
        use tokio::signal::unix::{signal, SignalKind};
        let kinds = [SignalKind::interrupt(), SignalKind::terminate(), SignalKind::hangup(), SignalKind::quit()];
        let mut streams: Vec<_> = kinds.iter().filter_map(|k| signal(*k).ok().map(|s| (k.as_raw_value(), s))).collect();
        loop {
            let futs = streams.iter_mut().map(|(n, s)| Box::pin(async move { s.recv().await.map(|_| *n) }));
            let (sig, _, _) = futures_util::future::select_all(futs).await;
            if let (Some(sig), Some(pid)) = (sig, pid) {
                if let (Some(sig), Some(pid)) = (rustix::process::Signal::from_named_raw(sig), rustix::process::Pid::from_raw(pid as i32)) {
                    let _ = rustix::process::kill_process(pid, sig);
                }
            }
        }
    };
    let status = tokio::select! {
        s = child.wait() => s.map_err(|e| CliError::failure(format!("waiting for the command: {e}")))?,
        _ = forward => return Err(CliError::failure("signal forwarding ended")),
    };
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
        _ => exit::FAILURE,
    })
}
