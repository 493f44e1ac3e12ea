//! The claims reader takes tokens from services and users: it must refuse
//! anything malformed without panicking, and never echo the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = crosstenant::TokenClaims::decode(text) {
            // Errors describe the token and never carry it: their length
            // does not grow with it. (A short input may coincide with the
            // error's own words, which is no echo: the first oracle tried
            // flagged exactly that.)
            let message = e.to_string();
            if text.len() > 512 {
                assert!(message.len() < 512, "{} bytes of error", message.len());
            }
        }
    }
});
