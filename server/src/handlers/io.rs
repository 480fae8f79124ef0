//! PWrite, PRead, FAllocate (SPEC.md §6.11, §6.12, §6.18).

use lisafs_protocol::transport::channel::Reply;
use lisafs_protocol::wire::{
    Errno, FAllocateReq, FAllocateResp, PReadReq, PReadResp, PWriteHead, PWriteResp,
    MAX_MESSAGE_SIZE,
};

use crate::backend::Backend;
use crate::channels::channel_errno;
use crate::connection::Connection;

/// Where a PWrite's data is.
pub(crate) enum WriteData<'a, 'w> {
    /// After the fixed part in the request as received, exactly the count.
    Copied(&'a [u8]),
    /// Left in a channel's window ([`Reply::request_rest`]), at least the count.
    Window(&'a Reply<'w>),
}

impl<B: Backend> Connection<B> {
    /// PWrite. Data left in a channel's window goes from there to the host FD when the
    /// backend has one ([`Backend::write_fd`]); otherwise it is copied into `scratch`
    /// first, so that the backend sees bytes the peer can no longer change.
    pub(crate) fn pwrite(
        &self,
        head: PWriteHead,
        data: WriteData<'_, '_>,
        scratch: &mut Vec<u8>,
    ) -> Result<PWriteResp, Errno> {
        let fd = self.open_fd(head.fd)?;
        if !fd.writable {
            return Err(Errno::EBADF);
        }
        let _node = fd.control.node.lock.write();
        let backend = self.server.backend();
        let count = match data {
            WriteData::Copied(bytes) => backend.write(&fd.open, head.offset, bytes)?,
            WriteData::Window(reply) => match backend.write_fd(&fd.open) {
                Some(host) => reply
                    .pwrite_from_request(head.len(), host, head.offset)
                    .map_err(channel_errno)?,
                None => {
                    scratch.clear();
                    scratch.resize(head.len(), 0);
                    reply.copy_request_rest(scratch).map_err(channel_errno)?;
                    backend.write(&fd.open, head.offset, scratch)?
                }
            },
        };
        let count = count as u64;
        if let Some(metrics) = self.server.metrics() {
            metrics.add_written(count);
        }
        Ok(PWriteResp { count })
    }

    /// PRead, its data read straight into place: into `window` (returning the payload's
    /// length there) when the request came on a channel and the backend reads from a host
    /// FD, otherwise into the response encoded in `out`.
    pub(crate) fn pread(
        &self,
        req: PReadReq,
        out: &mut Vec<u8>,
        window: Option<&mut Reply<'_>>,
    ) -> Result<Option<usize>, Errno> {
        // In 64 bits: gVisor's 32-bit sum wraps for counts near u32::MAX.
        if 8 + u64::from(req.count) > u64::from(MAX_MESSAGE_SIZE) {
            return Err(Errno::ENOBUFS);
        }
        let fd = self.open_fd(req.fd)?;
        if !fd.readable {
            return Err(Errno::EBADF);
        }
        let count = req.count as usize;
        let _node = fd.control.node.lock.read();
        let backend = self.server.backend();
        let direct = window
            .filter(|window| PReadResp::HEADER_SIZE + count <= window.max_payload())
            .zip(backend.read_fd(&fd.open));
        let (n, in_place) = match direct {
            Some((window, host)) => {
                let at = PReadResp::HEADER_SIZE;
                let n = window
                    .pread_into_payload(at, count, host, req.offset)
                    .map_err(channel_errno)?;
                window
                    .write_payload(0, &PReadResp::header(n))
                    .map_err(channel_errno)?;
                (n, Some(at + n))
            }
            None => {
                let n = PReadResp::encode_read(out, count, |data| {
                    backend.read(&fd.open, req.offset, data)
                })?;
                (n, None)
            }
        };
        if let Some(metrics) = self.server.metrics() {
            metrics.add_read(n);
        }
        Ok(in_place)
    }

    pub(crate) fn fallocate(&self, req: FAllocateReq) -> Result<FAllocateResp, Errno> {
        let fd = self.open_fd(req.fd)?;
        if !fd.writable {
            return Err(Errno::EBADF);
        }
        // Both are off_t on the host.
        if i64::try_from(req.offset).is_err() || i64::try_from(req.length).is_err() {
            return Err(Errno::EINVAL);
        }
        let _node = fd.control.node.lock.write();
        self.server
            .backend()
            .allocate(&fd.open, req.mode, req.offset, req.length)?;
        Ok(FAllocateResp {})
    }
}
