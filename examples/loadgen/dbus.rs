//! `loadgen dbus`: GetToken against Peer.Ping to the daemon on the session bus.

use crate::stats::summary_us;
use crate::Res;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The `dbus` result: GetToken and Peer.Ping round trips in alternating rounds.
pub fn run(profile: &str, seconds: f64) -> Res<Value> {
    use looker_agent::client_bus::Agent1Proxy;
    use looker_agent::daemon::bus::{BUS_NAME, OBJECT_PATH};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let conn = zbus::Connection::session().await.map_err(|e| format!("session bus: {e}"))?;
        let agent = Agent1Proxy::builder(&conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(|e| e.to_string())?;
        let peer = zbus::fdo::PeerProxy::builder(&conn)
            .destination(BUS_NAME)
            .and_then(|b| b.path(OBJECT_PATH))
            .map_err(|e| e.to_string())?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(|e| e.to_string())?;
        let (tok, _, _) = agent.get_token(profile, "", 0).await.map_err(|e| format!("GetToken: {e}"))?;
        if tok.is_empty() {
            return Err("GetToken returned an empty token".to_string());
        }
        for _ in 0..300 {
            agent.get_token(profile, "", 0).await.map_err(|e| e.to_string())?;
            peer.ping().await.map_err(|e| e.to_string())?;
        }
        let rounds = 6;
        let per = Duration::from_secs_f64(seconds / rounds as f64);
        let (mut lg, mut lp) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let end = Instant::now() + per;
            while Instant::now() < end {
                let t = Instant::now();
                peer.ping().await.map_err(|e| e.to_string())?;
                lp.push(t.elapsed().as_nanos() as u64);
            }
            let end = Instant::now() + per;
            while Instant::now() < end {
                let t = Instant::now();
                agent.get_token(profile, "", 0).await.map_err(|e| e.to_string())?;
                lg.push(t.elapsed().as_nanos() as u64);
            }
        }
        let g = summary_us(lg);
        let p = summary_us(lp);
        let ratio = g["p50_us"].as_f64().unwrap_or(f64::NAN) / p["p50_us"].as_f64().unwrap_or(f64::NAN);
        Ok(json!({ "name": "dbus", "get_token": g, "ping": p, "p50_ratio": ratio }))
    })
}
