//! Fuzz the whole receive path: framing, decoding, error replies, re-encoding.

#![no_main]

#[path = "../../tests/common/exercise.rs"]
mod exercise;

libfuzzer_sys::fuzz_target!(|data: &[u8]| exercise::exercise(data));
