//! RPCs on a [`ControlFd`]: metadata, walks, opening, creating, linking, removing,
//! renaming and extended attributes. (Socket RPCs are in `socket.rs`.)

use lisafs_protocol::wire::{
    CreateCommon, Errno, FGetXattrReq, FListXattrReq, FRemoveXattrReq, FSetXattrReq, FStatFSReq,
    FStatReq, LinkAtReq, Mid, MkdirAtReq, MknodAtReq, OpenAtReq, OpenCreateAtReq, ReadLinkAtReq,
    RenameAt2Req, RenameAtReq, SizedString, StatFS, Statx, SymlinkAtReq, UnlinkAtReq, WalkReq,
    WalkStatReq, WalkStatus,
};

use crate::error::{Error, Result};
use crate::fd::{ControlFd, Handle, Inode, OpenFd, Opened, Owner};
use crate::types::{SetStat, SetStatOutcome};

fn sized(bytes: impl AsRef<[u8]>) -> SizedString {
    SizedString::from(bytes.as_ref())
}

fn components<S: AsRef<[u8]>>(path: &[S]) -> Vec<SizedString> {
    path.iter().map(sized).collect()
}

impl ControlFd {
    fn common(&self, mode: u16, owner: Owner) -> CreateCommon {
        CreateCommon {
            dir_fd: self.id(),
            uid: owner.uid,
            gid: owner.gid,
            mode,
            ..CreateCommon::default()
        }
    }

    fn inode(&self, inode: lisafs_protocol::wire::Inode) -> Inode {
        Inode::from_wire(self.inner(), inode)
    }

    /// FStat: the file's attributes.
    pub fn fstat(&self) -> Result<Statx> {
        let (resp, _) = self.inner().call(&FStatReq { fd: self.id() })?;
        Ok(resp.stat)
    }

    /// SetStat: changes the attributes that are set in `attrs`. Attributes the server
    /// could not change are reported in the outcome, not as an error.
    pub fn set_stat(&self, attrs: &SetStat) -> Result<SetStatOutcome> {
        let (resp, _) = self.inner().call(&attrs.to_req(self.id()))?;
        Ok(SetStatOutcome::from_wire(resp))
    }

    /// Walk: one RPC walking every component of `path` from this directory. Returns why
    /// the walk stopped and one new ControlFd per component walked: all of them on
    /// `Success`; those before the missing one on `ComponentDoesNotExist`; up to and
    /// including the symlink on `ComponentSymlink` (the caller reads it and walks on).
    pub fn walk<S: AsRef<[u8]>>(&self, path: &[S]) -> Result<(WalkStatus, Vec<Inode>)> {
        let req = WalkReq {
            dir_fd: self.id(),
            path: components(path),
        };
        let (resp, _) = self.inner().call(&req)?;
        // Own every FDID first, so that a response we reject still gets them closed.
        let inodes: Vec<Inode> = resp.inodes.into_iter().map(|i| self.inode(i)).collect();
        let consistent = match resp.status {
            WalkStatus::Success => inodes.len() == path.len(),
            WalkStatus::ComponentDoesNotExist => inodes.len() < path.len(),
            WalkStatus::ComponentSymlink => !inodes.is_empty() && inodes.len() < path.len(),
        };
        if !consistent {
            return Err(Error::protocol(
                Errno::EIO,
                format!(
                    "Walk of {} components answered {:?} with {} inodes",
                    path.len(),
                    resp.status,
                    inodes.len()
                ),
            ));
        }
        Ok((resp.status, inodes))
    }

    /// WalkStat: the stats along `path` without creating FDs. A first component of `""`
    /// puts this file's own stat first. The list stops early at a missing component and
    /// right after a symlink.
    pub fn walk_stat<S: AsRef<[u8]>>(&self, path: &[S]) -> Result<Vec<Statx>> {
        let req = WalkStatReq {
            dir_fd: self.id(),
            path: components(path),
        };
        let (resp, _) = self.inner().call(&req)?;
        if resp.stats.len() > path.len() {
            return Err(Error::protocol(
                Errno::EIO,
                format!(
                    "WalkStat of {} components returned {}",
                    path.len(),
                    resp.stats.len()
                ),
            ));
        }
        Ok(resp.stats)
    }

    /// OpenAt: opens this file. `flags` are `open(2)` flags; servers keep only the access
    /// mode and `O_TRUNC`.
    pub fn open_at(&self, flags: u32) -> Result<Opened> {
        let req = OpenAtReq {
            fd: self.id(),
            flags,
            _pad: 0,
        };
        let (resp, mut fds) = self.inner().call(&req)?;
        Ok(Opened {
            fd: OpenFd::new(Handle::new(self.inner(), resp.open_fd)),
            host_fd: fds.pop(),
        })
    }

    /// OpenCreateAt: creates the regular file `name` in this directory (exclusively) with
    /// permission bits `mode`, and opens it with `flags`.
    pub fn open_create_at(
        &self,
        name: impl AsRef<[u8]>,
        flags: u32,
        mode: u16,
        owner: Owner,
    ) -> Result<(Inode, Opened)> {
        let req = OpenCreateAtReq {
            common: self.common(mode, owner),
            flags,
            name: sized(name),
        };
        let (resp, mut fds) = self.inner().call(&req)?;
        let opened = Opened {
            fd: OpenFd::new(Handle::new(self.inner(), resp.new_fd)),
            host_fd: fds.pop(),
        };
        Ok((self.inode(resp.child), opened))
    }

