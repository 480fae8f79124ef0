//! Operations that add, remove or move names: one lisafs RPC each.
//!
//! Every create carries the FUSE caller's uid and gid (see `LisaFs::owner`): the gofer
//! applies them where it holds `CAP_CHOWN`, so files get the owner a local filesystem
//! would give them, not the daemon's. Modes arrive already reduced by the caller's umask:
//! the bridge does not ask for `FUSE_DONT_MASK`, so the kernel applies the umask before
//! sending, and the gofer creates with exactly the mode it is given (its umask is 0).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use fuser::{FileAttr, INodeNo, Request};
use lisafs_client::{Errno, AT_REMOVEDIR, O_TRUNC};

use crate::attr::decode_dev;
use crate::fs::{LisaFs, Res};
use crate::io::Register;
use crate::passthrough::Io;

/// `O_ACCMODE`.
pub(crate) const O_ACCMODE: u32 = 0o3;
/// `O_EXCL`.
const O_EXCL: i32 = 0o200;
/// `S_IFMT` and `S_IFREG` as FUSE carries them (u32 modes).
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
/// `RENAME_WHITEOUT`: overlayfs-only, no lisafs counterpart.
const RENAME_WHITEOUT: u32 = 4;

/// The permission bits of a FUSE mode.
fn perm(mode: u32) -> u16 {
    // Masked to 12 bits, so it fits.
    u16::try_from(mode & 0o7777).unwrap_or(0)
}

/// The flags OpenAt/OpenCreateAt keep: the access mode and `O_TRUNC`.
pub(crate) fn open_flags(flags: i32) -> u32 {
    u32::try_from(flags).unwrap_or(0) & (O_ACCMODE | O_TRUNC)
}

impl LisaFs {
    pub(crate) fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        rdev: u32,
    ) -> Res<FileAttr> {
        let dir = self.control(parent)?;
        let file_type = mode & S_IFMT;
        let full_mode =
            u16::try_from(file_type | (mode & 0o7777)).map_err(|_| fuser::Errno::EINVAL)?;
        let (major, minor) = match file_type {
            S_IFREG => (0, 0),
            _ => decode_dev(rdev),
        };
        let owner = self.owner(req, parent);
        let inode = dir
            .mknod_at(name.as_bytes(), full_mode, major, minor, owner)
            .map_err(|err| self.fail(err))?;
        Ok(self.entry(inode))
    }

    pub(crate) fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
    ) -> Res<FileAttr> {
        let dir = self.control(parent)?;
        let owner = self.owner(req, parent);
        let inode = dir
            .mkdir_at(name.as_bytes(), perm(mode), owner)
            .map_err(|err| self.fail(err))?;
        Ok(self.entry(inode))
    }

    pub(crate) fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        target: &Path,
    ) -> Res<FileAttr> {
        let dir = self.control(parent)?;
        let owner = self.owner(req, parent);
        let inode = dir
            .symlink_at(name.as_bytes(), target.as_os_str().as_bytes(), owner)
            .map_err(|err| self.fail(err))?;
        Ok(self.entry(inode))
    }

    pub(crate) fn link(&self, ino: INodeNo, new_parent: INodeNo, name: &OsStr) -> Res<FileAttr> {
        let target = self.control(ino)?;
        let dir = self.control(new_parent)?;
        let inode = dir
            .link_at(&target, name.as_bytes())
            .map_err(|err| self.fail(err))?;
        Ok(self.entry(inode))
    }

    pub(crate) fn unlink(&self, parent: INodeNo, name: &OsStr, flags: u32) -> Res<()> {
        let dir = self.control(parent)?;
        dir.unlink_at(name.as_bytes(), flags)
            .map_err(|err| self.fail(err))
    }

    pub(crate) fn rmdir(&self, parent: INodeNo, name: &OsStr) -> Res<()> {
        self.unlink(parent, name, AT_REMOVEDIR)
    }

    pub(crate) fn rename(
        &self,
        parent: INodeNo,
        name: &OsStr,
        new_parent: INodeNo,
        new_name: &OsStr,
        flags: u32,
    ) -> Res<()> {
        if flags & RENAME_WHITEOUT != 0 {
            return Err(fuser::Errno::EINVAL);
        }
        let dir = self.control(parent)?;
        let new_dir = self.control(new_parent)?;
        dir.rename_at(name.as_bytes(), &new_dir, new_name.as_bytes(), flags)
            .map_err(|err| self.fail(err))
    }

    /// Creates and opens a regular file: one OpenCreateAt. If the name exists and the
    /// caller did not ask for `O_EXCL` (a race with another creator: the kernel saw no
    /// entry), the existing file is opened instead, as `open(O_CREAT)` would.
    pub(crate) fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        flags: i32,
        register: Register<'_>,
    ) -> Res<(FileAttr, u64, Io)> {
        let dir = self.control(parent)?;
        let owner = self.owner(req, parent);
        let created = dir.open_create_at(
            name.as_bytes(),
            self.widened(open_flags(flags)),
            perm(mode),
            owner,
        );
        let (inode, opened) = match created {
            Ok(done) => done,
            Err(err) if err.errno() == Errno::EEXIST && flags & O_EXCL == 0 => {
                drop(dir);
                let attr = self.lookup(parent, name)?;
                let (fh, io) = self.open(attr.ino, flags, register)?;
                return Ok((attr, fh, io));
            }
            Err(err) => return Err(self.fail(err)),
        };
        let attr = self.entry(inode);
        let (fh, io) = self.open_file(attr.ino, opened, register);
        Ok((attr, fh, io))
    }
}
