//! The daemon's composition root: bind the socket, serve the broker, revoke on the way out.
//!
//! ```text
//! main ──► Daemon::bind(options) ──► Daemon::run(broker, shutdown)
//!                                      ├─ server::serve      (socket API, one task per connection)
//!                                      ├─ server::serve      (the gateway's loopback TCP door, same loop)
//!                                      ├─ bus::BusService    (D-Bus API on the session bus, unless --no-dbus)
//!                                      ├─ SIGHUP → reload     (config re-read, removed sets revoked)
//!                                      ├─ key_upkeep          (API key ages; rotate_after rotations)
//!                                      └─ shutdown: stop accepting → drain ∥ release the bus name
//!                                                   → revoke all → await background work → remove socket
//! ```
//! Tests call the same two functions as the binary does.

pub mod activation;
pub mod bus;
pub mod dev;
pub mod handler;
pub mod hardening;
pub(crate) mod key_upkeep;
pub mod limits;
pub mod listener;
pub mod notify;
pub mod reload;
pub mod server;
pub mod service;
pub mod signals;
pub mod startup;
pub mod watch;

use crate::broker::{Broker, RevokeSummary};
use handler::Ctx;
use server::Limits;
use service::{ReloadFn, Service};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixListener;

/// Default time allowed for revoking tokens at shutdown, counted once the socket
/// has drained and the bus name is released (each of those has its own timeout).
pub const DEFAULT_REVOKE_DEADLINE: Duration = Duration::from_secs(5);

/// Why the daemon cannot start or run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The socket (or its folder) cannot be set up.
    #[error("agent socket {path}: {reason}")]
    Socket {
        /// The socket or folder path.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Another agent already serves this socket.
    #[error("another looker-agent is already serving {path}; stop it first, or use another --socket")]
    AlreadyRunning {
        /// The socket path.
        path: PathBuf,
    },
    /// The config cannot be used.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The secret store cannot be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Something else failed at start.
    #[error("{0}")]
    Other(String),
}

/// How the daemon serves.
pub struct DaemonOptions {
    /// Socket path (bound unless `listener` is given).
    pub socket: PathBuf,
    /// An already-listening socket (systemd socket activation); it is not removed at exit.
    pub listener: Option<std::os::unix::net::UnixListener>,
    /// Config file re-read on SIGHUP and `POST /v1/reload`; `None` in dev mode.
    pub config_path: Option<PathBuf>,
    /// Time allowed for revoking tokens at shutdown.
    pub revoke_deadline: Duration,
    /// Server limits.
    pub limits: Limits,
    /// Also serve the D-Bus API on the session bus (default true; `--no-dbus` turns it off).
    pub dbus: bool,
    /// Which bus that is (default the session bus; tests use a private one).
    pub bus_address: bus::BusAddress,
    /// Where the gateway's TCP door listens (config `[gateway] listen`).
    pub gateway: crate::config::GatewayListen,
    /// An already-listening gateway socket (systemd socket activation); wins over `gateway`.
    pub gateway_listener: Option<std::net::TcpListener>,
    /// The file the gateway keeps its credentials and sessions in across restarts
    /// (`None`: they end with the run, as in dev mode).
    pub gateway_state: Option<PathBuf>,
}

impl DaemonOptions {
    /// Options with defaults for everything but the socket path.
    pub fn new(socket: PathBuf) -> Self {
        DaemonOptions {
            socket,
            listener: None,
            config_path: None,
            revoke_deadline: DEFAULT_REVOKE_DEADLINE,
            limits: Limits::default(),
            dbus: true,
            bus_address: bus::BusAddress::Session,
            gateway: crate::config::GatewayListen::At((std::net::Ipv4Addr::LOCALHOST, 0).into()),
            gateway_listener: None,
            gateway_state: None,
        }
    }
}

/// A daemon with its socket bound, ready to [`run`](Daemon::run).
pub struct Daemon {
    listener: UnixListener,
    gateway: Option<tokio::net::TcpListener>,
    socket: PathBuf,
    remove_socket: bool,
    opts: DaemonOptions,
    /// Registered at bind time so a SIGHUP right after start reloads instead of killing.
    hup_signal: Option<tokio::signal::unix::Signal>,
    /// Takes the config file's state at bind time, before a client can connect: an
    /// edit made as soon as the socket answers is a change it sees.
    watcher: Option<watch::ConfigWatcher>,
    /// What the last run's gateway saved, read at bind time (its port is bound again).
    gateway_saved: Option<crate::gateway::saved::Saved>,
}

/// What happened at shutdown.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunSummary {
    /// Tokens revoked at shutdown, and those that could not be.
    pub revoked: RevokeSummary,
}

