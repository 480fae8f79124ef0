//! Mount (MID 1), Channel (MID 2) and the error response (MID 0).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::wire::codec::{fixed_wire, wire_struct};
use crate::wire::errno::Errno;
use crate::wire::mid::Mid;
use crate::wire::msg::{Message, Request};
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

    /// **(lisafs-rs)** A Mount request that tells the server how the client waits: the
    /// empty [`MountReq`] followed by these 8 bytes, which gVisor's servers ignore as
    /// trailing bytes (SPEC §5.1). Its response is a [`MountResp`].
    pub struct MountHints {
        /// [`MountHints::MAGIC`]; anything else means "no hints".
        pub magic: u32,
        /// `MountHints::*` flag bits; a server ignores bits it does not know.
        pub flags: u32,
    }
}

fixed_wire! {
    ChannelResp = 16,
    ErrorResp = 4,
    MountHints = 8,
}

impl MountHints {
    /// Marks the bytes after an empty Mount request as hints: `"LRS1"` on the wire.
    pub const MAGIC: u32 = u32::from_le_bytes(*b"LRS1");

    /// The client polls its socket for a while before it blocks for a response, so a
    /// server that polls for the next request saves both ends a wake-up.
    pub const POLLS: u32 = 1;

    /// What every lisafs-rs client sends.
    pub const OURS: Self = Self {
        magic: Self::MAGIC,
        flags: Self::POLLS,
    };

    /// The hints in a Mount request's payload, if it carries any.
    pub fn of(payload: &[u8]) -> Option<Self> {
        crate::wire::decode::<Self>(payload)
            .ok()
            .filter(|hints| hints.magic == Self::MAGIC)
    }

    /// Whether the client said it polls for responses.
    pub fn polls(&self) -> bool {
        self.flags & Self::POLLS != 0
    }
}

impl Message for MountHints {
    const MID: Mid = Mid::Mount;
}

impl Request for MountHints {
    type Response = MountResp;
}

impl MountResp {
    /// Whether the server listed `mid` as supported.
    pub fn supports(&self, mid: Mid) -> bool {
        self.supported.contains(&mid.as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{encode, AnyRequest};

    #[test]
    fn hints_are_eight_bytes_that_an_empty_mount_request_ignores() {
        let bytes = encode(&MountHints::OURS).expect("fixed size");
        assert_eq!(bytes, b"LRS1\x01\0\0\0");
        // What a server without hints decodes: the plain Mount request.
        let plain = AnyRequest::decode(Mid::Mount, &bytes).expect("trailing bytes ignored");
        assert_eq!(plain, AnyRequest::Mount(MountReq {}));
        assert_eq!(MountHints::of(&bytes), Some(MountHints::OURS));
        assert!(MountHints::OURS.polls());
    }

    #[test]
    fn only_whole_hints_behind_the_magic_count() {
        assert_eq!(MountHints::of(b""), None);
        assert_eq!(MountHints::of(b"LRS1\x01\0\0"), None, "short");
        assert_eq!(MountHints::of(b"LRS2\x01\0\0\0"), None, "other magic");
        // A Dec-2021 client's mount path: a u32 length, then the path.
        assert_eq!(MountHints::of(b"\x04\0\0\0/abc"), None);
        let quiet = MountHints::of(b"LRS1\0\0\0\0\xff").expect("trailing byte ignored");
        assert!(!quiet.polls());
    }
}
