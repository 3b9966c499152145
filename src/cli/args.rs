//! `lookerctl`'s command line (clap derive), with the examples `--help` shows.

use crate::store::StoreChoice;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum, ValueHint};
use std::path::PathBuf;

/// Shown after `lookerctl --help`.
const EXAMPLES: &str = "\
Examples:
  lookerctl profile add prod --base-url https://example.looker.com
  printf '%s' \"$SECRET\" | lookerctl credential add prod reporting --client-id AbC123
  lookerctl credential add prod vault --client-id AbC123 --source -- pass show looker/prod
  lookerctl import ~/looker.ini --remove-secret     (or: from LOOKERSDK_* variables, ~/.netrc)
  lookerctl credential verify prod
  curl -H \"$(lookerctl token prod --format header)\" https://example.looker.com/api/4.0/user
  lookerctl exec prod -- python report.py
  lookerctl status

Exit status: 0 success, 1 failure, 2 usage error, 3 agent not reachable,
4 unknown profile or credential, 5 Looker rejected the credentials,
6 Looker unreachable or failing (`exec`: the command's own status).
Output never contains colour or other terminal escapes (NO_COLOR is always honoured).";

const TOKEN_EXAMPLES: &str = "\
Examples:
  export LOOKER_ACCESS_TOKEN=\"$(lookerctl token prod)\"
  curl -H \"$(lookerctl token prod --format header)\" https://example.looker.com/api/4.0/user
  eval \"$(lookerctl token prod --format env)\"      (LOOKERSDK_BASE_URL, LOOKER_ACCESS_TOKEN, ...)
  lookerctl token prod --credential reporting --min-ttl 30m --format json";

const EXEC_EXAMPLES: &str = "\
lookerctl replaces itself with COMMAND (execve), so COMMAND gets every signal sent to
lookerctl (Ctrl-C, SIGTERM from a supervisor) and lookerctl exits with COMMAND's status.
COMMAND gets LOOKERSDK_BASE_URL, LOOKER_ACCESS_TOKEN and LOOKER_TOKEN_EXPIRES_AT (RFC 3339).

Examples:
  lookerctl exec prod -- python report.py --since yesterday
  lookerctl exec prod --min-ttl 50m -- ./long-export.sh
  lookerctl exec -- sh -c 'curl -H \"Authorization: token $LOOKER_ACCESS_TOKEN\" \"$LOOKERSDK_BASE_URL/api/4.0/user\"'";

const STATUS_EXAMPLES: &str = "\
Examples:
  lookerctl status
  lookerctl status --json | jq '.profiles[].credentials[] | {name, state, expires_in}'";

const PROFILE_ADD_EXAMPLES: &str = "\
Examples:
  lookerctl profile add prod --base-url https://example.looker.com --default
  lookerctl profile add onprem --base-url https://looker.corp:19999 --ca-file /etc/ssl/corp-ca.pem --timeout 2m";

const CREDENTIAL_ADD_EXAMPLES: &str = "\
The client_secret is read from standard input when it is piped, else from a prompt
that does not echo; it is never taken from the command line.

With --source, nothing is stored: the command after `--` prints the secret on its
standard output whenever the agent needs to log in (not at every token request). It
runs without a shell, with no input and a 30 s timeout; one trailing newline is
removed; nothing it prints is logged or written to disk. The program is a name found
on the agent's PATH or an absolute path. See docs/secret-sources.md for pass, Vault
and 1Password.

Examples:
  printf '%s' \"$SECRET\" | lookerctl credential add prod reporting --client-id AbC123
  lookerctl credential add prod reporting --client-id AbC123      (prompts for the secret)
  lookerctl credential add prod reporting --client-id AbC123 --rotate-after 90d
  lookerctl credential add prod reporting --client-id AbC123 --source -- pass show looker/prod
  lookerctl credential add prod ci --client-id AbC123 --source -- \\
    vault kv get -field=client_secret kv/looker/prod
  lookerctl credential add prod me --client-id AbC123 --source -- op read op://Looker/prod/credential";

const LOGIN_EXAMPLES: &str = "\
Opens Looker's sign-in and consent page in the browser ($BROWSER, else xdg-open;
--no-browser only prints the link), waits for the redirect on 127.0.0.1:PORT, and
stores the OAuth refresh token in the secret store as the credential set NAME of
the profile (never in the config). The agent then keeps its tokens fresh like any
credential set's. A Looker admin registers the OAuth client app once, with the
redirect URI http://127.0.0.1:7777 (docs/oauth.md). Over SSH, forward the port:
ssh -L 7777:127.0.0.1:7777 HOST.

Examples:
  lookerctl login prod
  lookerctl login prod --no-browser
  lookerctl login prod --name work --client-guid my-company-cli --port 8085";

