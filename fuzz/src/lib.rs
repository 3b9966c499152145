//! The fuzz targets' harness and checks (`fuzz_targets/`, `scripts/fuzz.sh`).
//!
//! Each check takes arbitrary bytes, drives one parser or the socket server with
//! them through looker-agent's public API, and checks the properties that must hold
//! whatever the input: it returns `Err` with a description when one is broken (the
//! fuzz target turns that into a crash), and a panic anywhere is a finding too.
//! `tests/hostile.rs` replays the committed corpus (`fuzz/corpus/`) through this
//! same file (it includes it as a module), so the suite compiles and runs it. The
//! gateway's harness is in `gateway.rs`.

// A file of its own, named by path: tests/hostile.rs includes this file by path too.
#[path = "gateway.rs"]
mod gateway;
pub use gateway::GatewayHarness;

use async_trait::async_trait;
use looker_agent::broker::{Broker, BrokerSettings, UpstreamFactory};
use looker_agent::config::{Config, Profile};
use looker_agent::daemon::server::Limits;
use looker_agent::daemon::{Daemon, DaemonOptions};
use looker_agent::looker::{client::parse_login_answer, LoginToken, LookerApi, LookerError, LookerUser};
use looker_agent::secret::Secret;
use looker_agent::store::memory::MemoryStore;
use looker_agent::store::{SecretKey, SecretStore};
use std::cell::Cell;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The client secret the socket harness's fake Looker accepts; it must never be
/// in anything the server writes back.
pub const FUZZ_SECRET: &str = "fuzz-client-secret-7f3a9c";

/// The config the socket harness serves: a default profile with a good and a
/// rejected credential set, one whose Looker is down, one with no credentials.
const FUZZ_CONFIG: &str = r#"
default_profile = "p"
[profiles.p]
base_url = "https://looker.invalid"
[[profiles.p.credentials]]
name = "a"
client_id = "id-a"
[[profiles.p.credentials]]
name = "b"
client_id = "id-b"
[profiles.down]
base_url = "https://down.invalid"
[[profiles.down.credentials]]
name = "a"
client_id = "down"
[profiles.empty]
base_url = "https://empty.invalid"
"#;

/// How long one socket input may take before it counts as a hang.
const SOCKET_DEADLINE: Duration = Duration::from_secs(10);

/// A Looker that answers at once without a network: secret [`FUZZ_SECRET`] logs
/// in (except client_id `down`, which is unavailable), anything else is rejected.
struct FakeLooker {
    logins: AtomicU64,
}

impl FakeLooker {
    /// A new real token: `fuzztoken` and a serial number.
    fn new_token(&self) -> LoginToken {
        let n = self.logins.fetch_add(1, Ordering::Relaxed);
        LoginToken {
            access_token: Secret::new(format!("fuzztoken{n:08}")),
            token_type: "Bearer".into(),
            expires_in: 3600,
        }
    }
}

#[async_trait]
impl LookerApi for FakeLooker {
    async fn login(&self, client_id: &str, client_secret: &Secret) -> Result<LoginToken, LookerError> {
        if client_id == "down" {
            return Err(LookerError::Unavailable { reason: "fake Looker is down".into(), retry_after: None });
        }
        if client_secret.expose() != FUZZ_SECRET {
            return Err(LookerError::Rejected { status: 404, message: "Not found".into() });
        }
        Ok(self.new_token())
    }

    async fn logout(&self, _access_token: &Secret) -> Result<(), LookerError> {
        Ok(())
    }

    async fn alive(&self) -> Result<(), LookerError> {
        Ok(())
    }

    async fn user(&self, _access_token: &Secret) -> Result<LookerUser, LookerError> {
        Ok(LookerUser::default())
    }

    async fn login_user(&self, _access_token: &Secret, user_id: &str) -> Result<LoginToken, LookerError> {
        if user_id.is_empty() || !user_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(LookerError::Rejected { status: 404, message: "Not found".into() });
        }
        Ok(self.new_token())
    }

    async fn set_workspace(&self, _access_token: &Secret, _workspace: &str) -> Result<(), LookerError> {
        Ok(())
    }
}

struct FakeUpstream(Arc<FakeLooker>);

impl UpstreamFactory for FakeUpstream {
    fn api_for(&self, _profile: &Profile) -> Result<Arc<dyn LookerApi>, LookerError> {
        Ok(self.0.clone())
    }
}

thread_local! {
    /// Set by the panic hook on the thread that panicked. The harness's runtime runs
    /// every task on the harness's own thread, so a panic in any of them (which tokio
    /// would otherwise catch and keep in a join handle nobody reads) shows up here.
    static PANICKED: Cell<bool> = const { Cell::new(false) };
}

