//! The ping-pong baseline: a bare server answering every request with the agent's own
//! answer bytes, the floor for one request/response over a Unix socket.

use crate::agent::wait_socket;
use crate::Res;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Serves every connection from its own thread, answering each request with the
/// same canned bytes. With `work_ns`, it first spins that long per request: a server
/// that does some work.
pub fn serve(socket: &Path, answer_file: &Path, work_ns: u64) -> Res<()> {
    let answer = Arc::new(std::fs::read(answer_file).map_err(|e| format!("{}: {e}", answer_file.display()))?);
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).map_err(|e| format!("bind {}: {e}", socket.display()))?;
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let answer = answer.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::with_capacity(4096);
            let mut chunk = [0u8; 4096];
            loop {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                // No parsing: the floor only looks for where a request (a bodiless GET) ends.
                while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    buf.drain(..end + 4);
                    spin(Duration::from_nanos(work_ns));
                    if conn.write_all(&answer).is_err() {
                        return;
                    }
                }
            }
        });
    }
    Ok(())
}

/// Keeps the CPU busy for `d` (no sleeping: the point is CPU time, not delay).
fn spin(d: Duration) {
    if d.is_zero() {
        return;
    }
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// A child process running [`serve`] (`loadgen pingpong-serve`); killed on drop.
pub struct Baseline {
    child: Child,
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Baseline {
    /// Starts a server answering `answer` after spinning `work` per request.
    pub fn start(answer: &[u8], work: Duration) -> Res<Baseline> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let socket = dir.path().join("pingpong.sock");
        let answer_file = dir.path().join("answer");
        std::fs::write(&answer_file, answer).map_err(|e| e.to_string())?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let child = Command::new(exe)
            .arg("pingpong-serve")
            .arg("--socket")
            .arg(&socket)
            .arg("--answer-file")
            .arg(&answer_file)
            .arg("--work-ns")
            .arg(work.as_nanos().to_string())
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the baseline server: {e}"))?;
        // Built before the wait, so that a server that never answers is killed too.
        let b = Baseline { child, socket, _dir: dir };
        wait_socket(&b.socket, Duration::from_secs(10))?;
        Ok(b)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
