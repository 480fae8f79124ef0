//! Host Unix socket RPCs: Connect / ConnectWithCreds and BindAt on a [`ControlFd`],
//! Listen and Accept on a [`BoundSocketFd`]. Each donates a host socket, which is
//! mandatory: a response without it fails with `EBADF`.

use std::os::fd::OwnedFd;

use lisafs_protocol::wire::{
    AcceptReq, BindAtReq, ConnectReq, ConnectWithCredsReq, CreateCommon, Errno, Gid, ListenReq,
    Mid, SizedString, Uid,
};

use crate::error::{Error, Result};
use crate::fd::{BoundSocketFd, ControlFd, Handle, Inode, Owner};

/// The one FD a socket RPC must donate.
fn mandatory(mut fds: Vec<OwnedFd>, mid: Mid) -> Result<OwnedFd> {
    fds.pop()
        .ok_or_else(|| Error::protocol(Errno::EBADF, format!("{mid} response without its FD")))
}

impl ControlFd {
    /// Connects a new host socket of `sock_type` ([`SOCK_STREAM`](crate::SOCK_STREAM),
    /// ...) to this socket file and returns it. With `creds` fully set and a server that
    /// supports ConnectWithCreds, the server connects as that user and group; otherwise
    /// plain Connect is used.
    pub fn connect(&self, sock_type: u32, creds: Owner) -> Result<OwnedFd> {
        let with_creds = creds.uid != Uid::NONE
            && creds.gid != Gid::NONE
            && self.inner().supports(Mid::ConnectWithCreds);
        let fds = if with_creds {
            let req = ConnectWithCredsReq {
                fd: self.id(),
                sock_type,
                _pad: 0,
                uid: creds.uid,
                gid: creds.gid,
            };
            self.inner().call(&req)?.1
        } else {
            let req = ConnectReq {
                fd: self.id(),
                sock_type,
                _pad: 0,
            };
            self.inner().call(&req)?.1
        };
        let mid = if with_creds {
            Mid::ConnectWithCreds
        } else {
            Mid::Connect
        };
        mandatory(fds, mid)
    }

    /// BindAt: creates the socket file `name` in this directory, bound to a new host
    /// socket. Returns the file's ControlFd, the BoundSocketFd for Listen/Accept, and a
    /// duplicate of the bound socket (to poll for incoming connections).
    pub fn bind_at(
        &self,
        name: impl AsRef<[u8]>,
        sock_type: u32,
        mode: u16,
        owner: Owner,
    ) -> Result<(Inode, BoundSocketFd, OwnedFd)> {
        let req = BindAtReq {
            common: CreateCommon {
                dir_fd: self.id(),
                uid: owner.uid,
                gid: owner.gid,
                mode,
                ..CreateCommon::default()
            },
            sock_type,
            name: SizedString::from(name.as_ref()),
        };
        let (resp, fds) = self.inner().call(&req)?;
        // Owned before the FD check, so that both FDIDs are closed if it fails.
        let inode = Inode::from_wire(self.inner(), resp.child);
        let bound = BoundSocketFd::new(Handle::new(self.inner(), resp.bound_socket_fd));
        let socket = mandatory(fds, Mid::BindAt)?;
        Ok((inode, bound, socket))
    }
}

impl BoundSocketFd {
    /// Listen: `listen(2)` on the bound socket.
    pub fn listen(&self, backlog: i32) -> Result<()> {
        let req = ListenReq {
            fd: self.id(),
            backlog,
            _pad: 0,
        };
        self.inner().call(&req).map(drop)
    }

    /// Accept: one pending connection and the peer's address (servers send "").
    /// `EAGAIN` when none is pending: the server never blocks waiting for a peer.
    pub fn accept(&self) -> Result<(OwnedFd, Vec<u8>)> {
        let (resp, fds) = self.inner().call(&AcceptReq { fd: self.id() })?;
        Ok((mandatory(fds, Mid::Accept)?, resp.peer_addr.into_bytes()))
    }
}
