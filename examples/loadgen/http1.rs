//! A minimal keep-alive HTTP/1.1 client over a Unix socket: the same code measures the
//! agent and the baseline. Answers are parsed with `httparse` (hyper's parser).

use crate::Res;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Headers the agent's answers fit in, with room to spare.
const MAX_HEADERS: usize = 32;

/// One complete answer at the start of a buffer.
#[derive(Clone, Copy)]
pub struct Answer {
    pub status: u16,
    /// Length of the status line and headers, blank line included.
    head_len: usize,
    /// Length of the whole answer, body included.
    pub len: usize,
    /// The server said `Connection: close`.
    close: bool,
}

impl Answer {
    /// The answer at the start of `buf`, once all of it (head and `Content-Length` body)
    /// is there; `None` while it is not.
    pub fn parse(buf: &[u8]) -> Res<Option<Answer>> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut r = httparse::Response::new(&mut headers);
        let head_len = match r.parse(buf).map_err(|e| format!("bad answer: {e}"))? {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => return Ok(None),
        };
        let (mut body_len, mut close) = (0, false);
        for h in r.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                body_len = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or("bad answer: unreadable Content-Length")?;
            } else if h.name.eq_ignore_ascii_case("connection") {
                close = h.value.eq_ignore_ascii_case(b"close");
            }
        }
        let len = head_len + body_len;
        let status = r.code.unwrap_or(0);
        Ok((buf.len() >= len).then_some(Answer { status, head_len, len, close }))
    }

    /// The body of this answer, read from the buffer it was parsed from.
    pub fn body<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.head_len..self.len]
    }
}

/// `GET path`, the request every mode sends.
pub fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: agent\r\n\r\n").into_bytes()
}

/// A blocking keep-alive connection.
pub struct Conn {
    s: UnixStream,
    /// The last answer read.
    pub buf: Vec<u8>,
    path: PathBuf,
}

impl Conn {
    pub fn open(path: &Path) -> Res<Conn> {
        Ok(Conn { s: connect(path)?, buf: Vec::with_capacity(4096), path: path.to_path_buf() })
    }

    /// Sends `req`, reads one answer into `self.buf`. Reconnects when the server says
    /// `Connection: close` (the agent does after 100,000 requests).
    pub fn round_trip(&mut self, req: &[u8]) -> Res<Answer> {
        self.s.write_all(req).map_err(|e| format!("write: {e}"))?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.s.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("connection closed by the server".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(a) = Answer::parse(&self.buf)? {
                if a.close {
                    self.s = connect(&self.path)?;
                }
                return Ok(a);
            }
        }
    }
}

/// Connects, retrying while the listen backlog is full.
fn connect(path: &Path) -> Res<UnixStream> {
    for _ in 0..500 {
        match UnixStream::connect(path) {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(e) => return Err(format!("connect {}: {e}", path.display())),
        }
    }
    Err(format!("connect {}: backlog stayed full", path.display()))
}

/// Connects (retrying while the backlog is full), as a tokio stream.
pub async fn aconnect(path: &Path) -> Res<tokio::net::UnixStream> {
    for _ in 0..1000 {
        match tokio::net::UnixStream::connect(path).await {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::sleep(Duration::from_millis(2)).await
            }
            Err(e) => return Err(format!("connect: {e}")),
        }
    }
    Err("connect: backlog stayed full".into())
}

/// [`Conn::round_trip`] on a tokio stream: the answer and the bytes it was parsed from.
pub async fn around_trip(s: &mut tokio::net::UnixStream, req: &[u8]) -> Res<(Answer, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(req).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(a) = Answer::parse(&buf)? {
            buf.truncate(a.len);
            return Ok((a, buf));
        }
    }
}
