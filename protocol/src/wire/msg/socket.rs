//! Connect (MID 21), BindAt (MID 29), Listen (MID 30), Accept (MID 31) and
//! ConnectWithCreds (MID 32): host Unix sockets.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::wire::codec::{fixed_wire, wire_struct};
use crate::wire::types::{fixed_struct, CreateCommon, FdId, Gid, Inode, SizedString, Uid};

fixed_struct! {
    /// Connect request. Donates the connected socket.
    pub struct ConnectReq {
        /// Control FD of a socket file.
        pub fd: FdId,
        /// `SOCK_STREAM` (1), `SOCK_DGRAM` (2) or `SOCK_SEQPACKET` (5).
        pub sock_type: u32,
        /// Padding, sent as zero.
        pub _pad: u32,
    }

    /// ConnectWithCreds request: Connect as the given effective user and group.
    pub struct ConnectWithCredsReq {
        /// Control FD of a socket file.
        pub fd: FdId,
        /// Socket type, as for Connect.
        pub sock_type: u32,
        /// Padding, sent as zero.
        pub _pad: u32,
        /// Effective user to connect as.
        pub uid: Uid,
        /// Effective group to connect as.
        pub gid: Gid,
    }

    /// BindAt response. Donates the bound socket.
    pub struct BindAtResp {
        /// Control FD and stat of the new socket file.
        pub child: Inode,
        /// Bound-socket FD for Listen and Accept.
        pub bound_socket_fd: FdId,
    }

    /// Listen request.
    pub struct ListenReq {
        /// Bound-socket FD.
        pub fd: FdId,
        /// `listen(2)` backlog.
        pub backlog: i32,
        /// Padding, sent as zero.
        pub _pad: u32,
    }

    /// Accept request. Donates the accepted connection.
    pub struct AcceptReq {
        /// Bound-socket FD.
        pub fd: FdId,
    }
}

fixed_wire! {
    ConnectReq = 16,
    ConnectWithCredsReq = 24,
    BindAtResp = 160,
    ListenReq = 16,
    AcceptReq = 8,
}

wire_struct! {
    /// Connect response: empty (the socket is the donated FD).
    pub struct ConnectResp {}

    /// ConnectWithCreds response: empty (the socket is the donated FD).
    pub struct ConnectWithCredsResp {}

    /// BindAt request: create a bound Unix socket file.
    pub struct BindAtReq {
        /// Directory, owner, group and permission bits.
        pub common: CreateCommon,
        /// Socket type, as for Connect.
        pub sock_type: u32,
        /// Name of the socket file.
        pub name: SizedString,
    }

    /// Listen response: empty.
    pub struct ListenResp {}

    /// Accept response.
    pub struct AcceptResp {
        /// The peer's address (gVisor's server always sends "").
        pub peer_addr: SizedString,
    }
}
