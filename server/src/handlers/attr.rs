//! FStat, SetStat, FStatFS.

use lisafs_protocol::wire::{
    Errno, FStatFSReq, FStatFSResp, FStatReq, FStatResp, SetStatReq, SetStatResp,
};

use crate::backend::Backend;
use crate::connection::Connection;

impl<B: Backend> Connection<B> {
    pub(crate) fn fstat(&self, req: FStatReq) -> Result<FStatResp, Errno> {
        let fd = self.any_control(req.fd)?;
        let _node = fd.node.lock.read();
        let stat = self.server.backend().stat(&fd.file)?;
        Ok(FStatResp { stat })
    }

    pub(crate) fn set_stat(&self, req: SetStatReq) -> Result<SetStatResp, Errno> {
        if req.mask & !SetStatReq::SUPPORTED_MASK != 0 {
            return Err(Errno::EPERM);
        }
        let fd = self.control(req.fd)?;
        if req.mask == 0 {
            return Ok(SetStatResp::default());
        }
        let _node = fd.node.lock.write();
        self.server.backend().set_stat(&fd.file, &req)
    }

    pub(crate) fn fstatfs(&self, req: FStatFSReq) -> Result<FStatFSResp, Errno> {
        let fd = self.control(req.fd)?;
        let _node = fd.node.lock.read();
        let stat = self.server.backend().statfs(&fd.file)?;
        Ok(FStatFSResp { stat })
    }
}