    /// MkdirAt: creates the directory `name` with permission bits `mode`.
    pub fn mkdir_at(&self, name: impl AsRef<[u8]>, mode: u16, owner: Owner) -> Result<Inode> {
        let req = MkdirAtReq {
            common: self.common(mode, owner),
            name: sized(name),
        };
        let (resp, _) = self.inner().call(&req)?;
        Ok(self.inode(resp.child))
    }

    /// MknodAt: creates the node `name`; `mode` includes the file type bits. Servers allow
    /// regular files and the 0:0 character device; lisafs-rs gofers also the special
    /// files their operator enabled (`gofer --mknod`).
    pub fn mknod_at(
        &self,
        name: impl AsRef<[u8]>,
        mode: u16,
        major: u32,
        minor: u32,
        owner: Owner,
    ) -> Result<Inode> {
        let req = MknodAtReq {
            common: self.common(mode, owner),
            minor,
            major,
            name: sized(name),
        };
        let (resp, _) = self.inner().call(&req)?;
        Ok(self.inode(resp.child))
    }

    /// SymlinkAt: creates the symlink `name` pointing to `target`.
    pub fn symlink_at(
        &self,
        name: impl AsRef<[u8]>,
        target: impl AsRef<[u8]>,
        owner: Owner,
    ) -> Result<Inode> {
        let req = SymlinkAtReq {
            dir_fd: self.id(),
            uid: owner.uid,
            gid: owner.gid,
            name: sized(name),
            target: sized(target),
        };
        let (resp, _) = self.inner().call(&req)?;
        Ok(self.inode(resp.symlink))
    }

    /// LinkAt: creates `name` in this directory as a hard link to `target` (a
    /// non-directory).
    pub fn link_at(&self, target: &ControlFd, name: impl AsRef<[u8]>) -> Result<Inode> {
        let req = LinkAtReq {
            dir_fd: self.id(),
            target: target.id(),
            name: sized(name),
        };
        let (resp, _) = self.inner().call(&req)?;
        Ok(self.inode(resp.link))
    }

    /// FStatFS: statistics of the filesystem holding this file.
    pub fn fstatfs(&self) -> Result<StatFS> {
        let (resp, _) = self.inner().call(&FStatFSReq { fd: self.id() })?;
        Ok(resp.stat)
    }

    /// ReadLinkAt: this symlink's target.
    pub fn readlink_at(&self) -> Result<Vec<u8>> {
        let (resp, _) = self.inner().call(&ReadLinkAtReq { fd: self.id() })?;
        Ok(resp.target.into_bytes())
    }

    /// UnlinkAt: removes `name` from this directory; `flags` may be
    /// [`AT_REMOVEDIR`](crate::AT_REMOVEDIR).
    pub fn unlink_at(&self, name: impl AsRef<[u8]>, flags: u32) -> Result<()> {
        let req = UnlinkAtReq {
            dir_fd: self.id(),
            flags,
            name: sized(name),
        };
        self.inner().call(&req).map(drop)
    }

    /// RenameAt / RenameAt2: renames `old_name` in this directory to `new_name` in
    /// `new_dir`. Non-zero `flags` (`renameat2(2)`) need RenameAt2; without it they fail
    /// with `EINVAL` locally, since RenameAt cannot carry them.
    pub fn rename_at(
        &self,
        old_name: impl AsRef<[u8]>,
        new_dir: &ControlFd,
        new_name: impl AsRef<[u8]>,
        flags: u32,
    ) -> Result<()> {
        let (old_dir, new_dir) = (self.id(), new_dir.id());
        let (old_name, new_name) = (sized(old_name), sized(new_name));
        if flags == 0 {
            let req = RenameAtReq {
                old_dir,
                new_dir,
                old_name,
                new_name,
            };
            return self.inner().call(&req).map(drop);
        }
        if !self.inner().supports(Mid::RenameAt2) {
            return Err(Error::local(Errno::EINVAL));
        }
        let req = RenameAt2Req {
            old_dir,
            new_dir,
            old_name,
            new_name,
            flags,
        };
        self.inner().call(&req).map(drop)
    }

    /// FGetXattr: the value of attribute `name`. `size` is the largest value wanted
    /// (0 means the maximum, 65,536).
    pub fn get_xattr(&self, name: impl AsRef<[u8]>, size: u32) -> Result<Vec<u8>> {
        let req = FGetXattrReq {
            fd: self.id(),
            buf_size: size,
            name: sized(name),
        };
        let (resp, _) = self.inner().call(&req)?;
        Ok(resp.value.into_bytes())
    }

    /// FSetXattr: sets attribute `name`; `flags` may be
    /// [`XATTR_CREATE`](crate::XATTR_CREATE) or [`XATTR_REPLACE`](crate::XATTR_REPLACE).
    /// A value longer than 65,535 bytes cannot be carried: `E2BIG`, nothing sent.
    pub fn set_xattr(
        &self,
        name: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        flags: u32,
    ) -> Result<()> {
        let req = FSetXattrReq {
            fd: self.id(),
            flags,
            name: sized(name),
            value: sized(value),
        };
        self.inner().call(&req).map(drop)
    }

    /// FListXattr: the attribute names. `size` bounds the list (0 means the maximum).
    pub fn list_xattr(&self, size: u64) -> Result<Vec<Vec<u8>>> {
        let (resp, _) = self.inner().call(&FListXattrReq {
            fd: self.id(),
            size,
        })?;
        Ok(resp
            .xattrs
            .into_iter()
            .map(SizedString::into_bytes)
            .collect())
    }

    /// FRemoveXattr: removes attribute `name`.
    pub fn remove_xattr(&self, name: impl AsRef<[u8]>) -> Result<()> {
        let req = FRemoveXattrReq {
            fd: self.id(),
            name: sized(name),
        };
        self.inner().call(&req).map(drop)
    }
}
