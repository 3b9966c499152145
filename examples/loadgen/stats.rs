//! Percentiles and medians of the measured times.

use serde_json::{json, Value};
use std::time::Duration;

/// Percentile `q` (0..1) of sorted nanoseconds, in microseconds.
pub fn pct_us(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((q * sorted.len() as f64) as usize).min(sorted.len() - 1);
    sorted[i] as f64 / 1000.0
}

/// The median (upper one for an even count); NaN when empty. Sorts `v`.
pub fn median_f(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// Samples, p50, p90, p99 and max of latencies in nanoseconds, in microseconds.
pub fn summary_us(mut ns: Vec<u64>) -> Value {
    ns.sort_unstable();
    json!({
        "samples": ns.len(),
        "p50_us": pct_us(&ns, 0.50),
        "p90_us": pct_us(&ns, 0.90),
        "p99_us": pct_us(&ns, 0.99),
        "max_us": pct_us(&ns, 1.0),
    })
}

/// [`summary_us`] of all the latencies, plus the per-round p50s and their median.
pub fn summary_rounds(r: (Vec<u64>, Vec<f64>)) -> Value {
    let (all, mut p50s) = r;
    let mut v = summary_us(all);
    v["round_p50_us"] = json!(p50s);
    v["median_round_p50_us"] = json!(median_f(&mut p50s));
    v
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
