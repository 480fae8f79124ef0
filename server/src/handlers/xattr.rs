//! FGetXattr, FSetXattr, FListXattr, FRemoveXattr (SPEC.md §6.25–6.28, §7.8).

use lisafs_protocol::wire::{
    Errno, FGetXattrReq, FGetXattrResp, FListXattrReq, FListXattrResp, FRemoveXattrReq,
    FRemoveXattrResp, FSetXattrReq, FSetXattrResp, SizedString,
};

use crate::backend::Backend;
use crate::connection::Connection;
use crate::handlers::no_nul;

/// The largest value or list lisafs can carry; 0 (and anything larger) asks for this much.
const XATTR_MAX: usize = 65_536;

fn wanted(size: u64) -> usize {
    match usize::try_from(size) {
        Ok(0) | Err(_) => XATTR_MAX,
        Ok(n) => n.min(XATTR_MAX),
    }
}

impl<B: Backend> Connection<B> {
    pub(crate) fn get_xattr(&self, req: FGetXattrReq) -> Result<FGetXattrResp, Errno> {
        let fd = self.control(req.fd)?;
        let name = no_nul(req.name.as_bytes())?;
        let _node = fd.node.lock.read();
        let value = self
            .server
            .backend()
            .get_xattr(&fd.file, name, wanted(req.buf_size.into()))?;
        // A 65,536-byte value would wrap the u16 length to 0 (gVisor's bug); refuse it.
        if value.len() > usize::from(u16::MAX) {
            return Err(Errno::E2BIG);
        }
        Ok(FGetXattrResp {
            value: SizedString::from(value),
        })
    }

    pub(crate) fn set_xattr(&self, req: FSetXattrReq) -> Result<FSetXattrResp, Errno> {
        let fd = self.control(req.fd)?;
        let name = no_nul(req.name.as_bytes())?;
        let _node = fd.node.lock.write();
        self.server
            .backend()
            .set_xattr(&fd.file, name, req.value.as_bytes(), req.flags)?;
        Ok(FSetXattrResp {})
    }

    pub(crate) fn list_xattr(&self, req: FListXattrReq) -> Result<FListXattrResp, Errno> {
        let fd = self.control(req.fd)?;
        let _node = fd.node.lock.read();
        let names = self
            .server
            .backend()
            .list_xattr(&fd.file, wanted(req.size))?;
        if names.len() > usize::from(u16::MAX)
            || names.iter().any(|n| n.len() > usize::from(u16::MAX))
        {
            return Err(Errno::E2BIG);
        }
        Ok(FListXattrResp {
            xattrs: names.into_iter().map(SizedString::from).collect(),
        })
    }

    pub(crate) fn remove_xattr(&self, req: FRemoveXattrReq) -> Result<FRemoveXattrResp, Errno> {
        let fd = self.control(req.fd)?;
        let name = no_nul(req.name.as_bytes())?;
        let _node = fd.node.lock.write();
        self.server.backend().remove_xattr(&fd.file, name)?;
        Ok(FRemoveXattrResp {})
    }
}
