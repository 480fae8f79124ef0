//! ReadLinkAt, UnlinkAt, RenameAt(2), Getdents64 (SPEC.md §6.19, §6.22–6.24, §6.33).

use lisafs_protocol::wire::{
    Errno, FdId, Getdents64Req, Getdents64Resp, ReadLinkAtReq, ReadLinkAtResp, SizedString,
    UnlinkAtReq, UnlinkAtResp, MAX_MESSAGE_SIZE,
};

use crate::backend::Backend;
use crate::connection::Connection;
use crate::handlers::name;

impl<B: Backend> Connection<B> {
    pub(crate) fn readlink_at(&self, req: ReadLinkAtReq) -> Result<ReadLinkAtResp, Errno> {
        let fd = self.control(req.fd)?;
        if !fd.is_symlink() {
            return Err(Errno::EINVAL);
        }
        let _node = fd.node.lock.read();
        let target = self.server.backend().readlink(&fd.file)?;
        if target.len() > usize::from(u16::MAX) {
            return Err(Errno::ENAMETOOLONG);
        }
        Ok(ReadLinkAtResp {
            target: SizedString::from(target),
        })
    }

    pub(crate) fn unlink_at(&self, req: UnlinkAtReq) -> Result<UnlinkAtResp, Errno> {
        let dir = self.dir(req.dir_fd)?;
        let name = name(&req.name)?;
        let _rename = self.server.rename_lock.read();
        let _dir = dir.node.lock.write();
        self.server.backend().unlink(&dir.file, name, req.flags)?;
        Ok(UnlinkAtResp {})
    }

    /// RenameAt and RenameAt2: the only requests that take the rename lock for writing,
    /// so no walk observes half a rename.
    pub(crate) fn rename(
        &self,
        old_dir: FdId,
        old_name: &SizedString,
        new_dir: FdId,
        new_name: &SizedString,
        flags: u32,
    ) -> Result<(), Errno> {
        let old = self.dir(old_dir)?;
        let new = self.dir(new_dir)?;
        let (old_name, new_name) = (name(old_name)?, name(new_name)?);
        let _rename = self.server.rename_lock.write();
        if std::sync::Arc::ptr_eq(&old.node, &new.node) && old_name == new_name {
            return Ok(());
        }
        self.server
            .backend()
            .rename(&old.file, old_name, &new.file, new_name, flags)
    }

    pub(crate) fn getdents64(&self, req: Getdents64Req) -> Result<Getdents64Resp, Errno> {
        let fd = self.open_fd(req.dir_fd)?;
        if !fd.control.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        // A negative count asks for a rewind first; i32::MIN's magnitude is 2^31, no wrap.
        if req.count == 0 {
            return Ok(Getdents64Resp::default());
        }
        let rewind = req.count < 0;
        let asked = req.count.unsigned_abs() as usize;
        // Entries are charged by Linux record length, which can be up to ~30% smaller than
        // their wire encoding; three quarters of the limit always fits one response.
        let budget = asked.min(MAX_MESSAGE_SIZE as usize / 4 * 3);
        let _node = fd.control.node.lock.read();
        let dirents = self.server.backend().getdents(&fd.open, rewind, budget)?;
        Ok(Getdents64Resp { dirents })
    }
}
