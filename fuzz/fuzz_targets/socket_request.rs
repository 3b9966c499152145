//! Arbitrary bytes as one client connection to the agent socket: hyper's HTTP/1.1
//! parsing, the routes, query and body handling, the broker behind them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use looker_agent_fuzz::SocketHarness;
use std::sync::OnceLock;

static HARNESS: OnceLock<SocketHarness> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let h = HARNESS.get_or_init(|| SocketHarness::new().expect("socket harness"));
    if let Err(e) = h.run(data) {
        panic!("{e}");
    }
});
