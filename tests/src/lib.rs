//! End-to-end tests of lisafs-rs: real gofer processes, real sockets, temp directories.
//!
//! The wire-level and socket-framing tests live with the protocol crate
//! (`protocol/tests/`); tests that need a running gofer live here once it exists.
