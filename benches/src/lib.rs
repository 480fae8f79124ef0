//! Benchmarks of lisafs-rs against raw syscalls and between transports (see README.md).
//!
//! The crate has two halves:
//!
//! - the `report` binary (`src/bin/report/`): one run that starts a real gofer on a
//!   tmpfs, measures every operation of the channels issue natively, over the socket and
//!   over a shared-memory channel, plus the ping-pong floors and multi-threaded
//!   throughput, and prints Markdown tables (the ones in README.md);
//! - criterion micro-benchmarks (`benches/`): the codec and an in-process channel
//!   ping-pong, small enough for `cargo bench` to finish in well under a minute.
//!
//! This library holds what both use: [`measure`] (timing loops with latency
//! percentiles) and [`pingpong`] (channel and socket echo peers).

pub mod measure;
pub mod pingpong;
