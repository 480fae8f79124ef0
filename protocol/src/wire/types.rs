//! Types shared by many messages: IDs, `Statx`, `Inode`, `StatFS`, the create prefix,
//! sized strings and directory entries. Layouts are SPEC.md §3.

use std::fmt;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::codec::{fixed_wire, DecodeError, Decoder, Encoder, Wire};

/// Derives shared by every fixed-size wire struct.
macro_rules! fixed_struct {
    ($($item:item)*) => {$(
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
        #[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
        #[repr(C)]
        $item
    )*};
}
pub(crate) use fixed_struct;

fixed_struct! {
    /// A file descriptor ID: the server's handle for a control, open or bound-socket FD.
    /// IDs are per connection, start at 1 and are never reused; 0 is never valid.
    pub struct FdId(pub u64);

    /// A `struct timespec`: seconds and nanoseconds, both signed 64-bit. `nsec` may carry
    /// `UTIME_NOW` or `UTIME_OMIT` in SetStat.
    pub struct Timespec {
        /// Seconds.
        pub sec: i64,
        /// Nanoseconds.
        pub nsec: i64,
    }

    /// A `struct statx_timestamp` (16 bytes).
    pub struct StatxTimestamp {
        /// Seconds since the epoch.
        pub sec: i64,
        /// Nanoseconds.
        pub nsec: u32,
        /// Padding, sent as zero.
        pub _pad: i32,
    }

    /// The first 144 bytes of Linux `struct statx`: lisafs's frozen copy.
    pub struct Statx {
        /// `STATX_*` bits saying which fields are valid.
        pub mask: u32,
        /// Preferred I/O block size.
        pub blksize: u32,
        /// `STATX_ATTR_*` flags.
        pub attributes: u64,
        /// Hard link count.
        pub nlink: u32,
        /// Owner.
        pub uid: u32,
        /// Group.
        pub gid: u32,
        /// File type and permission bits (`S_IFMT | 07777`).
        pub mode: u16,
        /// Padding, sent as zero.
        pub _pad0: u16,
        /// Inode number.
        pub ino: u64,
        /// Size in bytes.
        pub size: u64,
        /// 512-byte blocks allocated.
        pub blocks: u64,
        /// Which `attributes` bits are supported.
        pub attributes_mask: u64,
        /// Last access.
        pub atime: StatxTimestamp,
        /// Creation.
        pub btime: StatxTimestamp,
        /// Last status change.
        pub ctime: StatxTimestamp,
        /// Last modification.
        pub mtime: StatxTimestamp,
        /// Device major number (device files).
        pub rdev_major: u32,
        /// Device minor number (device files).
        pub rdev_minor: u32,
        /// Major number of the device holding the file.
        pub dev_major: u32,
        /// Minor number of the device holding the file.
        pub dev_minor: u32,
    }

    /// A control FD and the stat of the file it refers to.
    pub struct Inode {
        /// The new control FD.
        pub control_fd: FdId,
        /// Its file's attributes.
        pub stat: Statx,
    }

    /// `struct statfs`, reduced to what lisafs carries.
    pub struct StatFS {
        /// Filesystem magic number.
        pub fs_type: u64,
        /// Optimal transfer block size.
        pub block_size: i64,
        /// Total data blocks.
        pub blocks: u64,
        /// Free blocks.
        pub blocks_free: u64,
        /// Free blocks available to unprivileged users.
        pub blocks_available: u64,
        /// Total inodes.
        pub files: u64,
        /// Free inodes.
        pub files_free: u64,
        /// Maximum name length.
        pub name_length: u64,
    }

    /// The fields every creating request starts with (OpenCreateAt, MkdirAt, MknodAt, BindAt).
    pub struct CreateCommon {
        /// Control FD of the directory to create in.
        pub dir_fd: FdId,
        /// Owner for the new file, or [`Uid::NONE`] (the default).
        pub uid: Uid,
        /// Group for the new file, or [`Gid::NONE`] (the default).
        pub gid: Gid,
        /// File mode: permission bits, plus the type bits for MknodAt.
        pub mode: u16,
        /// Padding, sent as zero.
        pub _pad0: u16,
        /// Padding, sent as zero.
        pub _pad1: u32,
    }
}

/// Derives of an owner ID: those of every fixed struct except `Default`, which must mean
/// "not set" rather than 0, i.e. root.
macro_rules! owner_id {
    ($($item:item)*) => {$(
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
        #[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
        #[repr(C)]
        $item
    )*};
}

