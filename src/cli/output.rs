//! Output for people (aligned tables) and programs (`--json`). No colours, so NO_COLOR holds trivially.

use super::exit::CliError;
use std::io::Write;

/// Prints `value` as one line of JSON.
pub fn json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let s = serde_json::to_string_pretty(value).map_err(|e| CliError::failure(e.to_string()))?;
    line(&s)
}

/// Prints a line on stdout; a closed pipe is not an error worth a panic.
pub fn line(s: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}").map_err(|e| CliError::failure(format!("cannot write output: {e}")))
}

/// Renders rows as a table with aligned columns (the header row first).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: Vec<&str>| {
        let n = cells.len();
        for (i, c) in cells.into_iter().enumerate() {
            out.push_str(c);
            if i + 1 < n {
                let pad = widths[i].saturating_sub(c.chars().count()) + 2;
                out.push_str(&" ".repeat(pad));
            }
        }
        out.push('\n');
    };
    push_row(header.to_vec());
    for r in rows {
        push_row(r.iter().map(|s| s.as_str()).collect());
    }
    out.trim_end_matches('\n').to_string()
}

/// `1h 2m`-style countdown for people.
pub fn countdown(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}h {:02}m", secs / 3600, (secs % 3600) / 60)
    } else if secs >= 60 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y");
        assert_eq!(countdown(3725), "1h 02m");
        assert_eq!(countdown(65), "1m 05s");
    }
}
