//! The gateway's state file, as the next run takes it up (`saved::from_bytes`, `Sessions::restore`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = looker_agent_fuzz::gateway_state(data) {
        panic!("{e}");
    }
});