owner_id! {
    /// A user ID as sent on the wire; [`Uid::NONE`] (also the default) means "not set".
    pub struct Uid(pub u32);

    /// A group ID as sent on the wire; [`Gid::NONE`] (also the default) means "not set".
    pub struct Gid(pub u32);
}

impl Default for Uid {
    fn default() -> Self {
        Self::NONE
    }
}

impl Default for Gid {
    fn default() -> Self {
        Self::NONE
    }
}

fixed_wire! {
    FdId = 8,
    Uid = 4,
    Gid = 4,
    Timespec = 16,
    StatxTimestamp = 16,
    Statx = 144,
    Inode = 152,
    StatFS = 64,
    CreateCommon = 24,
}

impl FdId {
    /// The ID no FD ever has.
    pub const INVALID: FdId = FdId(0);
}

impl Uid {
    /// "Not set": leave the owner as it is.
    pub const NONE: Uid = Uid(u32::MAX);
}

impl Gid {
    /// "Not set": leave the group as it is.
    pub const NONE: Gid = Gid(u32::MAX);
}

impl fmt::Display for FdId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fd#{}", self.0)
    }
}

/// File type bits of a mode (`Statx::mode`, `CreateCommon::mode`): `mode & S_IFMT` is one
/// of the `S_IF*` values below.
pub const S_IFMT: u16 = 0o170_000;
/// Unix socket.
pub const S_IFSOCK: u16 = 0o140_000;
/// Symbolic link.
pub const S_IFLNK: u16 = 0o120_000;
/// Regular file.
pub const S_IFREG: u16 = 0o100_000;
/// Block device.
pub const S_IFBLK: u16 = 0o060_000;
/// Directory.
pub const S_IFDIR: u16 = 0o040_000;
/// Character device.
pub const S_IFCHR: u16 = 0o020_000;
/// FIFO.
pub const S_IFIFO: u16 = 0o010_000;

/// A byte string with a `u16` length prefix (no NUL terminator). Names, symlink targets
/// and xattr names and values are bytes, not necessarily UTF-8.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct SizedString(Vec<u8>);

impl SizedString {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Takes the bytes out.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SizedString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

impl From<&str> for SizedString {
    fn from(s: &str) -> Self {
        Self(s.as_bytes().to_vec())
    }
}

impl From<String> for SizedString {
    fn from(s: String) -> Self {
        Self(s.into_bytes())
    }
}

impl From<&[u8]> for SizedString {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl From<Vec<u8>> for SizedString {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl Wire for SizedString {
    const MIN_SIZE: usize = 2;

    fn encode(&self, enc: &mut Encoder<'_>) {
        enc.put_len_u16(self.0.len());
        enc.put(&self.0);
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let len = usize::from(u16::decode(dec)?);
        Ok(Self(dec.take(len)?.to_vec()))
    }
}

/// lisafs `StringArray`: a `u16` count, then that many [`SizedString`]s.
pub type StringArray = Vec<SizedString>;

/// lisafs `FdArray`: a `u16` count, then that many [`FdId`]s.
pub type FdArray = Vec<FdId>;

/// How a Walk ended (the first byte of `WalkResp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[repr(u8)]
pub enum WalkStatus {
    /// Every component was walked.
    #[default]
    Success = 0,
    /// A component does not exist; the inodes walked so far are returned.
    ComponentDoesNotExist = 1,
    /// The last inode returned is a symlink and components remain.
    ComponentSymlink = 2,
}

impl TryFrom<u8> for WalkStatus {
    type Error = DecodeError;

    fn try_from(value: u8) -> Result<Self, DecodeError> {
        match value {
            0 => Ok(Self::Success),
            1 => Ok(Self::ComponentDoesNotExist),
            2 => Ok(Self::ComponentSymlink),
            _ => Err(DecodeError::InvalidValue {
                what: "walk status",
                value: value.into(),
            }),
        }
    }
}

impl Wire for WalkStatus {
    const MIN_SIZE: usize = 1;

    fn encode(&self, enc: &mut Encoder<'_>) {
        (*self as u8).encode(enc);
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        u8::decode(dec)?.try_into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_owner_is_unset_not_root() {
        let common = CreateCommon::default();
        assert_eq!((common.uid, common.gid), (Uid::NONE, Gid::NONE));
    }
}
