//! External secret sources: a credential set whose client secret is printed by a
//! command (`source = ["pass", "show", "looker/prod"]` in the config), so teams that
//! keep secrets in pass, Vault or 1Password need not copy them into the keyring.
//!
//! The command runs only when a login needs the secret (the broker caches tokens, so
//! not at every token request): without a shell (the argv as configured), stdin
//! null, in a process group of its own, with a timeout after which the whole group
//! is killed and the command reaped. Its standard output is the secret: at most
//! [`MAX_OUTPUT`] bytes, one trailing newline (`\n` or `\r\n`) removed, held in a
//! zeroizing buffer and never written anywhere. Its standard error only ever reaches
//! an error message as a short summary (the first line, length-capped), and not at
//! all when it repeats what the command printed on standard output.

use crate::secret::Secret;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use zeroize::Zeroizing;

/// How long a source may run before it is killed.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The most a source may print on standard output (a client secret is ~24 bytes).
pub const MAX_OUTPUT: usize = 64 * 1024;

/// How much of standard error is kept to summarise (the rest is read and dropped).
const STDERR_KEPT: usize = 4 * 1024;

/// The longest stderr summary in an error message, in characters.
const SUMMARY_CHARS: usize = 200;

/// A command whose standard output is a client secret. Not secret itself: it is
/// shown in `lookerctl credential list` and in error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSource {
    argv: Vec<String>,
}

