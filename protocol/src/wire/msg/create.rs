//! MkdirAt (MID 13), MknodAt (MID 14), SymlinkAt (MID 15) and LinkAt (MID 16).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::wire::codec::{fixed_wire, wire_struct};
use crate::wire::types::{fixed_struct, CreateCommon, FdId, Gid, Inode, SizedString, Uid};

wire_struct! {
    /// MkdirAt request.
    pub struct MkdirAtReq {
        /// Directory, owner, group and permission bits.
        pub common: CreateCommon,
        /// Name of the new directory.
        pub name: SizedString,
    }

    /// MknodAt request.
    pub struct MknodAtReq {
        /// Directory, owner, group, and mode including the file type bits.
        pub common: CreateCommon,
        /// Device minor number.
        pub minor: u32,
        /// Device major number.
        pub major: u32,
        /// Name of the new node.
        pub name: SizedString,
    }

    /// SymlinkAt request.
    pub struct SymlinkAtReq {
        /// Control FD of the directory.
        pub dir_fd: FdId,
        /// Owner, or [`Uid::NONE`].
        pub uid: Uid,
        /// Group, or [`Gid::NONE`].
        pub gid: Gid,
        /// Name of the new symlink.
        pub name: SizedString,
        /// What it points to (stored, never followed by the server).
        pub target: SizedString,
    }

    /// LinkAt request: a new hard link to an existing non-directory.
    pub struct LinkAtReq {
        /// Control FD of the directory to link into.
        pub dir_fd: FdId,
        /// Control FD of the existing file.
        pub target: FdId,
        /// Name of the new link.
        pub name: SizedString,
    }
}

fixed_struct! {
    /// MkdirAt response.
    pub struct MkdirAtResp {
        /// Control FD and stat of the new directory.
        pub child: Inode,
    }

    /// MknodAt response.
    pub struct MknodAtResp {
        /// Control FD and stat of the new node.
        pub child: Inode,
    }

    /// SymlinkAt response.
    pub struct SymlinkAtResp {
        /// Control FD and stat of the new symlink.
        pub symlink: Inode,
    }

    /// LinkAt response.
    pub struct LinkAtResp {
        /// Control FD and stat of the new link.
        pub link: Inode,
    }
}

fixed_wire! {
    MkdirAtResp = 152,
    MknodAtResp = 152,
    SymlinkAtResp = 152,
    LinkAtResp = 152,
}
