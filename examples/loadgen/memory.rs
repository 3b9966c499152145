//! `loadgen memory`: the agent's resident memory with 100 profiles x 3 credential sets,
//! idle and with many connections open.

use crate::agent::{emulator, running, Agent, ProfileSpec};
use crate::http1::{get_request, Conn};
use crate::Res;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// The `memory` result: the agent's RSS idle, with `conns` open connections, and after.
pub fn run(bin: &Path, conns: usize) -> Res<Value> {
    let (np, nc) = (100usize, 3usize);
    let mut creds = Vec::new();
    let mut specs = Vec::new();
    for p in 0..np {
        let mut cs = Vec::new();
        for c in 0..nc {
            let id = format!("mem-p{p:03}-c{c}");
            let secret = format!("secret-{p}-{c}");
            creds.push((id.clone(), secret.clone()));
            cs.push((format!("c{c}"), id, secret));
        }
        specs.push(ProfileSpec { name: format!("p{p:03}"), creds: cs });
    }
    let bg = emulator(&creds)?;
    let emu = running(&bg)?;
    let agent = Agent::spawn(bin, &emu.base_url(), &specs, None)?;
    agent.wait_ready()?;
    std::thread::sleep(Duration::from_millis(1000));
    let (idle, _) = agent.rss_kib()?;

    // 1,000 connections, each served one token request (one login per profile), all kept open.
    let mut open = Vec::with_capacity(conns);
    for i in 0..conns {
        let mut c = Conn::open(agent.socket())?;
        let a = c.round_trip(&get_request(&format!("/v1/profiles/p{:03}/token", i % np)))?;
        if a.status != 200 {
            return Err(format!("token request failed: {}", String::from_utf8_lossy(&c.buf[..a.len])));
        }
        open.push(c);
    }
    std::thread::sleep(Duration::from_millis(500));
    let (with_conns, hwm) = agent.rss_kib()?;
    let logins = emu.counters().logins;
    drop(open);
    std::thread::sleep(Duration::from_millis(500));
    let (after, _) = agent.rss_kib()?;
    Ok(json!({
        "name": "memory",
        "profiles": np, "credential_sets": np * nc, "conns": conns,
        "idle_kib": idle,
        "conns_kib": with_conns,
        "hwm_kib": hwm,
        "after_close_kib": after,
        "logins": logins,
    }))
}
