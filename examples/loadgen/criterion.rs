//! Reads criterion's results (`target/criterion`) for the report.

use serde_json::Value;
use std::path::Path;

/// `full_id -> median ns` of every criterion benchmark under `dir`.
pub fn medians(dir: &Path) -> Vec<(String, f64, f64, f64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "new") {
                    let bench: Option<Value> = std::fs::read(p.join("benchmark.json"))
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok());
                    let est: Option<Value> = std::fs::read(p.join("estimates.json"))
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok());
                    if let (Some(b), Some(e)) = (bench, est) {
                        let m = &e["median"];
                        out.push((
                            b["full_id"].as_str().unwrap_or("?").to_string(),
                            m["point_estimate"].as_f64().unwrap_or(f64::NAN),
                            m["confidence_interval"]["lower_bound"].as_f64().unwrap_or(f64::NAN),
                            m["confidence_interval"]["upper_bound"].as_f64().unwrap_or(f64::NAN),
                        ));
                    }
                } else {
                    stack.push(p);
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
