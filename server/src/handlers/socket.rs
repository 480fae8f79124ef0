//! Connect, ConnectWithCreds, BindAt, Listen, Accept (SPEC.md §6.21, §6.29–6.32).

use std::sync::Arc;

use lisafs_protocol::wire::{
    AcceptReq, AcceptResp, AnyResponse, BindAtReq, BindAtResp, Errno, FdId, Gid, ListenReq,
    ListenResp, SizedString, Uid,
};

use crate::backend::Backend;
use crate::connection::{Connection, Reply};
use crate::fd_table::{BoundSocketFd, FdEntry};
use crate::handlers::{create_attrs, name};

const SOCK_STREAM: u32 = 1;
const SOCK_DGRAM: u32 = 2;
const SOCK_SEQPACKET: u32 = 5;

fn check_sock_type(sock_type: u32) -> Result<(), Errno> {
    match sock_type {
        SOCK_STREAM | SOCK_DGRAM | SOCK_SEQPACKET => Ok(()),
        _ => Err(Errno::ENXIO),
    }
}

impl<B: Backend> Connection<B> {
    pub(crate) fn connect(
        &self,
        fd: FdId,
        sock_type: u32,
        creds: Option<(Uid, Gid)>,
        resp: AnyResponse,
    ) -> Reply {
        let control = self.control(fd)?;
        if !control.is_socket() {
            return Err(Errno::ENOTSOCK);
        }
        check_sock_type(sock_type)?;
        let _node = control.node.lock.read();
        let socket = self
            .server
            .backend()
            .connect(&control.file, sock_type, creds)?;
        Ok((resp, vec![socket.into()]))
    }

    pub(crate) fn bind_at(&self, req: BindAtReq) -> Reply {
        let dir = self.dir(req.common.dir_fd)?;
        let name = name(&req.name)?;
        check_sock_type(req.sock_type)?;
        self.fds.lock().ensure_room(2)?;
        let (node, socket, donated) = {
            let _rename = self.server.rename_lock.read();
            let _dir = dir.node.lock.write();
            self.server
                .backend()
                .bind(&dir.file, name, req.sock_type, create_attrs(&req.common))?
        };
        let (child, control) = self.new_control(node)?;
        let bound = BoundSocketFd {
            _control: control,
            socket,
        };
        let bound_socket_fd = match self
            .fds
            .lock()
            .insert(FdEntry::BoundSocket(Arc::new(bound)))
        {
            Ok(id) => id,
            Err(errno) => {
                self.forget([child.control_fd]);
                return Err(errno);
            }
        };
        let resp = AnyResponse::BindAt(BindAtResp {
            child,
            bound_socket_fd,
        });
        Ok((resp, vec![donated.into()]))
    }

    pub(crate) fn listen(&self, req: ListenReq) -> Result<ListenResp, Errno> {
        let fd = self.bound_socket(req.fd)?;
        self.server.backend().listen(&fd.socket, req.backlog)?;
        Ok(ListenResp {})
    }

    pub(crate) fn accept(&self, req: AcceptReq) -> Reply {
        let fd = self.bound_socket(req.fd)?;
        let (socket, peer) = self.server.backend().accept(&fd.socket)?;
        let resp = AnyResponse::Accept(AcceptResp {
            peer_addr: SizedString::from(peer),
        });
        Ok((resp, vec![socket.into()]))
    }
}
