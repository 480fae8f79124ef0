//! The lisafs protocol: gVisor's LInux SAndbox FileSystem protocol, byte for byte.
//!
//! - [`wire`]: every message's layout, its encoder and its bounds-checked decoder. No I/O.
//! - [`transport`]: moving frames (and donated FDs) between client and server.
//!
//! This crate does no filesystem work; the server and client crates build on it.

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod transport;
pub mod wire;
