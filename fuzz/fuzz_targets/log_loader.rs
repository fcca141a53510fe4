//! `cargo fuzz run log_loader`: the `log_loader` property of `fuzz/checks.rs`, the same one
//! `tests/fuzz_regressions.rs` replays on stable. Known, already reported server bugs are
//! tolerated here so fuzzing goes on past them; the stable replay is strict.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)] // each target uses one of the checks
#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::fuzz_one(checks::Target::LogLoader, data));
