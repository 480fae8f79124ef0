//! Fuzz target: see `lisafs_protocol::fuzzing::decode_response`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lisafs_protocol::fuzzing::decode_response(data));
