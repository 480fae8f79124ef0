//! Fuzz target: see `lisafs_protocol::fuzzing::socket_stream`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lisafs_protocol::fuzzing::socket_stream(data));
