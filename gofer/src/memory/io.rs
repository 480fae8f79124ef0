//! OpenAt and the open-FD operations: PRead, PWrite, FAllocate, Getdents64.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use lisafs_protocol::wire::{Dirent64, DirentList, Errno, S_IFSOCK};
use lisafs_server::{BResult, DirentBatch, OpenFlags, Opened};
use parking_lot::Mutex;
use rustix::fs::{FallocateFlags, Mode, OFlags};
use rustix::path::DecInt;

use super::inode::{reserve, settle, Inode, Kind, Regular, DEV_MAJOR, DEV_MINOR};
use super::{MemoryBackend, MemoryOpen, OpenState};

/// OpenAt: a directory opens for listing, a regular file as a fresh open of its memfd
/// with the access asked for (truncated first if asked, charged as any size change), and
/// that open is donated. A socket file is `ENXIO` (as `open(2)` on Linux), a FIFO or a
/// device `EPERM`: nothing stands behind them here. A symlink is `EINVAL`.
pub(super) fn open(
    b: &MemoryBackend,
    inode: &Arc<Inode>,
    flags: OpenFlags,
) -> BResult<Opened<MemoryOpen>> {
    let state = match &inode.kind {
        Kind::Directory(_) => OpenState::Directory {
            cursor: Mutex::new(0),
        },
        Kind::Regular(regular) => {
            let (access, readable, writable) = flags.access();
            // The memfd itself is O_RDWR; its /proc/self/fd entry reopens the same file
            // with only the access wanted and a file position of its own.
            let fd = Arc::new(rustix::fs::openat(
                b.proc_self_fd,
                DecInt::from_fd(&regular.data),
                access | OFlags::CLOEXEC,
                Mode::empty(),
            )?);
            if flags.truncate {
                truncate(inode, regular, 0)?;
            }
            OpenState::Regular {
                fd,
                readable,
                writable,
            }
        }
        Kind::Symlink(_) => return Err(Errno::EINVAL),
        Kind::Special { .. } if inode.file_type == S_IFSOCK => return Err(Errno::ENXIO),
        Kind::Special { .. } => return Err(Errno::EPERM),
    };
    let donated = match &state {
        OpenState::Regular { fd, .. } => Some(Arc::clone(fd)),
        OpenState::Directory { .. } => None,
    };
    let open = MemoryOpen {
        inode: Arc::clone(inode),
        state,
    };
    Ok(Opened { open, donated })
}

/// Sets the size of a regular file, charging growth first (`ENOSPC`). A size beyond
/// `i64::MAX` is `EFBIG`.
pub(super) fn truncate(inode: &Inode, regular: &Regular, size: u64) -> BResult<()> {
    if i64::try_from(size).is_err() {
        return Err(Errno::EFBIG);
    }
    let mut charged = regular.charged.lock();
    reserve(inode.usage(), &mut charged, size)?;
    let result = rustix::fs::ftruncate(&regular.data, size);
    let actual = regular.size()?;
    settle(inode.usage(), &mut charged, actual);
    Ok(result?)
}

/// The open regular file behind `open`: its memfd, its own FD and access; `EISDIR` for a
/// directory.
fn regular(open: &MemoryOpen) -> BResult<(&Regular, &OwnedFd, bool, bool)> {
    match (&open.inode.kind, &open.state) {
        (
            Kind::Regular(regular),
            OpenState::Regular {
                fd,
                readable,
                writable,
            },
        ) => Ok((regular, fd, *readable, *writable)),
        _ => Err(Errno::EISDIR),
    }
}

/// PRead; an access moves atime (relatime).
pub(super) fn read(open: &MemoryOpen, offset: u64, buf: &mut [u8]) -> BResult<usize> {
    let (_, fd, readable, _) = regular(open)?;
    if !readable {
        return Err(Errno::EBADF);
    }
    let n = loop {
        match rustix::io::pread(fd, &mut *buf, offset) {
            Err(rustix::io::Errno::INTR) => continue,
            result => break result?,
        }
    };
    open.inode.meta.lock().touch_accessed();
    Ok(n)
}

