//! Load generator and end-to-end measurements for issue 8 (run by scripts/bench.sh).
//!
//! Every mode measures the real `looker-agent` binary (or a running one) next to a
//! baseline taken in the same run, and appends one JSON line per result to
//! `--results FILE`; `report` turns those lines into BENCHMARKS.md.
//!
//! ```text
//! loadgen socket   --socket S --path /v1/profiles/P/token   keep-alive GET token vs a raw ping-pong
//!                                                          server answering the same bytes:
//!                                                          1 connection (p50/p99), N connections (tokens/s);
//!                  [--agent-pid PID]                        also all pinned to one CPU, and a baseline that
//!                                                          spins the agent's own work per request
//! loadgen dbus     --profile P                             GetToken vs Peer.Ping to the daemon (session bus)
//! loadgen herd     --agent BIN                             1,000 concurrent requests on a cold credential,
//!                                                          emulator login latency 50 ms
//! loadgen memory   --agent BIN                             VmRSS: 100 profiles x 3 sets idle, then 1,000 connections
//! loadgen shutdown --agent BIN                             1,000 live tokens, 5 ms logout latency, SIGTERM to exit
//! loadgen ready    --agent BIN                             exec to READY=1 on NOTIFY_SOCKET, memory store
//! loadgen emulator --url-file F --client-id ID --secret S  an emulator until SIGTERM (for lookerctl/Python runs)
//! loadgen report   --results F --out BENCHMARKS.md         the Markdown report
//! ```
//!
//! Agents started by a mode are isolated: temporary XDG folders, their own socket,
//! `--secret-store memory --no-dbus`, secrets from a `$CREDENTIALS_DIRECTORY`.
//!
//! One module per mode, and beside them what the modes share: `stats` (percentiles,
//! medians), `http1` (the keep-alive HTTP/1.1 client), `baseline` (the ping-pong server),
//! `affinity` (CPU pinning), `agent` (an isolated agent, started the way the test harness
//! starts one: `tests/common/isolated.rs`, included below).

mod affinity;
mod agent;
mod baseline;
mod criterion;
mod dbus;
mod emulator;
mod herd;
mod http1;
mod memory;
mod procs;
mod ready;
mod report;
mod shutdown;
mod socket;
mod stats;

/// The test harness's isolated agent and emulator (one implementation for both).
#[path = "../../tests/common/isolated.rs"]
mod isolated;

use clap::{Parser, Subcommand};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Errors are messages: loadgen prints them and exits with a failure.
type Res<T> = Result<T, String>;

