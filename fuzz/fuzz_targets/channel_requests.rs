//! Fuzz target: see `lisafs_protocol::fuzzing::channel_requests`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lisafs_protocol::fuzzing::channel_requests(data));
