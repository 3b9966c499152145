//! File safety, written once: the rules every file and folder the agent trusts must
//! follow, and the ways it writes and locks files.
//!
//! - [`rules`]: who may own a file or folder and which mode bits are refused
//!   (like ssh refuses a loose private key); each caller words its own advice.
//! - [`private_dir`]: private folders: created 0700, tightened, and the safe-path walk
//!   for the agent socket's folder.
//! - [`atomic`]: atomic replacement of a file (temporary file in the same folder,
//!   written, synced, renamed, folder synced), so a crash leaves the old or the new file.
//! - [`lock`]: exclusive `flock(2)` locks on lock files, dropped with the process.

pub(crate) mod atomic;
pub(crate) mod lock;
pub(crate) mod private_dir;
pub(crate) mod rules;
