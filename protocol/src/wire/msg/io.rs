//! PWrite (MID 11), PRead (MID 12) and FAllocate (MID 18).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::wire::codec::{
    encode_with, fixed_wire, wire_struct, DecodeError, Decoder, EncodeError, Encoder, Wire,
};
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
        PWriteData {
            offset: self.offset,
            fd: self.fd,
            data: &self.data,
        }
        .encode(enc);
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let view = PWriteData::read(dec)?;
        Ok(Self {
            offset: view.offset,
            fd: view.fd,
            data: view.data.to_vec(),
        })
    }
}

/// A PWrite request with its data borrowed, encoded exactly as [`PWriteReq`]: a client
/// encodes it from the caller's buffer and a server decodes it in place, so a long write
/// is not copied into a request of its own on either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PWriteData<'a> {
    /// File offset.
    pub offset: u64,
    /// Writable open FD.
    pub fd: FdId,
    /// Bytes to write.
    pub data: &'a [u8],
}

impl<'a> PWriteData<'a> {
    /// Decodes a PWrite request's payload, the data borrowed from it; bytes after the
    /// data are ignored, as by every decoder here.
    pub fn decode(payload: &'a [u8]) -> Result<Self, DecodeError> {
        Self::read(&mut Decoder::new(payload))
    }

    /// Appends the request's encoding to `out`; on error (data of 4 GiB or more) `out` is
    /// left as it was.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        encode_with(out, |enc| self.encode(enc))
    }

    /// Appends all of the encoding but the data, which must follow it on the wire: for a
    /// sender that writes the data from where it is (errors as [`encode_into`]'s).
    ///
    /// [`encode_into`]: Self::encode_into
    pub fn encode_fixed_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        encode_with(out, |enc| self.encode_fixed(enc))
    }

    fn read(dec: &mut Decoder<'a>) -> Result<Self, DecodeError> {
        let head = PWriteHead::read(dec)?;
        let data = dec.take(head.len())?;
        Ok(Self {
            offset: head.offset,
            fd: head.fd,
            data,
        })
    }

    fn encode(&self, enc: &mut Encoder<'_>) {
        self.encode_fixed(enc);
        enc.put(self.data);
    }

    fn encode_fixed(&self, enc: &mut Encoder<'_>) {
        self.offset.encode(enc);
        self.fd.encode(enc);
        enc.put_len_u32(self.data.len());
    }
}

/// The fixed part of a PWrite request, the 20 bytes before its data: all a server needs
/// to copy of a PWrite whose data it writes from where it arrived (a channel's window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PWriteHead {
    /// File offset.
    pub offset: u64,
    /// Writable open FD.
    pub fd: FdId,
    /// Bytes of data that follow.
    pub count: u32,
}

impl PWriteHead {
    /// Bytes on the wire.
    pub const SIZE: usize = 20;

    /// Decodes the fixed part at the start of a PWrite request's payload; whatever
    /// follows it is not looked at.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        Self::read(&mut Decoder::new(payload))
    }

    /// The data's length as a `usize` (saturating where `u32` does not fit, so that it
    /// can never be taken).
    pub fn len(&self) -> usize {
        usize::try_from(self.count).unwrap_or(usize::MAX)
    }

    /// Whether the request carries no data.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn read(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            offset: u64::decode(dec)?,
            fd: FdId::decode(dec)?,
            count: u32::decode(dec)?,
        })
    }
}

/// PRead response: the bytes read, after a `u64` count. Zero bytes means end of file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct PReadResp {
    /// Bytes read.
    pub data: Vec<u8>,
}

impl PReadResp {
    /// Bytes before the data: the `u64` count.
    pub const HEADER_SIZE: usize = 8;

    /// The count that precedes `n` bytes of data, for a response whose data was written
    /// in place (after [`PReadResp::HEADER_SIZE`] bytes of room).
    pub fn header(n: usize) -> [u8; Self::HEADER_SIZE] {
        (n as u64).to_le_bytes()
    }

