//! The `looker-agent` binary's command line and start-up: parse, harden, log,
//! load the config, open the store, then hand over to [`Daemon`].

use super::activation::PassedSocket;
use super::{dev, signals, Daemon, DaemonError, DaemonOptions};
use crate::broker::{Broker, BrokerSettings, RealUpstream};
use crate::config::Config;
use crate::paths::{self, Paths};
use crate::store::{self, StoreChoice};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// looker-agent: keeps Looker API tokens fresh and hands them to your own processes.
#[derive(Debug, Parser)]
#[command(name = "looker-agent", version, after_help = "Quick start: looker-agent --dev")]
pub(crate) struct AgentArgs {
    /// The config file.
    #[arg(long, env = "LOOKER_AGENT_CONFIG", value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,
    /// The agent socket.
    #[arg(long, env = "LOOKER_AGENT_SOCKET", value_name = "PATH")]
    pub(crate) socket: Option<PathBuf>,
    /// Where client secrets are kept.
    #[arg(long, env = "LOOKER_AGENT_SECRET_STORE", value_enum, default_value_t = StoreChoice::Auto)]
    pub(crate) secret_store: StoreChoice,
    /// Run the self-contained demo: embedded Looker emulator, memory store, private socket.
    #[arg(long)]
    pub(crate) dev: bool,
    /// Time allowed for revoking tokens at shutdown.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = crate::duration::parse)]
    pub(crate) revoke_deadline: Duration,
    /// Check the config and secret store, then exit (0 when usable).
    #[arg(long)]
    pub(crate) check: bool,
    /// Do not serve the D-Bus API on the session bus (only the socket).
    #[arg(long, env = "LOOKER_AGENT_NO_DBUS", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    pub(crate) no_dbus: bool,
}

/// Entry point of the `looker-agent` binary.
pub fn main() -> ExitCode {
    let args = AgentArgs::parse();
    // Logging first, so hardening's warnings (core dumps still on, say) are seen;
    // neither reads a secret.
    crate::logging::init();
    super::hardening::harden_process();
    // Before the runtime starts threads: this clears the LISTEN_* variables.
    let passed = match super::activation::take_listener() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("looker-agent: {e}");
            return ExitCode::from(1);
        }
    };
    // One thread serves every door. Each call (a token on the socket, a gateway call and
    // its upstream connection, which the call drives itself) then stays on that thread:
    // with two workers, handing wake-ups between them cost more CPU per call than the
    // second thread gave back (issue 13's measurements: the gateway ~18 -> ~15 µs a call,
    // the socket door's 64-connection throughput up; BENCHMARKS.md). Blocking work (the
    // file store) goes to tokio's blocking pool as before.
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("looker-agent: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(args, passed)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("looker-agent: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: AgentArgs, passed: Option<PassedSocket>) -> Result<(), DaemonError> {
    if args.dev {
        return dev::run(args.socket, signals::terminate_signal()).await;
    }
    let paths = Paths::resolve(args.config.as_deref(), args.socket.as_deref());
    // All or nothing: a broken config stops the start rather than running with half of it.
    let config = Config::load(&paths.config)?;
    if config.profiles.is_empty() {
        tracing::warn!(config = %paths.config.display(),
            "no profiles configured yet; add one with `lookerctl profile add NAME --base-url URL`");
    }
    let (store, description) = store::open(args.secret_store, paths::default_data_dir()).await?;
    let (store, description) = store::credentials_dir::layer_from_env(store, description);
    tracing::info!(store = %description, "secret store");
    if args.check {
        println!(
            "config {} OK ({} profile(s)); secret store: {description}",
            paths.config.display(),
            config.profiles.len()
        );
        return Ok(());
    }
    let mut opts = DaemonOptions::new(paths.socket.clone());
    if let Some(p) = passed {
        // systemd's socket wins over --socket: it is what clients were told to use.
        tracing::info!(socket = ?p.path, "using the socket passed by systemd (socket activation)");
        opts.socket = p.path.unwrap_or(opts.socket);
        opts.listener = Some(p.listener);
        opts.gateway_listener = p.gateway;
    }
    opts.gateway = config.gateway.listen().map_err(DaemonError::Other)?;
    let machine = crate::gateway::saved::machine_id();
    opts.gateway_state =
        Some(crate::gateway::saved::path_for(&paths::default_state_dir(), &machine, &opts.socket));
    opts.config_path = Some(paths.config.clone());
    opts.revoke_deadline = args.revoke_deadline;
    opts.dbus = !args.no_dbus;
    // Signal handlers before the socket exists: clients may connect (and systemd
    // may stop us) as soon as it does.
    let shutdown = signals::terminate_signal();
    let daemon = Daemon::bind(opts)?;
    let broker = Broker::new(config, store, description, Arc::new(RealUpstream), BrokerSettings::default());
    daemon.run(broker, shutdown).await?;
    Ok(())
}
