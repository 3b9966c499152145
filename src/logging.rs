//! Logging for the daemon: journald-native under systemd, plain text on stderr otherwise.
//!
//! systemd sets `JOURNAL_STREAM=DEV:INODE` for a service whose stderr is connected to
//! the journal. When stderr's own `fstat()` matches (the variable is inherited by
//! children whose stderr points elsewhere, so the variable alone proves nothing), log
//! records go to journald as structured entries (priority, fields, `SYSLOG_IDENTIFIER=looker-agent`)
//! instead of text lines. `RUST_LOG` filters either way (default `info`). Colours only
//! when stderr is a terminal and `NO_COLOR` is unset.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Where the daemon's log records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogTarget {
    /// The systemd journal, natively (structured fields, priorities).
    Journald,
    /// Text lines on standard error.
    Stderr,
}

/// The `SYSLOG_IDENTIFIER` of journal entries.
pub(crate) const SYSLOG_IDENTIFIER: &str = "looker-agent";

/// Parses `JOURNAL_STREAM` (`DEV:INODE`, both decimal).
pub(crate) fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.trim().split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// True when `fd` is the stream `journal_stream` (a `JOURNAL_STREAM` value) names.
pub(crate) fn fd_is_journal_stream(fd: impl AsFd, journal_stream: &str) -> bool {
    let Some((dev, ino)) = parse_journal_stream(journal_stream) else {
        return false;
    };
    match rustix::fs::fstat(fd) {
        // The field types differ between architectures.
        #[allow(clippy::unnecessary_cast)]
        Ok(st) => st.st_dev as u64 == dev && st.st_ino as u64 == ino,
        Err(_) => false,
    }
}

/// True when this process's stderr is connected to the journal.
pub(crate) fn stderr_is_journal() -> bool {
    match std::env::var("JOURNAL_STREAM") {
        Ok(v) => fd_is_journal_stream(std::io::stderr(), &v),
        Err(_) => false,
    }
}

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber: journald when stderr goes to the journal (and the
/// journal socket answers), text on stderr otherwise. A second call does nothing.
pub(crate) fn init() -> LogTarget {
    if stderr_is_journal() {
        match tracing_journald::layer() {
            Ok(layer) => {
                let layer = layer.with_syslog_identifier(SYSLOG_IDENTIFIER.to_string());
                let _ = tracing_subscriber::registry().with(filter()).with(layer).try_init();
                return LogTarget::Journald;
            }
            Err(e) => {
                init_stderr();
                tracing::warn!(error = %e, "stderr goes to the journal but its socket does not answer; logging text");
                return LogTarget::Stderr;
            }
        }
    }
    init_stderr();
    LogTarget::Stderr
}

fn init_stderr() {
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_journal_stream() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8:12345\n"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8"), None);
        assert_eq!(parse_journal_stream("a:1"), None);
        assert_eq!(parse_journal_stream(""), None);
    }

    #[test]
    fn matches_only_the_named_stream() {
        let f = tempfile::tempfile().unwrap();
        let st = rustix::fs::fstat(&f).unwrap();
        let me = format!("{}:{}", st.st_dev, st.st_ino);
        assert!(fd_is_journal_stream(&f, &me));
        let other = tempfile::tempfile().unwrap();
        assert!(!fd_is_journal_stream(&other, &me));
        assert!(!fd_is_journal_stream(&f, "garbage"));
    }
}
