//! Arbitrary bytes as one client connection to the gateway's loopback TCP door, with
//! a live session to use (placeholders, see fuzz/src/gateway.rs): hyper's parsing,
//! the Host rule, login emulation, sessions, forwarding to a real HTTP upstream and
//! the answers back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use looker_agent_fuzz::GatewayHarness;
use std::sync::OnceLock;

static HARNESS: OnceLock<GatewayHarness> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let h = HARNESS.get_or_init(|| GatewayHarness::new().expect("gateway harness"));
    if let Err(e) = h.run(data) {
        panic!("{e}");
    }
});