const ROTATE_EXAMPLES: &str = "\
Logs in to Looker directly with the stored secret, creates a new API key for the
key's own user (POST /api/4.0/users/{id}/credentials_api3), checks that it logs in,
stores its secret, points the config at its client_id and only then deletes the
old key at Looker. An interrupted rotation is finished or undone by the next run.
Needs API key self-service in Looker, or a credential of an admin.

Examples:
  lookerctl credential rotate prod
  lookerctl credential rotate prod reporting --json";

const VERIFY_EXAMPLES: &str = "\
Logs in to Looker directly with the stored secret (no running agent needed), reads
GET /api/4.0/user and the user's roles, then logs the token out again. Warns when
the user holds the Admin role: Looker advises API keys on a service account with
only the permissions it needs.

Examples:
  lookerctl credential verify prod
  lookerctl credential verify prod reporting --json";

const IMPORT_HELP: &str = "\
Where the settings come from (the first that applies):
  1. LOOKER_INI, when given: that file only (LOOKERSDK_* variables are ignored);
  2. the LOOKERSDK_* environment variables, when LOOKERSDK_BASE_URL or
     LOOKERSDK_CLIENT_ID is set (also LOOKERSDK_CLIENT_SECRET, LOOKERSDK_VERIFY_SSL,
     LOOKERSDK_TIMEOUT);
  3. ./looker.ini, the file the SDKs read by default.
Without a client_secret in the source, it is read from standard input or a prompt.

The file is read as the Looker SDKs read it: the first [section] unless --section
names one, `key=value` or `key: value`, whole-line `#`/`;` comments, quotes around
values removed (a `#` or `=` inside a value is kept), [DEFAULT] inherited.

The profile is named by --profile (LOOKER_AGENT_PROFILE is not used here), else after
the section ([Looker] -> looker; `looker` for the environment). An existing profile
of that name must have the same base_url: then only its credential set is added or
replaced, so importing again is safe.

The client_secret goes into the secret store, never into the config. The file keeps
its copy in plain text unless --remove-secret: then the file is rewritten in place
(atomically, same mode) without the client_secret line, everything else unchanged.

With --netrc [PATH] (default ~/.netrc), the settings come from a netrc file instead,
as Google's looker-cli (gzr) reads it: `machine HOST login CLIENT_ID password SECRET`
(tokens separated by any whitespace; `default` entries and macdef skipped). The
profile's base_url is https://HOST, its name HOST's first label unless --profile;
--machine picks the entry when the file has several. --remove-secret takes the
`password SECRET` pair out of the file the same way, everything else unchanged.

Examples:
  lookerctl import                                     (./looker.ini or LOOKERSDK_*)
  lookerctl import ~/looker.ini --section Staging --profile staging
  lookerctl import ~/looker.ini --remove-secret
  lookerctl import --netrc --machine example.looker.com --remove-secret
  LOOKERSDK_BASE_URL=https://example.looker.com LOOKERSDK_CLIENT_ID=AbC123 \\
    lookerctl import --profile prod < secret.txt";

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  lookerctl completions bash > ~/.local/share/bash-completion/completions/lookerctl
  lookerctl completions zsh > \"${fpath[1]}/_lookerctl\"
  lookerctl completions fish > ~/.config/fish/completions/lookerctl.fish";