    /// Encodes into `out` (replacing what it held) the response to a read of up to
    /// `count` bytes, which `read` reads straight into place and counts; returns that
    /// count. A count larger than the room given is clamped. `out`'s old bytes are
    /// overwritten, not cleared first: a buffer that already held a response this large
    /// is not zero-filled again for each read.
    pub fn encode_read<E>(
        out: &mut Vec<u8>,
        count: usize,
        read: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        out.resize(Self::HEADER_SIZE + count, 0);
        let n = match read(&mut out[Self::HEADER_SIZE..]) {
            Ok(n) => n.min(count),
            Err(err) => {
                out.clear();
                return Err(err);
            }
        };
        out.truncate(Self::HEADER_SIZE + n);
        out[..Self::HEADER_SIZE].copy_from_slice(&Self::header(n));
        Ok(n)
    }

    /// The data of an encoded response, borrowed from `payload`.
    pub fn decode_data(payload: &[u8]) -> Result<&[u8], DecodeError> {
        let mut dec = Decoder::new(payload);
        let len = usize::try_from(u64::decode(&mut dec)?).unwrap_or(usize::MAX);
        dec.take(len)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::codec::{decode, encode};

    #[test]
    fn a_read_encoded_in_place_is_the_typed_encoding() {
        // A buffer that held a longer response: its stale bytes must not survive.
        let mut out = vec![0xee; 64];
        let n = PReadResp::encode_read(&mut out, 16, |data| {
            data[..5].copy_from_slice(b"hello");
            Ok::<_, ()>(5)
        });
        assert_eq!(n, Ok(5));
        // The wire vector of SPEC.md §6.12.
        assert_eq!(out, b"\x05\0\0\0\0\0\0\0hello");
        assert_eq!(decode::<PReadResp>(&out).unwrap().data, b"hello");
        assert_eq!(PReadResp::decode_data(&out), Ok(&b"hello"[..]));
        // A reader that claims more than it was given is held to the room.
        let n = PReadResp::encode_read(&mut out, 4, |_| Ok::<_, ()>(usize::MAX));
        assert_eq!((n, out.len()), (Ok(4), 12));
        // A failed read leaves nothing.
        assert_eq!(PReadResp::encode_read(&mut out, 4, |_| Err(7)), Err(7));
        assert!(out.is_empty());
    }

    #[test]
    fn borrowed_data_is_bounds_checked() {
        assert!(PReadResp::decode_data(b"\x05\0\0\0\0\0\0\0hell").is_err());
        assert!(PReadResp::decode_data(b"\x05\0\0").is_err());
        let huge = u64::MAX.to_le_bytes();
        assert!(PReadResp::decode_data(&huge).is_err());
    }

    #[test]
    fn a_borrowed_pwrite_is_encoded_and_decoded_as_the_owned_one() {
        let owned = PWriteReq {
            offset: 0x0102_0304_0506_0708,
            fd: FdId(9),
            data: b"hello".to_vec(),
        };
        let bytes = encode(&owned).unwrap();
        let view = PWriteData {
            offset: owned.offset,
            fd: owned.fd,
            data: &owned.data,
        };
        let mut again = b"kept".to_vec();
        view.encode_into(&mut again).unwrap();
        assert_eq!(again[4..], bytes[..], "appended after what the buffer held");
        let mut fixed = Vec::new();
        view.encode_fixed_into(&mut fixed).unwrap();
        fixed.extend_from_slice(view.data);
        assert_eq!(fixed, bytes, "the fixed part, then the data");
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(b"ignored");
        assert_eq!(PWriteData::decode(&trailing), Ok(view));
        for cut in 0..bytes.len() {
            assert!(PWriteData::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // The head alone: the fixed part, whatever follows it or not.
        let head = PWriteHead {
            offset: owned.offset,
            fd: owned.fd,
            count: 5,
        };
        assert_eq!(PWriteHead::decode(&bytes), Ok(head));
        assert_eq!(PWriteHead::decode(&bytes[..PWriteHead::SIZE]), Ok(head));
        assert!(PWriteHead::decode(&bytes[..PWriteHead::SIZE - 1]).is_err());
        assert_eq!(head.len(), 5);
    }
}
