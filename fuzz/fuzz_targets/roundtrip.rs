//! Fuzz target: see `lisafs_protocol::fuzzing::roundtrip`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lisafs_protocol::fuzzing::roundtrip(data));
