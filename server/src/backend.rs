//! The `Backend` trait: what a filesystem implements to be served over lisafs.
//!
//! The server owns everything protocol-shaped: FDIDs, the FD table and its reference
//! model, name validation, FD-kind checks, read-only enforcement, locking, size limits and
//! errno policy. A backend owns host resources: one [`Backend::File`] per control FD, one
//! [`Backend::Open`] per open FD, one [`Backend::Socket`] per bound socket, and it turns
//! each call into host syscalls. Every method has a default that fails with `ENOSYS`, so
//! adding an operation never breaks an existing backend.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use lisafs_protocol::wire::{DirentList, Errno, Gid, SetStatReq, SetStatResp, StatFS, Statx, Uid};

use crate::name::Name;

/// A backend result: the only error that may reach the client is an errno.
pub type BResult<T> = Result<T, Errno>;

/// What the server learns when a control FD is created.
#[derive(Debug)]
pub struct Node<F> {
    /// The backend's handle for the file.
    pub file: F,
    /// Its attributes at creation; the server uses the type bits for its checks.
    pub stat: Statx,
}

/// A host FD to donate with a response. Shared, so that a backend can donate the very FD
/// it keeps for its own I/O: `SCM_RIGHTS` installs a new descriptor in the peer for the
/// same open file, exactly as a `dup` would, so no `dup` (and no `close` of it after the
/// send) is needed; the `Arc` keeps the FD open until it is sent, whatever happens to
/// the backend's handle meanwhile.
pub type SharedFd = Arc<OwnedFd>;

/// The result of [`Backend::mount`].
#[derive(Debug)]
pub struct Mounted<F> {
    /// The root of the served tree.
    pub root: Node<F>,
    /// A host FD of the root to donate with the Mount response, if policy allows.
    pub donated: Option<SharedFd>,
}

/// An opened file: the backend's handle and, if policy allows, a host FD to donate.
#[derive(Debug)]
pub struct Opened<O> {
    /// The backend's handle for the open file.
    pub open: O,
    /// A host FD to donate with the response.
    pub donated: Option<SharedFd>,
}

/// What [`Backend::create`] returns: the new file and its open handle.
pub type Created<F, O> = (Node<F>, Opened<O>);

/// Owner and permissions requested for a new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Create {
    /// Mode: permission bits (and, for mknod, the file type bits).
    pub mode: u32,
    /// Owner, or [`Uid::NONE`] to keep the server's.
    pub uid: Uid,
    /// Group, or [`Gid::NONE`] to keep the server's.
    pub gid: Gid,
}

/// Open flags after the server's masking: only the access mode and `O_TRUNC` survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFlags {
    /// Open for reading.
    pub read: bool,
    /// Open for writing.
    pub write: bool,
    /// Truncate on open.
    pub truncate: bool,
}

impl OpenFlags {
    /// The access mode to open a host file with, and whether that open is readable and
    /// writable (neither asked for reads as `O_RDONLY`, the value of zero).
    pub fn access(self) -> (rustix::fs::OFlags, bool, bool) {
        use rustix::fs::OFlags;
        match (self.read, self.write) {
            (true, true) => (OFlags::RDWR, true, true),
            (false, true) => (OFlags::WRONLY, false, true),
            _ => (OFlags::RDONLY, true, false),
        }
    }
}