/// Get Looker API tokens from looker-agent, and manage its profiles and credentials.
#[derive(Debug, Parser)]
#[command(
    name = "lookerctl",
    version,
    after_help = EXAMPLES,
    propagate_version = true,
    color = clap::ColorChoice::Never,
    max_term_width = 100
)]
pub struct Cli {
    /// The agent socket.
    #[arg(long, global = true, env = "LOOKER_AGENT_SOCKET", value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub socket: Option<PathBuf>,
    /// The config file.
    #[arg(long, global = true, env = "LOOKER_AGENT_CONFIG", value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub config: Option<PathBuf>,
    /// Where client secrets are kept.
    #[arg(long, global = true, env = "LOOKER_AGENT_SECRET_STORE", value_enum, default_value_t = StoreChoice::Auto)]
    pub secret_store: StoreChoice,
    /// Profile used when a command names none (`import`: the profile to create).
    #[arg(long, global = true, env = "LOOKER_AGENT_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    /// Print JSON (for programs) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// True when `--profile` came from LOOKER_AGENT_PROFILE rather than the command line.
    #[arg(skip)]
    pub profile_from_env: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print an access token (for `$(lookerctl token prod)`).
    #[command(after_help = TOKEN_EXAMPLES)]
    Token(TokenArgs),
    /// Run a command with LOOKERSDK_BASE_URL and LOOKER_ACCESS_TOKEN set.
    #[command(after_help = EXEC_EXAMPLES)]
    Exec(ExecArgs),
    /// Show the agent's profiles, credential sets and token state (never tokens).
    #[command(after_help = STATUS_EXAMPLES)]
    Status(StatusArgs),
    /// Revoke the agent's tokens at Looker (all, a profile's, or one credential's).
    Revoke(RevokeArgs),
    /// The Looker API gateway: mint credentials for programs that log in themselves.
    #[command(subcommand)]
    Gateway(GatewayCommand),
    /// Manage profiles (one per Looker instance).
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Manage credential sets (client_id in the config, secret in the secret store).
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// Import a profile and credential from a looker.ini, LOOKERSDK_* variables or ~/.netrc.
    #[command(after_help = IMPORT_HELP)]
    Import(ImportArgs),
    /// Sign in with Looker's OAuth in a browser (no API key needed); the grant is
    /// stored as a credential set of the profile.
    #[command(after_help = LOGIN_EXAMPLES)]
    Login(LoginArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions(CompletionsArgs),
    /// Write man pages (lookerctl.1 and one per subcommand).
    #[command(hide = true)]
    Man(ManArgs),
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
    /// Output format (--json is the same as --format json).
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
    /// With --direct: the token must have at least this long left when COMMAND starts (default 10m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub min_ttl: Option<std::time::Duration>,
    /// Give COMMAND the instance's own URL and a real token (the first release's
    /// behaviour) instead of pointing it at the agent's gateway.
    #[arg(long)]
    pub direct: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND", value_hint = ValueHint::CommandWithArguments)]
    pub command: Vec<std::ffi::OsString>,
}

/// `lookerctl status`.
#[derive(Debug, Args)]
pub struct StatusArgs {}

/// `lookerctl login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Profile (the Looker instance) to sign in to.
    #[arg(value_parser = crate::name::profile_arg)]
    pub profile: String,
    /// Name of the credential set that keeps the grant.
    #[arg(long, default_value = crate::oauth::DEFAULT_CREDENTIAL_NAME, value_parser = crate::name::credential_arg)]
    pub name: String,
    /// The OAuth client app registered in Looker (its client_guid).
    #[arg(long, value_name = "GUID", default_value = crate::oauth::DEFAULT_CLIENT_GUID)]
    pub client_guid: String,
    /// Only print the sign-in link; open it in any browser that reaches this port.
    #[arg(long)]
    pub no_browser: bool,
    /// Loopback port of the redirect URI registered for the app (`http://127.0.0.1:PORT`).
    #[arg(long, default_value_t = crate::oauth::DEFAULT_REDIRECT_PORT)]
    pub port: u16,
    /// How long to wait for the sign-in to come back from the browser.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

/// `lookerctl gateway …`.
#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// Mint a gateway credential for a long-running program (a notebook, a BI tool),
    /// printed as a looker.ini section (`--json`: an object).
    #[command(after_help = GATEWAY_CREDENTIAL_EXAMPLES)]
    Credential(GatewayCredentialArgs),
    /// End gateway credentials before their time (all, a profile's, or one by
    /// --client-id), with their sessions; `lookerctl status` lists them.
    #[command(after_help = GATEWAY_REVOKE_EXAMPLES)]
    Revoke(GatewayRevokeArgs),
}

/// `lookerctl gateway revoke`.
#[derive(Debug, Args)]
pub struct GatewayRevokeArgs {
    /// Only this profile's gateway credentials.
    pub profile: Option<String>,
    /// Only the gateway credential with this client_id (not secret; see `lookerctl status`).
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
}

const GATEWAY_REVOKE_EXAMPLES: &str = "\
Examples:
  lookerctl gateway revoke prod --client-id AbC123...   # one leaked looker.ini
  lookerctl gateway revoke prod                         # every one of prod's
  lookerctl gateway revoke                              # every one

Programs that logged in with an ended credential get 401 at their next call and 404
at their next login; `lookerctl exec` children included. The real Looker tokens stay
(use `lookerctl revoke` for those).";

/// `lookerctl gateway credential`.
#[derive(Debug, Args)]
pub struct GatewayCredentialArgs {
    /// Profile (default: --profile, LOOKER_AGENT_PROFILE, or the agent's default).
    pub profile: Option<String>,
    /// Its sessions use this credential set only.
    #[arg(long, value_name = "NAME")]
    pub credential: Option<String>,
    /// How long it works (default 8h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub ttl: Option<std::time::Duration>,
}

const GATEWAY_CREDENTIAL_EXAMPLES: &str = "\
Examples:
  lookerctl gateway credential prod > looker.ini     # the SDKs read ./looker.ini
  lookerctl gateway credential prod --ttl 30d --json

