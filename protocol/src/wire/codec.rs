//! The one encoder and the one bounds-checked decoder every message goes through.
//!
//! Every wire type implements [`Wire`]. Fixed-size structs are zerocopy types copied in and
//! out whole ([`fixed_wire!`]); messages with variable parts are encoded field by field in
//! declaration order with no alignment between fields ([`wire_struct!`]), exactly as lisafs
//! does. Decoding never panics, never reads past its input and never allocates more than
//! the input could justify: a list's element count is checked against the bytes left
//! before any allocation.

use zerocopy::{FromBytes, Immutable, KnownLayout};

/// A value with a lisafs wire encoding.
pub trait Wire: Sized {
    /// The fewest bytes any encoding of this type occupies. List decoders use it to reject
    /// an element count the remaining input cannot hold before they allocate.
    const MIN_SIZE: usize;

    /// Appends the encoding of `self`.
    fn encode(&self, enc: &mut Encoder<'_>);

    /// Decodes one value from the front of `dec`.
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError>;
}

/// Why bytes could not be decoded as the requested type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended before the message did.
    #[error("message truncated: {needed} more bytes needed, {available} available")]
    Truncated {
        /// Bytes the next field (or the declared element count) needs.
        needed: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// A field held a value outside its defined range (e.g. an unknown walk status).
    #[error("invalid {what}: {value}")]
    InvalidValue {
        /// The field.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// The message ID has no message of the requested kind (e.g. MID 0 as a request).
    #[error("MID {0} has no message of this kind")]
    NoSuchMessage(u16),
}

/// Why a value could not be encoded: a length does not fit its wire prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("length {len} does not fit the wire's limit of {max}")]
pub struct EncodeError {
    /// The length that was too large.
    pub len: usize,
    /// The largest length the prefix can carry.
    pub max: usize,
}

/// Appends wire encodings to a caller's buffer.
///
/// A length that does not fit its prefix poisons the encoder instead of failing at once, so
/// that [`Wire::encode`] stays infallible; [`encode_into`] reports the error and truncates
/// the buffer back, so a poisoned encoding never escapes.
#[derive(Debug)]
pub struct Encoder<'a> {
    buf: &'a mut Vec<u8>,
    error: Option<EncodeError>,
}

impl Encoder<'_> {
    /// Appends raw bytes.
    pub fn put(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Appends `len` as a `u16` length or count prefix.
    pub fn put_len_u16(&mut self, len: usize) {
        let prefix = u16::try_from(len).unwrap_or_else(|_| self.poison(len, u16::MAX.into()));
        prefix.encode(self);
    }

    /// Appends `len` as a `u32` length prefix.
    pub fn put_len_u32(&mut self, len: usize) {
        let prefix = u32::try_from(len).unwrap_or_else(|_| self.poison(len, u32::MAX as usize));
        prefix.encode(self);
    }

    /// Records the first oversized length; the prefix written in its place is never seen.
    fn poison<T: Default>(&mut self, len: usize, max: usize) -> T {
        self.error.get_or_insert(EncodeError { len, max });
        T::default()
    }
}

/// Encodes `msg` into a new buffer.
pub fn encode<T: Wire>(msg: &T) -> Result<Vec<u8>, EncodeError> {
    let mut buf = Vec::with_capacity(T::MIN_SIZE);
    encode_into(msg, &mut buf)?;
    Ok(buf)
}

/// Appends the encoding of `msg` to `buf`; on error `buf` is left as it was.
pub fn encode_into<T: Wire>(msg: &T, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_with(buf, |enc| msg.encode(enc))
}

/// Appends what `encode` writes to `buf`; on error `buf` is left as it was.
pub(crate) fn encode_with(
    buf: &mut Vec<u8>,
    encode: impl FnOnce(&mut Encoder<'_>),
) -> Result<(), EncodeError> {
    let start = buf.len();
    let mut enc = Encoder { buf, error: None };
    encode(&mut enc);
    match enc.error {
        None => Ok(()),
        Some(err) => {
            buf.truncate(start);
            Err(err)
        }
    }
}

/// Decodes a `T` from the front of `payload`. Trailing bytes after a complete message are
/// ignored, as gVisor's decoders ignore them.
pub fn decode<T: Wire>(payload: &[u8]) -> Result<T, DecodeError> {
    T::decode(&mut Decoder::new(payload))
}

/// A cursor over untrusted input. Every read is bounds-checked.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    rest: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// Starts decoding at the front of `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Self { rest: input }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Consumes exactly `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.rest.len() {
            return Err(DecodeError::Truncated {
                needed: n,
                available: self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// Consumes a fixed-size zerocopy value (copied out, so alignment does not matter).
    pub fn read<T: FromBytes + KnownLayout + Immutable>(&mut self) -> Result<T, DecodeError> {
        let bytes = self.take(size_of::<T>())?;
        T::read_from_bytes(bytes).map_err(|_| DecodeError::Truncated {
            needed: size_of::<T>(),
            available: bytes.len(),
        })
    }

    /// Checks that `count` elements of at least `min_size` bytes each can still follow,
    /// so that a hostile count never drives an allocation the input cannot back.
    pub fn check_count(&self, count: usize, min_size: usize) -> Result<(), DecodeError> {
        let needed = count.saturating_mul(min_size);
        if needed > self.rest.len() {
            return Err(DecodeError::Truncated {
                needed,
                available: self.rest.len(),
            });
        }
        Ok(())
    }
}

macro_rules! le_integer_wire {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            const MIN_SIZE: usize = size_of::<$t>();
            fn encode(&self, enc: &mut Encoder<'_>) {
                enc.put(&self.to_le_bytes());
            }
            fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
                let bytes = dec.take(size_of::<$t>())?;
                let mut raw = [0u8; size_of::<$t>()];
                raw.copy_from_slice(bytes);
                Ok(<$t>::from_le_bytes(raw))
            }
        }
    )*};
}
le_integer_wire!(u8, u16, u32, u64, i32, i64);

