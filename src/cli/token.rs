//! `lookerctl token`, `lookerctl exec` and `lookerctl gateway credential`: ask the
//! agent for a token, or for a gateway credential that stands in for one.

use super::args::{Cli, ExecArgs, GatewayCredentialArgs, TokenArgs, TokenFormat};
use super::exit::{self, CliError};
use crate::client::AgentClient;
use crate::paths;
use crate::protocol::{GatewayCredentialAnswer, GatewayCredentialRequest, TokenObject};
use std::borrow::Cow;
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

/// `s` as one POSIX shell word: as it is when that is safe, else quoted (the
/// `shlex` crate's rules). `None` when `s` holds a NUL byte, which no shell word
/// or environment variable can hold.
pub(crate) fn shell_word(s: &str) -> Option<Cow<'_, str>> {
    shlex::try_quote(s).ok()
}

/// The `--format env` text: `export` lines that a POSIX shell evaluates back to
/// the token's values.
fn env_lines(t: &TokenObject) -> Result<String, CliError> {
    let mut out = String::new();
    for (var, name, value) in [
        ("LOOKERSDK_BASE_URL", "base_url", &t.base_url),
        ("LOOKER_ACCESS_TOKEN", "access_token", &t.access_token),
        ("LOOKER_TOKEN_EXPIRES_AT", "expires_at", &t.expires_at),
    ] {
        let word = shell_word(value).ok_or_else(|| {
            CliError::failure(format!(
                "the agent's {name} holds a NUL byte, which a shell cannot hold; use --format json"
            ))
        })?;
        out.push_str(&format!("export {var}={word}\n"));
        // A quoted copy of the token is as secret as the token.
        if let Cow::Owned(mut copy) = word {
            zeroize::Zeroize::zeroize(&mut copy);
        }
    }
    Ok(out)
}

