//! End-to-end tests of lisafs-rs: real gofer processes, real sockets, temp directories.
//!
//! [`Gofer`] starts a gofer process on a fresh temp directory (with a canary directory
//! beside the served root) and connects clients to it. [`conformance`] holds gVisor's
//! lisafs test cases, written against our client, runnable against any server. The test
//! files in `tests/` drive both. Wire-level and framing tests live with the protocol
//! crate.

pub mod attacks;
pub mod conformance;
mod gofer;

pub use gofer::{serving_pid, Gofer};

/// The errno of a call that must fail; panics (failing the test) if it succeeded.
pub fn errno<T: std::fmt::Debug>(
    result: Result<T, lisafs_client::Error>,
) -> lisafs_protocol::wire::Errno {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(err) => err.errno(),
    }
}
