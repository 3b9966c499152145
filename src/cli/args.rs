//! `lookerctl`'s command line (clap derive).

use crate::store::StoreChoice;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Shown after `lookerctl --help`.
const EXAMPLES: &str = "\
Examples:
  curl -H \"Authorization: token $(lookerctl token prod)\" https://example.looker.com/api/4.0/user
  lookerctl exec prod -- ./report.sh
  lookerctl profile add prod --base-url https://example.looker.com
  printf '%s' \"$SECRET\" | lookerctl credential add prod reporting --client-id AbC123
  lookerctl status";

/// Get Looker API tokens from looker-agent, and manage its profiles and credentials.
#[derive(Debug, Parser)]
#[command(name = "lookerctl", version, after_help = EXAMPLES, propagate_version = true)]
pub struct Cli {
    /// The agent socket.
    #[arg(long, global = true, env = "LOOKER_AGENT_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The config file.
    #[arg(long, global = true, env = "LOOKER_AGENT_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Where client secrets are kept.
    #[arg(long, global = true, env = "LOOKER_AGENT_SECRET_STORE", value_enum, default_value_t = StoreChoice::Auto)]
    pub secret_store: StoreChoice,
    /// Profile used when a command names none.
    #[arg(long, global = true, env = "LOOKER_AGENT_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    /// Print JSON (for programs) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print an access token (for `$(lookerctl token prod)`).
    Token(TokenArgs),
    /// Run a command with LOOKERSDK_BASE_URL and LOOKER_ACCESS_TOKEN set.
    Exec(ExecArgs),
    /// Show the agent's profiles, credential sets and token state (never tokens).
    Status(StatusArgs),
    /// Revoke the agent's tokens at Looker (all, a profile's, or one credential's).
    Revoke(RevokeArgs),
    /// Manage profiles (one per Looker instance).
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Manage credential sets (client_id in the config, secret in the secret store).
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// Print shell completions.
    Completions(CompletionsArgs),
}

/// How `token` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenFormat {
    /// The token alone.
    Plain,
    /// The socket API's token object.
    Json,
    /// `Authorization: token …`.
    Header,
    /// Shell `export` lines.
    Env,
}

/// `lookerctl token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Profile (default: --profile, LOOKER_AGENT_PROFILE, or the agent's default).
    pub profile: Option<String>,
    /// Use this credential set only.
    #[arg(long, value_name = "NAME")]
    pub credential: Option<String>,
    /// The token must have at least this long left (90, 90s, 5m, 1h; default 60s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub min_ttl: Option<std::time::Duration>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TokenFormat::Plain)]
    pub format: TokenFormat,
}

/// `lookerctl exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Profile (default: --profile, LOOKER_AGENT_PROFILE, or the agent's default).
    pub profile: Option<String>,
    /// Use this credential set only.
    #[arg(long, value_name = "NAME")]
    pub credential: Option<String>,
    /// The token must have at least this long left when the command starts (default 10m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub min_ttl: Option<std::time::Duration>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
}

/// `lookerctl status`.
#[derive(Debug, Args)]
pub struct StatusArgs {}

/// `lookerctl revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Only this profile's tokens.
    pub profile: Option<String>,
    /// Only this credential set's tokens (needs PROFILE).
    #[arg(long, value_name = "NAME", requires = "profile")]
    pub credential: Option<String>,
}

/// `lookerctl profile …`.
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Add a profile.
    Add(ProfileAddArgs),
    /// List profiles.
    List,
    /// Show one profile.
    Show {
        /// Profile name.
        name: String,
    },
    /// Remove a profile, its credential sets and their secrets.
    Remove {
        /// Profile name.
        name: String,
    },
}

/// `lookerctl profile add`.
#[derive(Debug, Args)]
pub struct ProfileAddArgs {
    /// Profile name (letters, digits, '.', '_', '-').
    pub name: String,
    /// The Looker instance, e.g. https://example.looker.com (no /api/... suffix).
    #[arg(long, value_name = "URL")]
    pub base_url: String,
    /// Trust this CA certificate (PEM) too.
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// Do not verify the server's certificate (unsafe; for tests only).
    #[arg(long)]
    pub no_verify_tls: bool,
    /// Request timeout towards Looker (default 30s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Allow plain http to a non-loopback host (tokens would cross the network in clear).
    #[arg(long)]
    pub allow_insecure_http: bool,
    /// Make it the default profile.
    #[arg(long)]
    pub default: bool,
}

/// `lookerctl credential …`.
#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Add a credential set (the secret is read from stdin or a prompt, never argv).
    Add {
        /// Profile name.
        profile: String,
        /// Credential set name.
        name: String,
        /// The API key's client_id.
        #[arg(long, value_name = "ID")]
        client_id: String,
    },
    /// List credential sets.
    List {
        /// Only this profile's.
        profile: Option<String>,
    },
    /// Remove a credential set and its secret.
    Remove {
        /// Profile name.
        profile: String,
        /// Credential set name.
        name: String,
    },
}

/// `lookerctl completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse(s)
}

/// Prints completions for `shell` on stdout.
pub fn print_completions(shell: clap_complete::Shell) {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "lookerctl", &mut std::io::stdout());
}
