//! looker-agent: a per-user daemon that keeps Looker API tokens fresh and
//! hands them to local processes, plus the `lookerctl` helper.
//!
//! The library holds all the logic; `src/bin/` holds two thin binaries.
//! A walk through the house, in the order a request travels:
//!
//! - [`config`], [`config_edit`], [`paths`], [`name`], [`duration`]: where things live
//!   and what they say;
//! - [`files`]: the one place for file safety (owner/mode rules, private folders,
//!   atomic writes, locks);
//! - [`store`], [`secret`], [`secret_source`]: client secrets in the Secret Service,
//!   0600 files, memory or the team's own store (a command that prints them);
//! - [`looker`]: the upstream Looker API, with errors that drive behaviour;
//! - [`broker`]: the token cache (single flight, expiry, failover, sudo and dev
//!   variants, revocation);
//! - [`protocol`]: requests, routes, the one error table and the answers' types,
//!   shared by daemon and CLI;
//! - [`daemon`]: the composition root; the doors (socket `handler`, D-Bus `bus`, the
//!   gateway's TCP listener) decode into a request for the one
//!   [`daemon::service::Service`], which calls the broker;
//! - [`gateway`]: the Looker API served by the agent (login emulation, sessions,
//!   kept across restarts, forwarding with the real token), behind the same service;
//! - [`oauth`], [`rotation`]: credentials without pasted secrets (browser sign-in,
//!   API key rotation);
//! - [`client`], [`client_bus`], [`cli`]: the `lookerctl` side (socket, D-Bus
//!   fallback), with [`looker_ini`] and [`netrc`] for `lookerctl import`;
//! - [`logging`]: journald-native under systemd, text on stderr otherwise.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![warn(missing_docs)]
// These docs are the house's map for whoever works on it (`cargo doc
// --document-private-items`): a public item may point at the private one it rests on.
#![allow(rustdoc::private_intra_doc_links)]

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
