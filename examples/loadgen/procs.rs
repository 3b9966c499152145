//! `loadgen procs`: whole processes timed from spawn to exit, taking turns round by round
//! so that load from elsewhere hits them alike.

use crate::stats::pct_us;
use crate::Res;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::Instant;

/// One command of [`run`].
struct Proc {
    name: String,
    every: usize,
    argv: Vec<String>,
    times: Vec<u64>,
}

/// Runs `argv` once with no input or output; returns spawn-to-exit nanoseconds.
fn run_once(argv: &[String]) -> Res<u64> {
    let t = Instant::now();
    let st = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("{}: {e}", argv[0]))?;
    let took = t.elapsed().as_nanos() as u64;
    if !st.success() {
        let out = Command::new(&argv[0]).args(&argv[1..]).stdin(Stdio::null()).output();
        let err = out.map(|o| String::from_utf8_lossy(&o.stderr).to_string()).unwrap_or_default();
        return Err(format!("{} failed ({st}): {err}", argv.join(" ")));
    }
    Ok(took)
}

/// The `procs` result: every command timed spawn to exit, taking turns round by round.
pub fn run(cmds: &[String], rounds: usize, warmup: usize) -> Res<Value> {
    let mut procs = Vec::new();
    for c in cmds {
        let (head, line) =
            c.split_once('=').ok_or_else(|| format!("--cmd {c}: want NAME[/EVERY]=COMMAND"))?;
        let (name, every) = match head.split_once('/') {
            Some((n, e)) => (n, e.parse::<usize>().map_err(|_| format!("--cmd {c}: bad EVERY"))?.max(1)),
            None => (head, 1),
        };
        let argv: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        if argv.is_empty() {
            return Err(format!("--cmd {c}: no command"));
        }
        procs.push(Proc { name: name.to_string(), every, argv, times: Vec::new() });
    }
    for round in 0..warmup + rounds {
        for p in procs.iter_mut().filter(|p| round % p.every == 0) {
            let ns = run_once(&p.argv)?;
            if round >= warmup {
                p.times.push(ns);
            }
        }
    }
    let mut out = serde_json::Map::new();
    for p in procs {
        let mut t = p.times;
        t.sort_unstable();
        let median = if t.is_empty() { f64::NAN } else { t[t.len() / 2] as f64 / 1e6 };
        out.insert(
            p.name,
            json!({
                "command": p.argv.join(" "),
                "runs": t.len(),
                "median_ms": median,
                "min_ms": pct_us(&t, 0.0) / 1000.0,
                "p90_ms": pct_us(&t, 0.9) / 1000.0,
            }),
        );
    }
    Ok(json!({ "name": "procs", "rounds": rounds, "commands": out }))
}
