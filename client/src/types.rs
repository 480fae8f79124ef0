//! Value types of the client API: flag constants, SetStat's request and outcome, file
//! types and directory entries.

use lisafs_protocol::wire::{Dirent64, Errno, Gid, SetStatReq, SetStatResp, Timespec, Uid};

/// `open(2)` access mode: read only.
pub const O_RDONLY: u32 = 0;
/// `open(2)` access mode: write only.
pub const O_WRONLY: u32 = 1;
/// `open(2)` access mode: read and write.
pub const O_RDWR: u32 = 2;
/// `open(2)`: truncate on open. With the access mode, the only flag lisafs servers keep.
pub const O_TRUNC: u32 = 0o1000;
/// `unlinkat(2)`: remove a directory.
pub const AT_REMOVEDIR: u32 = 0x200;
/// `renameat2(2)`: fail if the destination exists.
pub const RENAME_NOREPLACE: u32 = 1;
/// `renameat2(2)`: swap source and destination.
pub const RENAME_EXCHANGE: u32 = 2;
/// `setxattr(2)`: fail if the attribute exists.
pub const XATTR_CREATE: u32 = 1;
/// `setxattr(2)`: fail if the attribute does not exist.
pub const XATTR_REPLACE: u32 = 2;
/// `socket(2)` type: stream.
pub const SOCK_STREAM: u32 = 1;
/// `socket(2)` type: datagram.
pub const SOCK_DGRAM: u32 = 2;
/// `socket(2)` type: sequenced packets.
pub const SOCK_SEQPACKET: u32 = 5;

/// The attributes one SetStat should change; `None` leaves an attribute alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetStat {
    /// New permission bits (only `0o7777` is used).
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (truncate or extend).
    pub size: Option<u64>,
    /// New access time; `nsec` may be `UTIME_NOW` or `UTIME_OMIT`.
    pub atime: Option<Timespec>,
    /// New modification time; `nsec` may be `UTIME_NOW` or `UTIME_OMIT`.
    pub mtime: Option<Timespec>,
}

impl SetStat {
    /// The wire request for `fd`, with the mask built from the fields that are set.
    pub(crate) fn to_req(self, fd: lisafs_protocol::wire::FdId) -> SetStatReq {
        let mut mask = 0;
        let mut bit = |set: bool, flag: u32| {
            if set {
                mask |= flag;
            }
        };
        bit(self.mode.is_some(), SetStatReq::MODE);
        bit(self.uid.is_some(), SetStatReq::UID);
        bit(self.gid.is_some(), SetStatReq::GID);
        bit(self.size.is_some(), SetStatReq::SIZE);
        bit(self.atime.is_some(), SetStatReq::ATIME);
        bit(self.mtime.is_some(), SetStatReq::MTIME);
        SetStatReq {
            fd,
            mask,
            mode: self.mode.unwrap_or(0),
            uid: self.uid.map_or(Uid::NONE, Uid),
            gid: self.gid.map_or(Gid::NONE, Gid),
            size: self.size.unwrap_or(0),
            atime: self.atime.unwrap_or_default(),
            mtime: self.mtime.unwrap_or_default(),
        }
    }
}

/// What SetStat could not do. A partial failure is not an RPC error in lisafs: the RPC
/// succeeds and says which attributes failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetStatOutcome {
    /// STATX bits (`SetStatReq::MODE`, ...) of the attributes that were not applied.
    pub failure_mask: u32,
    /// The errno of the last failure, if any attribute failed.
    pub failure_errno: Option<Errno>,
}

impl SetStatOutcome {
    pub(crate) fn from_wire(resp: SetStatResp) -> Self {
        let failure_errno = match (resp.failure_mask, resp.failure_errno) {
            (0, _) => None,
            // A failure without an errno still failed; say EIO rather than "Success".
            (_, 0) => Some(Errno::EIO),
            (_, errno) => Some(Errno(errno)),
        };
        Self {
            failure_mask: resp.failure_mask,
            failure_errno,
        }
    }

    /// Whether every requested attribute was applied.
    pub fn is_complete(&self) -> bool {
        self.failure_mask == 0
    }
}

/// The type of a file, from a `Statx` mode or a directory entry's `d_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A Unix socket.
    Socket,
    /// A FIFO.
    Fifo,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// Not reported, or a value this client does not know.
    Unknown,
}

impl FileType {
    /// From the `S_IFMT` bits of a mode (`Statx::mode`).
    pub fn from_mode(mode: u16) -> Self {
        use lisafs_protocol::wire::{
            S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
        };
        match mode & S_IFMT {
            S_IFREG => Self::Regular,
            S_IFDIR => Self::Directory,
            S_IFLNK => Self::Symlink,
            S_IFSOCK => Self::Socket,
            S_IFIFO => Self::Fifo,
            S_IFCHR => Self::CharDevice,
            S_IFBLK => Self::BlockDevice,
            _ => Self::Unknown,
        }
    }

    /// The letter `ls -l` shows for it: `-`, `d`, `l`, `s`, `p`, `c`, `b`, or `?`.
    pub fn ls_char(self) -> char {
        match self {
            Self::Regular => '-',
            Self::Directory => 'd',
            Self::Symlink => 'l',
            Self::Socket => 's',
            Self::Fifo => 'p',
            Self::CharDevice => 'c',
            Self::BlockDevice => 'b',
            Self::Unknown => '?',
        }
    }

    /// From a directory entry's `DT_*` value.
    pub fn from_dirent_type(d_type: u8) -> Self {
        match d_type {
            8 => Self::Regular,
            4 => Self::Directory,
            10 => Self::Symlink,
            12 => Self::Socket,
            1 => Self::Fifo,
            2 => Self::CharDevice,
            6 => Self::BlockDevice,
            _ => Self::Unknown,
        }
    }

    /// Whether this is a directory.
    pub fn is_dir(self) -> bool {
        self == Self::Directory
    }

    /// Whether this is a symlink.
    pub fn is_symlink(self) -> bool {
        self == Self::Symlink
    }
}

/// One entry of a directory listing ("." and ".." are never included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name (bytes; not necessarily UTF-8).
    pub name: Vec<u8>,
    /// Inode number.
    pub ino: u64,
    /// File type as the directory reports it.
    pub file_type: FileType,
    /// Major number of the device holding the entry.
    pub dev_major: u32,
    /// Minor number of the device holding the entry.
    pub dev_minor: u32,
}

impl DirEntry {
    pub(crate) fn from_wire(dirent: Dirent64<'_>) -> Self {
        Self {
            ino: dirent.ino,
            file_type: FileType::from_dirent_type(dirent.d_type),
            dev_major: dirent.dev_major,
            dev_minor: dirent.dev_minor,
            name: dirent.name.to_vec(),
        }
    }

    /// The name, with invalid UTF-8 replaced (for display).
    pub fn name_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }
}
