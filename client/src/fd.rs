//! FD handles: one type per lisafs FD kind, each closing its FDID (batched) on drop.
//!
//! lisafs has three kinds of FDID in one ID space (SPEC.md §7.4), and each RPC accepts
//! only some of them. The client gives each kind its own type so that the compiler, not
//! the server, rejects e.g. a PRead on a ControlFd:
//!
//! | type | created by | RPCs |
//! |---|---|---|
//! | [`ControlFd`] | Mount, Walk, the create RPCs, LinkAt, BindAt | metadata, walks, create, link, unlink, rename, xattrs, connect, open |
//! | [`OpenFd`] | OpenAt, OpenCreateAt | FStat, PRead, PWrite, FSync, FAllocate, Flush, Getdents64 |
//! | [`BoundSocketFd`] | BindAt | Listen, Accept |

use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use lisafs_protocol::wire::{self, FdId, Gid, Statx, Uid};

use crate::client::Inner;

/// An FDID plus the connection it belongs to. Dropping it queues a Close.
pub(crate) struct Handle {
    id: FdId,
    inner: Arc<Inner>,
}

impl Handle {
    pub(crate) fn new(inner: &Arc<Inner>, id: FdId) -> Self {
        Self {
            id,
            inner: Arc::clone(inner),
        }
    }

    pub(crate) fn id(&self) -> FdId {
        self.id
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Takes the ID out, leaving a handle whose drop closes nothing.
    pub(crate) fn disarm(&mut self) -> FdId {
        std::mem::replace(&mut self.id, FdId::INVALID)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.inner.release(self.id);
    }
}

macro_rules! fd_kind {
    ($($(#[$meta:meta])* $name:ident,)*) => {$(
        $(#[$meta])*
        pub struct $name(Handle);

        impl $name {
            pub(crate) fn new(handle: Handle) -> Self {
                Self(handle)
            }

            /// The FDID the server assigned.
            pub fn id(&self) -> FdId {
                self.0.id()
            }

            /// Releases the FDID now. Same as dropping the handle: the ID joins the
            /// batched Close queue (see [`Client::flush_closes`](crate::Client::flush_closes)).
            pub fn close(self) {}

            pub(crate) fn inner(&self) -> &Arc<Inner> {
                self.0.inner()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0.id().0).finish()
            }
        }
    )*};
}

fd_kind! {
    /// A server-side handle on a file by its position in the tree (lisafs ControlFD):
    /// used for metadata, walking, creating and removing names, xattrs and sockets.
    ControlFd,
    /// An open file description on the server (lisafs OpenFD), readable and/or writable
    /// as opened: used for I/O, directory listing and sync.
    OpenFd,
    /// A bound host Unix socket on the server (lisafs BoundSocketFD): Listen and Accept.
    BoundSocketFd,
}

impl ControlFd {
    /// Takes the FDID out so that dropping this handle releases nothing (the `Client`
    /// queues its root by hand).
    pub(crate) fn disarm(&mut self) -> FdId {
        self.0.disarm()
    }
}

/// A ControlFd and the attributes of its file, as Walk and the create RPCs return them.
/// The owning counterpart of [`wire::Inode`].
#[derive(Debug)]
pub struct Inode {
    /// The new ControlFd.
    pub fd: ControlFd,
    /// Its file's attributes when it was created or walked.
    pub stat: Statx,
}

impl Inode {
    pub(crate) fn from_wire(inner: &Arc<Inner>, inode: wire::Inode) -> Self {
        Self {
            fd: ControlFd::new(Handle::new(inner, inode.control_fd)),
            stat: inode.stat,
        }
    }
}

/// An OpenFd and the host FD the server may have donated with it (regular files, and
/// FIFOs or devices where the server allows them). With the host FD a caller can do I/O
/// without RPCs.
#[derive(Debug)]
pub struct Opened {
    /// The new OpenFd.
    pub fd: OpenFd,
    /// The donated host FD, if any.
    pub host_fd: Option<OwnedFd>,
}

/// The owner to give a new file. The server applies it only where it may (it needs
/// `CAP_CHOWN`); [`Owner::UNSET`] keeps whatever the server's identity yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The user, or [`Uid::NONE`].
    pub uid: Uid,
    /// The group, or [`Gid::NONE`].
    pub gid: Gid,
}

impl Owner {
    /// Neither user nor group set.
    pub const UNSET: Owner = Owner {
        uid: Uid::NONE,
        gid: Gid::NONE,
    };

    /// A specific user and group.
    pub fn new(uid: u32, gid: u32) -> Self {
        Self {
            uid: Uid(uid),
            gid: Gid(gid),
        }
    }
}

/// [`Owner::UNSET`], not user 0: a default must never ask for root ownership.
impl Default for Owner {
    fn default() -> Self {
        Self::UNSET
    }
}
