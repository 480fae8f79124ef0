//! One mount: its FD table and the handling of each request, in the order SPEC.md §8.2
//! gives: MID known and supported (EOPNOTSUPP), mounted (EINVAL), body decodes (EIO),
//! read-only (EROFS), then the handler, whose panic becomes EREMOTEIO and whose response
//! must fit the message limit (EIO). With metrics on, each request is timed and counted
//! here, whichever communicator (socket or channel) it came from.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use lisafs_protocol::transport::channel;
use lisafs_protocol::wire::{
    encode_into, AnyRequest, AnyResponse, Errno, ErrorResp, FdId, Mid, PWriteHead, MAX_MESSAGE_SIZE,
};
use parking_lot::Mutex;

use crate::backend::{Backend, SharedFd};
use crate::channels::Running;
use crate::context::{self, Peer, RequestContext};
use crate::fd_table::{BoundSocketFd, ControlFd, FdEntry, FdTable, OpenFd};
use crate::handlers::io::WriteData;
use crate::metrics::Pending;
use crate::server::Server;
use crate::walk_cache::WalkCache;

/// The MIDs this server serves, as advertised by Mount: gVisor fsgofer's list. Flush is
/// not among them (clients treat it as a no-op then), so like every MID outside the list
/// it is refused with `EOPNOTSUPP`.
pub(crate) const SUPPORTED: [u16; 32] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 23, 24, 25, 26, 27,
    28, 29, 30, 31, 32, 33,
];

/// A handler's result: the response and the host FDs it donates, in order.
pub(crate) type Reply = Result<(AnyResponse, Vec<SharedFd>), Errno>;

/// What [`Connection::handle`] answers.
pub(crate) struct Answer {
    /// The response MID.
    pub(crate) mid: u16,
    /// The host FDs to donate.
    pub(crate) fds: Vec<SharedFd>,
    /// With metrics on, the request to record once the response is sent
    /// ([`Connection::sent`]).
    pub(crate) pending: Option<Pending>,
    /// The payload is not in `out` but already in the channel's window, this long.
    pub(crate) in_place: Option<usize>,
}

/// Wraps a response that donates nothing.
pub(crate) fn reply(resp: AnyResponse) -> Reply {
    Ok((resp, Vec::new()))
}

/// Per-connection state.
pub(crate) struct Connection<B: Backend> {
    pub(crate) server: Arc<Server<B>>,
    pub(crate) fds: Mutex<FdTable<B>>,
    mounted: AtomicBool,
    /// This connection, for the channel threads it starts.
    pub(crate) me: Weak<Self>,
    pub(crate) channels: Mutex<Vec<Running>>,
    /// Set when the socket has ended: new channels are refused.
    pub(crate) closing: AtomicBool,
    /// What hooks see of this connection while it serves a request.
    context: RequestContext,
    /// Directories this connection's WalkStats passed through.
    pub(crate) walk_cache: WalkCache<B::File>,
}

impl<B: Backend> Connection<B> {
    pub(crate) fn new(server: Arc<Server<B>>, peer: Option<Peer>) -> Arc<Self> {
        let max = server.options().max_fds;
        let metrics = server.metrics.clone();
        Arc::new_cyclic(|me| Self {
            server,
            fds: Mutex::new(FdTable::new(max, metrics)),
            mounted: AtomicBool::new(false),
            me: me.clone(),
            channels: Mutex::new(Vec::new()),
            closing: AtomicBool::new(false),
            context: RequestContext::new_connection(peer),
            walk_cache: WalkCache::new(),
        })
    }

    /// Handles one request; writes the response payload into `out` (or, for a PRead from
    /// a channel, maybe straight into `window`) and says how to send it.
    pub(crate) fn handle(
        &self,
        raw_mid: u16,
        payload: &[u8],
        out: &mut Vec<u8>,
        window: Option<&mut channel::Reply<'_>>,
    ) -> Answer {
        let _context = context::enter(self.context);
        let start = self.server.metrics.is_some().then(Instant::now);
        let result = self.respond(raw_mid, payload, out, window);
        let pending = start.map(|start| Pending {
            raw_mid,
            error: result.as_ref().err().copied(),
            start,
        });
        let (mid, fds, in_place) = result.unwrap_or_else(|errno| {
            let (mid, fds) = failed(raw_mid, errno, out);
            (mid, fds, None)
        });
        Answer {
            mid,
            fds,
            pending,
            in_place,
        }
    }

