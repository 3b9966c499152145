//! A gateway credential minted for a process (`lookerctl exec`) dies with it: the
//! agent holds a pidfd of the process that asked (lookerctl, which then execs the
//! command in place, keeping its pid) and retires the credential when it polls readable.
//! After an agent restart the pidfd is opened again from the saved pid, and kept only
//! when that pid's start time is the saved one (else the pid was reused: the credential's
//! process is gone) and the boot is the same.

use super::saved::Saved;
use super::sessions::{BoundProcess, Sessions};
use super::Gateway;
use crate::broker::Broker;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Watches the process behind `pidfd`; when it exits, credential `id` and its
/// sessions end (their own tokens are revoked). Must run inside a tokio runtime.
pub(super) fn retire_on_exit(sessions: Arc<Sessions>, broker: Broker, id: u64, pid: i32, pidfd: OwnedFd) {
    tokio::spawn(async move {
        // SAFETY: the AsyncFd owns `pidfd` (an OwnedFd, whose raw fd never changes) for
        // its whole life, so the descriptor stays open and the same while registered.
        let registered = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) };
        match registered {
            // A pidfd polls readable once its process has exited.
            Ok(fd) => {
                let _ = fd.readable().await;
            }
            Err(e) => {
                // Cannot watch it: end it now rather than let it outlive its process.
                tracing::warn!(pid, error = %e, "cannot watch the process of a gateway credential; ending the credential");
            }
        }
        let ended = sessions.retire(id);
        tracing::debug!(target: "looker_agent::audit", pid, sessions = ended.len(),
            "gateway credential ended with its process");
        Gateway::end(&broker, ended);
    });
}

/// When process `pid` started (clock ticks since boot: field 22 of /proc/PID/stat),
/// which tells it from a later process given the same pid.
pub(super) fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or ')':
    // the fields after the last ')' are plain, field 3 first.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(22 - 3)?.parse().ok()
}

/// A pidfd of the process a credential was bound to, if it still runs: the pidfd is
/// opened first and the start time checked after, so a pid reused in between is
/// seen (its start time differs) rather than watched.
pub(super) fn reopen(bound: &BoundProcess) -> Option<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(bound.pid)?;
    let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()?;
    let started = bound.start_time?;
    (start_time(bound.pid)? == started).then_some(fd)
}

/// Drops from `saved` the credentials bound to a process that no longer runs, and
/// all bound ones when `saved` is of another boot than `boot_id` (a pid and a start
/// time name a process only within the boot they were read in). Returns a pidfd of
/// each kept one's process, by client_id (ids are new in each run), to watch.
pub(super) fn keep_running(saved: &mut Saved, boot_id: Option<String>) -> HashMap<String, OwnedFd> {
    let same_boot = saved.boot_id.is_some() && saved.boot_id == boot_id;
    let mut pidfds = HashMap::new();
    saved.credentials.retain(|c| match &c.bound {
        None => true,
        Some(_) if !same_boot => false,
        Some(b) => reopen(b).map(|fd| pidfds.insert(c.client_id.clone(), fd)).is_some(),
    });
    pidfds
}

#[cfg(test)]
mod tests {
    use super::super::saved::SavedCredential;
    use super::*;

    #[test]
    fn bound_credentials_are_kept_only_for_a_running_process_of_this_boot() {
        let pid = std::process::id() as i32;
        let me = BoundProcess { pid, start_time: start_time(pid) };
        let cred = |id, bound| SavedCredential {
            id,
            client_id: format!("c{id}"),
            secret_sha256: [0; 32],
            profile: "prod".into(),
            credential: None,
            expires_at: None,
            bound,
        };
        let saved = |boot: &str| Saved {
            boot_id: Some(boot.into()),
            credentials: vec![
                cred(1, Some(me)),
                cred(2, Some(BoundProcess { pid, start_time: me.start_time.map(|t| t + 1) })),
                cred(3, None),
            ],
            ..Saved::default()
        };
        let mut same = saved("this-boot");
        let fds = keep_running(&mut same, Some("this-boot".into()));
        assert_eq!(same.credentials.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(fds.keys().collect::<Vec<_>>(), ["c1"]);
        let mut other = saved("another-boot");
        assert!(keep_running(&mut other, Some("this-boot".into())).is_empty());
        assert_eq!(
            other.credentials.iter().map(|c| c.id).collect::<Vec<_>>(),
            [3],
            "TTL ones outlive a reboot"
        );
    }

    #[test]
    fn a_running_process_is_found_again_only_with_its_start_time() {
        let pid = std::process::id() as i32;
        let start = start_time(pid).expect("our own start time");
        assert!(reopen(&BoundProcess { pid, start_time: Some(start) }).is_some());
        // The same pid with another start time: a reused pid, not the bound process.
        assert!(reopen(&BoundProcess { pid, start_time: Some(start + 1) }).is_none());
        assert!(reopen(&BoundProcess { pid, start_time: None }).is_none());
    }

    #[test]
    fn an_exited_process_is_not_found() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let start = start_time(pid);
        child.wait().unwrap();
        assert!(reopen(&BoundProcess { pid, start_time: start }).is_none());
    }
}