/// Chains a hook that notes panics per thread in front of the current one (which
/// still runs: it prints the message, and under libFuzzer aborts).
fn note_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.with(|p| p.set(true));
            previous(info);
        }));
    });
}

/// Feeds bytes to the real socket server as one client connection: for every input,
/// a fresh agent (`Daemon::bind` + `run`, as the binary starts it, D-Bus off) on a
/// socket in a private folder, with a memory store, a fake Looker and a real config
/// file (so `POST /v1/reload` re-reads it).
pub struct SocketHarness {
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    config: Config,
    upstream: Arc<FakeLooker>,
}

impl SocketHarness {
    /// A harness with its own single-threaded runtime and private folder.
    pub fn new() -> Result<SocketHarness, String> {
        let (rt, dir) = runtime_and_folder("looker-agent-fuzz-")?;
        let (config_path, config) = write_config(dir.path(), FUZZ_CONFIG)?;
        Ok(SocketHarness {
            rt,
            dir,
            config_path,
            config,
            upstream: Arc::new(FakeLooker { logins: AtomicU64::new(0) }),
        })
    }

    /// Sends `input` on a fresh connection to a fresh agent, closes the sending
    /// side, and returns everything the server wrote back. Fails when the exchange
    /// and the agent's shutdown do not finish within 10 s, anything panics, the
    /// agent fails, the client secret leaks, or the server writes something that is
    /// not an HTTP response.
    pub fn run(&self, input: &[u8]) -> Result<Vec<u8>, String> {
        PANICKED.with(|p| p.set(false));
        let out = self.rt.block_on(self.exchange(input));
        if PANICKED.with(|p| p.get()) {
            return Err("something panicked while serving the input".into());
        }
        let out = out?;
        check_socket_output(input, &out)?;
        Ok(out)
    }

    async fn exchange(&self, input: &[u8]) -> Result<Vec<u8>, String> {
        let store = MemoryStore::new();
        for (profile, cred, id, secret) in
            [("p", "a", "id-a", FUZZ_SECRET), ("p", "b", "id-b", "wrong"), ("down", "a", "down", FUZZ_SECRET)]
        {
            store
                .set(&SecretKey::new(profile, cred), id, &Secret::new(secret))
                .await
                .map_err(|e| e.to_string())?;
        }
        let broker = fuzz_broker(&self.config, store, &self.upstream);
        let mut opts = agent_options(self.dir.path());
        opts.config_path = Some(self.config_path.clone());
        let daemon = Daemon::bind(opts).map_err(|e| format!("cannot start the agent: {e}"))?;
        let socket = daemon.socket_path().to_path_buf();
        with_agent(daemon, broker, SOCKET_DEADLINE, async {
            let client =
                tokio::net::UnixStream::connect(&socket).await.map_err(|e| format!("cannot connect: {e}"))?;
            Ok(send_and_read(client, input).await)
        })
        .await
    }
}

/// A harness's single-threaded runtime and private folder (named `prefix…`); panics
/// in it are noted from now on.
fn runtime_and_folder(prefix: &str) -> Result<(tokio::runtime::Runtime, tempfile::TempDir), String> {
    note_panics();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build a runtime: {e}"))?;
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| format!("cannot make a private folder: {e}"))?;
    Ok((rt, dir))
}