    /// Records a request whose response has been sent (or failed to be).
    pub(crate) fn sent(&self, pending: Option<Pending>) {
        if let (Some(metrics), Some(pending)) = (&self.server.metrics, pending) {
            metrics.finish(pending);
        }
    }

    /// Runs the request and encodes its response into `out` (or a PRead's into `window`,
    /// then giving its length), or fails with the errno to answer.
    fn respond(
        &self,
        raw_mid: u16,
        payload: &[u8],
        out: &mut Vec<u8>,
        window: Option<&mut channel::Reply<'_>>,
    ) -> Result<(u16, Vec<SharedFd>, Option<usize>), Errno> {
        if raw_mid == Mid::PWrite.as_u16() {
            // The data is written from where the request arrived, the receive buffer or
            // (the channel thread left it there) the window: no copy in between.
            let in_window = window.as_ref().map_or(0, |reply| reply.request_rest());
            let head = self.check_pwrite(payload, in_window)?;
            let data = match window {
                Some(reply) if in_window > 0 => WriteData::Window(reply),
                _ => WriteData::Copied(&payload[PWriteHead::SIZE..][..head.len()]),
            };
            let resp = guarded(Mid::PWrite, || self.pwrite(head, data, out))?;
            out.clear();
            encode_into(&resp, out).map_err(|_| Errno::EIO)?;
            return Ok((raw_mid, Vec::new(), None));
        }
        let (mid, req) = self.check(raw_mid, payload)?;
        if let AnyRequest::PRead(req) = req {
            // Read straight into the response: no copy of the data in between.
            let in_place = guarded(mid, || self.pread(req, out, window))?;
            return Ok((raw_mid, Vec::new(), in_place));
        }
        out.clear();
        let (mut resp, fds) = guarded(mid, || self.dispatch(req))?;
        if let Some(ids) = &self.server.options().ids {
            ids.map_response(&mut resp);
        }
        if resp.encode_into(out).is_err() || out.len() > MAX_MESSAGE_SIZE as usize {
            // The FDs (and any FDIDs the handler created) cannot reach the client.
            drop(fds);
            return Err(Errno::EIO);
        }
        Ok((resp.mid().as_u16(), fds, None))
    }

    /// The request, decoded, if the connection may run it now.
    fn check(&self, raw_mid: u16, payload: &[u8]) -> Result<(Mid, AnyRequest), Errno> {
        let mid = self.admit(raw_mid)?;
        let mut req = AnyRequest::decode(mid, payload).map_err(|_| Errno::EIO)?;
        if let Some(ids) = &self.server.options().ids {
            ids.map_request(&mut req)?;
        }
        if self.server.options().readonly && mutates(&req) {
            return Err(Errno::EROFS);
        }
        Ok((mid, req))
    }

    /// A PWrite request's fixed part, if the connection may run it now:
    /// [`check`](Self::check)'s rules (PWrite carries no owner for an ID map). Its data
    /// follows it in `payload`, or `in_window` bytes were left in a channel's window.
    fn check_pwrite(&self, payload: &[u8], in_window: usize) -> Result<PWriteHead, Errno> {
        self.admit(Mid::PWrite.as_u16())?;
        let head = PWriteHead::decode(payload).map_err(|_| Errno::EIO)?;
        if head.len() > payload.len() - PWriteHead::SIZE + in_window {
            return Err(Errno::EIO);
        }
        if self.server.options().readonly {
            return Err(Errno::EROFS);
        }
        Ok(head)
    }

    /// The MID of a request the connection may run now: known, supported, and Mount
    /// before anything else.
    fn admit(&self, raw_mid: u16) -> Result<Mid, Errno> {
        let mid = Mid::try_from(raw_mid).map_err(|_| Errno::EOPNOTSUPP)?;
        if !SUPPORTED.contains(&raw_mid) {
            return Err(Errno::EOPNOTSUPP);
        }
        if mid != Mid::Mount && !self.mounted.load(Ordering::Acquire) {
            return Err(Errno::EINVAL);
        }
        Ok(mid)
    }

