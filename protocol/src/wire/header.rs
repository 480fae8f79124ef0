//! Frame headers and size limits.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::codec::fixed_wire;
use super::mid::{Mid, UnknownMid};
use super::types::fixed_struct;

/// Largest payload (header excluded) our server accepts or sends: 2 MiB − 4 KiB, gVisor's
/// value on 4 KiB-page hosts. We use it on every host, so that a 64 KiB-page host does not
/// advertise (and map per channel) gVisor's 512 MiB.
pub const MAX_MESSAGE_SIZE: u32 = 2 * 1024 * 1024 - 4096;

/// The payload limit a client assumes until the Mount response tells it the server's.
pub const DEFAULT_CLIENT_MAX_MESSAGE_SIZE: u32 = 1024 * 1024;

fixed_struct! {
    /// The 8-byte header before every message on the socket. It carries no FD count: the
    /// receiver knows from the MID how many FDs may come ([`Mid::response_fds`]).
    pub struct SocketHeader {
        /// Payload bytes after the header.
        pub payload_len: u32,
        /// The message ID, raw: an unknown value must still be answered (EOPNOTSUPP).
        pub mid: u16,
        /// Padding, sent as zero.
        pub _pad: u16,
    }

    /// The 4-byte header at offset 16 of a channel's packet window; the payload length
    /// comes from the flipcall `dataLen` word instead.
    pub struct ChannelHeader {
        /// The message ID, raw.
        pub mid: u16,
        /// How many FDs follow on the channel's FD socket (always 0 in requests).
        pub num_fds: u8,
        /// Padding, sent as zero.
        pub _pad: u8,
    }
}

fixed_wire! {
    SocketHeader = 8,
    ChannelHeader = 4,
}

impl SocketHeader {
    /// Size on the wire.
    pub const SIZE: usize = 8;

    /// A header for `payload_len` bytes of message `mid`.
    pub fn new(mid: Mid, payload_len: u32) -> Self {
        Self {
            payload_len,
            mid: mid.as_u16(),
            _pad: 0,
        }
    }

    /// The MID, if it is one we know.
    pub fn mid(&self) -> Result<Mid, UnknownMid> {
        Mid::try_from(self.mid)
    }
}

impl ChannelHeader {
    /// Size on the wire.
    pub const SIZE: usize = 4;

    /// The MID, if it is one we know.
    pub fn mid(&self) -> Result<Mid, UnknownMid> {
        Mid::try_from(self.mid)
    }
}
