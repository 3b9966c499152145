//! `loadgen ready`: from exec to READY=1 on NOTIFY_SOCKET, memory store.

use crate::agent::{Agent, ProfileSpec};
use crate::stats::{median_f, ms};
use crate::Res;
use serde_json::{json, Value};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

/// The `ready` result: exec to READY=1 over `runs` runs after a warm-up run.
pub fn run(bin: &Path, runs: usize) -> Res<Value> {
    let spec = ProfileSpec {
        name: "prod".into(),
        creds: vec![("default".into(), "ready-id".into(), "ready-secret".into())],
    };
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs + 1 {
        let path = dir.path().join(format!("notify-{i}.sock"));
        let sock = UnixDatagram::bind(&path).map_err(|e| format!("bind {}: {e}", path.display()))?;
        sock.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
        let t = Instant::now();
        let mut agent =
            Agent::spawn(bin, "https://example.looker.com", std::slice::from_ref(&spec), Some(&path))?;
        let mut buf = [0u8; 4096];
        let took = loop {
            let n = sock
                .recv(&mut buf)
                .map_err(|e| format!("no READY=1 within 10 s ({e}); log:\n{}", agent.log()))?;
            if String::from_utf8_lossy(&buf[..n]).lines().any(|l| l == "READY=1") {
                break t.elapsed();
            }
        };
        // The first run warms the page cache; it does not count.
        if i > 0 {
            times.push(ms(took));
        }
        agent.terminate()?;
    }
    let mut sorted = times.clone();
    let median = median_f(&mut sorted);
    Ok(json!({
        "name": "ready",
        "runs": runs,
        "median_ms": median,
        "min_ms": sorted.first().copied().unwrap_or(f64::NAN),
        "max_ms": sorted.last().copied().unwrap_or(f64::NAN),
    }))
}
