//! Issue 8: a cache hit allocates nothing beyond the answer it sends, and logs
//! nothing above debug.
//!
//! A counting global allocator (per thread, so the runtime's other threads do not
//! disturb the count) around `Broker::token` on a cached token and the JSON answer
//! written from it, as the socket handler does; and the real agent's log (at its
//! default level) across many cache hits over the socket.

mod common;

use common::{BgEmulator, TestEnv};
use looker_emulator::{Emulator, EmulatorConfig, EmulatorUser};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::time::Duration;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the allocator also runs while thread-locals are being torn down.
    if COUNTING.try_with(|c| c.get()).unwrap_or(false) {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on this thread while `f` runs.
fn allocations<T>(f: impl FnOnce() -> T) -> (usize, T) {
    ALLOCS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (ALLOCS.with(|a| a.get()), r)
}

#[test]
fn a_cache_hit_allocates_only_the_answer() {
    // The emulator and the first login live in a runtime of their own, never driven
    // again; the measured calls run on a second, empty current-thread runtime, so no
    // other task (a timer, an idle connection) can run, and allocate, meanwhile on
    // this thread, where we count.
    let setup = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (broker, _emu) = setup.block_on(async {
        let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
        emu.add_credential("a-id", "a-secret", EmulatorUser::new("1", "A", "a@example.com"));
        let url = emu.base_url();
        let broker =
            common::broker::memory_broker(Some(("prod", &url)), &[("default", "a-id", "a-secret")]).await;
        broker.token(Some("prod"), None, Duration::from_secs(60)).await.unwrap();
        (broker, emu)
    });
    let min_ttl = Duration::from_secs(60);
    // Warm up lazily created per-thread state (the JSON scratch buffer).
    for _ in 0..3 {
        let t = rt.block_on(broker.token(Some("prod"), None, min_ttl)).unwrap();
        drop(t.to_json(broker.now()));
    }

    let (n, t) = allocations(|| rt.block_on(broker.token(Some("prod"), None, min_ttl)));
    let t = t.unwrap();
    assert_eq!(n, 0, "Broker::token on a cached token allocated {n} time(s)");

    let (n, body) = allocations(|| t.to_json(broker.now()));
    assert_eq!(n, 1, "writing the answer took {n} allocations; one (the body itself) is the budget");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["access_token"].as_str().is_some_and(|s| !s.is_empty()), "{v}");

    // The same with the default profile and a named credential (other lookup paths).
    let (n, _) = allocations(|| rt.block_on(broker.token(None, Some("default"), min_ttl)).unwrap());
    assert_eq!(n, 0, "the default-profile lookup allocated {n} time(s)");
}

/// Reads one answer with a Content-Length from a keep-alive connection; returns its status.
fn read_answer(s: &mut std::os::unix::net::UnixStream) -> u16 {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "the agent closed the connection");
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
            .unwrap_or(0);
        if buf.len() >= end + 4 + len {
            return head[9..12].parse().unwrap();
        }
    }
}

#[test]
fn cache_hits_log_nothing_at_the_default_level() {
    let emu = BgEmulator::start(Duration::from_secs(3600), &[("h-id", "h-secret")]);
    let env = TestEnv::new("file");
    env.add_profile("prod", &emu.url(), &[("c", "h-id", "h-secret")]);
    let agent = env.start_agent(&[]);
    // The first request logs in (that may be logged); the rest are cache hits.
    env.ctl_ok(&["token", "prod"], None);
    std::thread::sleep(Duration::from_millis(100));
    let before = agent.log_text();
    let mut s = std::os::unix::net::UnixStream::connect(&env.socket).unwrap();
    for _ in 0..200 {
        s.write_all(b"GET /v1/profiles/prod/token HTTP/1.1\r\nHost: agent\r\n\r\n").unwrap();
        assert_eq!(read_answer(&mut s), 200);
    }
    // lookerctl connections too (a connection per process).
    for _ in 0..5 {
        env.ctl_ok(&["token", "prod"], None);
    }
    drop(s);
    std::thread::sleep(Duration::from_millis(100));
    let after = agent.log_text();
    assert!(after.len() >= before.len());
    let new = &after[before.len()..];
    assert!(new.trim().is_empty(), "cache hits were logged:\n{new}");
    assert_eq!(emu.emu().counters().logins, 1);
}
