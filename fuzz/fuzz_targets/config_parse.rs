//! The config file parser and validation (`Config::parse`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = looker_agent_fuzz::config(data) {
        panic!("{e}");
    }
});
