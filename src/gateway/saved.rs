//! The gateway's credentials and sessions across agent restarts and reboots.
//!
//! A restart (an upgrade, `systemctl --user restart`, a crash) would otherwise end every
//! gateway credential and session: a running `lookerctl exec` child would get 401s, its
//! SDK's next login a 404, and a credential minted for a looker.ini would die long
//! before its TTL. So every change is written to a state file of the agent socket
//! ([`path_for`]: `$XDG_STATE_HOME/looker-agent/gateway/`, the machine, the socket), with
//! the gateway's TCP port and the boot it was written in, and the next run takes it
//! up: the same URL (the port is bound again when it is free and no port is
//! configured), the same credentials, the same sessions, each on the real tokens of the
//! new run. Credentials bound to a process are kept only within the same boot (a pid
//! and start time mean nothing after a reboot); those with a TTL outlive a reboot.
//!
//! Nothing secret is in the file: a credential's client_secret and a session's token
//! are kept as SHA-256 digests (both are random, 143 bits and more: a digest cannot be
//! turned back into a login or a call). Real Looker tokens are never in it: the
//! journal revoked them when the last run stopped.
//!
//! The file is the agent's own: written atomically with mode 0600 in a 0700 folder;
//! read only when its owner is the agent's user, nobody else may write it and it is
//! not a symlink. A file that cannot be read is moved aside (`NAME.broken`) with a
//! warning and the gateway starts empty: never a reason not to start.

use super::sessions::{BoundProcess, Digest};
use crate::files::atomic::AtomicFile;
use crate::files::private_dir;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// The file format's version; a file of another version is not read.
const VERSION: u32 = 1;

/// A state file larger than this is not read (a real one holds a few KiB).
const MAX_LEN: u64 = 16 * 1024 * 1024;

/// What is saved: live gateway credentials and sessions, and the TCP port.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Saved {
    /// The gateway's TCP port (bound again at start when free and none is configured).
    #[serde(default)]
    pub port: Option<u16>,
    /// The boot it was written in (/proc/sys/kernel/random/boot_id): process-bound
    /// credentials are kept only within it.
    #[serde(default)]
    pub boot_id: Option<String>,
    /// Live gateway credentials.
    pub credentials: Vec<SavedCredential>,
    /// Their live sessions.
    pub sessions: Vec<SavedSession>,
}

/// A gateway credential, as saved.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct SavedCredential {
    /// Its id in the run that saved it (sessions name their credential by it).
    pub id: u64,
    /// Its client_id (not secret).
    pub client_id: String,
    /// The SHA-256 of its client_secret.
    #[serde(with = "digest_b64")]
    pub secret_sha256: Digest,
    /// Its profile.
    pub profile: String,
    /// Its credential set, if bound to one.
    pub credential: Option<String>,
    /// When it ends (`None`: with its process).
    #[serde(with = "unix_secs")]
    pub expires_at: Option<SystemTime>,
    /// The process it dies with.
    pub bound: Option<BoundProcess>,
}

/// A gateway session, as saved.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct SavedSession {
    /// The SHA-256 of its token (what names it; ids are new in each run).
    #[serde(with = "digest_b64")]
    pub token_sha256: Digest,
    /// The id of the credential it logged in with.
    pub minted_by: u64,
    /// Its credential set, if pinned.
    pub credential: Option<String>,
    /// The Looker user it acts as (sudo).
    pub user_id: Option<String>,
    /// True in the dev workspace (the new run gives it a dev token of its own on demand).
    pub dev: bool,
    /// When it ends (`None`: with its credential).
    #[serde(with = "unix_secs")]
    pub expires_at: Option<SystemTime>,
    /// When it began.
    #[serde(with = "unix_secs::required")]
    pub created: SystemTime,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    #[serde(flatten)]
    state: Saved,
}

/// The state file of the agent socket at `socket` on machine `machine`, in
/// `state_dir` (the agent's `$XDG_STATE_HOME/looker-agent`): `gateway/MACHINE/` and
/// the socket's path as one file name (`/run/user/1000/looker-agent/agent.sock`
/// gives `run-user-1000-looker-agent-agent.sock.json`), so two agents on two sockets
/// keep two files, and so do two machines sharing one home folder (NFS).
pub fn path_for(state_dir: &Path, machine: &str, socket: &Path) -> PathBuf {
    let name = file_name(socket.to_string_lossy().trim_start_matches('/'));
    state_dir.join("gateway").join(file_name(machine)).join(format!("{name}.json"))
}

