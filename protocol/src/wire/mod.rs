//! The lisafs wire format: pure bytes ⇄ types, no I/O.
//!
//! Integers are little-endian; fixed structs are packed with explicit padding (sent as
//! zero); variable parts follow field by field with no alignment. [`Wire`] is the one
//! encoder/decoder, [`Mid`] names each message, and [`msg`](self) holds an `XReq`/`XResp`
//! pair for every MID. Decoding untrusted bytes never panics, never reads past the input
//! and never allocates more than the input could justify. SPEC.md is the normative text.
#![forbid(unsafe_code)]

#[cfg(not(target_endian = "little"))]
compile_error!("lisafs is little-endian on the wire and zerocopy structs use native order");

mod codec;
mod dirent;
mod errno;
mod header;
mod mid;
mod msg;
mod types;

pub use codec::{decode, encode, encode_into, DecodeError, Decoder, EncodeError, Encoder, Wire};
pub use dirent::{linux_reclen, Dirent64, DirentIter, DirentList, DIRENT64_FIXED_SIZE};
pub use errno::Errno;
pub use header::{ChannelHeader, SocketHeader, DEFAULT_CLIENT_MAX_MESSAGE_SIZE, MAX_MESSAGE_SIZE};
pub use mid::{Mid, UnknownMid};
pub use msg::*;
pub use types::{
    CreateCommon, FdArray, FdId, Gid, Inode, SizedString, StatFS, Statx, StatxTimestamp,
    StringArray, Timespec, Uid, WalkStatus, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT,
    S_IFREG, S_IFSOCK,
};
