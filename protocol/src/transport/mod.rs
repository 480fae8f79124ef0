//! Moving lisafs frames between peers.
//!
//! - [`socket`]: the AF_UNIX stream socket every connection starts on, with donated FDs
//!   as `SCM_RIGHTS`.

pub mod socket;
