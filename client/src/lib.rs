//! The lisafs client library a sandbox links to: Mount, a typed method per RPC, batched
//! close, and a path-level convenience layer.
//!
//! Status: the client lands with the "server framework, host gofer and client library"
//! issue; this crate currently only re-exports the wire types it will be built on.

pub use lisafs_protocol::wire;
