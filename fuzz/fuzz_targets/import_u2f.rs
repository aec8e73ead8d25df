#![no_main]
//! The body is `twofold_fuzz_replay::import::import_u2f`, which the stable test
//! `fuzz/replay/tests/replay.rs` also runs over this target's corpus and
//! artifacts.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| twofold_fuzz_replay::import::import_u2f(data));