/// A list with a `u16` element count, then the elements back to back (lisafs
/// `StringArray`, `FdArray`, the MID list, Walk's inodes, Getdents64's entries).
impl<T: Wire> Wire for Vec<T> {
    const MIN_SIZE: usize = 2;

    fn encode(&self, enc: &mut Encoder<'_>) {
        enc.put_len_u16(self.len());
        for item in self {
            item.encode(enc);
        }
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let count = usize::from(u16::decode(dec)?);
        dec.check_count(count, T::MIN_SIZE.max(1))?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(T::decode(dec)?);
        }
        Ok(items)
    }
}

/// Implements [`Wire`] for fixed-size zerocopy structs and asserts each one's size at
/// compile time, so a layout that drifts from SPEC.md does not build.
macro_rules! fixed_wire {
    ($($t:ty = $size:expr),* $(,)?) => {$(
        const _: () = assert!(size_of::<$t>() == $size);
        impl $crate::wire::Wire for $t {
            const MIN_SIZE: usize = $size;
            fn encode(&self, enc: &mut $crate::wire::Encoder<'_>) {
                enc.put(zerocopy::IntoBytes::as_bytes(self));
            }
            fn decode(dec: &mut $crate::wire::Decoder<'_>) -> Result<Self, $crate::wire::DecodeError> {
                dec.read()
            }
        }
    )*};
}
pub(crate) use fixed_wire;

/// Declares a message with variable parts: a struct whose fields are encoded one after the
/// other in declaration order, each by its own [`Wire`] impl.
macro_rules! wire_struct {
    ($(
        $(#[$meta:meta])*
        pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident : $ty:ty),* $(,)? }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        #[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
        pub struct $name { $($(#[$fmeta])* pub $field: $ty),* }

        impl $crate::wire::Wire for $name {
            const MIN_SIZE: usize = 0 $(+ <$ty as $crate::wire::Wire>::MIN_SIZE)*;
            #[allow(unused_variables)]
            fn encode(&self, enc: &mut $crate::wire::Encoder<'_>) {
                $($crate::wire::Wire::encode(&self.$field, enc);)*
            }
            #[allow(unused_variables)]
            fn decode(dec: &mut $crate::wire::Decoder<'_>) -> Result<Self, $crate::wire::DecodeError> {
                Ok(Self { $($field: $crate::wire::Wire::decode(dec)?),* })
            }
        }
    )*};
}
pub(crate) use wire_struct;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_count_beyond_input_is_rejected_before_allocation() {
        // 65535 u64 elements declared, none present.
        let err = decode::<Vec<u64>>(&[0xff, 0xff]).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Truncated {
                needed: 65535 * 8,
                available: 0
            }
        );
    }

    #[test]
    fn oversized_list_poisons_the_encoding_and_leaves_the_buffer() {
        let mut buf = vec![7u8];
        let err = encode_into(&vec![0u8; 70_000], &mut buf).unwrap_err();
        assert_eq!(
            err,
            EncodeError {
                len: 70_000,
                max: 65_535
            }
        );
        assert_eq!(buf, [7]);
    }

    #[test]
    fn integers_are_little_endian() {
        assert_eq!(encode(&0x0102_0304u32).unwrap(), [4, 3, 2, 1]);
        assert_eq!(decode::<i32>(&[0, 0, 0xff, 0xff]).unwrap(), -65536);
    }
}
