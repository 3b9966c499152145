//! `lookerctl`: the command-line helper (SPEC.md "lookerctl").
//!
//! Token commands ask the running agent over its socket; management commands
//! (`profile`, `credential`) edit the config file and the secret store directly,
//! then tell a running agent to reload, so they work with or without it.

pub mod args;
pub mod exit;
pub mod manage;
pub mod output;
pub mod token;

use args::{Cli, Command};
use clap::Parser;
use exit::CliError;
use std::process::ExitCode;

/// Entry point of the `lookerctl` binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
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
            eprintln!("lookerctl: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

/// Runs one parsed command; returns the exit status.
pub fn run(cli: Cli) -> Result<u8, CliError> {
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
            Command::Profile(p) => manage::profile(&cli, p).await,
            Command::Credential(c) => manage::credential(&cli, c).await,
            Command::Completions(c) => {
                args::print_completions(c.shell);
                Ok(exit::OK)
            }
        }
    })
}
