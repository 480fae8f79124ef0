//! The lisafs protocol: gVisor's LInux SAndbox FileSystem protocol, byte for byte.
//!
//! - [`wire`]: every message's layout, its encoder and its bounds-checked decoder. No I/O.
//! - [`transport`]: moving frames between client and server: the Unix socket, with
//!   donated FDs as `SCM_RIGHTS`, and the shared-memory channels (gVisor's flipcall) that
//!   carry RPCs once the Channel RPC has set them up.
//! - `fuzzing` (feature `fuzzing`): the entry points of the fuzz targets in `fuzz/`.
//!
//! This crate does no filesystem work; the server and client crates build on it. Its only
//! `unsafe` code maps a channel's shared memory (`transport/channel/shm.rs`).

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod transport;
pub mod wire;
