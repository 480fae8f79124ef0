//! Moving lisafs frames between peers.
//!
//! - [`socket`]: the AF_UNIX stream socket every connection starts on, with donated FDs
//!   as `SCM_RIGHTS`.
//! - [`channel`]: shared-memory channels (flipcall), created over the socket with the
//!   Channel RPC, for fast round trips.

pub mod channel;
pub mod socket;
mod spin;

pub use spin::SpinPolicy;