/// `text` as one file name: `/` becomes `-`, anything unusual `_`.
fn file_name(text: &str) -> String {
    let name: String = text
        .chars()
        .map(|c| match c {
            '/' => '-',
            c if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') => c,
            _ => '_',
        })
        .collect();
    // Never `.`, `..` or empty: those name no file of their own.
    if name.chars().all(|c| c == '.') {
        format!("_{name}")
    } else {
        name
    }
}

/// This machine's name for [`path_for`]: its /etc/machine-id, else its hostname.
pub fn machine_id() -> String {
    ["/etc/machine-id", "/proc/sys/kernel/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// This boot's id, as the kernel tells it.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|s| s.trim().to_string())
}

/// Why a state file was not taken up.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// It could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not the agent's own private file.
    #[error("{path} is not a private file of this user ({why}); it was not read")]
    NotPrivate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// Its content is not a state file of this version.
    #[error("{path} is not a gateway state file of this version ({why}); it was not read")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// Reads the state file at `path`; `Ok(None)` when there is none.
pub fn load(path: &Path) -> Result<Option<Saved>, LoadError> {
    let read = |source| LoadError::Read { path: path.to_path_buf(), source };
    let not_private = |why: String| LoadError::NotPrivate { path: path.to_path_buf(), why };
    // O_NOFOLLOW: a symlink planted at the name is refused, not followed.
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(not_private("a symlink".into())),
        Err(e) => return Err(read(e)),
    };
    let meta = file.metadata().map_err(read)?;
    if !meta.is_file() {
        return Err(not_private("not a regular file".into()));
    }
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(not_private(format!("owned by uid {}", meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(not_private(format!("mode {:o}: others may write it", meta.mode() & 0o777)));
    }
    let mut text = Vec::new();
    file.take(MAX_LEN + 1).read_to_end(&mut text).map_err(read)?;
    if text.len() as u64 > MAX_LEN {
        return Err(LoadError::Malformed { path: path.to_path_buf(), why: format!("over {MAX_LEN} bytes") });
    }
    let malformed = |why: String| LoadError::Malformed { path: path.to_path_buf(), why };
    from_bytes(&text).map(Some).map_err(malformed)
}

/// Moves a state file that could not be taken up out of the way (to `NAME.broken`,
/// replacing an older one), so the new run's first save does not destroy what it
/// held; returns where it went.
pub fn set_aside(path: &Path) -> std::io::Result<PathBuf> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".broken");
    let aside = PathBuf::from(aside);
    std::fs::rename(path, &aside)?;
    Ok(aside)
}

/// A state file's content read; `Err` says what is wrong with it.
pub fn from_bytes(text: &[u8]) -> Result<Saved, String> {
    let on_disk: OnDisk = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    if on_disk.version != VERSION {
        return Err(format!("version {}, this agent reads {VERSION}", on_disk.version));
    }
    Ok(on_disk.state)
}

/// A state file's content, as [`from_bytes`] reads it.
pub fn to_bytes(state: Saved) -> std::io::Result<Vec<u8>> {
    serde_json::to_vec(&OnDisk { version: VERSION, state }).map_err(std::io::Error::other)
}

/// Writes the gateway's state to its file after every change, on a thread of its own:
/// a login never waits for the disk, and changes that come faster than writes are
/// written together (each write takes the state as it is then, so the last one is
/// the latest state).
#[derive(Debug)]
pub struct Saver {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    st: Mutex<Progress>,
    cv: Condvar,
}

/// Changes are counted: the writer has saved every change up to `written`.
#[derive(Debug, Default)]
struct Progress {
    wanted: u64,
    written: u64,
    stop: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        // Two counters and a flag, whole at every unlock: a poisoned lock is safe to reuse.
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, Progress>) -> MutexGuard<'a, Progress> {
        self.cv.wait(g).unwrap_or_else(|p| p.into_inner())
    }
}

