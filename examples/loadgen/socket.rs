//! `loadgen socket`: keep-alive latency and throughput of the agent's socket against
//! the ping-pong baseline, free placement and pinned to one CPU.

use crate::baseline::Baseline;
use crate::http1::{get_request, Conn};
use crate::stats::{pct_us, summary_rounds, summary_us};
use crate::{affinity, Res};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Sequential round trips on one connection for `dur`; appends latencies (ns).
fn latency_round(c: &mut Conn, req: &[u8], dur: Duration, out: &mut Vec<u64>) -> Res<()> {
    let end = Instant::now() + dur;
    loop {
        let t = Instant::now();
        if t >= end {
            return Ok(());
        }
        c.round_trip(req)?;
        out.push(t.elapsed().as_nanos() as u64);
    }
}

/// `conns` threads, one connection each, hammering for `dur`: (requests/s, latencies).
fn throughput_round(target: &Path, req: &[u8], conns: usize, dur: Duration) -> Res<(f64, Vec<u64>)> {
    let mut cs = Vec::with_capacity(conns);
    for _ in 0..conns {
        let mut c = Conn::open(target)?;
        c.round_trip(req)?;
        cs.push(c);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let go = Arc::new(Barrier::new(conns + 1));
    let handles: Vec<_> = cs
        .into_iter()
        .map(|mut c| {
            let (stop, go, req) = (stop.clone(), go.clone(), req.to_vec());
            std::thread::spawn(move || -> Res<Vec<u64>> {
                let mut lat = Vec::with_capacity(1 << 14);
                go.wait();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    c.round_trip(&req)?;
                    lat.push(t.elapsed().as_nanos() as u64);
                }
                Ok(lat)
            })
        })
        .collect();
    go.wait();
    let start = Instant::now();
    std::thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().map_err(|_| "client thread panicked".to_string())??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok((all.len() as f64 / elapsed, all))
}

/// Alternating latency rounds over several connections: per connection, all its
/// latencies and the p50 of each round (µs).
fn alternate(
    conns: &mut [&mut Conn],
    req: &[u8],
    rounds: usize,
    per: Duration,
) -> Res<Vec<(Vec<u64>, Vec<f64>)>> {
    let mut out = vec![(Vec::new(), Vec::new()); conns.len()];
    for _ in 0..rounds {
        for (c, (all, p50s)) in conns.iter_mut().zip(out.iter_mut()) {
            let mut round = Vec::new();
            latency_round(c, req, per, &mut round)?;
            round.sort_unstable();
            p50s.push(pct_us(&round, 0.5));
            all.extend(round);
        }
    }
    Ok(out)
}

/// Agent, client and baseline on one CPU: each round trip is two context switches on
/// that CPU, no cross-CPU wake-up. Returns (agent, baseline) latencies; affinities are
/// restored before returning, whatever happened.
fn pinned_latency(
    agent_pid: i32,
    base: &Baseline,
    req: &[u8],
    agent: &mut Conn,
    rounds: usize,
    per: Duration,
) -> Res<(Vec<u64>, Vec<u64>)> {
    let saved = (affinity::of(Some(agent_pid)), affinity::of(Some(base.pid())), affinity::of(None));
    let (Some(a0), Some(b0), Some(me0)) = saved else {
        return Err("cannot read CPU affinities".into());
    };
    let cpu = affinity::first(&me0).ok_or("no CPU in this process's affinity set")?;
    let one = affinity::only(cpu);
    let mut run = || -> Res<(Vec<u64>, Vec<u64>)> {
        affinity::set(Some(agent_pid), &one)?;
        affinity::set(Some(base.pid()), &one)?;
        affinity::set(None, &one)?;
        // A fresh baseline connection: its server thread is created now, on that CPU.
        let mut pp = Conn::open(&base.socket)?;
        for _ in 0..2000 {
            agent.round_trip(req)?;
            pp.round_trip(req)?;
        }
        let mut lat = alternate(&mut [agent, &mut pp], req, rounds, per)?;
        let b = lat.pop().unwrap_or_default().0;
        let a = lat.pop().unwrap_or_default().0;
        Ok((a, b))
    };
    let r = run();
    let restore = [
        affinity::set(Some(agent_pid), &a0),
        affinity::set(Some(base.pid()), &b0),
        affinity::set(None, &me0),
    ];
    for e in restore.into_iter().filter_map(Result::err) {
        eprintln!("loadgen: could not restore a CPU affinity: {e}");
    }
    r
}

