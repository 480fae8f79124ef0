//! MkdirAt, MknodAt, SymlinkAt, LinkAt (SPEC.md §6.13–6.16). Each takes the rename lock
//! for reading and the directory's node lock for writing.

use lisafs_protocol::wire::{
    Errno, LinkAtReq, LinkAtResp, MkdirAtReq, MkdirAtResp, MknodAtReq, MknodAtResp, SymlinkAtReq,
    SymlinkAtResp,
};

use crate::backend::{Backend, Node};
use crate::connection::Connection;
use crate::fd_table::ControlFd;
use crate::handlers::{create_attrs, name, no_nul};

impl<B: Backend> Connection<B> {
    /// Runs `create` under the locks every creating request takes, and registers the
    /// result; room in the FD table is checked first so a full table creates nothing.
    fn create_in(
        &self,
        dir: &ControlFd<B>,
        create: impl FnOnce(&B) -> Result<Node<B::File>, Errno>,
    ) -> Result<lisafs_protocol::wire::Inode, Errno> {
        self.fds.lock().ensure_room(1)?;
        let node = {
            let _rename = self.server.rename_lock.read();
            let _dir = dir.node.lock.write();
            create(self.server.backend())?
        };
        Ok(self.new_control(node)?.0)
    }

    pub(crate) fn mkdir_at(&self, req: MkdirAtReq) -> Result<MkdirAtResp, Errno> {
        let dir = self.dir(req.common.dir_fd)?;
        let name = name(&req.name)?;
        let attrs = create_attrs(&req.common);
        let child = self.create_in(&dir, |b| b.mkdir(&dir.file, name, attrs))?;
        Ok(MkdirAtResp { child })
    }

    pub(crate) fn mknod_at(&self, req: MknodAtReq) -> Result<MknodAtResp, Errno> {
        let dir = self.dir(req.common.dir_fd)?;
        let name = name(&req.name)?;
        let attrs = create_attrs(&req.common);
        let child = self.create_in(&dir, |b| {
            b.mknod(&dir.file, name, attrs, req.major, req.minor)
        })?;
        Ok(MknodAtResp { child })
    }

    pub(crate) fn symlink_at(&self, req: SymlinkAtReq) -> Result<SymlinkAtResp, Errno> {
        let dir = self.dir(req.dir_fd)?;
        let name = name(&req.name)?;
        let target = no_nul(req.target.as_bytes())?;
        let symlink = self.create_in(&dir, |b| {
            b.symlink(&dir.file, name, target, req.uid, req.gid)
        })?;
        Ok(SymlinkAtResp { symlink })
    }

    pub(crate) fn link_at(&self, req: LinkAtReq) -> Result<LinkAtResp, Errno> {
        let dir = self.dir(req.dir_fd)?;
        let name = name(&req.name)?;
        let target = self.control(req.target)?;
        if target.is_dir() {
            return Err(Errno::EPERM);
        }
        // Directory before non-directory: the lock order every request follows.
        let link = self.create_in(&dir, |b| {
            let _target = target.node.lock.read();
            b.link(&dir.file, name, &target.file)
        })?;
        Ok(LinkAtResp { link })
    }
}