/// Why a source gave no secret. Each message names the command and what to do;
/// none holds anything the command printed on standard output.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The program is not an absolute path and is not on `PATH`.
    #[error("secret source `{command}`: {program:?} is not on PATH ({path}); install it, or give its absolute path in the credential's source")]
    NotFound {
        /// The command, shell-quoted.
        command: String,
        /// The program as configured.
        program: String,
        /// The `PATH` searched.
        path: String,
    },
    /// The program could not be started.
    #[error("secret source `{command}` could not be started: {source}; check that {program} is an executable program")]
    Spawn {
        /// The command, shell-quoted.
        command: String,
        /// The program that was run.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The command ended unsuccessfully.
    #[error("`{command}` {status}{}; check that the command prints the secret", stderr_part(.stderr))]
    Failed {
        /// The command, shell-quoted.
        command: String,
        /// How it ended: `exited 1`, `was killed by signal 9`.
        status: String,
        /// The first line of its standard error, if any (never the secret).
        stderr: Option<String>,
    },
    /// The command did not finish in time; it was killed and reaped.
    #[error("`{command}` did not finish within {}s and was killed{}; check that it does not wait for input (a pinentry, a login prompt): the agent runs it with no terminal", .after.as_secs(), stderr_part(.stderr))]
    TimedOut {
        /// The command, shell-quoted.
        command: String,
        /// The timeout.
        after: Duration,
        /// The first line of its standard error, if any.
        stderr: Option<String>,
    },
    /// The command printed more than [`MAX_OUTPUT`] bytes; it was killed.
    #[error("`{command}` printed more than {limit} bytes, which is no client secret; check that the command prints only the secret (e.g. `vault kv get -field=client_secret …`, `pass show` of a one-line entry)")]
    TooLarge {
        /// The command, shell-quoted.
        command: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The command succeeded but printed nothing (or only a newline).
    #[error("`{command}` printed no secret{}; check that the command prints the secret", stderr_part(.stderr))]
    Empty {
        /// The command, shell-quoted.
        command: String,
        /// The first line of its standard error, if any.
        stderr: Option<String>,
    },
    /// The output is not UTF-8 text.
    #[error("`{command}` printed something that is not UTF-8 text; a Looker client secret is plain text")]
    NotText {
        /// The command, shell-quoted.
        command: String,
    },
    /// Reading its output failed.
    #[error("reading the output of `{command}` failed: {source}")]
    Io {
        /// The command, shell-quoted.
        command: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn stderr_part(stderr: &Option<String>) -> String {
    match stderr {
        Some(s) => format!(": {s}"),
        None => String::new(),
    }
}

impl SecretSource {
    /// A source for `argv` (program first), checked with [`SecretSource::check`].
    pub fn new(argv: Vec<String>) -> Result<SecretSource, String> {
        SecretSource::check(&argv)?;
        Ok(SecretSource { argv })
    }

    /// The shape rule for `source = [...]`: a program and its arguments, the program a
    /// bare name (looked up on `PATH` when run) or an absolute path; no NUL bytes.
    /// Whether the program exists is checked where it runs ([`SecretSource::program_path`]).
    pub fn check(argv: &[String]) -> Result<(), String> {
        let Some(program) = argv.first() else {
            return Err("source is empty; give the command and its arguments, e.g. \
                        source = [\"pass\", \"show\", \"looker/prod\"]"
                .into());
        };
        if program.trim().is_empty() {
            return Err("source names no program (its first item is empty)".into());
        }
        if argv.iter().any(|a| a.contains('\0')) {
            return Err("source holds a NUL byte".into());
        }
        if program.contains('/') && !Path::new(program).is_absolute() {
            return Err(format!(
                "source program {program:?} is a relative path; give a bare name found on PATH (\"pass\") \
                 or an absolute path (\"/usr/bin/pass\"), since the agent's current folder is not yours"
            ));
        }
        Ok(())
    }

    /// The program and its arguments.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The command as a shell would show it (for messages; it is never run by a shell).
    pub fn display(&self) -> String {
        self.argv.iter().map(|a| shell_word(a)).collect::<Vec<_>>().join(" ")
    }

    /// The program to run: an absolute path as it is, a bare name found on `PATH`.
    pub fn program_path(&self) -> Result<PathBuf, SourceError> {
        let program = &self.argv[0];
        if Path::new(program).is_absolute() {
            return Ok(PathBuf::from(program));
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(program);
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
        Err(SourceError::NotFound {
            command: self.display(),
            program: program.clone(),
            path: path.to_string_lossy().into_owned(),
        })
    }

    /// Runs the command with the default [`TIMEOUT`] and returns the secret it printed.
    pub async fn fetch(&self) -> Result<Secret, SourceError> {
        self.fetch_within(TIMEOUT).await
    }

    /// Runs the command, killed after `timeout`, and returns the secret it printed.
    pub async fn fetch_within(&self, timeout: Duration) -> Result<Secret, SourceError> {
        let command = self.display();
        let program = self.program_path()?;
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so a timeout also kills what it started (pass runs gpg).
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| SourceError::Spawn {
            command: command.clone(),
            program: program.display().to_string(),
            source,
        })?;
        let pid = child.id();
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            kill_group(pid);
            let _ = child.kill().await;
            return Err(SourceError::Io {
                command,
                source: std::io::Error::other("no pipes to the command"),
            });
        };

        let run = async {
            let out = async {
                let r = read_capped(stdout, MAX_OUTPUT).await;
                if matches!(r, Ok((_, true))) {
                    kill_group(pid);
                }
                r
            };
            let (out, err) = tokio::join!(out, read_kept(stderr, STDERR_KEPT));
            let status = child.wait().await;
            (out, err, status)
        };
        let outcome = tokio::time::timeout(timeout, run).await;
        let Ok((out, err, status)) = outcome else {
            kill_group(pid);
            let _ = child.start_kill();
            let _ = child.wait().await;
            // What it wrote to stderr before hanging is lost with the pipe; the timeout says enough.
            return Err(SourceError::TimedOut { command, after: timeout, stderr: None });
        };
        let io = |source| SourceError::Io { command: command.clone(), source };
        let (buf, over) = out.map_err(io)?;
        let status = status.map_err(io)?;
        let stderr = err.ok().and_then(|e| summarize(&e, &buf));
        if over {
            return Err(SourceError::TooLarge { command, limit: MAX_OUTPUT });
        }
        if !status.success() {
            return Err(SourceError::Failed { command, status: describe_status(status), stderr });
        }
        let text =
            std::str::from_utf8(&buf).map_err(|_| SourceError::NotText { command: command.clone() })?;
        let secret = trim_one_newline(text);
        if secret.is_empty() {
            return Err(SourceError::Empty { command, stderr });
        }
        Ok(Secret::new(secret))
    }
}

/// Removes exactly one trailing `\n` or `\r\n` (what `echo`, `pass show` and `vault` add).
pub fn trim_one_newline(s: &str) -> &str {
    s.strip_suffix("\r\n").or_else(|| s.strip_suffix('\n')).unwrap_or(s)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// SIGKILL to the command's process group (it leads it: `process_group(0)`).
fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()).and_then(rustix::process::Pid::from_raw) else {
        return;
    };
    // Already gone is fine: the group died with its leader's children.
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
}

/// `exited 1`, `was killed by signal 9 (SIGKILL)`.
fn describe_status(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited {code}");
    }
    match status.signal() {
        Some(sig) => format!("was killed by signal {sig}{}", signal_name(sig)),
        None => format!("ended with {status}"),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => " (SIGHUP)",
        2 => " (SIGINT)",
        6 => " (SIGABRT)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        13 => " (SIGPIPE)",
        15 => " (SIGTERM)",
        _ => "",
    }
}

