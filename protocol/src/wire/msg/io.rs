//! PWrite (MID 11), PRead (MID 12) and FAllocate (MID 18).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::wire::codec::{fixed_wire, wire_struct, DecodeError, Decoder, Encoder, Wire};
use crate::wire::types::{fixed_struct, FdId};

/// PWrite request: write `data` at `offset`. The data follows the 20-byte fixed part
/// directly, after a `u32` length.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct PWriteReq {
    /// File offset.
    pub offset: u64,
    /// Writable open FD.
    pub fd: FdId,
    /// Bytes to write.
    pub data: Vec<u8>,
}

impl Wire for PWriteReq {
    const MIN_SIZE: usize = 20;

    fn encode(&self, enc: &mut Encoder<'_>) {
        self.offset.encode(enc);
        self.fd.encode(enc);
        enc.put_len_u32(self.data.len());
        enc.put(&self.data);
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let offset = u64::decode(dec)?;
        let fd = FdId::decode(dec)?;
        let len = usize::try_from(u32::decode(dec)?).unwrap_or(usize::MAX);
        let data = dec.take(len)?.to_vec();
        Ok(Self { offset, fd, data })
    }
}

/// PRead response: the bytes read, after a `u64` count. Zero bytes means end of file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct PReadResp {
    /// Bytes read.
    pub data: Vec<u8>,
}

impl Wire for PReadResp {
    const MIN_SIZE: usize = 8;

    fn encode(&self, enc: &mut Encoder<'_>) {
        // usize always fits in u64 on the 64-bit hosts lisafs runs on.
        (self.data.len() as u64).encode(enc);
        enc.put(&self.data);
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let len = usize::try_from(u64::decode(dec)?).unwrap_or(usize::MAX);
        let data = dec.take(len)?.to_vec();
        Ok(Self { data })
    }
}

fixed_struct! {
    /// PRead request: read up to `count` bytes at `offset`.
    pub struct PReadReq {
        /// File offset.
        pub offset: u64,
        /// Readable open FD.
        pub fd: FdId,
        /// Bytes wanted; `8 + count` must not exceed the message limit (else ENOBUFS).
        pub count: u32,
        /// Padding, sent as zero.
        pub _pad: u32,
    }

    /// PWrite response.
    pub struct PWriteResp {
        /// Bytes written.
        pub count: u64,
    }

    /// FAllocate request: `fallocate(2)` on a writable open FD.
    pub struct FAllocateReq {
        /// Writable open FD.
        pub fd: FdId,
        /// `fallocate(2)` mode bits.
        pub mode: u64,
        /// Start of the range.
        pub offset: u64,
        /// Length of the range.
        pub length: u64,
    }
}

fixed_wire! {
    PReadReq = 24,
    PWriteResp = 8,
    FAllocateReq = 32,
}

wire_struct! {
    /// FAllocate response: empty.
    pub struct FAllocateResp {}
}
