//! FUSE passthrough: the kernel reads and writes an open file's host FD itself.
//!
//! When the gofer donates a regular file's host FD, the bridge registers it with the
//! kernel (`FUSE_DEV_IOC_BACKING_OPEN`, kernel 6.9+, CAP_SYS_ADMIN) and answers the open
//! with `FOPEN_PASSTHROUGH`: read, write, splice and mmap of that file then never reach the
//! bridge. Anything else (an old kernel, an unprivileged mount, a gofer that does not
//! donate, a backing file on a stacked filesystem) falls back to the donated FD in the
//! bridge or to lisafs RPCs, as `io.rs` describes.
//!
//! The registered FD only names the file: for each open the kernel opens the file anew
//! with that open's flags (and the credentials of whoever registered it), so one backing
//! ID serves opens of any access mode, and the gofer has already checked this open's
//! mode when it answered OpenAt.
//!
//! The kernel puts each inode in one I/O mode at a time and refuses (EIO to the caller's
//! open) an answer that breaks it: while any file of the inode is open in passthrough,
//! every other open must be passthrough with the same backing ID; while one uses the page
//! cache, none may be passthrough. So the bridge keeps, per node, which side its open
//! files are on ([`IoModes`]):
//! - no open file: passthrough if the new open has a host FD the kernel accepts, else
//!   cached;
//! - cached files open: cached;
//! - passthrough files open: the same backing ID, with `FOPEN_DIRECT_IO` (I/O through the
//!   bridge, which the kernel then prefers) if this open has no host FD.
//!
//! A grant is given back when its file handle is dropped. The kernel leaves a mode before
//! it sends the release, so the bridge never thinks a mode is free while the kernel
//! still holds it.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use fuser::{BackingId, FopenFlags};
use parking_lot::Mutex;

/// How an open file does its I/O.
#[derive(Clone)]
pub(crate) enum Io {
    /// The kernel does it on this backing file.
    Passthrough(Arc<BackingId>),
    /// Through the kernel's page cache and the bridge.
    Cached,
    /// Through the bridge with no page cache; the open names this backing ID because other
    /// opens of the inode are passthrough.
    Direct(Arc<BackingId>),
}

/// What a node's open files currently hold.
enum Held {
    /// `n` files open with the page cache.
    Cached(usize),
    /// `opens` files open naming backing ID `id`.
    Backed { id: Arc<BackingId>, opens: usize },
}

/// Per-node I/O modes of open files; see the module doc.
pub(crate) struct IoModes {
    nodes: Mutex<HashMap<u64, Held>>,
}

/// An open file's I/O mode, given back to [`IoModes`] when dropped.
pub(crate) struct Grant {
    /// The table and node to give the grant back to (`None`: nothing was counted).
    owner: Option<(Arc<IoModes>, u64)>,
    io: Io,
}

impl Grant {
    /// A cached-mode grant that nothing tracks: passthrough is off for this mount.
    pub(crate) fn untracked() -> Self {
        Self {
            owner: None,
            io: Io::Cached,
        }
    }

    /// The mode the kernel is told.
    pub(crate) fn io(&self) -> &Io {
        &self.io
    }
}

impl Io {
    /// The open reply's flags besides `FOPEN_PASSTHROUGH` (which the reply adds itself).
    pub(crate) fn flags(&self) -> FopenFlags {
        match self {
            Self::Direct(_) => FopenFlags::FOPEN_DIRECT_IO,
            Self::Cached | Self::Passthrough(_) => FopenFlags::empty(),
        }
    }

    /// The backing ID the open reply names, if any.
    pub(crate) fn backing(&self) -> Option<&BackingId> {
        match self {
            Self::Passthrough(id) | Self::Direct(id) => Some(id),
            Self::Cached => None,
        }
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        let Some((modes, ino)) = &self.owner else {
            return;
        };
        let mut nodes = modes.nodes.lock();
        let emptied = match (nodes.get_mut(ino), &self.io) {
            (Some(Held::Cached(n)), Io::Cached) => {
                *n -= 1;
                *n == 0
            }
            (Some(Held::Backed { opens, .. }), Io::Passthrough(_) | Io::Direct(_)) => {
                *opens -= 1;
                *opens == 0
            }
            _ => false,
        };
        if emptied {
            // Dropping the last Arc of a backing ID unregisters it.
            nodes.remove(ino);
        }
    }
}

impl IoModes {
    /// An empty table.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            nodes: Mutex::new(HashMap::new()),
        })
    }

    /// The mode for a new open of node `ino`. `host` is the host FD the gofer donated, if
    /// any; `register` turns it into a backing ID.
    pub(crate) fn open(
        self: &Arc<Self>,
        ino: u64,
        host: Option<BorrowedFd<'_>>,
        register: impl FnOnce(BorrowedFd<'_>) -> io::Result<BackingId>,
    ) -> Grant {
        let mut nodes = self.nodes.lock();
        let io = match (nodes.get_mut(&ino), host) {
            (Some(Held::Backed { id, opens }), host) => {
                *opens += 1;
                match host {
                    Some(_) => Io::Passthrough(Arc::clone(id)),
                    None => Io::Direct(Arc::clone(id)),
                }
            }
            (Some(Held::Cached(n)), _) => {
                *n += 1;
                Io::Cached
            }
            (None, Some(fd)) => match register(fd.as_fd()) {
                Ok(id) => {
                    let id = Arc::new(id);
                    nodes.insert(
                        ino,
                        Held::Backed {
                            id: Arc::clone(&id),
                            opens: 1,
                        },
                    );
                    Io::Passthrough(id)
                }
                Err(err) => {
                    tracing::debug!(ino, %err, "no passthrough: backing file refused");
                    nodes.insert(ino, Held::Cached(1));
                    Io::Cached
                }
            },
            (None, None) => {
                nodes.insert(ino, Held::Cached(1));
                Io::Cached
            }
        };
        Grant {
            owner: Some((Arc::clone(self), ino)),
            io,
        }
    }

    /// Nodes with open files (for the end-of-session log line).
    pub(crate) fn len(&self) -> usize {
        self.nodes.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens node `ino`; registering a backing file always fails (a BackingId needs a
    /// FUSE channel; the tests in `tests/tests/mount_passthrough.rs` cover the backed side).
    fn open(modes: &Arc<IoModes>, ino: u64, host: bool) -> Grant {
        let file = std::fs::File::open("/dev/null").unwrap();
        let fd = host.then(|| file.as_fd());
        modes.open(ino, fd, |_| Err(io::Error::from_raw_os_error(1)))
    }

    #[test]
    fn a_refused_backing_file_means_cached_opens_counted_until_dropped() {
        let modes = IoModes::new();
        let a = open(&modes, 7, true);
        let b = open(&modes, 7, false);
        let other = open(&modes, 8, true);
        for grant in [&a, &b, &other] {
            assert!(matches!(grant.io(), Io::Cached));
            assert!(grant.io().flags().is_empty());
        }
        assert_eq!(modes.len(), 2);
        drop(a);
        drop(other);
        assert_eq!(modes.len(), 1);
        drop(b);
        assert_eq!(modes.len(), 0);
    }

    #[test]
    fn an_untracked_grant_is_cached() {
        let grant = Grant::untracked();
        assert!(matches!(grant.io(), Io::Cached));
    }
}
