//! Walk (MID 5) and WalkStat (MID 6).

use crate::wire::codec::wire_struct;
use crate::wire::types::{FdId, Inode, Statx, StringArray, WalkStatus};

wire_struct! {
    /// Walk request: walk `path` one component at a time from a directory control FD.
    pub struct WalkReq {
        /// Control FD of the starting directory.
        pub dir_fd: FdId,
        /// Components: each non-empty, not "." or "..", without "/".
        pub path: StringArray,
    }

    /// Walk response: one new control FD per component walked.
    pub struct WalkResp {
        /// Why the walk stopped.
        pub status: WalkStatus,
        /// The inodes walked, in path order.
        pub inodes: Vec<Inode>,
    }

    /// WalkStat request: like Walk, but returns only stats and creates no FDs. A first
    /// component of "" stats `dir_fd` itself.
    pub struct WalkStatReq {
        /// Control FD to start from.
        pub dir_fd: FdId,
        /// Components, as for Walk (the first may be "").
        pub path: StringArray,
    }

    /// WalkStat response.
    pub struct WalkStatResp {
        /// One stat per component walked.
        pub stats: Vec<Statx>,
    }
}
