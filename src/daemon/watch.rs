//! Reloads the config when the file changes on disk (hand edits, another tool).
//!
//! `lookerctl` edits also tell the agent directly (`POST /v1/reload`); this
//! catches everything else. It polls the file's metadata (one `stat` every
//! couple of seconds): simple, and it survives editors that replace the file by
//! renaming, which trips up inotify watches on the file itself.
//!
//! A change is acted on only once the file has stopped changing for
//! [`SETTLE`]: a writer that truncates and then writes (`echo > file`, editors
//! that save in place) would otherwise be caught between the two, and an empty
//! file is a valid config with no profiles: the agent would drop and revoke
//! everything it holds.

use super::service::ReloadFn;
use crate::broker::Broker;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the config file is checked.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// How long the file must stay unchanged before a change is reloaded.
pub(crate) const SETTLE: Duration = Duration::from_millis(300);

/// What identifies one version of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        ctime_ns: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
    })
}

/// Notices settled changes of one file.
#[derive(Debug)]
pub(crate) struct ConfigWatcher {
    path: PathBuf,
    last: Option<Stamp>,
    tick: tokio::time::Interval,
}

impl ConfigWatcher {
    /// Watches `path` from its current state on.
    pub(crate) fn new(path: PathBuf) -> ConfigWatcher {
        let last = stamp(&path);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + POLL_INTERVAL, POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ConfigWatcher { path, last, tick }
    }

    /// Completes when the file has changed since the last call (or creation) and
    /// has then stayed the same for [`SETTLE`].
    pub(crate) async fn changed(&mut self) {
        loop {
            self.tick.tick().await;
            let mut now = stamp(&self.path);
            if now == self.last {
                continue;
            }
            loop {
                tokio::time::sleep(SETTLE).await;
                let again = stamp(&self.path);
                if again == now {
                    break;
                }
                now = again;
            }
            if now != self.last {
                self.last = now;
                return;
            }
        }
    }
}

/// Reloads through `reload` whenever `watcher`'s file changes; runs until aborted.
pub(crate) async fn watch_config(mut watcher: ConfigWatcher, broker: Broker, reload: ReloadFn) {
    loop {
        watcher.changed().await;
        tracing::info!(config = %watcher.path.display(), "config file changed");
        let _ = reload(&broker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A config file holding `text` in a fresh folder, and a watcher running in the
    /// background that records the file's text at each change.
    struct Recorder {
        _dir: tempfile::TempDir,
        path: PathBuf,
        seen: Arc<std::sync::Mutex<Vec<String>>>,
        polls: Arc<AtomicUsize>,
    }

    impl Recorder {
        fn start(text: &str) -> Recorder {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("config.toml");
            std::fs::write(&path, text).unwrap();
            let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
            let polls = Arc::new(AtomicUsize::new(0));
            let (s, p, file) = (seen.clone(), polls.clone(), path.clone());
            let mut w = ConfigWatcher::new(path.clone());
            tokio::spawn(async move {
                loop {
                    w.changed().await;
                    s.lock().unwrap().push(std::fs::read_to_string(&file).unwrap_or_default());
                    p.fetch_add(1, Ordering::SeqCst);
                }
            });
            Recorder { _dir: dir, path, seen, polls }
        }
    }

    /// Lets the spawned watcher run up to `d` of (paused) time.
    async fn run_for(d: Duration) {
        tokio::time::sleep(d).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_caught_half_done_is_reloaded_only_once_whole() {
        let Recorder { path, seen, .. } = &Recorder::start("old");
        run_for(Duration::from_millis(100)).await;
        // The truncation is seen by a poll; the rest arrives inside the settle window.
        std::fs::write(path, "").unwrap();
        run_for(POLL_INTERVAL).await;
        assert!(seen.lock().unwrap().is_empty(), "reloaded an unsettled file");
        std::fs::write(path, "[profiles.prod]\nbase_url = 'x'\n").unwrap();
        run_for(SETTLE * 3).await;
        assert_eq!(*seen.lock().unwrap(), vec!["[profiles.prod]\nbase_url = 'x'\n".to_string()]);
        // Nothing more happens while the file stays put.
        run_for(POLL_INTERVAL * 3).await;
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn each_settled_change_is_reported_once() {
        let Recorder { path, seen, polls, .. } = &Recorder::start("a");
        run_for(POLL_INTERVAL * 2).await;
        assert_eq!(polls.load(Ordering::SeqCst), 0, "an unchanged file is not a change");
        std::fs::write(path, "bb").unwrap();
        run_for(POLL_INTERVAL + SETTLE * 2).await;
        std::fs::remove_file(path).unwrap();
        run_for(POLL_INTERVAL + SETTLE * 2).await;
        std::fs::write(path, "ccc").unwrap();
        run_for(POLL_INTERVAL + SETTLE * 2).await;
        assert_eq!(*seen.lock().unwrap(), vec!["bb".to_string(), String::new(), "ccc".to_string()]);
    }
}
