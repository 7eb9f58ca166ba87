//! Fuzzes one broker session: structured sequences of STOMP frames (and
//! some raw bytes) written to an in-process session. See `../harness.rs`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|input: harness::Input| {
    harness::run(&input);
});