/// The `socket` result: the agent at `socket` answering `GET path`, next to the baselines.
pub fn run(socket: &Path, path: &str, conns: usize, seconds: f64, agent_pid: Option<i32>) -> Res<Value> {
    let req = get_request(path);
    let mut agent = Conn::open(socket)?;
    let first = agent.round_trip(&req)?;
    let answer = agent.buf[..first.len].to_vec();
    if first.status != 200 {
        return Err(format!("GET {path} answered: {}", String::from_utf8_lossy(&answer)));
    }
    let base = Baseline::start(&answer, Duration::ZERO)?;
    let rounds = 10;
    let per = Duration::from_secs_f64(seconds / rounds as f64);

    // 1. Same CPU: what the agent itself adds to a round trip, without the scheduler's
    //    choice of CPUs. Its excess over the baseline is the agent's work per request.
    let cpus = affinity::of(None).map_or(1, |s| affinity::count(&s));
    let pinned = match agent_pid {
        Some(pid) if cpus >= 2 => Some(pinned_latency(pid, &base, &req, &mut agent, rounds / 2, per)?),
        _ => None,
    };
    let (pinned_json, work) = match pinned {
        Some((a, b)) => {
            let (sa, sb) = (summary_us(a), summary_us(b));
            let excess_us =
                (sa["p50_us"].as_f64().unwrap_or(0.0) - sb["p50_us"].as_f64().unwrap_or(0.0)).max(0.0);
            let ratio = sa["p50_us"].as_f64().unwrap_or(f64::NAN) / sb["p50_us"].as_f64().unwrap_or(f64::NAN);
            (
                json!({ "agent": sa, "baseline": sb, "p50_ratio": ratio, "work_us": excess_us }),
                Some(Duration::from_secs_f64(excess_us / 1e6)),
            )
        }
        None => (Value::Null, None),
    };

    // 2. Free placement, as clients really run: the target. A second baseline does the
    //    agent's per-request work (a spin of the same length) before answering.
    let busy = match work {
        Some(w) => Some(Baseline::start(&answer, w)?),
        None => None,
    };
    let mut pp = Conn::open(&base.socket)?;
    if pp.round_trip(&req)?.len != answer.len() {
        return Err("the baseline answers a different size".into());
    }
    let mut ppw = match &busy {
        Some(b) => Some(Conn::open(&b.socket)?),
        None => None,
    };
    for _ in 0..2000 {
        agent.round_trip(&req)?;
        pp.round_trip(&req)?;
        if let Some(c) = ppw.as_mut() {
            c.round_trip(&req)?;
        }
    }
    let mut lat = {
        let mut cs: Vec<&mut Conn> = vec![&mut pp, &mut agent];
        if let Some(c) = ppw.as_mut() {
            cs.push(c);
        }
        alternate(&mut cs, &req, rounds, per)?
    };
    let lw = if lat.len() == 3 { Some(summary_rounds(lat.pop().unwrap_or_default())) } else { None };
    let la = summary_rounds(lat.pop().unwrap_or_default());
    let lb = summary_rounds(lat.pop().unwrap_or_default());
    // Which CPUs the scheduler picks sticks for a while and then may flip (see the
    // report): the median of the rounds' p50s is steadier than one pooled p50.
    let p50 = |v: &Value| v["median_round_p50_us"].as_f64().unwrap_or(f64::NAN);
    let ratio = p50(&la) / p50(&lb);
    let busy_json = match (&lw, work) {
        (Some(w), Some(d)) => {
            json!({ "work_us": d.as_secs_f64() * 1e6, "latency": w, "agent_p50_ratio": p50(&la) / p50(w) })
        }
        _ => Value::Null,
    };
    drop(agent);
    drop(pp);
    drop(ppw);

    // 3. Throughput: `conns` connections each, two alternating rounds.
    let tdur = Duration::from_secs_f64((seconds / 2.0).max(1.0));
    let (mut tput_a, mut tput_b) = (Vec::new(), Vec::new());
    let (mut tl_a, mut tl_b) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let (t, l) = throughput_round(&base.socket, &req, conns, tdur)?;
        tput_b.push(t);
        tl_b.extend(l);
        let (t, l) = throughput_round(socket, &req, conns, tdur)?;
        tput_a.push(t);
        tl_a.extend(l);
    }
    let ta = tput_a.iter().sum::<f64>() / tput_a.len() as f64;
    let tb = tput_b.iter().sum::<f64>() / tput_b.len() as f64;
    Ok(json!({
        "name": "socket",
        "request_bytes": req.len(),
        "answer_bytes": answer.len(),
        "cpus": cpus,
        "latency": { "agent": la, "baseline": lb, "p50_ratio": ratio },
        "pinned": pinned_json,
        "busy_baseline": busy_json,
        "throughput": {
            "conns": conns,
            "agent_per_s": ta, "baseline_per_s": tb,
            "agent_rounds": tput_a, "baseline_rounds": tput_b,
            "agent_latency": summary_us(tl_a), "baseline_latency": summary_us(tl_b),
        },
    }))
}
