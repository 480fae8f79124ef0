//! Open files and directories: OpenAt, then I/O on the donated host FD when there is one
//! (by the kernel itself under passthrough, else here; no RPC per read or write), lisafs
//! RPCs otherwise.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use fuser::{BackingId, INodeNo};
use lisafs_client::{Errno, Opened, O_RDONLY, O_RDWR, O_WRONLY};
use rustix::fs::FallocateFlags;

use crate::attr::os_errno;
use crate::create::{open_flags, O_ACCMODE};
use crate::fs::{LisaFs, Res};
use crate::handles::{DirHandle, Entry, FileHandle, Handle};
use crate::passthrough::{Grant, Io};

/// Registers a host FD as a passthrough backing file (the open reply's `open_backing`).
pub(crate) type Register<'a> = &'a dyn Fn(BorrowedFd<'_>) -> io::Result<BackingId>;

impl LisaFs {
    fn file(&self, fh: u64) -> Res<Arc<Handle>> {
        let handle = self.handles.get(fh).ok_or(fuser::Errno::EBADF)?;
        match *handle {
            Handle::File(_) => Ok(handle),
            Handle::Dir(_) => Err(fuser::Errno::EISDIR),
        }
    }

    /// Opens node `ino`; `register` makes a passthrough backing ID of a host FD.
    pub(crate) fn open(&self, ino: INodeNo, flags: i32, register: Register<'_>) -> Res<(u64, Io)> {
        let control = self.control(ino)?;
        let wanted = open_flags(flags);
        let widened = self.widened(wanted);
        let opened = match control.open_at(widened) {
            // A write-only file the caller may not read: no read-modify-write for it.
            Err(err) if widened != wanted && err.errno() == Errno::EACCES => {
                control.open_at(wanted)
            }
            opened => opened,
        }
        .map_err(|err| self.fail(err))?;
        Ok(self.open_file(ino, opened, register))
    }

    /// OpenAt flags `flags`, read-write instead of write-only under the writeback cache:
    /// the kernel then reads the rest of a page before it writes part of it.
    pub(crate) fn widened(&self, flags: u32) -> u32 {
        if self.data_path.writeback_cache && flags & O_ACCMODE == O_WRONLY {
            (flags & !O_ACCMODE) | O_RDWR
        } else {
            flags
        }
    }

    /// A file handle for `opened`, a file of node `ino`, and the I/O mode the kernel is
    /// to use for it.
    pub(crate) fn open_file(
        &self,
        ino: INodeNo,
        opened: Opened,
        register: Register<'_>,
    ) -> (u64, Io) {
        let grant = match &self.io_modes {
            Some(modes) => modes.open(ino.0, opened.host_fd.as_ref().map(AsFd::as_fd), register),
            None => Grant::untracked(),
        };
        let io = grant.io().clone();
        let fh = self.handles.insert(Handle::File(FileHandle {
            fd: opened.fd,
            host: opened.host_fd,
            _grant: grant,
        }));
        (fh, io)
    }

    pub(crate) fn read(&self, fh: u64, offset: u64, size: u32) -> Res<Vec<u8>> {
        let handle = self.file(fh)?;
        let Handle::File(file) = &*handle else {
            return Err(fuser::Errno::EISDIR);
        };
        let mut buf = vec![0; usize::try_from(size).unwrap_or(usize::MAX)];
        let done = match &file.host {
            Some(host) => {
                let mut done = 0;
                while done < buf.len() {
                    let at = offset + u64::try_from(done).unwrap_or(u64::MAX);
                    let n = match rustix::io::pread(host, &mut buf[done..], at) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(rustix::io::Errno::INTR) => continue,
                        Err(err) if done == 0 => return Err(os_errno(err)),
                        Err(_) => break,
                    };
                    done += n;
                }
                done
            }
            None => file
                .fd
                .pread(offset, &mut buf)
                .map_err(|err| self.fail(err))?,
        };
        buf.truncate(done);
        Ok(buf)
    }

    pub(crate) fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Res<u32> {
        let handle = self.file(fh)?;
        let Handle::File(file) = &*handle else {
            return Err(fuser::Errno::EISDIR);
        };
        let done = match &file.host {
            Some(host) => {
                let mut done = 0;
                while done < data.len() {
                    let at = offset + u64::try_from(done).unwrap_or(u64::MAX);
                    match rustix::io::pwrite(host, &data[done..], at) {
                        Ok(n) => done += n,
                        Err(rustix::io::Errno::INTR) => continue,
                        Err(err) if done == 0 => return Err(os_errno(err)),
                        Err(_) => break,
                    }
                }
                done
            }
            None => file.fd.pwrite(offset, data).map_err(|err| self.fail(err))?,
        };
        // FUSE writes are at most max_write (well under 4 GiB).
        Ok(u32::try_from(done).unwrap_or(u32::MAX))
    }

    pub(crate) fn flush(&self, fh: u64) -> Res<()> {
        let handle = self.file(fh)?;
        let Handle::File(file) = &*handle else {
            return Ok(());
        };
        file.fd.flush().map_err(|err| self.fail(err))
    }

    pub(crate) fn fsync(&self, fh: u64, datasync: bool) -> Res<()> {
        let handle = self.handles.get(fh).ok_or(fuser::Errno::EBADF)?;
        match &*handle {
            Handle::File(FileHandle {
                host: Some(host), ..
            }) => match datasync {
                true => rustix::fs::fdatasync(host),
                false => rustix::fs::fsync(host),
            }
            .map_err(os_errno),
            Handle::File(file) => file.fd.fsync().map_err(|err| self.fail(err)),
            Handle::Dir(dir) => dir.fd().fsync().map_err(|err| self.fail(err)),
        }
    }

    pub(crate) fn fallocate(&self, fh: u64, offset: u64, length: u64, mode: i32) -> Res<()> {
        let handle = self.file(fh)?;
        let Handle::File(file) = &*handle else {
            return Err(fuser::Errno::EISDIR);
        };
        let mode = u32::try_from(mode).map_err(|_| fuser::Errno::EINVAL)?;
        match &file.host {
            Some(host) => {
                let flags = FallocateFlags::from_bits_retain(mode);
                rustix::fs::fallocate(host, flags, offset, length).map_err(os_errno)
            }
            None => file
                .fd
                .fallocate(u64::from(mode), offset, length)
                .map_err(|err| self.fail(err)),
        }
    }

    pub(crate) fn opendir(&self, ino: INodeNo) -> Res<u64> {
        let opened = self
            .control(ino)?
            .open_at(O_RDONLY)
            .map_err(|err| self.fail(err))?;
        Ok(self
            .handles
            .insert(Handle::Dir(DirHandle::new(opened.fd, ino.0))))
    }

    pub(crate) fn readdir(
        &self,
        fh: u64,
        offset: u64,
        add: impl FnMut(u64, &Entry<'_>) -> bool,
    ) -> Res<()> {
        let handle = self.handles.get(fh).ok_or(fuser::Errno::EBADF)?;
        let Handle::Dir(dir) = &*handle else {
            return Err(fuser::Errno::ENOTDIR);
        };
        dir.read(offset, &self.handles.read_ahead, add)
            .map_err(|err| self.fail(err))
    }

    /// release and releasedir: the handle's OpenFd joins the batched Close, its host FD
    /// is closed.
    pub(crate) fn release(&self, fh: u64) {
        self.handles.remove(fh);
    }
}
