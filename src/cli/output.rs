//! Output for people (aligned tables) and programs (`--json`).
//!
//! lookerctl prints no colour, and text that came from elsewhere (a Looker error
//! message, a user's display name, a config value) is cleaned of control
//! characters before it reaches a terminal, so no escape sequence gets through:
//! NO_COLOR holds whatever the data says.

use super::exit::CliError;
use std::io::Write;

/// Replaces control characters (escape sequences included) except newline and
/// tab with `?`, so text from elsewhere cannot drive the terminal.
pub(crate) fn clean(s: &str) -> String {
    s.chars().map(|c| if c.is_control() && c != '\n' && c != '\t' { '?' } else { c }).collect()
}

/// Prints a value as JSON (pretty, one document). serde_json escapes control characters.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let s = serde_json::to_string_pretty(value).map_err(|e| CliError::failure(e.to_string()))?;
    write_out(format!("{s}\n").as_bytes())
}

/// Prints a line on stdout, cleaned; a closed pipe is an error, never a panic.
pub(crate) fn line(s: &str) -> Result<(), CliError> {
    write_out(format!("{}\n", clean(s)).as_bytes())
}

/// Prints bytes on stdout as they are (generated scripts and pages).
pub(crate) fn raw(bytes: &[u8]) -> Result<(), CliError> {
    write_out(bytes)
}

fn write_out(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|_| out.flush())
        .map_err(|e| CliError::failure(format!("cannot write output: {e}")))
}

/// `lookerctl: warning: …` on stderr.
pub(crate) fn warn(s: &str) {
    eprintln!("lookerctl: warning: {}", clean(s));
}

/// `lookerctl: note: …` on stderr.
pub(crate) fn note(s: &str) {
    eprintln!("lookerctl: {}", clean(s));
}

/// `lookerctl: …` on stderr, for the error that ends the command.
pub(crate) fn error(s: &str) {
    eprintln!("lookerctl: {}", clean(s));
}

/// Renders rows as a table with aligned columns (the header row first).
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> =
        rows.iter().map(|r| r.iter().map(|c| clean(c).replace('\n', " ")).collect()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: Vec<&str>| {
        let n = cells.len();
        let mut row = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            row.push_str(c);
            if i + 1 < n {
                let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(c.chars().count()) + 2;
                row.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(row.trim_end());
        out.push('\n');
    };
    push_row(header.to_vec());
    for r in &rows {
        push_row(r.iter().map(|s| s.as_str()).collect());
    }
    out.trim_end_matches('\n').to_string()
}

/// Renders `key: value` lines with the values aligned, indented by `indent` spaces.
pub(crate) fn fields(indent: usize, pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| {
            let pad = width - k.chars().count();
            format!("{}{k}:{}  {}", " ".repeat(indent), " ".repeat(pad), clean(v))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `1h 2m`-style countdown for people.
pub(crate) fn countdown(secs: u64) -> String {
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
        let t = table(&["A", "BB", "C"], &[vec!["xxx".into(), "y".into(), "".into()]]);
        assert_eq!(t, "A    BB  C\nxxx  y");
        assert_eq!(countdown(3725), "1h 02m");
        assert_eq!(countdown(65), "1m 05s");
        assert_eq!(fields(2, &[("id", "1".into()), ("email", "a@b".into())]), "  id:     1\n  email:  a@b");
    }

    #[test]
    fn escapes_are_cleaned() {
        assert_eq!(clean("\u{1b}[31mred\u{1b}[0m\n\tok\u{7}"), "?[31mred?[0m\n\tok?");
        assert!(!table(&["A"], &[vec!["\u{1b}[1mx".into()]]).contains('\u{1b}'));
    }
}
