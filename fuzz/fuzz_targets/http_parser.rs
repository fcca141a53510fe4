//! `cargo fuzz run http_parser`: the `http_parser` property of `fuzz/checks.rs`, the same one
//! `tests/fuzz_regressions.rs` replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)] // each target uses one of the checks
#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::fuzz_one(checks::Target::HttpParser, data));
