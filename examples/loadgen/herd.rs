//! `loadgen herd`: many concurrent requests on a credential with no token yet, while
//! the emulator takes its time to log in.

use crate::agent::{emulator, running, Agent, ProfileSpec};
use crate::http1::{aconnect, around_trip, get_request};
use crate::stats::{median_f, ms};
use crate::Res;
use looker_emulator::Faults;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fires one request on every connection at once; returns (time to the last answer,
/// answers with status 200, distinct tokens, the connections back).
async fn fire(
    conns: Vec<tokio::net::UnixStream>,
    req: Arc<Vec<u8>>,
) -> Res<(Duration, usize, usize, Vec<tokio::net::UnixStream>)> {
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut s| {
            let (mut go, req) = (go_rx.clone(), req.clone());
            tokio::spawn(async move {
                let _ = go.wait_for(|g| *g).await;
                let r = around_trip(&mut s, &req).await;
                (r, Instant::now(), s)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    let _ = go_tx.send(true);
    let (mut last, mut ok) = (t0, 0);
    let mut tokens = std::collections::BTreeSet::new();
    let mut back = Vec::new();
    for t in tasks {
        let (r, at, s) = t.await.map_err(|e| e.to_string())?;
        let (answer, buf) = r?;
        if answer.status == 200 {
            ok += 1;
            if let Ok(v) = serde_json::from_slice::<Value>(answer.body(&buf)) {
                tokens.insert(v["access_token"].as_str().unwrap_or_default().to_string());
            }
        }
        last = last.max(at);
        back.push(s);
    }
    Ok((last - t0, ok, tokens.len(), back))
}

/// Cold herds measured (one per credential set of the profile, each cold in turn).
const COLD_HERDS: usize = 3;

/// The `herd` result: cold herds, one per credential set, each followed by the same herd warm.
pub fn run(bin: &Path, clients: usize, login_delay_ms: u64) -> Res<Value> {
    let users: Vec<(String, String)> =
        (1..=COLD_HERDS).map(|i| (format!("herd-id-{i}"), format!("herd-secret-{i}"))).collect();
    let bg = emulator(&users)?;
    let emu = running(&bg)?;
    let login_delay = Duration::from_millis(login_delay_ms);
    emu.set_faults(Faults { login_delay, ..Faults::default() });
    let spec = ProfileSpec {
        name: "herd".into(),
        creds: users
            .iter()
            .enumerate()
            .map(|(i, (id, sec))| (format!("c{}", i + 1), id.clone(), sec.clone()))
            .collect(),
    };
    let agent = Agent::spawn(bin, &emu.base_url(), &[spec], None)?;
    agent.wait_ready()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (colds, warm_runs) = rt.block_on(async {
        let mut conns = Vec::with_capacity(clients);
        for _ in 0..clients {
            conns.push(aconnect(agent.socket()).await?);
        }
        // Each credential set in turn: a cold herd, then the same herd warm (token
        // cached: the serving time alone).
        let (mut colds, mut warm) = (Vec::new(), Vec::new());
        for i in 1..=COLD_HERDS {
            let req = Arc::new(get_request(&format!("/v1/profiles/herd/token?credential=c{i}")));
            let before = emu.counters().logins;
            let (cold, ok, tokens, c) = fire(conns, req.clone()).await?;
            let logins = emu.counters().logins - before;
            colds.push((ms(cold), ok, tokens, logins));
            let (w, wok, _, c) = fire(c, req.clone()).await?;
            if wok != clients {
                return Err(format!("warm herd: only {wok} of {clients} answered 200"));
            }
            warm.push(ms(w));
            conns = c;
        }
        Ok::<_, String>((colds, warm))
    })?;
    let c = emu.counters();
    let warm_ms = median_f(&mut warm_runs.clone());
    let cold_ms = median_f(&mut colds.iter().map(|c| c.0).collect::<Vec<_>>());
    // "About 50 ms plus the serving time": login latency + the warm herd, with 20 % slack.
    let budget_ms = 1.2 * (login_delay_ms as f64 + warm_ms);
    let counts_ok = colds.iter().all(|&(_, ok, tokens, logins)| ok == clients && tokens == 1 && logins == 1);
    let pass = counts_ok && cold_ms <= budget_ms;
    let all_ok = colds.iter().all(|c| c.1 == clients);
    let logins_each: Vec<u64> = colds.iter().map(|c| c.3).collect();
    Ok(json!({
        "name": "herd",
        "clients": clients,
        "herds": COLD_HERDS,
        "login_delay_ms": login_delay_ms,
        "logins": c.logins,
        "logins_per_herd": logins_each,
        "failed_logins": c.failed_logins,
        "all_answered": all_ok,
        "distinct_tokens_per_herd": colds.iter().map(|c| c.2).collect::<Vec<_>>(),
        "cold_ms": cold_ms,
        "cold_runs_ms": colds.iter().map(|c| c.0).collect::<Vec<_>>(),
        "warm_ms": warm_ms,
        "warm_runs_ms": warm_runs,
        "budget_ms": budget_ms,
        "pass": pass,
    }))
}
