//! End-to-end tests of lisafs-rs: real gofer processes, real sockets, temp directories.
//!
//! [`Gofer`] starts a gofer process on a fresh temp directory (with a canary directory
//! beside the served root) and connects clients to it. [`conformance`] holds gVisor's
//! lisafs test cases, written against our client, runnable against any server. The test
//! files in `tests/` drive both. Wire-level and framing tests live with the protocol
//! crate.

pub mod conformance;
mod gofer;

pub use gofer::Gofer;
