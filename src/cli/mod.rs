//! `lookerctl`: the command-line helper (docs/reference.md "lookerctl").
//!
//! Token commands ask the running agent over its socket; management commands
//! (`profile`, `credential`, `import`) edit the config file and the secret store
//! directly, then tell a running agent to reload, so they work with or without it.
//! `credential verify` talks to Looker itself. Nothing printed carries colour or
//! other terminal escapes: text that came from elsewhere is cleaned first
//! ([`output::clean`]).

pub mod args;
pub(crate) mod context;
pub(crate) mod exit;
pub(crate) mod import;
pub(crate) mod login;
pub(crate) mod manage;
pub(crate) mod output;
pub(crate) mod rotate;
pub(crate) mod source;
pub(crate) mod token;
pub(crate) mod verify;

use args::{Cli, Command};
use exit::CliError;
use std::process::ExitCode;

/// Entry point of the `lookerctl` binary.
pub fn main() -> ExitCode {
    undumpable();
    let cli = match args::parse_from(std::env::args_os()) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            output::error(&e.message);
            ExitCode::from(e.code)
        }
    }
}

/// lookerctl holds client secrets (`credential add`, `import`) and tokens in memory:
/// no core file of it, and no ptrace by other processes of the user. Unlike a zero
/// RLIMIT_CORE this does not reach the command `lookerctl exec` runs: execve resets it.
pub(crate) fn undumpable() {
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
}

/// Runs one parsed command; returns the exit status.
pub(crate) fn run(cli: Cli) -> Result<u8, CliError> {
    // Commands that need no runtime stay out of it.
    match &cli.command {
        Command::Completions(c) => {
            let mut script = Vec::new();
            args::write_completions(c.shell, &mut script);
            output::raw(&script)?;
            return Ok(exit::OK);
        }
        Command::Man(m) => return manual(m),
        _ => {}
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start: {e}")))?;
    rt.block_on(async move {
        match &cli.command {
            Command::Token(t) => token::token(&cli, t).await,
            Command::Exec(e) => token::exec(&cli, e).await,
            Command::Status(s) => manage::status(&cli, s).await,
            Command::Revoke(r) => manage::revoke(&cli, r).await,
            Command::Gateway(args::GatewayCommand::Credential(g)) => token::gateway_credential(&cli, g).await,
            Command::Gateway(args::GatewayCommand::Revoke(g)) => manage::gateway_revoke(&cli, g).await,
            Command::Profile(p) => manage::profile(&cli, p).await,
            Command::Credential(c) => manage::credential(&cli, c).await,
            Command::Import(i) => import::import(&cli, i).await,
            Command::Login(l) => login::login(&cli, l).await,
            Command::Completions(_) | Command::Man(_) => Ok(exit::OK),
        }
    })
}

/// `lookerctl man`: lookerctl.1 on stdout, or every page into `--dir`.
fn manual(args: &args::ManArgs) -> Result<u8, CliError> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).and_then(|_| clap_mangen::generate_to(cmd, dir)).map_err(|e| {
                CliError::failure(format!("cannot write man pages to {}: {e}", dir.display()))
            })?;
            output::line(&format!("wrote man pages to {}", dir.display()))?;
        }
        None => {
            let mut page = Vec::new();
            // As in generate_to: no page for `help`, so none is listed.
            clap_mangen::Man::new(cmd.disable_help_subcommand(true))
                .render(&mut page)
                .map_err(|e| CliError::failure(format!("cannot render the man page: {e}")))?;
            output::raw(&page)?;
        }
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    #[test]
    fn lookerctl_makes_itself_undumpable() {
        super::undumpable();
        assert_eq!(
            rustix::process::dumpable_behavior().unwrap(),
            rustix::process::DumpableBehavior::NotDumpable
        );
    }
}
