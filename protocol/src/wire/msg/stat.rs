//! FStat (MID 3), SetStat (MID 4) and FStatFS (MID 17).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::wire::codec::fixed_wire;
use crate::wire::types::{fixed_struct, FdId, Gid, StatFS, Statx, Timespec, Uid};
use crate::wire::Errno;

fixed_struct! {
    /// FStat request: stat a control or open FD.
    pub struct FStatReq {
        /// The FD to stat.
        pub fd: FdId,
    }

    /// FStat response.
    pub struct FStatResp {
        /// The file's attributes.
        pub stat: Statx,
    }

    /// SetStat request: change the attributes selected by `mask` (STATX bits).
    pub struct SetStatReq {
        /// Control FD of the file.
        pub fd: FdId,
        /// Which attributes to set: [`SetStatReq::SUPPORTED_MASK`] bits only.
        pub mask: u32,
        /// New permission bits (`MODE`).
        pub mode: u32,
        /// New owner (`UID`).
        pub uid: Uid,
        /// New group (`GID`).
        pub gid: Gid,
        /// New size (`SIZE`).
        pub size: u64,
        /// New access time (`ATIME`); `nsec` may be `UTIME_NOW`/`UTIME_OMIT`.
        pub atime: Timespec,
        /// New modification time (`MTIME`); `nsec` may be `UTIME_NOW`/`UTIME_OMIT`.
        pub mtime: Timespec,
    }

    /// SetStat response. A partial failure is not an RPC error: it is reported here.
    pub struct SetStatResp {
        /// STATX bits of the attributes that could not be set.
        pub failure_mask: u32,
        /// The errno of the (last) failure, 0 if none.
        pub failure_errno: u32,
    }

    /// FStatFS request.
    pub struct FStatFSReq {
        /// Control FD of any file on the filesystem.
        pub fd: FdId,
    }

    /// FStatFS response.
    pub struct FStatFSResp {
        /// The filesystem's statistics.
        pub stat: StatFS,
    }
}

fixed_wire! {
    FStatReq = 8,
    FStatResp = 144,
    SetStatReq = 64,
    SetStatResp = 8,
    FStatFSReq = 8,
    FStatFSResp = 64,
}

impl SetStatReq {
    /// `STATX_MODE`: set the permission bits.
    pub const MODE: u32 = 0x2;
    /// `STATX_UID`: set the owner.
    pub const UID: u32 = 0x8;
    /// `STATX_GID`: set the group.
    pub const GID: u32 = 0x10;
    /// `STATX_ATIME`: set the access time.
    pub const ATIME: u32 = 0x20;
    /// `STATX_MTIME`: set the modification time.
    pub const MTIME: u32 = 0x40;
    /// `STATX_SIZE`: truncate or extend.
    pub const SIZE: u32 = 0x200;
    /// Every bit SetStat accepts; a request with any other bit fails with EPERM.
    pub const SUPPORTED_MASK: u32 =
        Self::MODE | Self::UID | Self::GID | Self::ATIME | Self::MTIME | Self::SIZE;
}

impl SetStatResp {
    /// Records how setting the attributes `bits` went: a failure adds them to the mask
    /// and makes its errno the one reported (the last failure's, as lisafs servers do).
    pub fn record(&mut self, bits: u32, result: Result<(), Errno>) {
        if let Err(errno) = result {
            self.failure_mask |= bits;
            self.failure_errno = errno.raw();
        }
    }
}
