//! The gofer: a trusted process that serves one host directory over lisafs, resolving
//! every name one component at a time with `openat2` so it never leaves its root.
//!
//! Status: the host backend and the `gofer` binary land with the "server framework, host
//! gofer and client library" issue.

pub use lisafs_protocol::wire;