#[derive(Parser)]
#[command(name = "loadgen", about = "looker-agent benchmarks (see scripts/bench.sh)")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Keep-alive GET token over the socket vs a raw ping-pong baseline.
    Socket {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long)]
        path: String,
        /// Concurrent connections for the throughput part.
        #[arg(long, default_value_t = 64)]
        conns: usize,
        /// Seconds per target for the latency part (split in alternating rounds).
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// The agent's pid: adds the same-CPU measurement (agent, client and baseline
        /// pinned to one CPU for a while, then released).
        #[arg(long)]
        agent_pid: Option<i32>,
        #[arg(long)]
        results: Option<PathBuf>,
    },
    /// Internal: the ping-pong baseline server.
    #[command(hide = true)]
    PingpongServe {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long)]
        answer_file: PathBuf,
        /// CPU time to spend on each request before answering (a server that does work).
        #[arg(long, default_value_t = 0)]
        work_ns: u64,
    },
    /// D-Bus GetToken vs Peer.Ping round trips to the daemon on the session bus.
    Dbus {
        #[arg(long, default_value = "")]
        profile: String,
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        #[arg(long)]
        results: Option<PathBuf>,
    },
    /// Cold herd: N concurrent requests on a credential with no token yet.
    Herd {
        #[arg(long)]
        agent: PathBuf,
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, default_value_t = 50)]
        login_delay_ms: u64,
        #[arg(long)]
        results: Option<PathBuf>,
    },
    /// Daemon RSS with 100 profiles x 3 credential sets, idle and with 1,000 connections.
    Memory {
        #[arg(long)]
        agent: PathBuf,
        #[arg(long, default_value_t = 1000)]
        conns: usize,
        #[arg(long)]
        results: Option<PathBuf>,
    },
    /// SIGTERM with N live tokens and a slow logout: time to exit, tokens revoked.
    Shutdown {
        #[arg(long)]
        agent: PathBuf,
        #[arg(long, default_value_t = 1000)]
        tokens: usize,
        #[arg(long, default_value_t = 5)]
        logout_delay_ms: u64,
        #[arg(long)]
        results: Option<PathBuf>,
    },
    /// exec to READY=1 (NOTIFY_SOCKET), memory store.
    Ready {
        #[arg(long)]
        agent: PathBuf,
        #[arg(long, default_value_t = 20)]
        runs: usize,
        #[arg(long)]
        results: Option<PathBuf>,
    },
    /// An emulator with one credential, until SIGTERM or SIGINT.
    Emulator {
        #[arg(long)]
        url_file: PathBuf,
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        secret: String,
    },
    /// Whole processes, timed spawn to exit, taking turns round by round (fair on a noisy machine).
    Procs {
        /// `NAME[/EVERY]=COMMAND ARGS...` (split on spaces); `/EVERY` runs it every EVERY-th round only.
        #[arg(long = "cmd", required = true)]
        cmds: Vec<String>,
        #[arg(long, default_value_t = 300)]
        rounds: usize,
        /// Untimed rounds first.
        #[arg(long, default_value_t = 20)]
        warmup: usize,
        #[arg(long)]
        results: Option<PathBuf>,
    },
    /// Writes BENCHMARKS.md from the results of one run.
    Report {
        #[arg(long)]
        results: PathBuf,
        /// criterion's output folder (target/criterion).
        #[arg(long)]
        criterion: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    raise_fd_limit();
    let cli = Cli::parse();
    let r = match cli.mode {
        Mode::Socket { socket, path, conns, seconds, agent_pid, results } => {
            socket::run(&socket, &path, conns, seconds, agent_pid).and_then(|v| emit(results.as_deref(), v))
        }
        Mode::PingpongServe { socket, answer_file, work_ns } => {
            baseline::serve(&socket, &answer_file, work_ns)
        }
        Mode::Dbus { profile, seconds, results } => {
            dbus::run(&profile, seconds).and_then(|v| emit(results.as_deref(), v))
        }
        Mode::Herd { agent, clients, login_delay_ms, results } => {
            herd::run(&agent, clients, login_delay_ms).and_then(|v| emit(results.as_deref(), v))
        }
        Mode::Memory { agent, conns, results } => {
            memory::run(&agent, conns).and_then(|v| emit(results.as_deref(), v))
        }
        Mode::Shutdown { agent, tokens, logout_delay_ms, results } => {
            shutdown::run(&agent, tokens, logout_delay_ms).and_then(|v| emit(results.as_deref(), v))
        }
        Mode::Ready { agent, runs, results } => {
            ready::run(&agent, runs).and_then(|v| emit(results.as_deref(), v))
        }
        Mode::Emulator { url_file, client_id, secret } => emulator::run(&url_file, &client_id, &secret),
        Mode::Procs { cmds, rounds, warmup, results } => {
            procs::run(&cmds, rounds, warmup).and_then(|v| emit(results.as_deref(), v))
        }
        Mode::Report { results, criterion, out } => report::write(&results, criterion.as_deref(), &out),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the result and appends it to the results file.
fn emit(results: Option<&Path>, v: Value) -> Res<()> {
    let line = v.to_string();
    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    if let Some(p) = results {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        writeln!(f, "{line}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A thousand connections on each side need more than the usual 1,024 descriptors.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    let want = lim.maximum.map_or(65536, |m| m.min(65536));
    if lim.current.is_none_or(|c| c < want) {
        let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(want), maximum: lim.maximum });
    }
}