/// `lookerctl token`.
pub async fn token(cli: &Cli, args: &TokenArgs) -> Result<u8, CliError> {
    let t = fetch(cli, profile(cli, &args.profile), args.credential.as_deref(), args.min_ttl).await?;
    let format = if cli.json { TokenFormat::Json } else { args.format };
    // The printed text holds the token too: wiped when done, like the token object.
    let out = zeroize::Zeroizing::new(match format {
        TokenFormat::Plain => format!("{}\n", t.access_token),
        TokenFormat::Header => format!("Authorization: token {}\n", t.access_token),
        TokenFormat::Env => env_lines(&t)?,
        TokenFormat::Json => {
            let mut s = serde_json::to_string(&t).map_err(|e| CliError::failure(e.to_string()))?;
            s.push('\n');
            s
        }
    });
    print_secret(&out)
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
/// pointed at the agent's Looker API gateway: a gateway credential that the agent
/// ends when this process (then COMMAND: execve keeps the pid) exits, and a session
/// token of it. Neither the client secret nor a real token is in COMMAND's reach.
/// `--direct` instead hands COMMAND the instance's URL and a real token.
///
/// Being the same process, COMMAND receives every signal sent to lookerctl, and its
/// exit status (or death by a signal) is what the caller sees: no forwarding loop to
/// race with, no double Ctrl-C. Returns only when COMMAND cannot be started (127 not
/// found, 126 otherwise, as shells do).
pub async fn exec(cli: &Cli, args: &ExecArgs) -> Result<u8, CliError> {
    use std::os::unix::process::CommandExt;
    let (program, rest) =
        args.command.split_first().ok_or_else(|| CliError::usage("no command given after --"))?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(rest);
    if args.direct {
        let t = fetch(
            cli,
            profile(cli, &args.profile),
            args.credential.as_deref(),
            Some(args.min_ttl.unwrap_or(EXEC_MIN_TTL)),
        )
        .await?;
        cmd.env("LOOKERSDK_BASE_URL", &t.base_url)
            .env("LOOKER_ACCESS_TOKEN", &t.access_token)
            .env("LOOKER_TOKEN_EXPIRES_AT", &t.expires_at);
    } else {
        let g = agent(cli)
            .gateway_credential(GatewayCredentialRequest {
                profile: profile(cli, &args.profile).map(str::to_string),
                credential: args.credential.clone(),
                ttl: None,
                bind_to_caller: true,
                session: true,
            })
            .await?;
        for (name, value) in gateway_env(&g) {
            cmd.env(name, value);
        }
    }
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

/// Names no proxy may take: every Python client (requests, httpx) would otherwise
/// send the gateway's loopback calls to an `HTTP_PROXY`.
const LOOPBACK_NAMES: [&str; 3] = ["127.0.0.1", "localhost", "::1"];

/// The environment `exec` gives COMMAND for the gateway:
/// - the official SDKs: `LOOKERSDK_BASE_URL`, `LOOKERSDK_CLIENT_ID`, `LOOKERSDK_CLIENT_SECRET`;
/// - curl and scripts: `LOOKER_ACCESS_TOKEN` (a session token);
/// - spectacles and looker-mcp-server: `LOOKER_BASE_URL`, `LOOKER_CLIENT_ID`,
///   `LOOKER_CLIENT_SECRET`. spectacles appends `:{LOOKER_PORT or 19999}` to the base URL
///   itself while looker-mcp-server takes it as it is (and LOOKER_PORT is its own listen
///   port), so LOOKER_BASE_URL is `http://127.0.0.1:PORT/looker/PROFILE`: the gateway
///   serves that prefix and ignores a `:PORT` glued to it, so both work and LOOKER_PORT
///   is left alone;
/// - `no_proxy`/`NO_PROXY` extended with the loopback names.
pub(crate) fn gateway_env(g: &GatewayCredentialAnswer) -> Vec<(&'static str, String)> {
    let profile_url = format!("{}/looker/{}", g.base_url, g.profile);
    let mut env = vec![
        ("LOOKERSDK_BASE_URL", g.base_url.clone()),
        ("LOOKERSDK_CLIENT_ID", g.client_id.clone()),
        ("LOOKERSDK_CLIENT_SECRET", g.client_secret.clone()),
        ("LOOKER_BASE_URL", profile_url),
        ("LOOKER_CLIENT_ID", g.client_id.clone()),
        ("LOOKER_CLIENT_SECRET", g.client_secret.clone()),
    ];
    if let Some(t) = &g.access_token {
        env.push(("LOOKER_ACCESS_TOKEN", t.clone()));
    }
    for var in ["no_proxy", "NO_PROXY"] {
        let mut list: Vec<String> = std::env::var(var)
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        for name in LOOPBACK_NAMES {
            if !list.iter().any(|n| n == name) {
                list.push(name.to_string());
            }
        }
        env.push((var, list.join(",")));
    }
    env
}

/// `lookerctl gateway credential`: a looker.ini section (or `--json`) for a program
/// that logs in to the gateway by itself.
pub(crate) async fn gateway_credential(cli: &Cli, args: &GatewayCredentialArgs) -> Result<u8, CliError> {
    let g = agent(cli)
        .gateway_credential(GatewayCredentialRequest {
            profile: profile(cli, &args.profile).map(str::to_string),
            credential: args.credential.clone(),
            ttl: args.ttl.map(|t| t.as_secs().max(1)),
            bind_to_caller: false,
            session: false,
        })
        .await?;
    let out = zeroize::Zeroizing::new(if cli.json {
        let v = serde_json::json!({
            "base_url": g.base_url,
            "client_id": g.client_id,
            "client_secret": g.client_secret,
            "expires_at": g.expires_at,
        });
        format!("{v}\n")
    } else {
        format!(
            "[Looker]\nbase_url={}\nclient_id={}\nclient_secret={}\n# expires {}\n",
            g.base_url,
            g.client_id,
            g.client_secret,
            g.expires_at.as_deref().unwrap_or("with the process it was minted for")
        )
    });
    print_secret(&out)
}

/// Writes text that holds a secret or token to stdout at once (the caller's copy is
/// a zeroizing buffer).
fn print_secret(out: &str) -> Result<u8, CliError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|_| stdout.flush())
        .map_err(|e| CliError::failure(e.to_string()))?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn token(base_url: &str, access_token: &str, expires_at: &str) -> TokenObject {
        TokenObject {
            access_token: access_token.into(),
            token_type: "Bearer".into(),
            expires_in: 3600,
            expires_at: expires_at.into(),
            profile: "p".into(),
            credential: "default".into(),
            base_url: base_url.into(),
        }
    }

    /// What /bin/sh makes of `exports`: the three variables, NUL-separated.
    fn evaluated(exports: &str) -> Vec<String> {
        let mut child = Command::new("/bin/sh")
            .args([
                "-c",
                r#"eval "$(cat)" && printf '%s\0%s\0%s' "$LOOKERSDK_BASE_URL" "$LOOKER_ACCESS_TOKEN" "$LOOKER_TOKEN_EXPIRES_AT""#,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(exports.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "sh failed on {exports:?}");
        String::from_utf8(out.stdout).unwrap().split('\0').map(String::from).collect()
    }

    #[test]
    fn env_lines_are_plain_when_safe() {
        let t = token("https://looker.example.com:19999", "abc123DEF", "2026-11-22T17:04:05Z");
        assert_eq!(
            env_lines(&t).unwrap(),
            "export LOOKERSDK_BASE_URL=https://looker.example.com:19999\n\
             export LOOKER_ACCESS_TOKEN=abc123DEF\n\
             export LOOKER_TOKEN_EXPIRES_AT=2026-11-22T17:04:05Z\n"
        );
        assert_eq!(evaluated(&env_lines(&t).unwrap()), [t.base_url.as_str(), &t.access_token, &t.expires_at]);
    }

    #[test]
    fn env_lines_round_trip_through_sh() {
        let nasty = [
            ("https://a b/it's", "tok'en\"q\"", "$HOME `id` $(id)"),
            ("line\nbreak", "back\\slash \t tab", "!^*?[]{}~#;&|<>=%,"),
            ("", "'", "\""),
            ("ünïcödé", "'\"'\"", "trailing newline\n"),
        ];
        for (base_url, access_token, expires_at) in nasty {
            let t = token(base_url, access_token, expires_at);
            let exports = env_lines(&t).unwrap();
            assert_eq!(evaluated(&exports), [base_url, access_token, expires_at], "{exports}");
        }
    }

    #[test]
    fn env_lines_refuse_a_nul() {
        let e = env_lines(&token("https://x", "a\0b", "z")).unwrap_err();
        assert!(e.message.contains("access_token holds a NUL byte"), "{}", e.message);
    }
}
