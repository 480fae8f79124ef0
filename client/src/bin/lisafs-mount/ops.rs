//! `fuser::Filesystem` for `LisaFs`: unpack the request, call the method, send the reply.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::SystemTime;

use fuser::{
    BsdFileFlags, FileHandle, Filesystem, FopenFlags, INodeNo, InitFlags, KernelConfig, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use lisafs_client::{FileType, SetStat};

use crate::attr::{kind, timespec};
use crate::fs::{LisaFs, Res, GENERATION};
use crate::passthrough::IoModes;

/// Sends `result` with `ok`, or its errno.
macro_rules! reply {
    ($reply:ident, $result:expr, |$value:pat_param| $ok:expr) => {
        match $result {
            Ok($value) => $ok,
            Err(errno) => $reply.error(errno),
        }
    };
}

impl LisaFs {
    fn reply_entry(&self, reply: ReplyEntry, result: Res<fuser::FileAttr>) {
        reply!(reply, result, |attr| reply.entry_with_ttls(
            &self.ttl.attr,
            &self.ttl.entry,
            &attr,
            GENERATION
        ));
    }

    fn reply_empty(reply: ReplyEmpty, result: Res<()>) {
        reply!(reply, result, |()| reply.ok());
    }

    /// getxattr/listxattr: `size` 0 asks for the length only; a value larger than a
    /// non-zero `size` is `ERANGE`.
    fn reply_xattr(reply: ReplyXattr, size: u32, result: Res<Vec<u8>>) {
        reply!(reply, result, |value| {
            let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
            match size {
                0 => reply.size(len),
                _ if len > size => reply.error(fuser::Errno::ERANGE),
                _ => reply.data(&value),
            }
        });
    }
}

impl Filesystem for LisaFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        // O_TRUNC arrives with open (OpenAt keeps it) instead of as a separate setattr;
        // lookups and creates in one directory may run in parallel.
        for flag in [
            InitFlags::FUSE_ATOMIC_O_TRUNC,
            InitFlags::FUSE_PARALLEL_DIROPS,
        ] {
            if config.add_capabilities(flag).is_err() {
                tracing::debug!(?flag, "kernel lacks capability");
            }
        }
        if self.data_path.writeback_cache
            && config
                .add_capabilities(InitFlags::FUSE_WRITEBACK_CACHE)
                .is_err()
        {
            tracing::warn!("the kernel has no writeback cache for FUSE");
        }
        // Depth 1: backing files may not be on a stacked filesystem (overlayfs), and the
        // mount itself may be stacked under one.
        if self.data_path.passthrough
            && config.set_max_stack_depth(1).is_ok()
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
        {
            self.io_modes = Some(IoModes::new());
        }
        Ok(())
    }

    fn destroy(&mut self) {
        tracing::debug!(
            nodes = self.nodes.len(),
            handles = self.handles.len(),
            passthrough_nodes = self.io_modes.as_ref().map(|modes| modes.len()),
            "session ends"
        );
        if let Err(err) = self.client.flush_closes() {
            tracing::debug!(%err, "final Close failed");
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.reply_entry(reply, self.lookup(parent, name));
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.nodes.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        reply!(reply, self.getattr(ino), |attr| reply
            .attr(&self.ttl.attr, &attr));
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let attrs = SetStat {
            mode: mode.map(|mode| mode & 0o7777),
            uid,
            gid,
            size,
            atime: atime.map(timespec),
            mtime: mtime.map(timespec),
        };
        reply!(reply, self.setattr(ino, attrs), |attr| reply
            .attr(&self.ttl.attr, &attr));
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        reply!(reply, self.readlink(ino), |target| reply.data(&target));
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.reply_entry(reply, self.mknod(req, parent, name, mode, rdev));
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        self.reply_entry(reply, self.mkdir(req, parent, name, mode));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::reply_empty(reply, self.unlink(parent, name, 0));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::reply_empty(reply, self.rmdir(parent, name));
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.reply_entry(reply, self.symlink(req, parent, link_name, target));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let result = self.rename(parent, name, newparent, newname, flags.bits());
        Self::reply_empty(reply, result);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.reply_entry(reply, self.link(ino, newparent, newname));
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let result = self.open(ino, flags.0, &|fd| reply.open_backing(fd));
        reply!(reply, result, |(fh, io)| match io.backing() {
            Some(id) => reply.opened_passthrough(FileHandle(fh), io.flags() | self.open_flags, id),
            None => reply.opened(FileHandle(fh), io.flags() | self.open_flags),
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        reply!(reply, self.read(fh.0, offset, size), |data| reply
            .data(&data));
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply!(reply, self.write(fh.0, offset, data), |n| reply.written(n));
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        Self::reply_empty(reply, self.flush(fh.0));
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.release(fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        Self::reply_empty(reply, self.fsync(fh.0, datasync));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply!(reply, self.opendir(ino), |fh| reply
            .opened(FileHandle(fh), FopenFlags::empty()));
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let result = self.readdir(fh.0, offset, |next, entry| {
            let file_type = kind(FileType::from_dirent_type(entry.d_type));
            let name = OsStr::from_bytes(entry.name);
            reply.add(INodeNo(entry.ino), next, file_type, name)
        });
        reply!(reply, result, |()| reply.ok());
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.release(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        Self::reply_empty(reply, self.fsync(fh.0, datasync));
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        let result = self
            .control(ino)
            .and_then(|fd| fd.fstatfs().map_err(|err| self.fail(err)));
        reply!(reply, result, |st| {
            let size = |v: i64| u32::try_from(v).unwrap_or(4096);
            let namelen = u32::try_from(st.name_length).unwrap_or(255);
            let bsize = size(st.block_size);
            reply.statfs(
                st.blocks,
                st.blocks_free,
                st.blocks_available,
                st.files,
                st.files_free,
                bsize,
                namelen,
                bsize,
            );
        });
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        Self::reply_empty(reply, self.setxattr(ino, name, value, flags));
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        Self::reply_xattr(reply, size, self.getxattr(ino, name, size));
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        Self::reply_xattr(reply, size, self.listxattr(ino, size));
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::reply_empty(reply, self.removexattr(ino, name));
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let result = self.create(req, parent, name, mode, flags, &|fd| reply.open_backing(fd));
        reply!(reply, result, |(attr, fh, io)| match io.backing() {
            Some(id) => reply.created_passthrough(
                &self.ttl.entry,
                &attr,
                GENERATION,
                FileHandle(fh),
                io.flags() | self.open_flags,
                id
            ),
            None => reply.created(
                &self.ttl.entry,
                &attr,
                GENERATION,
                FileHandle(fh),
                io.flags() | self.open_flags
            ),
        });
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        Self::reply_empty(reply, self.fallocate(fh.0, offset, length, mode));
    }
}