impl Daemon {
    /// Binds the socket (or adopts the passed listener). Must run inside a tokio runtime.
    pub fn bind(mut opts: DaemonOptions) -> Result<Daemon, DaemonError> {
        let hup_signal = if opts.config_path.is_some() { signals::hangup_signal() } else { None };
        let (listener, remove_socket) = match opts.listener.take() {
            Some(l) => {
                l.set_nonblocking(true).map_err(|e| DaemonError::Other(format!("passed socket: {e}")))?;
                (
                    UnixListener::from_std(l)
                        .map_err(|e| DaemonError::Other(format!("passed socket: {e}")))?,
                    false,
                )
            }
            None => (listener::bind(&opts.socket)?, true),
        };
        let gateway_saved = opts.gateway_state.as_deref().and_then(|path| {
            crate::gateway::saved::load(path)
                .inspect_err(|e| {
                    let aside = crate::gateway::saved::set_aside(path)
                        .map_or_else(|e| format!("cannot move it aside: {e}"), |p| format!("moved to {}", p.display()));
                    tracing::warn!(error = %e, aside = %aside,
                        "the gateway starts without the last run's credentials and sessions (mint them again)")
                })
                .ok()
                .flatten()
        });
        let gateway = bind_gateway(&mut opts, gateway_saved.as_ref().and_then(|s| s.port))?;
        let watcher = opts.config_path.clone().map(watch::ConfigWatcher::new);
        Ok(Daemon {
            listener,
            gateway,
            gateway_saved,
            socket: opts.socket.clone(),
            remove_socket,
            opts,
            hup_signal,
            watcher,
        })
    }

    /// The gateway's TCP address, when it listens.
    pub fn gateway_addr(&self) -> Option<std::net::SocketAddr> {
        self.gateway.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The socket path clients connect to.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// Serves until `shutdown` completes, then stops accepting, revokes every
    /// token the agent obtained (bounded by the revoke deadline) and removes the socket.
    pub async fn run(
        self,
        broker: Broker,
        shutdown: impl Future<Output = ()>,
    ) -> Result<RunSummary, DaemonError> {
        let Daemon { listener, gateway, socket, remove_socket, opts, hup_signal, watcher, gateway_saved } =
            self;
        let uid = rustix::process::getuid().as_raw();
        let reload: Option<ReloadFn> = opts
            .config_path
            .clone()
            .map(|path| Arc::new(move |b: &Broker| reload::reload_from(&path, b)) as ReloadFn);
        let service = Arc::new(Service::new(broker.clone(), uid, reload.clone()));
        let ctx = Arc::new(Ctx { service: service.clone(), limits: opts.limits.clone() });
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // This instance's owner lock, held until the very end: while it is held, other
        // agents on the same store leave this one's journal entries alone.
        let journal_lock = broker.lock_journal().await;
        // Tokens left live by killed agents (never by running ones on the same store).
        let orphans = broker.orphaned_tokens().await;
        broker.spawn_revoke_orphans(orphans);
        let gateway_port = gateway.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.port());
        let gateway_server = gateway.map(|l| {
            if let Ok(addr) = l.local_addr() {
                service.gateway().set_url(format!("http://{addr}"));
                tracing::info!(url = %format!("http://{addr}"), "Looker API gateway listening");
            }
            tokio::spawn(server::serve(l, ctx.clone(), stop_rx.clone()))
        });
        if let Some(path) = opts.gateway_state.clone() {
            service.gateway().keep_in(&broker, path, gateway_port, gateway_saved);
        }
        let server = tokio::spawn(server::serve(listener, ctx, stop_rx));
        let sweeper = {
            let service = service.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(crate::gateway::SWEEP_EVERY);
                loop {
                    tick.tick().await;
                    service.gateway().sweep(service.broker());
                }
            })
        };
        // Refreshes ahead of expiry and revokes superseded tokens; ends when the broker closes.
        broker.spawn_maintenance();
        let hup = match (reload.clone(), hup_signal) {
            (Some(f), Some(sig)) => Some(tokio::spawn(reload::reload_on_sighup(broker.clone(), f, sig))),
            _ => None,
        };
        let watcher = match (watcher, reload.clone()) {
            (Some(w), Some(f)) => Some(tokio::spawn(watch::watch_config(w, broker.clone(), f))),
            _ => None,
        };
        // API key ages and `rotate_after`; only with a config file to edit (not in dev mode).
        let upkeep = match (&opts.config_path, reload) {
            (Some(path), Some(f)) => Some(tokio::spawn(
                key_upkeep::KeyUpkeep {
                    broker: broker.clone(),
                    config_path: path.clone(),
                    state_dir: crate::paths::default_state_dir(),
                    reload: f,
                }
                .run(),
            )),
            _ => None,
        };
        let bus = if opts.dbus {
            Some(bus::BusService::start(service.clone(), opts.bus_address.clone()))
        } else {
            tracing::info!("D-Bus off (--no-dbus): serving the socket only");
            None
        };

        let ready = notify::status_line(&broker);
        notify::notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(&ready)]);
        let status = tokio::spawn(notify::report_status(broker.clone()));
        tracing::info!(socket = %socket.display(), store = %broker.store_description(), "looker-agent serving");
        shutdown.await;

        tracing::info!("shutting down: no new requests, revoking tokens");
        let stopping = sd_notify::NotifyState::Status("stopping: revoking tokens");
        notify::notify(&[sd_notify::NotifyState::Stopping, stopping]);
        status.abort();
        sweeper.abort();
        broker.close();
        let _ = stop_tx.send(true);
        // A rotation cut here is finished or undone by the next run (its record says how).
        for h in [hup, watcher, upkeep].into_iter().flatten() {
            h.abort();
        }
        // The doors close first, each within a timeout of its own: the socket drains
        // (`Limits::drain_timeout`, enforced by `serve`; the bound here only guards
        // against a server that never ends) while the bus lets go of its name
        // (`BusService::stop`). Neither eats into the revocation's deadline.
        let drained = async {
            let servers = async {
                let _ = server.await;
                if let Some(g) = gateway_server {
                    let _ = g.await;
                }
            };
            if tokio::time::timeout(opts.limits.drain_timeout + Duration::from_secs(1), servers)
                .await
                .is_err()
            {
                tracing::warn!("the socket server did not stop in time; revoking anyway");
            }
        };
        let bus_stopped = async {
            if let Some(b) = bus {
                b.stop().await;
            }
        };
        tokio::join!(drained, bus_stopped);
        // Gateway sessions end; the tokens only they used (dev workspaces) are revoked
        // with the rest below.
        service.gateway().clear(&broker);
        // Revocation has the whole deadline, counted from here.
        let revoke_until = tokio::time::Instant::now() + opts.revoke_deadline;
        let mut revoked = broker.revoke_all(opts.revoke_deadline).await;
        if broker.has_logins_in_flight() {
            // A login still running may yet bring a token Looker already issued: exiting
            // now would leave it live and unknown. It is journaled as it arrives; wait
            // for it (its request is bounded by the profile's timeout) and revoke it.
            let limit = broker.longest_login_wait();
            tracing::warn!(
                wait_secs = limit.as_secs(),
                "a login is still running at the revoke deadline; waiting for it so its token can be revoked"
            );
            let usec = u32::try_from((limit + Duration::from_secs(2)).as_micros()).unwrap_or(u32::MAX);
            notify::notify(&[sd_notify::NotifyState::ExtendTimeoutUsec(usec)]);
            let late = broker.revoke_all(limit).await;
            revoked.revoked += late.revoked;
            revoked.failed += late.failed;
            if broker.has_logins_in_flight() {
                tracing::warn!(
                    "a login outlived its own timeout; if it brings a token, it expires on its own"
                );
            }
        }
        // Revocations running in the background (superseded tokens, removed sets,
        // an earlier run's orphans) share the revocation's deadline; what is cut
        // keeps its journal entry for the next start.
        let cut =
            broker.finish_tasks(revoke_until.saturating_duration_since(tokio::time::Instant::now())).await;
        if cut > 0 {
            tracing::warn!(tasks = cut, "background work cut at the revoke deadline; its tokens are revoked at the next start or expire on their own");
        }
        if revoked.failed > 0 {
            tracing::warn!(
                revoked = revoked.revoked,
                failed = revoked.failed,
                "some tokens could not be revoked; they expire on their own"
            );
        } else {
            tracing::info!(revoked = revoked.revoked, "all tokens revoked");
        }
        if remove_socket {
            let _ = std::fs::remove_file(&socket);
        }
        // Last: entries whose revocation failed become orphans for the next start.
        drop(journal_lock);
        Ok(RunSummary { revoked })
    }
}

