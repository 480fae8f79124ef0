//! Replays the checked-in fuzz seeds (`fuzz/seeds/<target>/`) through the fuzzing entry
//! points on the stable toolchain, so every `cargo test` checks them.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::PathBuf;

use lisafs_protocol::fuzzing;

fn replay(target: &str, entry: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut count = 0;
    for seed in fs::read_dir(&dir).unwrap() {
        let data = fs::read(seed.unwrap().path()).unwrap();
        entry(&data);
        // Every prefix too: truncated inputs are where decoders go wrong.
        for len in 0..data.len().min(300) {
            entry(&data[..len]);
        }
        count += 1;
    }
    assert!(count >= 20, "only {count} seeds in {}", dir.display());
}

#[test]
fn decode_request_seeds() {
    replay("decode_request", fuzzing::decode_request);
}

#[test]
fn decode_response_seeds() {
    replay("decode_response", fuzzing::decode_response);
}

#[test]
fn roundtrip_seeds() {
    replay("roundtrip", fuzzing::roundtrip);
}

#[test]
fn socket_stream_seeds() {
    replay("socket_stream", fuzzing::socket_stream);
}

#[test]
fn channel_requests_seeds() {
    replay("channel_requests", fuzzing::channel_requests);
}
