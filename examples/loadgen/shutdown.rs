//! `loadgen shutdown`: SIGTERM with many live tokens and a slow logout; time to exit,
//! tokens revoked.

use crate::agent::{emulator, running, Agent, ProfileSpec};
use crate::http1::{get_request, Conn};
use crate::stats::ms;
use crate::Res;
use looker_emulator::Faults;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The `shutdown` result: SIGTERM with `tokens` live tokens and a slow logout.
pub fn run(bin: &Path, tokens: usize, logout_delay_ms: u64) -> Res<Value> {
    let mut creds = Vec::new();
    let mut cs = Vec::new();
    for i in 0..tokens {
        let (id, secret) = (format!("shut-{i:04}"), format!("secret-{i}"));
        creds.push((id.clone(), secret.clone()));
        cs.push((format!("c{i:04}"), id, secret));
    }
    let bg = emulator(&creds)?;
    let emu = running(&bg)?;
    let mut agent =
        Agent::spawn(bin, &emu.base_url(), &[ProfileSpec { name: "bench".into(), creds: cs }], None)?;
    agent.wait_ready()?;
    // One token per credential set, from 8 connections.
    let workers = 8;
    let socket = Arc::new(agent.socket().to_path_buf());
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let socket = socket.clone();
            std::thread::spawn(move || -> Res<()> {
                let mut c = Conn::open(&socket)?;
                for i in (w..tokens).step_by(workers) {
                    let a =
                        c.round_trip(&get_request(&format!("/v1/profiles/bench/token?credential=c{i:04}")))?;
                    if a.status != 200 {
                        return Err(format!("token c{i:04}: {}", String::from_utf8_lossy(&c.buf[..a.len])));
                    }
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "worker panicked".to_string())??;
    }
    let live_before = emu.counters().live_tokens;
    emu.set_faults(Faults { logout_delay: Duration::from_millis(logout_delay_ms), ..Faults::default() });
    std::thread::sleep(Duration::from_millis(200));
    let (took, clean) = agent.terminate()?;
    let c = emu.counters();
    let exit_ms = ms(took);
    let pass = clean && c.logouts as usize == tokens && c.live_tokens == 0 && exit_ms <= 1000.0;
    Ok(json!({
        "name": "shutdown",
        "tokens": tokens,
        "logout_delay_ms": logout_delay_ms,
        "live_before": live_before,
        "logouts": c.logouts,
        "live_after": c.live_tokens,
        "clean_exit": clean,
        "sigterm_to_exit_ms": exit_ms,
        "pass": pass,
    }))
}