impl Saver {
    /// Saves to `path` what `state` gives (`None`: nothing to save any more), with
    /// the gateway's TCP `port`, once at start and after every [`Saver::changed`].
    pub fn start(
        path: PathBuf,
        port: Option<u16>,
        state: impl Fn() -> Option<Saved> + Send + 'static,
    ) -> std::io::Result<Saver> {
        let shared = Arc::new(Shared {
            st: Mutex::new(Progress { wanted: 1, ..Progress::default() }),
            cv: Condvar::new(),
        });
        if let Some(folder) = path.parent() {
            private_dir::create_all(folder)?;
        }
        let boot_id = boot_id();
        let theirs = shared.clone();
        let thread = std::thread::Builder::new().name("gateway-saver".into()).spawn(move || {
            // However the writer ends, nobody waits for it afterwards.
            let _stops = Stopped(theirs.clone());
            loop {
                let mut g = theirs.lock();
                while g.written == g.wanted && !g.stop {
                    g = theirs.wait(g);
                }
                if g.written == g.wanted {
                    return;
                }
                let target = g.wanted;
                drop(g);
                if let Some(mut saved) = state() {
                    saved.port = port;
                    saved.boot_id.clone_from(&boot_id);
                    if let Err(e) = write(&path, saved) {
                        tracing::warn!(path = %path.display(), error = %e,
                        "cannot save the gateway's credentials and sessions; an agent restart would end them \
                         (check that its folder is writable)");
                    }
                }
                theirs.lock().written = target;
                theirs.cv.notify_all();
            }
        })?;
        Ok(Saver { shared, thread: Mutex::new(Some(thread)) })
    }

    /// Something changed: it is saved soon.
    pub fn changed(&self) {
        self.shared.lock().wanted += 1;
        self.shared.cv.notify_all();
    }

    /// Waits until every change made before the call is on disk (or the saver stopped).
    pub fn flush(&self) {
        let mut g = self.shared.lock();
        let target = g.wanted;
        while g.written < target && !g.stop {
            g = self.shared.wait(g);
        }
    }

    /// Writes what is pending and stops: later changes are not saved (shutdown: what
    /// this run ends as it stops, the next run takes up again).
    pub fn stop(&self) {
        self.flush();
        self.shared.lock().stop = true;
        self.shared.cv.notify_all();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// Marks the saver stopped when dropped (the writer's exit, even by a panic).
struct Stopped(Arc<Shared>);

impl Drop for Stopped {
    fn drop(&mut self) {
        self.0.lock().stop = true;
        self.0.cv.notify_all();
    }
}

impl Drop for Saver {
    fn drop(&mut self) {
        // Not joined: the writer may be the one dropping the last reference to us.
        self.shared.lock().stop = true;
        self.shared.cv.notify_all();
    }
}

fn write(path: &Path, state: Saved) -> std::io::Result<()> {
    let body = to_bytes(state)?;
    let folder = path.parent().unwrap_or(Path::new("."));
    let mut file = AtomicFile::in_folder(folder, ".gateway-", ".tmp")?;
    file.set_mode(0o600)?;
    file.write_synced(&body)?;
    file.commit(path)
}

mod digest_b64 {
    use super::*;

    pub fn serialize<S: serde::Serializer>(d: &Digest, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD_NO_PAD.encode(d))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(text)
            .map_err(serde::de::Error::custom)?;
        bytes.try_into().map_err(|_| serde::de::Error::custom("a SHA-256 digest is 32 bytes"))
    }
}

mod unix_secs {
    use super::*;

    pub fn serialize<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        t.map(secs).serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        Option::<u64>::deserialize(d)?.map(at).transpose()
    }

