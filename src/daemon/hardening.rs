//! Process hardening done once at start, before any secret is read.

use rustix::fs::Mode;
use rustix::process::{Resource, Rlimit};

/// Makes the process private: files created 0600/0700 (umask 077), no core
/// dumps and not dumpable (so no ptrace by other same-uid processes and no
/// secrets in a core file), and as many file descriptors as allowed (for
/// many idle client connections). Failures are logged, not fatal.
pub fn harden_process() {
    rustix::process::umask(Mode::from_raw_mode(0o077));
    if let Err(e) = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable) {
        tracing::warn!(error = %e, "cannot mark the process not dumpable");
    }
    if let Err(e) = rustix::process::setrlimit(Resource::Core, Rlimit { current: Some(0), maximum: Some(0) })
    {
        tracing::warn!(error = %e, "cannot disable core dumps");
    }
    let nofile = rustix::process::getrlimit(Resource::Nofile);
    if let Some(max) = nofile.maximum {
        let want = max.min(65536);
        if nofile.current.is_some_and(|c| c < want) {
            let _ = rustix::process::setrlimit(
                Resource::Nofile,
                Rlimit { current: Some(want), maximum: Some(max) },
            );
        }
    }
}
