//! Fuzzes the STOMP decoder: chunked input, several versions and limits,
//! re-encode and decode again. See `../harness.rs`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