    /// `secs` after the epoch, or an error for a time no clock can hold.
    fn at<E: serde::de::Error>(secs: u64) -> Result<SystemTime, E> {
        SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_secs(secs))
            .ok_or_else(|| E::custom(format!("{secs} seconds after 1970 is no time")))
    }

    fn secs(t: SystemTime) -> u64 {
        t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }

    pub mod required {
        use super::*;

        pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
            secs(*t).serialize(s)
        }

        pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
            at(u64::deserialize(d)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::sessions::Sessions;
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn state() -> (Arc<Sessions>, String, String) {
        let s = Arc::new(Sessions::default());
        let m = s.mint("prod", None, Some(Duration::from_secs(600)), None);
        let (_, token) = s.open(&m.credential, None, None, None);
        (s, m.client_secret.expose().to_string(), token.expose().to_string())
    }

    #[tokio::test]
    async fn the_file_is_private_and_holds_no_secret_or_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), "m1", Path::new("/run/user/1000/looker-agent/agent.sock"));
        assert_eq!(path, dir.path().join("gateway/m1/run-user-1000-looker-agent-agent.sock.json"));
        assert_ne!(path, path_for(dir.path(), "m2", Path::new("/run/user/1000/looker-agent/agent.sock")));
        assert_eq!(path_for(dir.path(), "..", Path::new("/a b")), dir.path().join("gateway/_../a_b.json"));
        let (sessions, secret, token) = state();
        sessions.save_to(path.clone(), Some(4321));
        sessions.flush_saves();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&secret) && !text.contains(&token), "{text}");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let loaded = load(&path).unwrap().unwrap();
        assert_eq!(loaded.port, Some(4321));
        assert_eq!(loaded.boot_id, boot_id());
        let folder = std::fs::metadata(path.parent().unwrap()).unwrap();
        assert_eq!(folder.permissions().mode() & 0o777, 0o700);
        assert_eq!((loaded.credentials.len(), loaded.sessions.len()), (1, 1));
        // Every change is saved: a logout leaves no session in the file.
        sessions.close(&token);
        sessions.flush_saves();
        assert!(load(&path).unwrap().unwrap().sessions.is_empty());
        // After a stop nothing more is saved: what a shutdown ends stays in the file.
        sessions.stop_saving();
        sessions.mint("prod", None, None, None);
        sessions.flush_saves();
        assert_eq!(load(&path).unwrap().unwrap().credentials.len(), 1);
        // No temporary file is left beside it.
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn no_file_is_no_state() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(&dir.path().join("agent.gateway.json")).unwrap().is_none());
    }

    #[test]
    fn a_file_that_cannot_be_trusted_or_read_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.gateway.json");
        let refused = |body: &str, mode: u32| {
            std::fs::write(&path, body).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            load(&path).unwrap_err().to_string()
        };
        let good = r#"{"version":1,"credentials":[],"sessions":[]}"#;
        assert!(refused(good, 0o622).contains("others may write it"));
        assert!(refused("{not json", 0o600).contains("not a gateway state file"));
        assert!(refused(r#"{"version":9,"credentials":[],"sessions":[]}"#, 0o600).contains("version 9"));
        let bad_digest = r#"{"version":1,"credentials":[{"id":1,"client_id":"a","secret_sha256":"AAAA",
            "profile":"p","credential":null,"expires_at":null,"bound":null}],"sessions":[]}"#;
        assert!(refused(bad_digest, 0o600).contains("32 bytes"));
        let no_time = r#"{"version":1,"credentials":[],"sessions":[{"id":1,"token_sha256":
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","minted_by":1,"credential":null,"user_id":null,
            "dev":false,"expires_at":null,"created":18446744073709551615}]}"#;
        assert!(refused(no_time, 0o600).contains("is no time"));
        std::fs::write(&path, good).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load(&path).unwrap(), Some(Saved::default()));
        // Set aside, it is kept (for whoever wants to look) and no longer in the way.
        let aside = set_aside(&path).unwrap();
        assert_eq!(aside, dir.path().join("agent.gateway.json.broken"));
        assert_eq!(std::fs::read_to_string(&aside).unwrap(), good);
        assert!(load(&path).unwrap().is_none());
        // A symlink planted at the name is not followed.
        let link = dir.path().join("link.gateway.json");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(load(&link).unwrap_err().to_string().contains("a symlink"));
    }

    #[tokio::test]
    async fn a_save_that_fails_is_logged_and_the_gateway_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (sessions, _, token) = state();
        // Its folder cannot be made: a file is in the way.
        std::fs::write(dir.path().join("gateway"), "").unwrap();
        sessions.save_to(dir.path().join("gateway").join("agent.json"), None);
        assert!(sessions.close(&token).is_some());
        sessions.flush_saves();
    }
}