The program logs in to the gateway (base_url in the output) as it would to Looker,
never holding the real client secret or a real token. The credential stops working
after --ttl (agent restarts and reboots keep it), or with `lookerctl gateway revoke`.";

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
    #[command(after_help = PROFILE_ADD_EXAMPLES)]
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
    #[arg(value_parser = crate::name::profile_arg)]
    pub name: String,
    /// The Looker instance, e.g. https://example.looker.com (no /api/... suffix).
    #[arg(long, value_name = "URL", value_hint = ValueHint::Url)]
    pub base_url: String,
    /// Trust this CA certificate (PEM) too.
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
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
    /// Add a credential set (the secret from stdin, a prompt or a command; never argv).
    #[command(after_help = CREDENTIAL_ADD_EXAMPLES)]
    Add {
        /// Profile name.
        #[arg(value_parser = crate::name::profile_arg)]
        profile: String,
        /// Credential set name.
        #[arg(value_parser = crate::name::credential_arg)]
        name: String,
        /// The API key's client_id.
        #[arg(long, value_name = "ID")]
        client_id: String,
        /// Let the agent rotate the key by itself once it is this old (`90d`; at least a
        /// day). Not with --source.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "source")]
        rotate_after: Option<std::time::Duration>,
        /// Take the secret from the command after `--` (run without a shell whenever a
        /// login needs it) instead of storing it; nothing is read from stdin.
        #[arg(long, requires = "command")]
        source: bool,
        /// With --source: the command and its arguments, e.g. `-- pass show looker/prod`.
        #[arg(last = true, value_name = "CMD", requires = "source")]
        command: Vec<String>,
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
    /// Log in with a credential set and show which Looker user it acts as.
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify {
        /// Profile name.
        profile: String,
        /// Credential set name (default: the profile's first).
        name: Option<String>,
    },
    /// Replace a credential set's API key with a new one of the same Looker user.
    #[command(after_help = ROTATE_EXAMPLES)]
    Rotate {
        /// Profile name.
        profile: String,
        /// Credential set name (default: the profile's first).
        name: Option<String>,
    },
}

/// `lookerctl import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The looker.ini to read (default: LOOKERSDK_* variables, else ./looker.ini).
    #[arg(value_name = "LOOKER_INI", value_hint = ValueHint::FilePath)]
    pub file: Option<PathBuf>,
    /// The [section] to import (default: the first; names are case-sensitive).
    #[arg(long, value_name = "NAME", conflicts_with = "netrc")]
    pub section: Option<String>,
    /// Read a netrc file instead (default ~/.netrc): `machine HOST login CLIENT_ID
    /// password SECRET`, as looker-cli (gzr) reads it.
    #[arg(long, value_name = "PATH", num_args = 0..=1, conflicts_with = "file", value_hint = ValueHint::FilePath)]
    pub netrc: Option<Option<PathBuf>>,
    /// With --netrc: the machine to import (default: the file's only one).
    #[arg(long, value_name = "HOST", requires = "netrc")]
    pub machine: Option<String>,
    /// Name of the credential set to create or replace.
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub credential: String,
    /// Rewrite the file without its client_secret once the secret store holds it.
    #[arg(long)]
    pub remove_secret: bool,
    /// Make the profile the default one.
    #[arg(long)]
    pub default: bool,
    /// Allow a plain-http base_url to a non-loopback host (tokens would cross the network in clear).
    #[arg(long)]
    pub allow_insecure_http: bool,
}

/// `lookerctl completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// `lookerctl man` (hidden): man pages for packagers.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write lookerctl.1 and lookerctl-SUBCOMMAND.1 pages into this folder
    /// (default: print lookerctl.1 on stdout).
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub dir: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse(s)
}

/// Parses `lookerctl`'s arguments, noting where `--profile` came from.
pub fn parse_from<I, T>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::FromArgMatches;
    let mut matches = Cli::command().try_get_matches_from(argv)?;
    let from_env = matches.value_source("profile") == Some(clap::parser::ValueSource::EnvVariable);
    let mut cli = Cli::from_arg_matches_mut(&mut matches)?;
    cli.profile_from_env = from_env;
    Ok(cli)
}

/// Writes completions for `shell`.
pub fn write_completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "lookerctl", out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn profile_source() {
        let cli = parse_from(["lookerctl", "--profile", "x", "status"]).unwrap();
        assert_eq!(cli.profile.as_deref(), Some("x"));
        assert!(!cli.profile_from_env);
        let cli = parse_from(["lookerctl", "import", "--profile", "y"]).unwrap();
        assert_eq!(cli.profile.as_deref(), Some("y"));
        assert!(!cli.profile_from_env);
    }
}
