//! ReadLinkAt (MID 19), UnlinkAt (MID 22), RenameAt (MID 23), Getdents64 (MID 24) and
//! RenameAt2 (MID 33).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::wire::codec::{fixed_wire, wire_struct};
use crate::wire::dirent::DirentList;
use crate::wire::types::{fixed_struct, FdId, SizedString};

fixed_struct! {
    /// ReadLinkAt request.
    pub struct ReadLinkAtReq {
        /// Control FD of a symlink.
        pub fd: FdId,
    }

    /// Getdents64 request.
    pub struct Getdents64Req {
        /// Open FD of a directory.
        pub dir_fd: FdId,
        /// Byte budget; a negative value means "seek to the start first" and the budget is
        /// its magnitude.
        pub count: i32,
        /// Padding, sent as zero.
        pub _pad: u32,
    }
}

fixed_wire! {
    ReadLinkAtReq = 8,
    Getdents64Req = 16,
}

wire_struct! {
    /// ReadLinkAt response.
    pub struct ReadLinkAtResp {
        /// The symlink's target.
        pub target: SizedString,
    }

    /// UnlinkAt request.
    pub struct UnlinkAtReq {
        /// Control FD of the directory.
        pub dir_fd: FdId,
        /// `unlinkat(2)` flags (`AT_REMOVEDIR` = 0x200).
        pub flags: u32,
        /// Name to remove.
        pub name: SizedString,
    }

    /// UnlinkAt response: empty.
    pub struct UnlinkAtResp {}

    /// RenameAt request.
    pub struct RenameAtReq {
        /// Control FD of the source directory.
        pub old_dir: FdId,
        /// Control FD of the destination directory.
        pub new_dir: FdId,
        /// Source name.
        pub old_name: SizedString,
        /// Destination name.
        pub new_name: SizedString,
    }

    /// RenameAt response: empty.
    pub struct RenameAtResp {}

    /// RenameAt2 request: RenameAt with `renameat2(2)` flags at the end.
    pub struct RenameAt2Req {
        /// Control FD of the source directory.
        pub old_dir: FdId,
        /// Control FD of the destination directory.
        pub new_dir: FdId,
        /// Source name.
        pub old_name: SizedString,
        /// Destination name.
        pub new_name: SizedString,
        /// `RENAME_NOREPLACE` (1), `RENAME_EXCHANGE` (2), `RENAME_WHITEOUT` (4).
        pub flags: u32,
    }

    /// RenameAt2 response: empty.
    pub struct RenameAt2Resp {}

    /// Getdents64 response. An empty list means the end of the directory.
    pub struct Getdents64Resp {
        /// Entries, in directory order.
        pub dirents: DirentList,
    }
}
