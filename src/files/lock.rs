//! Exclusive `flock(2)` locks. The kernel drops a lock however its process dies, so a
//! lock file left behind is never a stale lock.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// O_NOFOLLOW | O_CLOEXEC: a lock file is never reached through a symlink, and a
/// spawned program does not inherit the lock.
fn flags() -> i32 {
    (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC).bits() as i32
}

/// Opens (creating, mode 0600) the lock file at `path`.
pub(crate) fn open_or_create(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(flags())
        .open(path)
}

/// Creates a new lock file at `path` (which must not exist), mode 0600.
pub(crate) fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).custom_flags(flags()).open(path)
}

/// Opens an existing lock file at `path` for reading (to test whether it is held).
pub(crate) fn open_existing(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).custom_flags(flags()).open(path)
}

/// Takes an exclusive lock on `file` if it is free: `Ok(false)` when another holds it.
pub(crate) fn try_exclusive(file: &File) -> io::Result<bool> {
    try_flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
}

/// Whether another process holds an exclusive lock on the file `file` opens: tested
/// with a shared lock, so two processes testing at once do not take each other for
/// the holder.
pub(crate) fn held_by_other(file: &File) -> io::Result<bool> {
    try_flock(file, rustix::fs::FlockOperation::NonBlockingLockShared).map(|got| !got)
}

/// Tries the non-blocking `flock` `op` (again when a signal interrupts it): whether
/// it got the lock, `Ok(false)` when another process holds a conflicting one.
fn try_flock(file: &File, op: rustix::fs::FlockOperation) -> io::Result<bool> {
    loop {
        match rustix::fs::flock(file, op) {
            Ok(()) => return Ok(true),
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The first pause between two looks at a held lock; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(2);
/// The longest pause between two looks at a held lock.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// Takes an exclusive lock on `file`, waiting at most `wait` for another holder to
/// let go: `Ok(false)` when it still held it then.
///
/// Polling, not a blocking flock: the wait stays bounded without signals.
pub(crate) fn exclusive_waiting(file: &File, wait: Duration) -> io::Result<bool> {
    let start = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        if try_exclusive(file)? {
            return Ok(true);
        }
        if start.elapsed() >= wait {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// [`exclusive_waiting`] for async code: the pauses are tokio sleeps, so the
/// runtime's thread serves others meanwhile.
pub(crate) async fn exclusive_waiting_async(file: &File, wait: Duration) -> io::Result<bool> {
    // tokio's clock, as the pauses are: under paused time the wait ends too.
    let start = tokio::time::Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        if try_exclusive(file)? {
            return Ok(true);
        }
        if start.elapsed() >= wait {
            return Ok(false);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_free_once_dropped() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("x.lock");
        let a = create_new(&p).unwrap();
        assert!(create_new(&p).is_err(), "create_new never reuses a file");
        assert!(try_exclusive(&a).unwrap());
        let b = open_or_create(&p).unwrap();
        assert!(!try_exclusive(&b).unwrap());
        assert!(!exclusive_waiting(&b, Duration::ZERO).unwrap());
        drop(a);
        assert!(exclusive_waiting(&b, Duration::from_secs(5)).unwrap());
        let c = open_existing(&p).unwrap();
        assert!(!try_exclusive(&c).unwrap());
        assert!(held_by_other(&c).unwrap());
        let d = open_existing(&p).unwrap();
        assert!(held_by_other(&d).unwrap(), "a shared test lock does not hide the holder");
        drop(b);
        assert!(!held_by_other(&d).unwrap());
        assert!(!held_by_other(&c).unwrap(), "two testers do not see each other");
        std::os::unix::fs::symlink("x.lock", t.path().join("link")).unwrap();
        assert!(open_existing(&t.path().join("link")).is_err(), "never through a symlink");
    }
}