    fn dispatch(&self, req: AnyRequest) -> Reply {
        use AnyRequest as R;
        use AnyResponse as A;
        match req {
            R::Mount(_) => self.mount(),
            R::Channel(_) => self.channel(),
            R::FStat(r) => reply(A::FStat(self.fstat(r)?)),
            R::SetStat(r) => reply(A::SetStat(self.set_stat(r)?)),
            R::Walk(r) => reply(A::Walk(self.walk(r)?)),
            R::WalkStat(r) => reply(A::WalkStat(self.walk_stat(r)?)),
            R::OpenAt(r) => self.open_at(r),
            R::OpenCreateAt(r) => self.open_create_at(r),
            R::Close(r) => reply(A::Close(self.close(r))),
            R::FSync(r) => reply(A::FSync(self.fsync(r)?)),
            // `respond` answers these: PWrite from the request, PRead into its buffer.
            R::PWrite(_) | R::PRead(_) => Err(Errno::EIO),
            R::MkdirAt(r) => reply(A::MkdirAt(self.mkdir_at(r)?)),
            R::MknodAt(r) => reply(A::MknodAt(self.mknod_at(r)?)),
            R::SymlinkAt(r) => reply(A::SymlinkAt(self.symlink_at(r)?)),
            R::LinkAt(r) => reply(A::LinkAt(self.link_at(r)?)),
            R::FStatFS(r) => reply(A::FStatFS(self.fstatfs(r)?)),
            R::FAllocate(r) => reply(A::FAllocate(self.fallocate(r)?)),
            R::ReadLinkAt(r) => reply(A::ReadLinkAt(self.readlink_at(r)?)),
            // Not advertised: refused before decoding (see SUPPORTED).
            R::Flush(_) => Err(Errno::EOPNOTSUPP),
            R::Connect(r) => self.connect(r.fd, r.sock_type, None, A::Connect(Default::default())),
            R::ConnectWithCreds(r) => self.connect(
                r.fd,
                r.sock_type,
                Some((r.uid, r.gid)),
                A::ConnectWithCreds(Default::default()),
            ),
            R::UnlinkAt(r) => reply(A::UnlinkAt(self.unlink_at(r)?)),
            R::RenameAt(r) => {
                self.rename(r.old_dir, &r.old_name, r.new_dir, &r.new_name, 0)?;
                reply(A::RenameAt(Default::default()))
            }
            R::RenameAt2(r) => {
                self.rename(r.old_dir, &r.old_name, r.new_dir, &r.new_name, r.flags)?;
                reply(A::RenameAt2(Default::default()))
            }
            R::Getdents64(r) => reply(A::Getdents64(self.getdents64(r)?)),
            R::FGetXattr(r) => reply(A::FGetXattr(self.get_xattr(r)?)),
            R::FSetXattr(r) => reply(A::FSetXattr(self.set_xattr(r)?)),
            R::FListXattr(r) => reply(A::FListXattr(self.list_xattr(r)?)),
            R::FRemoveXattr(r) => reply(A::FRemoveXattr(self.remove_xattr(r)?)),
            R::BindAt(r) => self.bind_at(r),
            R::Listen(r) => reply(A::Listen(self.listen(r)?)),
            R::Accept(r) => self.accept(r),
        }
    }

    /// Mount: the root control FD. A second Mount yields another root FD (as gVisor).
    fn mount(&self) -> Reply {
        let mounted = self.server.backend().mount()?;
        let lock = self.server.node_locks.get(&mounted.root.stat);
        let (root, stat) = ControlFd::new(mounted.root, lock);
        let (root, _) = self.fds.lock().insert_control(root, stat)?;
        self.mounted.store(true, Ordering::Release);
        let resp = lisafs_protocol::wire::MountResp {
            root,
            max_message_size: MAX_MESSAGE_SIZE,
            supported: SUPPORTED.to_vec(),
        };
        Ok((
            AnyResponse::Mount(resp),
            mounted.donated.into_iter().collect(),
        ))
    }

