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
    // The printed text holds the token too: wiped when done, like the token object.
    let out = zeroize::Zeroizing::new(match format {
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
    });
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|_| stdout.flush())
        .map_err(|e| CliError::failure(e.to_string()))?;
    Ok(exit::OK)
}

/// A token from the agent's socket; when nothing answers there, from the
/// agent's D-Bus API on the session bus.
async fn fetch(
    cli: &Cli,
    profile: Option<&str>,
    credential: Option<&str>,
    min_ttl: Option<Duration>,
) -> Result<TokenObject, CliError> {
    use crate::client::ClientError;
    match agent(cli).token(profile, credential, min_ttl).await {
        Err(ClientError::NotRunning { socket, reason }) => {
            match crate::client_bus::token_over_bus(profile, credential, min_ttl).await {
                Ok(t) => Ok(t),
                Err(ClientError::NotRunning { reason: bus, .. }) | Err(ClientError::Protocol(bus)) => {
                    Err(ClientError::NotRunning {
                        socket,
                        reason: format!("nothing answers on the socket: {reason}; nor on D-Bus: {bus}"),
                    }
                    .into())
                }
                Err(e) => Err(e.into()),
            }
        }
        r => Ok(r?),
    }
}

/// `lookerctl exec`: replaces lookerctl with COMMAND (execve), its environment
/// holding the token. Being the same process, COMMAND receives every signal sent
/// to lookerctl, and its exit status (or death by a signal) is what the caller
/// sees: no forwarding loop to race with, no double Ctrl-C. Returns only when
/// COMMAND cannot be started (127 not found, 126 otherwise, as shells do).
pub async fn exec(cli: &Cli, args: &ExecArgs) -> Result<u8, CliError> {
    use std::os::unix::process::CommandExt;
    let (program, rest) =
        args.command.split_first().ok_or_else(|| CliError::usage("no command given after --"))?;
    let t = fetch(
        cli,
        profile(cli, &args.profile),
        args.credential.as_deref(),
        Some(args.min_ttl.unwrap_or(EXEC_MIN_TTL)),
    )
    .await?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(rest)
        .env("LOOKERSDK_BASE_URL", &t.base_url)
        .env("LOOKER_ACCESS_TOKEN", &t.access_token)
        .env("LOOKER_TOKEN_EXPIRES_AT", &t.expires_at);
    drop(t);
    let e = cmd.exec();
    let code = if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 };
    Err(CliError::new(
        code,
        format!(
            "cannot run {}: {e}; check the command name and that it is executable",
            program.to_string_lossy()
        ),
    ))
}