/// Reads at most `cap` bytes into a buffer allocated once (no reallocation leaves
/// copies of the secret behind); `true` when there was more.
async fn read_capped(
    mut r: impl AsyncRead + Unpin,
    cap: usize,
) -> std::io::Result<(Zeroizing<Vec<u8>>, bool)> {
    let mut buf = Zeroizing::new(Vec::with_capacity(cap));
    let mut chunk = Zeroizing::new([0u8; 4096]);
    loop {
        let n = r.read(&mut chunk[..]).await?;
        if n == 0 {
            return Ok((buf, false));
        }
        if buf.len() + n > cap {
            return Ok((buf, true));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads to the end, keeping the first `keep` bytes (a chatty stderr must not block the command).
async fn read_kept(mut r: impl AsyncRead + Unpin, keep: usize) -> std::io::Result<Vec<u8>> {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Ok(kept);
        }
        let room = keep.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
}

/// The first non-empty line of `stderr`, cleaned and capped, unless it could carry
/// the secret: when it contains what the command printed on standard output.
fn summarize(stderr: &[u8], stdout: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let candidate = std::str::from_utf8(stdout).map(|s| trim_one_newline(s).trim()).unwrap_or("");
    if !candidate.is_empty() && (line.contains(candidate) || text.contains(candidate)) {
        return Some("(its error output is not shown: it repeats what the command printed)".into());
    }
    let clean: String = line.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut out: String = clean.chars().take(SUMMARY_CHARS).collect();
    if clean.chars().count() > SUMMARY_CHARS {
        out.push('…');
    }
    Some(out)
}

/// A word for a shell command line: as it is when that is safe, else single-quoted.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(argv: &[&str]) -> SecretSource {
        SecretSource::new(argv.iter().map(|s| s.to_string()).collect()).unwrap()
    }

    #[test]
    fn shape() {
        assert!(SecretSource::check(&[]).is_err());
        assert!(SecretSource::check(&["".into()]).is_err());
        assert!(SecretSource::check(&["./pass".into()]).unwrap_err().contains("relative"));
        assert!(SecretSource::check(&["bin/pass".into()]).is_err());
        assert!(SecretSource::check(&["pass".into(), "show".into()]).is_ok());
        assert!(SecretSource::check(&["/usr/bin/pass".into()]).is_ok());
        assert_eq!(src(&["op", "read", "op://a b/c"]).display(), "op read 'op://a b/c'");
    }

    #[test]
    fn newline_trimming() {
        assert_eq!(trim_one_newline("s3cret\n"), "s3cret");
        assert_eq!(trim_one_newline("s3cret\r\n"), "s3cret");
        assert_eq!(trim_one_newline("s3cret\n\n"), "s3cret\n");
        assert_eq!(trim_one_newline("s3cret"), "s3cret");
        assert_eq!(trim_one_newline(" s3cret \n"), " s3cret ");
    }

    #[test]
    fn summary_is_first_line_capped_and_never_the_secret() {
        assert_eq!(summarize(b"\n  gpg: no key\nmore\n", b"").as_deref(), Some("gpg: no key"));
        let long = "x".repeat(500);
        let s = summarize(long.as_bytes(), b"").unwrap();
        assert_eq!(s.chars().count(), SUMMARY_CHARS + 1);
        let s = summarize(b"warning: the secret is hunter2, sorry\n", b"hunter2\n").unwrap();
        assert!(!s.contains("hunter2"), "{s}");
        assert_eq!(summarize(b"", b""), None);
    }

    #[tokio::test]
    async fn unknown_program_says_path() {
        let e = src(&["no-such-program-xyz", "a"]).fetch().await.unwrap_err();
        assert!(matches!(e, SourceError::NotFound { .. }), "{e}");
        assert!(e.to_string().contains("is not on PATH"), "{e}");
    }
}
