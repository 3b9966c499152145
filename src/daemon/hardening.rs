//! Process hardening done once at start, before any secret is read.

use rustix::fs::Mode;
use rustix::process::{Resource, Rlimit};

/// Makes the process private: files created 0600/0700 (umask 077), no core
/// dumps and not dumpable (so no ptrace by other same-uid processes and no
/// secrets in a core file), and as many file descriptors as allowed (for
/// many idle client connections). Failures are logged, not fatal.
pub(crate) fn harden_process() {
    rustix::process::umask(Mode::from_raw_mode(0o077));
    if let Err(e) = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable) {
        tracing::warn!(error = %e, "cannot mark the process not dumpable");
    }
    if let Err(e) = rustix::process::setrlimit(Resource::Core, Rlimit { current: Some(0), maximum: Some(0) })
    {
        tracing::warn!(error = %e, "cannot disable core dumps");
    }
    raise_nofile();
}

/// Highest soft RLIMIT_NOFILE asked for when the hard limit is "unlimited" (the
/// kernel refuses more than fs.nr_open, 1048576 by default).
const NOFILE_WHEN_UNLIMITED: u64 = 1 << 20;

/// Raises the soft RLIMIT_NOFILE to the hard limit: every client connection is a
/// descriptor, and the server caps its connections by what is left (see
/// [`super::server::Pools`]). Returns the soft limit now in force.
pub(crate) fn raise_nofile() -> Option<u64> {
    let nofile = rustix::process::getrlimit(Resource::Nofile);
    let want = nofile.maximum.unwrap_or(NOFILE_WHEN_UNLIMITED);
    if nofile.current.is_some_and(|c| c < want) {
        if let Err(e) = rustix::process::setrlimit(
            Resource::Nofile,
            Rlimit { current: Some(want), maximum: nofile.maximum },
        ) {
            tracing::warn!(error = %e, soft = ?nofile.current, hard = ?nofile.maximum,
                "cannot raise the file descriptor limit; fewer connections are served at once");
        }
    }
    rustix::process::getrlimit(Resource::Nofile).current
}
