//! Mount (MID 1), Channel (MID 2) and the error response (MID 0).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::wire::codec::{fixed_wire, wire_struct};
use crate::wire::errno::Errno;
use crate::wire::mid::Mid;
use crate::wire::types::{fixed_struct, Inode};

wire_struct! {
    /// Mount request: empty. The served path is server configuration, never sent.
    pub struct MountReq {}

    /// Mount response: the root, the server's payload limit and the MIDs it serves.
    pub struct MountResp {
        /// Control FD and stat of the mount point.
        pub root: Inode,
        /// Largest payload the server accepts and sends; the client adopts it.
        pub max_message_size: u32,
        /// MIDs the server supports (raw: a newer server may list MIDs we do not know).
        pub supported: Vec<u16>,
    }

    /// Channel request: empty.
    pub struct ChannelReq {}
}

fixed_struct! {
    /// Channel response: where the channel's packet window lies in the donated memfd.
    /// Donates `[memfd, fd-socket]`.
    pub struct ChannelResp {
        /// Offset of the window in the memfd.
        pub data_offset: i64,
        /// Length of the window.
        pub data_length: u64,
    }

    /// The response to any failed request (MID 0).
    pub struct ErrorResp {
        /// What went wrong.
        pub errno: Errno,
    }
}

fixed_wire! {
    ChannelResp = 16,
    ErrorResp = 4,
}

impl MountResp {
    /// Whether the server listed `mid` as supported.
    pub fn supports(&self, mid: Mid) -> bool {
        self.supported.contains(&mid.as_u16())
    }
}
