//! The size and inode limits (`--memory-size`): what is in use, charged before it is used.

use std::sync::atomic::{AtomicU64, Ordering};

use lisafs_protocol::wire::Errno;
use lisafs_server::BResult;

/// The block size StatFS reports and data is charged in.
pub(super) const BLOCK_SIZE: u64 = 4096;

/// `n` bytes rounded up to whole blocks (saturating, so a hostile size cannot wrap).
pub(super) fn blocks_of(n: u64) -> u64 {
    n.div_ceil(BLOCK_SIZE).saturating_mul(BLOCK_SIZE)
}

/// Bytes and inodes in use against their limits. Counters are atomics updated with
/// compare-and-swap, so charging never takes a lock shared by the whole tree.
#[derive(Debug)]
pub(super) struct Usage {
    bytes: AtomicU64,
    inodes: AtomicU64,
    max_bytes: u64,
    max_inodes: u64,
}

impl Usage {
    pub(super) fn new(max_bytes: u64, max_inodes: u64) -> Self {
        Self {
            bytes: AtomicU64::new(0),
            inodes: AtomicU64::new(0),
            max_bytes,
            max_inodes,
        }
    }

    /// Adds `n` to `counter` if the sum stays within `max`; otherwise `ENOSPC`.
    fn charge(counter: &AtomicU64, max: u64, n: u64) -> BResult<()> {
        counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(n).filter(|&sum| sum <= max)
            })
            .map(drop)
            .map_err(|_| Errno::ENOSPC)
    }

    fn release(counter: &AtomicU64, n: u64) {
        // Saturating: a release can never take the count below zero, whatever the order.
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
            Some(used.saturating_sub(n))
        });
    }

    /// Charges `n` bytes, or `ENOSPC` if they do not fit.
    pub(super) fn charge_bytes(&self, n: u64) -> BResult<()> {
        Self::charge(&self.bytes, self.max_bytes, n)
    }

    /// Charges `n` bytes whether or not they fit: for growth that already happened
    /// (a donated FD the client extended itself).
    pub(super) fn force_bytes(&self, n: u64) {
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_add(n))
            });
    }

    /// Returns `n` bytes.
    pub(super) fn release_bytes(&self, n: u64) {
        Self::release(&self.bytes, n);
    }

    /// Charges one inode, or `ENOSPC`.
    pub(super) fn charge_inode(&self) -> BResult<()> {
        Self::charge(&self.inodes, self.max_inodes, 1)
    }

    /// Returns one inode.
    pub(super) fn release_inode(&self) {
        Self::release(&self.inodes, 1);
    }

    /// Bytes in use.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Inodes in use.
    pub(super) fn inodes(&self) -> u64 {
        self.inodes.load(Ordering::Relaxed)
    }

    /// The byte limit.
    pub(super) fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The inode limit.
    pub(super) fn max_inodes(&self) -> u64 {
        self.max_inodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_stop_at_the_limit_and_releases_make_room() {
        let usage = Usage::new(10, 1);
        usage.charge_bytes(6).unwrap();
        assert_eq!(usage.charge_bytes(5), Err(Errno::ENOSPC));
        usage.charge_bytes(4).unwrap();
        usage.release_bytes(4);
        assert_eq!(usage.bytes(), 6);
        usage.charge_inode().unwrap();
        assert_eq!(usage.charge_inode(), Err(Errno::ENOSPC));
        usage.release_inode();
        usage.charge_inode().unwrap();
    }

    #[test]
    fn a_hostile_size_cannot_wrap_the_counter() {
        let usage = Usage::new(u64::MAX, 1);
        usage.charge_bytes(1).unwrap();
        assert_eq!(usage.charge_bytes(u64::MAX), Err(Errno::ENOSPC));
        assert_eq!(blocks_of(u64::MAX), u64::MAX);
        assert_eq!(blocks_of(1), BLOCK_SIZE);
        usage.force_bytes(u64::MAX);
        assert_eq!(usage.bytes(), u64::MAX);
    }
}
