//! Reloads the config when the file changes on disk (hand edits, another tool).
//!
//! `lookerctl` edits also tell the agent directly (`POST /v1/reload`); this
//! catches everything else. It polls the file's metadata (one `stat` every
//! couple of seconds): simple, and it survives editors that replace the file by
//! renaming, which trips up inotify watches on the file itself.

use super::handler::ReloadFn;
use crate::broker::Broker;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

/// How often the config file is checked.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// What identifies one version of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        ctime_ns: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
    })
}

/// Polls `path` and reloads through `reload` whenever it changes; runs until aborted.
pub async fn watch_config(path: PathBuf, broker: Broker, reload: ReloadFn) {
    let mut last = stamp(&path);
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = stamp(&path);
        if now != last {
            last = now;
            tracing::info!(config = %path.display(), "config file changed");
            let _ = reload(&broker);
        }
    }
}
