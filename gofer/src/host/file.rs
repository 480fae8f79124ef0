//! The host handles behind control, open and bound-socket FDs, file kinds, and statx.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use lisafs_protocol::wire::{Errno, Statx, StatxTimestamp};
use lisafs_server::{BResult, SharedFd};
use parking_lot::Mutex;
use rustix::fs::{AtFlags, StatxFlags};

/// The kinds of file the gofer serves. Devices are served as inert nodes (stat, owner,
/// mode, links, names) and never opened; anything unknown is refused with `EPERM` when
/// reached, so it never gets a [`HostFile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link (served as itself, never followed).
    Symlink,
    /// A Unix socket file.
    Socket,
    /// A FIFO.
    Fifo,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
}

pub(crate) use lisafs_protocol::wire::{
    S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
};

impl FileKind {
    /// The kind of a file with `mode`, or `EPERM` for an unknown type.
    pub fn from_mode(mode: u16) -> BResult<Self> {
        match mode & S_IFMT {
            S_IFREG => Ok(Self::Regular),
            S_IFDIR => Ok(Self::Directory),
            S_IFLNK => Ok(Self::Symlink),
            S_IFSOCK => Ok(Self::Socket),
            S_IFIFO => Ok(Self::Fifo),
            S_IFCHR => Ok(Self::CharDevice),
            S_IFBLK => Ok(Self::BlockDevice),
            _ => Err(Errno::EPERM),
        }
    }
}

/// Identity of an inode: device numbers and inode number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    pub(crate) dev_major: u32,
    pub(crate) dev_minor: u32,
    pub(crate) ino: u64,
}

impl FileId {
    pub(crate) fn of(stat: &Statx) -> Self {
        Self {
            dev_major: stat.dev_major,
            dev_minor: stat.dev_minor,
            ino: stat.ino,
        }
    }
}

/// The host state behind a control FD: an `O_PATH | O_NOFOLLOW | O_CLOEXEC` FD pinning
/// the inode, and its kind (fixed for the inode's life).
#[derive(Debug)]
pub struct HostFile {
    fd: OwnedFd,
    kind: FileKind,
    id: FileId,
    /// The control FD Mount returned (the mount point), not one a walk reached.
    mount_point: bool,
}

impl HostFile {
    /// Wraps an `O_PATH` FD after checking its type against the policy; returns the file
    /// and its attributes.
    pub(crate) fn from_opath(fd: OwnedFd) -> BResult<(Self, Statx)> {
        let stat = stat_fd(fd.as_fd())?;
        let kind = FileKind::from_mode(stat.mode)?;
        let id = FileId::of(&stat);
        let mount_point = false;
        Ok((
            Self {
                fd,
                kind,
                id,
                mount_point,
            },
            stat,
        ))
    }

    /// A second handle on the same inode (a `dup`, so identity cannot change); never a
    /// mount point.
    pub(crate) fn try_clone(&self) -> BResult<Self> {
        Ok(Self {
            fd: rustix::io::fcntl_dupfd_cloexec(&self.fd, 0)?,
            kind: self.kind,
            id: self.id,
            mount_point: false,
        })
    }

    /// A second handle on the same inode, marked as the mount point: the control FD of a
    /// Mount response.
    pub(crate) fn mount_point(&self) -> BResult<Self> {
        Ok(Self {
            mount_point: true,
            ..self.try_clone()?
        })
    }

    /// Whether this is the control FD Mount returned (SPEC.md §7.11 item 6).
    pub fn is_mount_point(&self) -> bool {
        self.mount_point
    }

    /// The file's kind.
    pub fn kind(&self) -> FileKind {
        self.kind
    }

    pub(crate) fn id(&self) -> FileId {
        self.id
    }
}

/// The `O_PATH` FD. Only for inspection (tests, fstat): it never leaves the gofer.
impl AsFd for HostFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The host state behind an open FD: a real open file description and its access mode.
#[derive(Debug)]
pub struct HostOpen {
    /// Shared with the responses that donate it (see [`SharedFd`]).
    fd: SharedFd,
    kind: FileKind,
    readable: bool,
    writable: bool,
    /// Serialises Getdents64 on one directory: its seek-read-seek must not interleave.
    pub(crate) dir_lock: Mutex<()>,
}