    // Lookups. An unknown FDID is EBADF, an FDID of the wrong kind EINVAL.

    /// Any FD's control FD (FStat accepts control and open FDs).
    pub(crate) fn any_control(&self, id: FdId) -> Result<Arc<ControlFd<B>>, Errno> {
        match self.fds.lock().get(id)? {
            FdEntry::Control(fd) => Ok(fd),
            FdEntry::Open(fd) => Ok(Arc::clone(&fd.control)),
            FdEntry::BoundSocket(_) => Err(Errno::EINVAL),
        }
    }

    pub(crate) fn control(&self, id: FdId) -> Result<Arc<ControlFd<B>>, Errno> {
        match self.fds.lock().get(id)? {
            FdEntry::Control(fd) => Ok(fd),
            _ => Err(Errno::EINVAL),
        }
    }

    /// A control FD that must be a directory (ENOTDIR otherwise).
    pub(crate) fn dir(&self, id: FdId) -> Result<Arc<ControlFd<B>>, Errno> {
        let fd = self.control(id)?;
        if !fd.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(fd)
    }

    pub(crate) fn open_fd(&self, id: FdId) -> Result<Arc<OpenFd<B>>, Errno> {
        match self.fds.lock().get(id)? {
            FdEntry::Open(fd) => Ok(fd),
            _ => Err(Errno::EINVAL),
        }
    }

    pub(crate) fn bound_socket(&self, id: FdId) -> Result<Arc<BoundSocketFd<B>>, Errno> {
        match self.fds.lock().get(id)? {
            FdEntry::BoundSocket(fd) => Ok(fd),
            _ => Err(Errno::EINVAL),
        }
    }
}

impl<B: Backend> Connection<B> {
    /// An error response for a request that never reached a handler (the server started
    /// on it at `start`).
    pub(crate) fn error(
        &self,
        raw_mid: u16,
        errno: Errno,
        start: Instant,
        out: &mut Vec<u8>,
    ) -> Answer {
        let (mid, fds) = error_response(errno, out);
        let pending = self.server.metrics.as_ref().map(|_| Pending {
            raw_mid,
            error: Some(errno),
            start,
        });
        Answer {
            mid,
            fds,
            pending,
            in_place: None,
        }
    }
}

/// Runs a handler; a panic in it becomes `EREMOTEIO` for the client, not the end of the
/// connection.
fn guarded<T>(mid: Mid, handler: impl FnOnce() -> Result<T, Errno>) -> Result<T, Errno> {
    catch_unwind(AssertUnwindSafe(handler)).unwrap_or_else(|_| {
        tracing::error!("handler for {mid} panicked; answering EREMOTEIO");
        Err(Errno::EREMOTEIO)
    })
}

/// The error response to a failed request, logged at debug (failures are the client's
/// business; the ones that look like attacks are warned about where they are refused).
fn failed(raw_mid: u16, errno: Errno, out: &mut Vec<u8>) -> (u16, Vec<SharedFd>) {
    tracing::debug!(mid = raw_mid, %errno, "request failed");
    error_response(errno, out)
}

fn error_response(errno: Errno, out: &mut Vec<u8>) -> (u16, Vec<SharedFd>) {
    out.clear();
    // A 4-byte fixed struct always encodes.
    let _ = encode_into(&ErrorResp { errno }, out);
    (Mid::Error.as_u16(), Vec::new())
}

/// Whether a request changes the filesystem, and so fails on a read-only connection.
fn mutates(req: &AnyRequest) -> bool {
    use AnyRequest as R;
    match req {
        R::OpenAt(r) => crate::handlers::open::wants_write(r.flags),
        R::SetStat(_)
        | R::OpenCreateAt(_)
        | R::PWrite(_)
        | R::MkdirAt(_)
        | R::MknodAt(_)
        | R::SymlinkAt(_)
        | R::LinkAt(_)
        | R::FAllocate(_)
        | R::BindAt(_)
        | R::UnlinkAt(_)
        | R::RenameAt(_)
        | R::RenameAt2(_)
        | R::FSetXattr(_)
        | R::FRemoveXattr(_) => true,
        _ => false,
    }
}