/// Binds the gateway's TCP door as `opts` say (a passed socket first); with no port
/// configured, the last run's port if it is free (clients of the last run keep their
/// base URL). A port that cannot be bound is a warning, not a failed start: the socket
/// API and the socket's gateway paths still serve.
fn bind_gateway(
    opts: &mut DaemonOptions,
    last_port: Option<u16>,
) -> Result<Option<tokio::net::TcpListener>, DaemonError> {
    let again = match (&opts.gateway_listener, opts.gateway, last_port) {
        (None, crate::config::GatewayListen::At(addr), Some(port)) if addr.port() == 0 && port != 0 => {
            std::net::TcpListener::bind((addr.ip(), port))
                .inspect_err(|e| {
                    tracing::info!(port, error = %e, "the gateway's last port is taken; listening on a new one \
                        (clients of the last run must be started again)")
                })
                .ok()
        }
        _ => None,
    };
    let std_listener = match (again.or(opts.gateway_listener.take()), opts.gateway) {
        (Some(l), _) => l,
        (None, crate::config::GatewayListen::Off) => return Ok(None),
        (None, crate::config::GatewayListen::At(addr)) => match std::net::TcpListener::bind(addr) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(addr = %addr, error = %e,
                    "the Looker API gateway cannot listen on TCP; fix [gateway] listen (another port, or \"off\")");
                return Ok(None);
            }
        },
    };
    std_listener.set_nonblocking(true).map_err(|e| DaemonError::Other(format!("gateway socket: {e}")))?;
    tokio::net::TcpListener::from_std(std_listener)
        .map(Some)
        .map_err(|e| DaemonError::Other(format!("gateway socket: {e}")))
}
