//! Every request and response, and the table that ties each to its MID.
//!
//! For MID `X` the request is `XReq` and the response `XResp`; a failed request of any
//! MID is answered with [`ErrorResp`] (MID 0).

mod create;
mod dir;
mod io;
mod mount;
mod open;
mod socket;
mod stat;
mod walk;
mod xattr;

pub use create::*;
pub use dir::*;
pub use io::*;
pub use mount::*;
pub use open::*;
pub use socket::*;
pub use stat::*;
pub use walk::*;
pub use xattr::*;

use std::fmt::Debug;

use super::codec::{decode, encode_into, DecodeError, EncodeError, Wire};
use super::mid::Mid;

/// A message with a fixed MID.
pub trait Message: Wire + Debug {
    /// The MID this message travels under.
    const MID: Mid;
}

/// A request, and the type of its successful response.
pub trait Request: Message {
    /// What the server answers on success.
    type Response: Message;
}

impl Message for ErrorResp {
    const MID: Mid = Mid::Error;
}

/// Generates the `Message`/`Request` impls and the `AnyRequest`/`AnyResponse` enums from
/// one table, so no MID can have a request without its response or vice versa.
macro_rules! rpcs {
    ($($mid:ident: $req:ident => $resp:ident,)*) => {
        $(
            impl Message for $req {
                const MID: Mid = Mid::$mid;
            }
            impl Message for $resp {
                const MID: Mid = Mid::$mid;
            }
            impl Request for $req {
                type Response = $resp;
            }
        )*

        /// Any request, as decoded by a server that learned the MID from a header.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
        #[allow(missing_docs)]
        pub enum AnyRequest {
            $($mid($req),)*
        }

        /// Any response, including the error response.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
        #[allow(missing_docs)]
        pub enum AnyResponse {
            Error(ErrorResp),
            $($mid($resp),)*
        }

        impl AnyRequest {
            /// Decodes the payload of a request that arrived under `mid`.
            pub fn decode(mid: Mid, payload: &[u8]) -> Result<Self, DecodeError> {
                match mid {
                    $(Mid::$mid => decode(payload).map(Self::$mid),)*
                    Mid::Error => Err(DecodeError::NoSuchMessage(mid.as_u16())),
                }
            }

            /// The MID this request travels under.
            pub fn mid(&self) -> Mid {
                match self {
                    $(Self::$mid(_) => Mid::$mid,)*
                }
            }

            /// Appends the payload encoding to `buf`.
            pub fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
                match self {
                    $(Self::$mid(msg) => encode_into(msg, buf),)*
                }
            }
        }

        impl AnyResponse {
            /// Decodes the payload of a response that arrived under `mid`.
            pub fn decode(mid: Mid, payload: &[u8]) -> Result<Self, DecodeError> {
                match mid {
                    Mid::Error => decode(payload).map(Self::Error),
                    $(Mid::$mid => decode(payload).map(Self::$mid),)*
                }
            }

            /// The MID this response travels under.
            pub fn mid(&self) -> Mid {
                match self {
                    Self::Error(_) => Mid::Error,
                    $(Self::$mid(_) => Mid::$mid,)*
                }
            }

            /// Appends the payload encoding to `buf`.
            pub fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
                match self {
                    Self::Error(msg) => encode_into(msg, buf),
                    $(Self::$mid(msg) => encode_into(msg, buf),)*
                }
            }
        }
    };
}

rpcs! {
    Mount: MountReq => MountResp,
    Channel: ChannelReq => ChannelResp,
    FStat: FStatReq => FStatResp,
    SetStat: SetStatReq => SetStatResp,
    Walk: WalkReq => WalkResp,
    WalkStat: WalkStatReq => WalkStatResp,
    OpenAt: OpenAtReq => OpenAtResp,
    OpenCreateAt: OpenCreateAtReq => OpenCreateAtResp,
    Close: CloseReq => CloseResp,
    FSync: FSyncReq => FSyncResp,
    PWrite: PWriteReq => PWriteResp,
    PRead: PReadReq => PReadResp,
    MkdirAt: MkdirAtReq => MkdirAtResp,
    MknodAt: MknodAtReq => MknodAtResp,
    SymlinkAt: SymlinkAtReq => SymlinkAtResp,
    LinkAt: LinkAtReq => LinkAtResp,
    FStatFS: FStatFSReq => FStatFSResp,
    FAllocate: FAllocateReq => FAllocateResp,
    ReadLinkAt: ReadLinkAtReq => ReadLinkAtResp,
    Flush: FlushReq => FlushResp,
    Connect: ConnectReq => ConnectResp,
    UnlinkAt: UnlinkAtReq => UnlinkAtResp,
    RenameAt: RenameAtReq => RenameAtResp,
    Getdents64: Getdents64Req => Getdents64Resp,
    FGetXattr: FGetXattrReq => FGetXattrResp,
    FSetXattr: FSetXattrReq => FSetXattrResp,
    FListXattr: FListXattrReq => FListXattrResp,
    FRemoveXattr: FRemoveXattrReq => FRemoveXattrResp,
    BindAt: BindAtReq => BindAtResp,
    Listen: ListenReq => ListenResp,
    Accept: AcceptReq => AcceptResp,
    ConnectWithCreds: ConnectWithCredsReq => ConnectWithCredsResp,
    RenameAt2: RenameAt2Req => RenameAt2Resp,
}
