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

use rustix::io::Errno;

/// Runs `call` until it is not interrupted by a signal (`EINTR`).
pub(crate) fn retry_intr<T>(mut call: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match call() {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}
