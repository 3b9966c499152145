//! [`Tasks`]: the broker's background work (logins, revocations, journal clean-up,
//! maintenance), owned so that shutdown can wait for it instead of exiting under it.
//!
//! A task is counted from the moment it is spawned until its future is dropped
//! (finished, cut or never polled), so [`Tasks::finish`] wakes the instant the last
//! one ends, on a notification rather than a timer.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The broker's background tasks. Dropping it cuts whatever still runs.
pub(crate) struct Tasks {
    set: Mutex<JoinSet<()>>,
    running: Arc<watch::Sender<usize>>,
}

/// Counts one thing (a task, a login) in `counter` for as long as it lives: the
/// count drops however it ends, even when its task is cut.
pub(crate) struct Counted(Arc<watch::Sender<usize>>);

impl Counted {
    /// Adds one to `counter` until the returned guard is dropped.
    pub(crate) fn new(counter: &Arc<watch::Sender<usize>>) -> Counted {
        counter.send_modify(|n| *n += 1);
        Counted(counter.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Tasks {
    /// No tasks yet.
    pub(crate) fn new() -> Tasks {
        Tasks { set: Mutex::new(JoinSet::new()), running: Arc::new(watch::channel(0).0) }
    }

    fn lock(&self) -> MutexGuard<'_, JoinSet<()>> {
        // The set is consistent at every unlock, so a poisoned lock is safe to reuse.
        self.set.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `work` in the background as one of the broker's tasks. Must run inside a
    /// tokio runtime.
    pub(crate) fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        let running = Counted::new(&self.running);
        let mut set = self.lock();
        // Forget the tasks that ended since the last spawn, so the set stays small.
        while set.try_join_next().is_some() {}
        set.spawn(async move {
            let _running = running;
            work.await;
        });
    }

    /// How many tasks run now.
    pub(crate) fn running(&self) -> usize {
        *self.running.borrow()
    }

    /// Waits until no task runs or `until` passes, then cuts those still running.
    /// Returns how many were cut.
    pub(crate) async fn finish(&self, until: Instant) -> usize {
        let mut running = self.running.subscribe();
        if tokio::time::timeout_at(until, running.wait_for(|n| *n == 0)).await.is_ok() {
            return 0;
        }
        let cut = self.running();
        self.lock().abort_all();
        cut
    }
}
