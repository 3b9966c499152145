//! `looker-agent --dev`: the whole thing with nothing installed or configured.
//!
//! An embedded Looker emulator on 127.0.0.1, a memory secret store, a private
//! socket, and a profile `dev` with a credential `default`.
//!
//! The emulator is the `looker-emulator` crate, built in with the `dev-emulator`
//! feature (on by default); without it, `--dev` says so and exits.

use super::DaemonError;
#[cfg(feature = "dev-emulator")]
use super::{Daemon, DaemonOptions};
#[cfg(feature = "dev-emulator")]
use crate::broker::{Broker, BrokerSettings, RealUpstream};
#[cfg(feature = "dev-emulator")]
use crate::config::{Config, Credential, Profile};
#[cfg(feature = "dev-emulator")]
use crate::secret::Secret;
#[cfg(feature = "dev-emulator")]
use crate::store::memory::MemoryStore;
#[cfg(feature = "dev-emulator")]
use crate::store::{SecretKey, SecretStore};
#[cfg(feature = "dev-emulator")]
use looker_emulator::{Emulator, EmulatorConfig, EmulatorUser};
#[cfg(feature = "dev-emulator")]
use rand::distr::{Alphanumeric, SampleString};
use std::future::Future;
use std::path::PathBuf;
#[cfg(feature = "dev-emulator")]
use std::sync::Arc;

/// The dev profile's name.
#[cfg(feature = "dev-emulator")]
pub(crate) const DEV_PROFILE: &str = "dev";
/// The dev credential's name.
#[cfg(feature = "dev-emulator")]
pub(crate) const DEV_CREDENTIAL: &str = "default";

/// Runs dev mode until `shutdown`. `socket` overrides the private socket path.
#[cfg(not(feature = "dev-emulator"))]
pub(crate) async fn run(
    _socket: Option<PathBuf>,
    _shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    Err(DaemonError::Other(
        "dev mode is not built into this looker-agent (it was built without the `dev-emulator` feature)"
            .into(),
    ))
}

/// Runs dev mode until `shutdown`. `socket` overrides the private socket path.
#[cfg(feature = "dev-emulator")]
pub(crate) async fn run(
    socket: Option<PathBuf>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .map_err(|e| DaemonError::Other(format!("cannot start the Looker emulator: {e}")))?;
    let client_id = format!("dev-{}", Alphanumeric.sample_string(&mut rand::rng(), 12));
    let secret = Secret::new(Alphanumeric.sample_string(&mut rand::rng(), 24));
    emulator.add_credential(
        &client_id,
        secret.expose(),
        EmulatorUser {
            id: "1".into(),
            display_name: "Dev User".into(),
            email: "dev@example.com".into(),
            is_admin: false,
        },
    );
    let store = MemoryStore::new();
    store
        .set(&SecretKey::new(DEV_PROFILE, DEV_CREDENTIAL), &client_id, &secret)
        .await
        .map_err(DaemonError::Store)?;
    drop(secret);

    let mut config = Config { default_profile: Some(DEV_PROFILE.into()), ..Config::default() };
    config.profiles.insert(
        DEV_PROFILE.into(),
        Profile {
            credentials: vec![Credential::new(DEV_CREDENTIAL, client_id)],
            ..Profile::new(emulator.base_url())
        },
    );

    // A private socket: a fresh 0700 folder nobody else knows about.
    let (socket, _dir_guard) = match socket {
        Some(s) => (s, None),
        None => {
            let base = crate::paths::runtime_dir();
            std::fs::create_dir_all(&base)
                .map_err(|e| DaemonError::Other(format!("{}: {e}", base.display())))?;
            let dir = tempfile::Builder::new()
                .prefix("looker-agent-dev-")
                .tempdir_in(&base)
                .map_err(|e| DaemonError::Other(format!("cannot create a private socket folder: {e}")))?;
            (dir.path().join("agent.sock"), Some(dir))
        }
    };
    let mut opts = DaemonOptions::new(socket);
    // Dev mode is private: it must not take the session bus name from a real agent.
    opts.dbus = false;
    let daemon = Daemon::bind(opts)?;
    let broker = Broker::new(
        config,
        Arc::new(store),
        "memory (dev mode)".into(),
        Arc::new(RealUpstream),
        BrokerSettings::default(),
    );

    println!("looker-agent dev mode: Looker emulator at {}", emulator.base_url());
    println!(
        "profile `{DEV_PROFILE}`, credential `{DEV_CREDENTIAL}`, memory secret store. In another terminal:"
    );
    println!();
    println!("export LOOKER_AGENT_SOCKET={}", daemon.socket_path().display());
    println!("lookerctl token {DEV_PROFILE}");
    println!("curl --unix-socket \"$LOOKER_AGENT_SOCKET\" http://agent/v1/profiles/{DEV_PROFILE}/token");
    // The gateway: an unmodified program, given only a throw-away credential.
    println!(
        "lookerctl exec {DEV_PROFILE} -- sh -c 'curl -s -H \"Authorization: token $LOOKER_ACCESS_TOKEN\" \"$LOOKERSDK_BASE_URL/api/4.0/user\"'"
    );
    println!();
    println!("Ctrl-C stops the agent and revokes its tokens.");

    let summary = daemon.run(broker, shutdown).await?;
    let c = emulator.counters();
    println!(
        "stopped: {} token(s) revoked; the emulator saw {} login(s), {} live token(s) left",
        summary.revoked.revoked, c.logins, c.live_tokens
    );
    emulator.shutdown().await;
    Ok(())
}
