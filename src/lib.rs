//! looker-agent: a per-user daemon that keeps Looker API tokens fresh and
//! hands them to local processes, plus the `lookerctl` helper.
//!
//! The library holds all the logic; `src/bin/` holds two thin binaries.
//! A walk through the house, in the order a request travels:
//!
//! - [`config`], [`config_edit`], [`paths`], [`name`]: where things live and what they say;
//! - [`files`]: the one place for file safety (owner/mode rules, private folders,
//!   atomic writes, locks);
//! - [`store`]: client secrets in the Secret Service, 0600 files or memory;
//! - [`looker`]: the upstream Looker API, with errors that drive behaviour;
//! - [`broker`]: the token cache (single flight, expiry, revocation);
//! - [`protocol`]: requests, routes, the one error table and the answers' types,
//!   shared by daemon and CLI;
//! - [`daemon`]: the composition root; the doors (socket `handler`, D-Bus `bus`)
//!   decode into a request for the one [`daemon::service::Service`], which calls the broker;
//! - [`client`], [`client_bus`], [`cli`]: the `lookerctl` side (socket, D-Bus fallback);
//! - [`logging`]: journald-native under systemd, text on stderr otherwise.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![warn(missing_docs)]

pub mod broker;
pub mod cli;
pub mod client;
pub mod client_bus;
pub mod config;
pub mod config_edit;
pub mod daemon;
pub mod duration;
pub mod files;
pub mod gateway;
pub mod logging;
pub mod looker;
pub mod looker_ini;
pub mod name;
pub mod netrc;
pub mod oauth;
pub mod paths;
pub mod protocol;
pub mod rotation;
pub mod secret;
pub mod secret_source;
pub mod store;

/// The version reported by `/v1/health`, the D-Bus `Version` property and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
