//! The lisafs server framework: connections, the FD table, dispatch of every MID with
//! lisafs's errno policy, and the `Backend` trait a filesystem implements.
//!
//! It knows nothing about the host filesystem; the gofer crate provides the host backend.
//! Status: the framework lands with the "server framework, host gofer and client library"
//! issue; this crate currently only re-exports the wire types it will be built on.

pub use lisafs_protocol::wire;