/// PWrite: the growth is charged before the write (`ENOSPC` beyond the limit, nothing
/// written), the charge settled to the real size after. An end beyond `i64::MAX` is
/// `EFBIG`.
pub(super) fn write(open: &MemoryOpen, offset: u64, data: &[u8]) -> BResult<usize> {
    let (regular, fd, _, writable) = regular(open)?;
    if !writable {
        return Err(Errno::EBADF);
    }
    let end = offset
        .checked_add(data.len() as u64)
        .filter(|&end| i64::try_from(end).is_ok())
        .ok_or(Errno::EFBIG)?;
    let usage = open.inode.usage();
    let mut charged = regular.charged.lock();
    let size = regular.size()?;
    reserve(usage, &mut charged, size.max(end))?;
    let result = loop {
        match rustix::io::pwrite(fd, data, offset) {
            Err(rustix::io::Errno::INTR) => continue,
            result => break result,
        }
    };
    let actual = regular.size()?;
    settle(usage, &mut charged, actual);
    let written = result?;
    if written > 0 {
        open.inode.meta.lock().kill_setid();
    }
    Ok(written)
}

/// `FALLOC_FL_KEEP_SIZE`.
const KEEP_SIZE: u32 = 1;

/// FAllocate: `mode` goes to the memfd's `fallocate(2)` (hole punching works, modes
/// shmem lacks are its `EOPNOTSUPP`). A growing allocation is charged first; one that
/// keeps the size must still fit under the limit, and is charged by size only.
pub(super) fn allocate(open: &MemoryOpen, mode: u64, offset: u64, length: u64) -> BResult<()> {
    let (regular, fd, _, writable) = regular(open)?;
    if !writable {
        return Err(Errno::EBADF);
    }
    let mode = u32::try_from(mode).map_err(|_| Errno::EINVAL)?;
    let end = offset
        .checked_add(length)
        .filter(|&end| i64::try_from(end).is_ok())
        .ok_or(Errno::EFBIG)?;
    let usage = open.inode.usage();
    let mut charged = regular.charged.lock();
    let size = regular.size()?;
    // Growth is charged; a KEEP_SIZE allocation must fit too, and is settled back to
    // the size afterwards.
    let want = match mode & KEEP_SIZE {
        0 => size.max(end),
        _ => end,
    };
    reserve(usage, &mut charged, want)?;
    let flags = FallocateFlags::from_bits_retain(mode);
    let result = rustix::fs::fallocate(fd.as_fd(), flags, offset, length);
    let actual = regular.size()?;
    settle(usage, &mut charged, actual);
    Ok(result?)
}

/// Getdents64: entries after the open's cursor, in cookie order, while their Linux
/// record lengths fit `budget`, the response fits a message and there are fewer than
/// 65,535; the cursor moves past the last one returned. Each entry's offset is its cookie.
pub(super) fn getdents(open: &MemoryOpen, rewind: bool, budget: usize) -> BResult<DirentList> {
    let OpenState::Directory { cursor } = &open.state else {
        return Err(Errno::ENOTDIR);
    };
    let dir = open.inode.dir()?;
    let mut cursor = cursor.lock();
    if rewind {
        *cursor = 0;
    }
    if budget == 0 {
        return Ok(DirentList::new());
    }
    let mut batch = DirentBatch::new(budget);
    {
        let entries = dir.entries.read();
        for (cookie, entry) in entries.after(*cursor) {
            let taken = batch.push(&Dirent64 {
                ino: entry.inode.ino,
                dev_minor: DEV_MINOR,
                dev_major: DEV_MAJOR,
                off: cookie,
                d_type: entry.inode.d_type(),
                name: &entry.name,
            });
            if !taken {
                break;
            }
            *cursor = cookie;
        }
    }
    open.inode.meta.lock().touch_accessed();
    Ok(batch.into_list())
}
