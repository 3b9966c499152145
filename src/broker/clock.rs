//! The broker's clock: every "is this token still good, how much is left" decision
//! reads it, so it must keep counting while the machine is suspended.
//!
//! tokio's `Instant` (like `std::time::Instant`) runs on CLOCK_MONOTONIC, which
//! stops during suspend: after a night with the lid closed a token that died hours
//! ago would still look fresh. [`SystemClock`] adds the time spent suspended
//! (CLOCK_BOOTTIME − CLOCK_MONOTONIC, which only grows while the machine sleeps) to
//! tokio's clock. In production that is CLOCK_BOOTTIME itself; under
//! `tokio::time::pause()` it follows tokio's virtual time, so time-driven tests keep
//! working. [`TestClock`] replaces the kernel's suspend count with one a test sets.
//!
//! Timers (tokio sleeps) still run on CLOCK_MONOTONIC and so stop during suspend:
//! the maintenance task never sleeps long, and re-checks when it wakes.

use std::ops::{Add, Sub};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A point on a broker's clock: time since the clock was created, suspend included.
/// Only stamps of the same clock compare meaningfully.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Stamp(Duration);

impl Stamp {
    /// The moment the clock was created.
    pub const START: Stamp = Stamp(Duration::ZERO);

    /// Time from `earlier` to `self`, zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Stamp) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    /// Time since the clock was created.
    pub fn since_start(self) -> Duration {
        self.0
    }
}

impl Add<Duration> for Stamp {
    type Output = Stamp;
    fn add(self, d: Duration) -> Stamp {
        Stamp(self.0.saturating_add(d))
    }
}

impl Sub<Duration> for Stamp {
    type Output = Stamp;
    fn sub(self, d: Duration) -> Stamp {
        Stamp(self.0.saturating_sub(d))
    }
}

/// Where the broker reads the time. Implementations must be cheap (the cache hit
/// reads it) and must count time the machine spent suspended.
pub trait Clock: Send + Sync + 'static {
    /// The time now.
    fn now(&self) -> Stamp;
}

/// A shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

/// tokio's clock plus the time the machine has spent suspended since this clock was
/// created: CLOCK_BOOTTIME in production (see the module documentation).
#[derive(Debug)]
pub struct SystemClock {
    start: tokio::time::Instant,
    suspended_at_start: Duration,
}

impl SystemClock {
    /// A clock starting now.
    pub fn new() -> SystemClock {
        SystemClock { start: tokio::time::Instant::now(), suspended_at_start: suspended_since_boot() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Stamp {
        Stamp(self.start.elapsed() + suspended_since_boot().saturating_sub(self.suspended_at_start))
    }
}

/// How long the machine has been suspended since boot: CLOCK_BOOTTIME counts it,
/// CLOCK_MONOTONIC does not. (The two reads are nanoseconds apart; the error does
/// not accumulate.)
fn suspended_since_boot() -> Duration {
    use rustix::time::{clock_gettime, ClockId};
    let mono = clock_gettime(ClockId::Monotonic);
    let boot = clock_gettime(ClockId::Boottime);
    let d = |t: rustix::time::Timespec| {
        Duration::new(u64::try_from(t.tv_sec).unwrap_or(0), u32::try_from(t.tv_nsec).unwrap_or(0))
    };
    d(boot).saturating_sub(d(mono))
}

/// tokio's clock plus suspends a test declares with [`TestClock::suspend`]: the
/// broker sees the time jump while tokio's timers stay put, as after a real resume.
#[derive(Debug)]
pub struct TestClock {
    start: tokio::time::Instant,
    suspended_nanos: AtomicU64,
}

impl TestClock {
    /// A clock starting now, never suspended yet.
    pub fn new() -> Arc<TestClock> {
        Arc::new(TestClock { start: tokio::time::Instant::now(), suspended_nanos: AtomicU64::new(0) })
    }

    /// Moves the clock forward by `d` without moving tokio's time: the machine "slept".
    pub fn suspend(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.suspended_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Stamp {
        Stamp(self.start.elapsed() + Duration::from_nanos(self.suspended_nanos.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_tokio_time_and_jumps_on_suspend() {
        let real = SystemClock::new();
        let test = TestClock::new();
        let (r0, t0) = (real.now(), test.now());
        tokio::time::sleep(Duration::from_secs(10)).await;
        // No real suspend happens during a test: both follow tokio's (virtual) time.
        assert!(real.now().saturating_duration_since(r0) >= Duration::from_secs(10));
        assert!(real.now().saturating_duration_since(r0) < Duration::from_secs(11));
        test.suspend(Duration::from_secs(3600));
        assert_eq!(test.now().saturating_duration_since(t0), Duration::from_secs(3610));
        assert_eq!(Stamp::START + Duration::from_secs(1) - Duration::from_secs(2), Stamp::START);
    }
}