impl HostOpen {
    pub(crate) fn new(fd: OwnedFd, kind: FileKind, readable: bool, writable: bool) -> Self {
        Self {
            fd: Arc::new(fd),
            kind,
            readable,
            writable,
            dir_lock: Mutex::new(()),
        }
    }

    /// Opened for reading.
    pub fn readable(&self) -> bool {
        self.readable
    }

    /// Opened for writing.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// The kind of the opened file.
    pub fn kind(&self) -> FileKind {
        self.kind
    }

    /// The open FD itself, to donate to the client: it receives its own descriptor for
    /// this open file, as from a `dup`, without the gofer making one.
    pub(crate) fn share(&self) -> SharedFd {
        Arc::clone(&self.fd)
    }
}

/// The open host FD.
impl AsFd for HostOpen {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The host state behind a bound-socket FD: the bound (non-blocking) Unix socket. It is a
/// different host FD from the socket file's control FD.
#[derive(Debug)]
pub struct HostSocket {
    pub(crate) fd: OwnedFd,
}

/// The bound socket.
impl AsFd for HostSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The `STATX_*` bits the wire `Statx` can carry; others the kernel sets (e.g.
/// `STATX_MNT_ID`) describe fields the wire struct does not have.
const WIRE_STATX_MASK: u32 = 0x7ff;

/// `statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, BASIC_STATS | BTIME)` as a wire
/// `Statx`. Works on `O_PATH` FDs of every type.
pub(crate) fn stat_fd(fd: BorrowedFd<'_>) -> BResult<Statx> {
    let flags = AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW;
    let st = rustix::fs::statx(fd, c"", flags, StatxFlags::BASIC_STATS | StatxFlags::BTIME)?;
    Ok(wire_statx(&st))
}

/// Field-for-field copy of the kernel's `struct statx` into the wire type.
pub(crate) fn wire_statx(st: &rustix::fs::Statx) -> Statx {
    let ts = |t: &rustix::fs::StatxTimestamp| StatxTimestamp {
        sec: t.tv_sec,
        nsec: t.tv_nsec,
        _pad: 0,
    };
    Statx {
        mask: st.stx_mask & WIRE_STATX_MASK,
        blksize: st.stx_blksize,
        attributes: st.stx_attributes.bits(),
        nlink: st.stx_nlink,
        uid: st.stx_uid,
        gid: st.stx_gid,
        mode: st.stx_mode,
        _pad0: 0,
        ino: st.stx_ino,
        size: st.stx_size,
        blocks: st.stx_blocks,
        attributes_mask: st.stx_attributes_mask.bits(),
        atime: ts(&st.stx_atime),
        btime: ts(&st.stx_btime),
        ctime: ts(&st.stx_ctime),
        mtime: ts(&st.stx_mtime),
        rdev_major: st.stx_rdev_major,
        rdev_minor: st.stx_rdev_minor,
        dev_major: st.stx_dev_major,
        dev_minor: st.stx_dev_minor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_file_types_have_a_kind() {
        assert_eq!(FileKind::from_mode(0o100_644), Ok(FileKind::Regular));
        assert_eq!(FileKind::from_mode(0o040_755), Ok(FileKind::Directory));
        assert_eq!(FileKind::from_mode(0o120_777), Ok(FileKind::Symlink));
        assert_eq!(FileKind::from_mode(0o140_755), Ok(FileKind::Socket));
        assert_eq!(FileKind::from_mode(0o010_644), Ok(FileKind::Fifo));
        assert_eq!(FileKind::from_mode(0o020_644), Ok(FileKind::CharDevice));
    }

    #[test]
    fn devices_are_kinds_and_unknown_types_are_eperm() {
        assert_eq!(FileKind::from_mode(0o060_644), Ok(FileKind::BlockDevice));
        assert_eq!(FileKind::from_mode(0o020_644), Ok(FileKind::CharDevice));
        assert_eq!(FileKind::from_mode(0o000_644), Err(Errno::EPERM));
        assert_eq!(FileKind::from_mode(0o160_000), Err(Errno::EPERM));
    }
}
