//! looker.ini import (`looker_ini::parse`, `remove_key`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = looker_agent_fuzz::looker_ini(data) {
        panic!("{e}");
    }
});
