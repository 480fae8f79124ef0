//! The gofer: a trusted process that serves one host directory over lisafs, resolving
//! every name one component at a time with `openat2` so it never leaves its root.
//!
//! * [`host`]: the [`HostBackend`](host::HostBackend), the `lisafs_server::Backend` that
//!   does the host work and applies the host-side policy (SPEC.md §7.11).
//! * [`config`]: the `gofer` command line.
//! * [`cli`]: the program: process setup (logging, limits, privileges) and the serving
//!   loops.
//!
//! It contains no protocol parsing: that is `lisafs-protocol` and `lisafs-server`.

pub mod cli;
pub mod config;
pub mod host;
pub mod limits;
mod sandbox;
mod sys;

pub use lisafs_protocol::wire;
