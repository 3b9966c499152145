//! Looker's login and user answers (`parse_login_answer`, `LookerUser`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = looker_agent_fuzz::looker_answer(data) {
        panic!("{e}");
    }
});