/// Writes `text` as `dir/config.toml` (mode 0600, as the agent wants it) and loads it.
fn write_config(dir: &Path, text: &str) -> Result<(PathBuf, Config), String> {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).map_err(|e| format!("cannot write the config: {e}"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot chmod the config: {e}"))?;
    let config = Config::load(&path).map_err(|e| e.to_string())?;
    Ok((path, config))
}

/// A broker on `store` whose logins go to `looker`, as the binary would make one.
fn fuzz_broker(config: &Config, store: MemoryStore, looker: &Arc<FakeLooker>) -> Broker {
    Broker::new(
        config.clone(),
        Arc::new(store),
        "memory (fuzzing)".into(),
        Arc::new(FakeUpstream(looker.clone())),
        BrokerSettings::default(),
    )
}

/// The options of a harness's agent: its socket in `dir`, D-Bus off, the gateway on
/// an ephemeral loopback port.
fn agent_options(dir: &Path) -> DaemonOptions {
    let mut opts = DaemonOptions::new(dir.join("agent.sock"));
    opts.dbus = false;
    // Requests already sent are all answered after the client's end is closed (the
    // harness closes it once everything is written), so pipelined requests are fuzzed too.
    opts.limits = Limits { max_requests_per_connection: 8, ..Limits::default() };
    opts
}

/// Runs `daemon` (with `broker`) while `client` talks to it, then stops it. Fails when
/// the client and the agent's shutdown do not finish within `deadline`, or the agent fails.
async fn with_agent<T>(
    daemon: Daemon,
    broker: Broker,
    deadline: Duration,
    client: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(daemon.run(broker, async {
        let _ = stopped.await;
    }));
    let exchange = async {
        let out = client.await;
        let _ = stop.send(());
        (out, agent.await)
    };
    let (out, served) = tokio::time::timeout(deadline, exchange)
        .await
        .map_err(|_| format!("the connection or the agent was still running after {deadline:?}"))?;
    served
        .map_err(|e| format!("the agent's task failed: {e}"))?
        .map_err(|e| format!("the agent failed: {e}"))?;
    out
}

/// Writes `input` on `stream`, shuts down the sending side, reads to the end.
async fn send_and_read<S: tokio::io::AsyncRead + tokio::io::AsyncWrite>(stream: S, input: &[u8]) -> Vec<u8> {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let send = async {
        // The server may close first (an error answer, Connection: close).
        let _ = wr.write_all(input).await;
        let _ = wr.shutdown().await;
    };
    let mut out = Vec::new();
    let receive = rd.read_to_end(&mut out);
    // A reset after the answer (the server closed with input unread) still leaves the answer.
    let ((), _read) = tokio::join!(send, receive);
    out
}

fn check_socket_output(input: &[u8], out: &[u8]) -> Result<(), String> {
    // Error messages may echo the request: only a secret the client did not send counts.
    if contains(out, FUZZ_SECRET.as_bytes()) && !contains(input, FUZZ_SECRET.as_bytes()) {
        return Err("the server wrote the client secret back".into());
    }
    if !out.is_empty() && !out.starts_with(b"HTTP/1.1 ") && !out.starts_with(b"HTTP/1.0 ") {
        return Err(format!(
            "the server wrote something else than a response: {:?}",
            String::from_utf8_lossy(out)
        ));
    }
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// `Config::parse` on arbitrary text: never panics; what it accepts is valid
/// and stays the same when validated again (normalisation is idempotent).
pub fn config(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else { return Ok(()) };
    let path = Path::new("/fuzz/config.toml");
    match Config::parse(path, text) {
        Err(e) => {
            let _ = e.to_string();
            Ok(())
        }
        Ok(cfg) => {
            for (name, p) in &cfg.profiles {
                looker_agent::config::validate_name("profile", name)?;
                let url = url::Url::parse(&p.base_url)
                    .map_err(|e| format!("accepted base_url {:?}: {e}", p.base_url))?;
                if url.host_str().is_none() || !matches!(url.scheme(), "http" | "https") {
                    return Err(format!("accepted base_url {:?}", p.base_url));
                }
            }
            if let Some(d) = cfg.resolve_profile(None) {
                if !cfg.profiles.contains_key(d) {
                    return Err(format!("the default profile {d:?} does not exist"));
                }
            }
            let mut again = cfg.clone();
            again.validate().map_err(|e| format!("a valid config fails validation the second time: {e}"))?;
            if again != cfg {
                return Err(format!("validating twice changes the config: {cfg:?} -> {again:?}"));
            }
            Ok(())
        }
    }
}

/// The gateway's state file (what an earlier run saved): never panics; what is taken
/// up is no more than the file holds, no credential outlives the longest TTL a
/// credential may have, and saving what was taken up then reading it back gives the
/// same file.
pub fn gateway_state(data: &[u8]) -> Result<(), String> {
    use looker_agent::gateway::saved::{from_bytes, to_bytes};
    use looker_agent::gateway::sessions::{Sessions, MAX_CREDENTIAL_TTL};
    let Ok(saved) = from_bytes(data) else { return Ok(()) };
    let (creds_in, sessions_in) = (saved.credentials.len(), saved.sessions.len());
    let sessions = Sessions::default();
    sessions.restore(saved);
    let (creds, live) = sessions.snapshot();
    if creds.len() > creds_in || live.len() > sessions_in {
        return Err(format!(
            "took up {}/{} from a file of {creds_in}/{sessions_in}",
            creds.len(),
            live.len()
        ));
    }
    let latest = tokio::time::Instant::now() + MAX_CREDENTIAL_TTL;
    if let Some(c) = creds.iter().find(|c| c.expires.is_some_and(|e| e > latest)) {
        return Err(format!("credential {} lives beyond the longest TTL", c.client_id));
    }
    let once = to_bytes(sessions.to_saved()).map_err(|e| e.to_string())?;
    let read = from_bytes(&once).map_err(|e| format!("a saved state does not read back: {e}"))?;
    let twice = to_bytes(read).map_err(|e| e.to_string())?;
    if once != twice {
        return Err("saving what was read back gives another file".into());
    }
    Ok(())
}

/// Looker's login and user answers: never panics; an accepted login answer has a
/// printable token and a sane lifetime, and its `Debug` hides the token.
pub fn looker_answer(data: &[u8]) -> Result<(), String> {
    if let Ok(t) = parse_login_answer(data) {
        let token = t.access_token.expose();
        if token.is_empty() || token.len() > 4096 || token.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
            return Err(format!("accepted access_token {token:?}"));
        }
        if !(1..=31_536_000).contains(&t.expires_in) {
            return Err(format!("accepted expires_in {}", t.expires_in));
        }
        if format!("{:?}", t.access_token) != "Secret(<redacted>)" {
            return Err("a token's Debug shows it".into());
        }
    }
    let _ = serde_json::from_slice::<LookerUser>(data);
    Ok(())
}

/// `looker_ini::parse` and `remove_key`: never panic; every accessor works on
/// what parses; `Debug` never shows the client_secret; removing the secret
/// removes whole lines only and leaves a file whose section no longer takes
/// its secret from where it came from.
pub fn looker_ini(data: &[u8]) -> Result<(), String> {
    use looker_agent::looker_ini::{parse, remove_key, DEFAULTS_SECTION};
    let Ok(text) = std::str::from_utf8(data) else { return Ok(()) };
    let sections = match parse(text) {
        Ok(s) => s,
        Err(e) => {
            let _ = e.to_string();
            let _ = remove_key(text, "Looker", "client_secret");
            return Ok(());
        }
    };
    for s in &sections {
        let _ = (s.base_url(), s.client_id(), s.verify_ssl(), s.timeout(), s.profile_settings());
        let name = s.suggested_profile_name();
        looker_agent::config::validate_name("profile", &name).map_err(|e| format!("suggested name: {e}"))?;
        if s.secret().is_some() {
            // With the secret taken out, Debug must differ only where it said "redacted".
            let mut without = s.clone();
            without.take_secret();
            let debug = format!("{s:?}").replacen("Some(Secret(<redacted>))", "None", 1);
            if debug != format!("{without:?}") {
                return Err(format!("Debug shows more than a redacted secret: {debug}"));
            }
            let from = s.secret_section().unwrap_or(DEFAULTS_SECTION).to_string();
            let out = remove_key(text, &from, "client_secret");
            if !whole_lines_removed(text, &out) {
                return Err(format!("remove_key changed more than whole lines: {out:?}"));
            }
            if let Ok(after) = parse(&out) {
                let same = after.iter().find(|a| a.name == s.name);
                if let Some(a) = same {
                    if a.secret_section() == Some(from.as_str()) {
                        return Err(format!(
                            "[{}] still takes a client_secret from [{from}] after removal",
                            s.name
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// True when `after` is `before` with some of its lines left out, the rest unchanged.
fn whole_lines_removed(before: &str, after: &str) -> bool {
    let mut kept = after.split_inclusive('\n').peekable();
    for line in before.split_inclusive('\n') {
        if kept.peek() == Some(&line) {
            kept.next();
        }
    }
    kept.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_harness_serves_a_token_and_no_secret() {
        let h = SocketHarness::new().unwrap();
        let out = h
            .run(b"GET /v1/profiles/p/token HTTP/1.1\r\nHost: a\r\n\r\nGET /v1/status HTTP/1.1\r\n\r\n")
            .unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains("fuzztoken") && text.matches("HTTP/1.1 200").count() == 2, "{text}");
        assert!(h.run(b"\x00garbage\r\n\r\n").unwrap().starts_with(b"HTTP/1.1 400"));
        assert!(h.run(b"").unwrap().is_empty());
    }

    #[test]
    fn parsers_hold_their_properties_on_samples() {
        config(b"[profiles.p]\nbase_url = \"https://x.example/api/4.0\"\n").unwrap();
        looker_answer(br#"{"access_token":"abc","token_type":"Bearer","expires_in":3600}"#).unwrap();
        looker_ini(b"[DEFAULT]\nclient_secret=s3cret\n[Looker]\nbase_url=https://x\nclient_id=a\n").unwrap();
        looker_ini(b"[Looker]\nbase_url=https://x\nclient_secret=abcdef\n  more\n").unwrap();
        assert!(whole_lines_removed("a\nb\nc", "a\nc"));
        assert!(!whole_lines_removed("a\nb\n", "a\nx\n"));
    }
}
