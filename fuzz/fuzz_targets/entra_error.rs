//! Entra's error answers arrive from the network: the parser must read any
//! body, of any status, without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let status = data.first().map_or(400, |b| 400 + u16::from(*b));
    let body = data.get(1..).unwrap_or_default();
    if let Some(e) = crosstenant::credential::entra::EntraError::parse(
        status,
        body,
        "00000000-0000-0000-0000-000000000001",
        "00000000-0000-0000-0000-000000000002",
        Some("https://eventhubs.azure.net/.default"),
    ) {
        let _ = e.to_string();
    }
});
