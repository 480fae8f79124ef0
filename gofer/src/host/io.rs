//! OpenAt (with the special-file and donation policy) and I/O on open FDs: PRead,
//! PWrite, FAllocate, FSync.

use std::os::fd::AsFd;
use std::sync::Arc;

use lisafs_protocol::wire::Errno;
use lisafs_server::{refused, BResult, OpenFlags, Opened, Refusal, SharedFd};
use rustix::fs::{FallocateFlags, OFlags};

use super::file::{FileKind, HostFile, HostOpen};
use super::HostBackend;

/// With `--donate-mount-fd`, a fresh `O_RDONLY | O_DIRECTORY | O_CLOEXEC` open of the
/// mount point `file` for the client (never the `O_PATH` FD the gofer holds, never
/// writable, never one it reads from itself); otherwise nothing. Mandatory once asked for:
/// a failure fails the RPC.
pub(super) fn donate_mount_point(b: &HostBackend, file: &HostFile) -> BResult<Option<SharedFd>> {
    if !(b.options.donate_mount_fd && file.is_mount_point()) {
        return Ok(None);
    }
    debug_assert_eq!(file.kind(), FileKind::Directory);
    Ok(Some(Arc::new(b.resolver.reopen(file, OFlags::RDONLY)?)))
}

/// OpenAt. Directories open read-only and are not donated, except the mount point (the
/// control FD Mount returned) with `--donate-mount-fd`, which a gVisor sentry in directfs
/// mode needs; regular files open with the requested access and are donated; FIFOs only
/// with `--host-fifo open`, non-blocking so the open cannot wait for a peer, donated
/// (mandatory: I/O on a FIFO needs the FD); character devices and (unless allowed)
/// sockets are refused.
pub(super) fn open(
    b: &HostBackend,
    file: &HostFile,
    flags: OpenFlags,
) -> BResult<Opened<HostOpen>> {
    let (access, readable, writable) = flags.access();
    let trunc = if flags.truncate {
        OFlags::TRUNC
    } else {
        OFlags::empty()
    };
    if writable || flags.truncate {
        b.resolver.ensure_beneath(file)?;
    }
    match file.kind() {
        FileKind::Directory => {
            let fd = b.resolver.reopen(file, OFlags::RDONLY)?;
            let donated = donate_mount_point(b, file)?;
            Ok(Opened {
                open: HostOpen::new(fd, FileKind::Directory, true, false),
                donated,
            })
        }
        FileKind::Regular => {
            let fd = b.resolver.reopen(file, access | trunc)?;
            let open = HostOpen::new(fd, FileKind::Regular, readable, writable);
            let donated = Some(open.share());
            Ok(Opened { open, donated })
        }
        FileKind::Fifo if b.options.fifo_open => {
            let fd = b.resolver.reopen(file, access | OFlags::NONBLOCK)?;
            // The open is done; blocking I/O is what the client expects of its FD, and the
            // gofer's own pread/pwrite on a FIFO fail with ESPIPE without waiting.
            let status = rustix::fs::fcntl_getfl(&fd)?;
            rustix::fs::fcntl_setfl(&fd, status - OFlags::NONBLOCK)?;
            let open = HostOpen::new(fd, FileKind::Fifo, readable, writable);
            let donated = Some(open.share());
            Ok(Opened { open, donated })
        }
        FileKind::Socket if b.options.uds_connect => {
            // Linux refuses to open a socket file (ENXIO); report what the host says.
            let fd = b.resolver.reopen(file, access | OFlags::NONBLOCK)?;
            Ok(Opened {
                open: HostOpen::new(fd, FileKind::Socket, readable, writable),
                donated: None,
            })
        }
        FileKind::Symlink => Err(Errno::EINVAL),
        kind @ (FileKind::Fifo
        | FileKind::Socket
        | FileKind::CharDevice
        | FileKind::BlockDevice) => {
            refused!(
                Refusal::SpecialFile,
                ?kind,
                "refused to open a special file"
            );
            Err(Errno::EPERM)
        }
    }
}

/// PRead: `pread` at `offset`; a short read is not an error, 0 is the end of the file.
pub(super) fn read(open: &HostOpen, offset: u64, buf: &mut [u8]) -> BResult<usize> {
    if !open.readable() {
        return Err(Errno::EBADF);
    }
    loop {
        match rustix::io::pread(open, &mut *buf, offset) {
            Err(rustix::io::Errno::INTR) => continue,
            result => return Ok(result?),
        }
    }
}

/// PWrite: `pwrite` at `offset`.
pub(super) fn write(open: &HostOpen, offset: u64, data: &[u8]) -> BResult<usize> {
    if !open.writable() {
        return Err(Errno::EBADF);
    }
    loop {
        match rustix::io::pwrite(open, data, offset) {
            Err(rustix::io::Errno::INTR) => continue,
            result => return Ok(result?),
        }
    }
}

/// FAllocate: `mode` goes to `fallocate(2)` unchanged (hole punching works); the host's
/// errno is the answer. A mode wider than the syscall's `int` cannot be valid (`EINVAL`).
pub(super) fn allocate(open: &HostOpen, mode: u64, offset: u64, length: u64) -> BResult<()> {
    if !open.writable() {
        return Err(Errno::EBADF);
    }
    let mode = u32::try_from(mode).map_err(|_| Errno::EINVAL)?;
    let mode = FallocateFlags::from_bits_retain(mode);
    Ok(rustix::fs::fallocate(open.as_fd(), mode, offset, length)?)
}

/// FSync.
pub(super) fn sync(open: &HostOpen) -> BResult<()> {
    Ok(rustix::fs::fsync(open)?)
}