/// A filesystem served over lisafs. See the module documentation for the split of duties.
///
/// Methods take `&self` and may be called concurrently from many connection threads, but
/// each call runs start to finish on the thread that received the request (a backend may
/// switch that thread's credentials for the call, as `connect` with `creds` does). The
/// server has already validated every name (a [`Name`] is one non-empty component, not
/// `.` or `..`, without `/` or NUL), checked FD kinds and directory-ness where the
/// protocol demands it, and refused mutations on read-only connections.
#[allow(unused_variables)]
pub trait Backend: Send + Sync + 'static {
    /// Host state behind a control FD.
    type File: Send + Sync + 'static;
    /// Host state behind an open FD.
    type Open: Send + Sync + 'static;
    /// Host state behind a bound-socket FD.
    type Socket: Send + Sync + 'static;

    /// Opens the root of the served tree (Mount).
    fn mount(&self) -> BResult<Mounted<Self::File>> {
        Err(Errno::ENOSYS)
    }

    /// The file's current path relative to the served root ("" for the root itself), or
    /// `None` if the backend cannot tell or the file is no longer inside the tree (moved
    /// out, or unlinked). "Current" means now, not when the file was walked: a rename of
    /// the file or of any directory above it, by a client or by another process, shows.
    ///
    /// The server never calls it; [`hooks`](crate::hooks) do, and only when a hook asks
    /// for a path, because it may cost system calls (the host backend's does three).
    fn path(&self, file: &Self::File) -> Option<PathBuf> {
        None
    }

    /// Stats a file (FStat, and WalkStat's leading "").
    fn stat(&self, file: &Self::File) -> BResult<Statx> {
        Err(Errno::ENOSYS)
    }

    /// Applies the attributes selected by `req.mask` (already checked against
    /// `SetStatReq::SUPPORTED_MASK`). A failure of one attribute is reported in the
    /// response, not as an error; `Err` means nothing was attempted.
    fn set_stat(&self, file: &Self::File, req: &SetStatReq) -> BResult<SetStatResp> {
        Err(Errno::ENOSYS)
    }

    /// Looks up one component in a directory, without following a symlink (Walk,
    /// WalkStat). `ENOENT` ends a walk with `ComponentDoesNotExist`.
    fn walk(&self, dir: &Self::File, name: Name<'_>) -> BResult<Node<Self::File>> {
        Err(Errno::ENOSYS)
    }

    /// The attributes [`Backend::walk`] would give for `name` in `dir`, without a handle:
    /// WalkStat's last component needs nothing more, and a backend may find them more
    /// cheaply. The default walks and drops the handle.
    fn stat_at(&self, dir: &Self::File, name: Name<'_>) -> BResult<Statx> {
        self.walk(dir, name).map(|node| node.stat)
    }

    /// Whether [`Backend::revalidate`] can ever confirm a directory. If not (the default),
    /// the server caches no WalkStat steps.
    fn revalidates(&self) -> bool {
        false
    }

    /// Whether `name` in `dir` still names `known`, a directory [`Backend::walk`] returned
    /// for that name earlier: its current attributes if so, so that WalkStat may go on
    /// from `known` instead of walking anew. Confirming is a promise that going on from
    /// `known` is exactly what going on from a fresh walk would be (the same inode, no
    /// mount crossed); `Ok(None)` when not, or when the backend cannot tell, and the
    /// server walks. An error is the answer a walk of `name` would give.
    fn revalidate(
        &self,
        dir: &Self::File,
        name: Name<'_>,
        known: &Self::File,
    ) -> BResult<Option<Statx>> {
        Ok(None)
    }

    /// Opens a file (OpenAt). `file` is not a symlink; for a directory `flags` is
    /// read-only without truncation.
    fn open(&self, file: &Self::File, flags: OpenFlags) -> BResult<Opened<Self::Open>> {
        Err(Errno::ENOSYS)
    }

    /// Creates a regular file exclusively and opens it (OpenCreateAt). On any failure
    /// nothing may be left behind.
    fn create(
        &self,
        dir: &Self::File,
        name: Name<'_>,
        attrs: Create,
        flags: OpenFlags,
    ) -> BResult<Created<Self::File, Self::Open>> {
        Err(Errno::ENOSYS)
    }

    /// Creates a directory (MkdirAt).
    fn mkdir(&self, dir: &Self::File, name: Name<'_>, attrs: Create) -> BResult<Node<Self::File>> {
        Err(Errno::ENOSYS)
    }

    /// Creates a node (MknodAt); `attrs.mode` carries the file type bits.
    fn mknod(
        &self,
        dir: &Self::File,
        name: Name<'_>,
        attrs: Create,
        major: u32,
        minor: u32,
    ) -> BResult<Node<Self::File>> {
        Err(Errno::ENOSYS)
    }

    /// Creates a symlink (SymlinkAt). `target` is stored, never followed.
    fn symlink(
        &self,
        dir: &Self::File,
        name: Name<'_>,
        target: &[u8],
        uid: Uid,
        gid: Gid,
    ) -> BResult<Node<Self::File>> {
        Err(Errno::ENOSYS)
    }

    /// Creates a hard link to `target`, which is not a directory (LinkAt).
    fn link(
        &self,
        dir: &Self::File,
        name: Name<'_>,
        target: &Self::File,
    ) -> BResult<Node<Self::File>> {
        Err(Errno::ENOSYS)
    }

    /// Filesystem statistics (FStatFS).
    fn statfs(&self, file: &Self::File) -> BResult<StatFS> {
        Err(Errno::ENOSYS)
    }

    /// Reads a symlink's target (ReadLinkAt); `file` is a symlink.
    fn readlink(&self, file: &Self::File) -> BResult<Vec<u8>> {
        Err(Errno::ENOSYS)
    }

    /// Connects a new socket to the Unix socket file `file` (Connect, ConnectWithCreds);
    /// `creds` asks to connect as that effective user and group.
    fn connect(
        &self,
        file: &Self::File,
        sock_type: u32,
        creds: Option<(Uid, Gid)>,
    ) -> BResult<OwnedFd> {
        Err(Errno::ENOSYS)
    }

    /// Removes a name (UnlinkAt); `flags` may hold `AT_REMOVEDIR`.
    fn unlink(&self, dir: &Self::File, name: Name<'_>, flags: u32) -> BResult<()> {
        Err(Errno::ENOSYS)
    }

    /// Renames (RenameAt, RenameAt2) with `renameat2(2)` flags. The server holds its
    /// rename lock for writing around this call.
    fn rename(
        &self,
        old_dir: &Self::File,
        old_name: Name<'_>,
        new_dir: &Self::File,
        new_name: Name<'_>,
        flags: u32,
    ) -> BResult<()> {
        Err(Errno::ENOSYS)
    }

    /// Reads an extended attribute of at most `size` bytes (FGetXattr).
    fn get_xattr(&self, file: &Self::File, name: &[u8], size: usize) -> BResult<Vec<u8>> {
        Err(Errno::ENOSYS)
    }

    /// Sets an extended attribute (FSetXattr).
    fn set_xattr(&self, file: &Self::File, name: &[u8], value: &[u8], flags: u32) -> BResult<()> {
        Err(Errno::ENOSYS)
    }

    /// Lists extended attribute names, at most `size` bytes of them (FListXattr).
    fn list_xattr(&self, file: &Self::File, size: usize) -> BResult<Vec<Vec<u8>>> {
        Err(Errno::ENOSYS)
    }

    /// Removes an extended attribute (FRemoveXattr).
    fn remove_xattr(&self, file: &Self::File, name: &[u8]) -> BResult<()> {
        Err(Errno::ENOSYS)
    }

    /// Creates a bound Unix socket file (BindAt). Returns the socket file's node, the
    /// backend's socket handle, and a host FD of the socket to donate.
    fn bind(
        &self,
        dir: &Self::File,
        name: Name<'_>,
        sock_type: u32,
        attrs: Create,
    ) -> BResult<(Node<Self::File>, Self::Socket, OwnedFd)> {
        Err(Errno::ENOSYS)
    }

    /// Listens on a bound socket (Listen).
    fn listen(&self, socket: &Self::Socket, backlog: i32) -> BResult<()> {
        Err(Errno::ENOSYS)
    }

    /// Accepts one connection (Accept): the connected socket and the peer's address.
    fn accept(&self, socket: &Self::Socket) -> BResult<(OwnedFd, Vec<u8>)> {
        Err(Errno::ENOSYS)
    }

    /// A host FD whose `pread(2)` does exactly what [`Backend::read`] does on `open`, so
    /// that the server may have the kernel read a PRead's data straight into a channel's
    /// window. `None` (the default): the server always calls `read`.
    fn read_fd<'a>(&self, open: &'a Self::Open) -> Option<BorrowedFd<'a>> {
        None
    }

    /// A host FD whose `pwrite(2)` does exactly what [`Backend::write`] does on `open`, so
    /// that the server may have the kernel write a PWrite's data straight from a channel's
    /// window. `None` (the default): the server always calls `write`. A backend that looks
    /// at the data it writes (a hook's wrapper) must leave this `None`: the bytes in the
    /// window are the peer's to change until the kernel has copied them.
    fn write_fd<'a>(&self, open: &'a Self::Open) -> Option<BorrowedFd<'a>> {
        None
    }

    /// Reads at `offset` into `buf`; 0 means end of file (PRead).
    fn read(&self, open: &Self::Open, offset: u64, buf: &mut [u8]) -> BResult<usize> {
        Err(Errno::ENOSYS)
    }

    /// Writes `data` at `offset` (PWrite).
    fn write(&self, open: &Self::Open, offset: u64, data: &[u8]) -> BResult<usize> {
        Err(Errno::ENOSYS)
    }

    /// `fallocate(2)` (FAllocate); `offset` and `length` already fit in `i64`.
    fn allocate(&self, open: &Self::Open, mode: u64, offset: u64, length: u64) -> BResult<()> {
        Err(Errno::ENOSYS)
    }

    /// `fsync(2)` (FSync).
    fn sync(&self, open: &Self::Open) -> BResult<()> {
        Err(Errno::ENOSYS)
    }

    /// Reads directory entries of an open directory (Getdents64): from the start if
    /// `rewind`, at most `budget` bytes counted as Linux `dirent64` record lengths, and
    /// never "." or "..". An empty result means the end of the directory. The server caps
    /// `budget` so that any result fits one response; the backend must still stop before
    /// 65,535 entries and resume where it stopped on the next call. The entries are appended
    /// to the list in their wire encoding, so a listing costs no allocation per name.
    fn getdents(&self, open: &Self::Open, rewind: bool, budget: usize) -> BResult<DirentList> {
        Err(Errno::ENOSYS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::OFlags;

    #[test]
    fn open_flags_map_to_one_host_access_mode() {
        let flags = |read, write| OpenFlags {
            read,
            write,
            truncate: false,
        };
        assert_eq!(flags(true, false).access(), (OFlags::RDONLY, true, false));
        assert_eq!(flags(false, true).access(), (OFlags::WRONLY, false, true));
        assert_eq!(flags(true, true).access(), (OFlags::RDWR, true, true));
        assert_eq!(flags(false, false).access(), (OFlags::RDONLY, true, false));
    }
}
