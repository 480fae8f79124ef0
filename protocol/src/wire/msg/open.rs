//! OpenAt (MID 7), OpenCreateAt (MID 8), Close (MID 9), FSync (MID 10) and Flush (MID 20).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::wire::codec::{fixed_wire, wire_struct};
use crate::wire::types::{fixed_struct, CreateCommon, FdArray, FdId, Inode, SizedString};

fixed_struct! {
    /// OpenAt request: open the file of a control FD.
    pub struct OpenAtReq {
        /// Control FD of the file.
        pub fd: FdId,
        /// `open(2)` flags; the server keeps only `O_ACCMODE | O_TRUNC`.
        pub flags: u32,
        /// Padding, sent as zero.
        pub _pad: u32,
    }

    /// OpenAt response. May donate the opened host FD.
    pub struct OpenAtResp {
        /// The new open FD.
        pub open_fd: FdId,
    }

    /// OpenCreateAt response. May donate the opened host FD.
    pub struct OpenCreateAtResp {
        /// Control FD and stat of the new file.
        pub child: Inode,
        /// Open FD of the new file.
        pub new_fd: FdId,
    }

    /// Flush request.
    pub struct FlushReq {
        /// Open FD to flush.
        pub fd: FdId,
    }
}

fixed_wire! {
    OpenAtReq = 16,
    OpenAtResp = 8,
    OpenCreateAtResp = 160,
    FlushReq = 8,
}

wire_struct! {
    /// OpenCreateAt request: create a regular file (`O_CREAT | O_EXCL`) and open it.
    pub struct OpenCreateAtReq {
        /// Directory, owner, group and permission bits.
        pub common: CreateCommon,
        /// `open(2)` flags; the server keeps only `O_ACCMODE | O_TRUNC`.
        pub flags: u32,
        /// Name of the new file.
        pub name: SizedString,
    }

    /// Close request: drop the connection's reference to each FD. Unknown IDs are ignored.
    pub struct CloseReq {
        /// FDs to close.
        pub fds: FdArray,
    }

    /// Close response: empty.
    pub struct CloseResp {}

    /// FSync request: fsync each open FD.
    pub struct FSyncReq {
        /// Open FDs to sync.
        pub fds: FdArray,
    }

    /// FSync response: empty.
    pub struct FSyncResp {}

    /// Flush response: empty.
    pub struct FlushResp {}
}
