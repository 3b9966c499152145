//! An in-process broker on a memory store against the real Looker client: what the
//! tests and benches that serve a socket without the binary start from.
//! (Included by `#[path]` from benches/ too, so it uses the library only.)

use looker_agent::broker::{Broker, BrokerSettings, RealUpstream};
use looker_agent::config::{Config, Credential, Profile};
use looker_agent::secret::Secret;
use looker_agent::store::memory::MemoryStore;
use looker_agent::store::{SecretKey, SecretStore};
use std::sync::Arc;

/// A broker serving one profile `profile` at `base_url`, with credential sets
/// `(name, client_id, secret)` in that order; `None` serves no profile at all.
pub async fn memory_broker(profile: Option<(&str, &str)>, creds: &[(&str, &str, &str)]) -> Broker {
    let store = MemoryStore::new();
    let mut config = Config::default();
    if let Some((name, base_url)) = profile {
        let mut p = Profile::new(base_url);
        for (cred, id, secret) in creds {
            store.set(&SecretKey::new(name, *cred), id, &Secret::new(*secret)).await.unwrap();
            p.credentials.push(Credential::new(*cred, *id));
        }
        config.profiles.insert(name.to_string(), p);
    }
    Broker::new(config, Arc::new(store), "memory".into(), Arc::new(RealUpstream), BrokerSettings::default())
}
