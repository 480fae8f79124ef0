//! PWrite, PRead, FAllocate (SPEC.md §6.11, §6.12, §6.18).

use lisafs_protocol::wire::{
    Errno, FAllocateReq, FAllocateResp, PReadReq, PReadResp, PWriteReq, PWriteResp,
    MAX_MESSAGE_SIZE,
};

use crate::backend::Backend;
use crate::connection::Connection;

impl<B: Backend> Connection<B> {
    pub(crate) fn pwrite(&self, req: PWriteReq) -> Result<PWriteResp, Errno> {
        let fd = self.open_fd(req.fd)?;
        if !fd.writable {
            return Err(Errno::EBADF);
        }
        let _node = fd.control.node.lock.write();
        let count = self
            .server
            .backend()
            .write(&fd.open, req.offset, &req.data)?;
        let count = count as u64;
        if let Some(metrics) = self.server.metrics() {
            metrics.add_written(count);
        }
        Ok(PWriteResp { count })
    }

    /// PRead, its response encoded into `out` with the data read straight into place.
    pub(crate) fn pread(&self, req: PReadReq, out: &mut Vec<u8>) -> Result<(), Errno> {
        // In 64 bits: gVisor's 32-bit sum wraps for counts near u32::MAX.
        if 8 + u64::from(req.count) > u64::from(MAX_MESSAGE_SIZE) {
            return Err(Errno::ENOBUFS);
        }
        let fd = self.open_fd(req.fd)?;
        if !fd.readable {
            return Err(Errno::EBADF);
        }
        let _node = fd.control.node.lock.read();
        let n = PReadResp::encode_read(out, req.count as usize, |data| {
            self.server.backend().read(&fd.open, req.offset, data)
        })?;
        if let Some(metrics) = self.server.metrics() {
            metrics.add_read(n);
        }
        Ok(())
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
