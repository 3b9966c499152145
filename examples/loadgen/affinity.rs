//! CPU affinity of every thread of a process (or of the calling thread, pid None).

use rustix::process::Pid;
use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

fn tids(pid: i32) -> Vec<Pid> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).filter_map(Pid::from_raw).collect()
        })
        .unwrap_or_default()
}

/// CPUs this process may run on (from its first thread).
pub fn of(pid: Option<i32>) -> Option<CpuSet> {
    sched_getaffinity(pid.and_then(Pid::from_raw)).ok()
}

/// Number of CPUs in a set.
pub fn count(set: &CpuSet) -> usize {
    (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).count()
}

/// The set of just `cpu`.
pub fn only(cpu: usize) -> CpuSet {
    let mut set = CpuSet::new();
    set.set(cpu);
    set
}

/// Sets the affinity of every thread of `pid`, or of the calling thread.
pub fn set(pid: Option<i32>, set: &CpuSet) -> Result<(), String> {
    match pid {
        None => sched_setaffinity(None, set).map_err(|e| format!("sched_setaffinity: {e}")),
        Some(p) => {
            let all = tids(p);
            if all.is_empty() {
                return Err(format!("no threads found for pid {p}"));
            }
            for t in all {
                sched_setaffinity(Some(t), set).map_err(|e| format!("sched_setaffinity({t:?}): {e}"))?;
            }
            Ok(())
        }
    }
}

/// The first CPU of a set.
pub fn first(set: &CpuSet) -> Option<usize> {
    (0..CpuSet::MAX_CPU).find(|&c| set.is_set(c))
}
