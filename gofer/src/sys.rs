//! Raw system calls that rustix does not wrap, and taking ownership of an inherited FD.
//!
//! The `*xattrat` family (Linux 6.13) lets the gofer name a pinned inode as the entry
//! `"<n>"` of its validated `/proc/self/fd` handle, so xattrs of symlinks and sockets (which
//! only have `O_PATH` FDs, which the `f*xattr` calls refuse) never go through a host path
//! string. rustix 1.1 has no wrapper for them and libc defines their numbers only for some
//! architectures, so the numbers are spelled out here (they are the same on every
//! architecture that uses the generic syscall table, x86-64 included).
#![allow(unsafe_code)] // Reason: raw syscalls and `OwnedFd::from_raw_fd`; each block says why it is sound.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
))]
mod nr {
    pub(super) const SETXATTRAT: libc::c_long = 463;
    pub(super) const GETXATTRAT: libc::c_long = 464;
    pub(super) const LISTXATTRAT: libc::c_long = 465;
    pub(super) const REMOVEXATTRAT: libc::c_long = 466;
}

/// Numbers not known here: `syscall(-1)` fails with `ENOSYS`, and the callers then use the
/// `/proc/self/fd/<n>` path form.
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
mod nr {
    pub(super) const SETXATTRAT: libc::c_long = -1;
    pub(super) const GETXATTRAT: libc::c_long = -1;
    pub(super) const LISTXATTRAT: libc::c_long = -1;
    pub(super) const REMOVEXATTRAT: libc::c_long = -1;
}

/// The kernel's `struct xattr_args` (include/uapi/linux/xattr.h); the `*xattrat` calls
/// that take it report `ENOSYS` before Linux 6.13.
#[repr(C)]
struct XattrArgs {
    value: u64,
    size: u32,
    flags: u32,
}

/// The size the kernel expects for `struct xattr_args` (16 bytes, a fixed ABI).
const XATTR_ARGS_SIZE: libc::size_t = std::mem::size_of::<XattrArgs>();

/// Turns a raw syscall return value into a byte count or the thread's errno.
fn check(ret: libc::c_long) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// `getxattrat(dirfd, path, 0, name, {value: buf})`: reads the value of `name` of the file
/// `path` names relative to `dirfd`, following a trailing (magic) link. Returns its length.
pub(crate) fn getxattrat(
    dirfd: BorrowedFd<'_>,
    path: &CStr,
    name: &CStr,
    buf: &mut [u8],
) -> io::Result<usize> {
    let mut args = XattrArgs {
        value: buf.as_mut_ptr() as u64,
        size: u32::try_from(buf.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?,
        flags: 0,
    };
    // SAFETY: `dirfd` is a live FD for the duration of the call; `path` and `name` are
    // NUL-terminated C strings that outlive it; `args` points to a correctly laid out
    // `struct xattr_args` of the size passed, whose `value`/`size` describe `buf`, which
    // is writable and borrowed mutably for the call, so the kernel writes only into it.
    let ret = unsafe {
        libc::syscall(
            nr::GETXATTRAT,
            dirfd.as_raw_fd(),
            path.as_ptr(),
            0u32,
            name.as_ptr(),
            &mut args as *mut XattrArgs,
            XATTR_ARGS_SIZE,
        )
    };
    check(ret)
}

/// `setxattrat(dirfd, path, 0, name, {value, flags})`: sets `name` to `value` with
/// `XATTR_CREATE`/`XATTR_REPLACE` `flags` passed through.
pub(crate) fn setxattrat(
    dirfd: BorrowedFd<'_>,
    path: &CStr,
    name: &CStr,
    value: &[u8],
    flags: u32,
) -> io::Result<()> {
    let args = XattrArgs {
        value: value.as_ptr() as u64,
        size: u32::try_from(value.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?,
        flags,
    };
    // SAFETY: `dirfd` is live for the call; `path` and `name` are NUL-terminated and
    // outlive it; `args` is a `struct xattr_args` of the size passed whose `value`/`size`
    // describe `value`, which the kernel only reads.
    let ret = unsafe {
        libc::syscall(
            nr::SETXATTRAT,
            dirfd.as_raw_fd(),
            path.as_ptr(),
            0u32,
            name.as_ptr(),
            &args as *const XattrArgs,
            XATTR_ARGS_SIZE,
        )
    };
    check(ret).map(drop)
}

/// `listxattrat(dirfd, path, 0, buf, len)`: the NUL-separated names; returns their length.
pub(crate) fn listxattrat(dirfd: BorrowedFd<'_>, path: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `dirfd` is live for the call; `path` is NUL-terminated and outlives it;
    // `buf` is writable for `buf.len()` bytes and borrowed mutably for the call.
    let ret = unsafe {
        libc::syscall(
            nr::LISTXATTRAT,
            dirfd.as_raw_fd(),
            path.as_ptr(),
            0u32,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    check(ret)
}

/// `removexattrat(dirfd, path, 0, name)`.
pub(crate) fn removexattrat(dirfd: BorrowedFd<'_>, path: &CStr, name: &CStr) -> io::Result<()> {
    // SAFETY: `dirfd` is live for the call; `path` and `name` are NUL-terminated C strings
    // that outlive it. The kernel only reads them.
    let ret = unsafe {
        libc::syscall(
            nr::REMOVEXATTRAT,
            dirfd.as_raw_fd(),
            path.as_ptr(),
            0u32,
            name.as_ptr(),
        )
    };
    check(ret).map(drop)
}

/// Takes ownership of an FD the gofer inherited from its parent (`--fd N`).
///
/// Refuses the standard output and error streams (the process keeps using them) and FDs
/// that are not open. The caller must not use `fd` in any other way afterwards; `main`
/// calls this once, before anything else could have opened or closed FD `fd`.
pub(crate) fn take_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 || fd == libc::STDOUT_FILENO || fd == libc::STDERR_FILENO {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: F_GETFD only reads the descriptor flags of `fd`; an invalid number yields
    // EBADF and touches nothing.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is open (F_GETFD succeeded) and, being inherited across exec, is owned by
    // no Rust object in this process: nothing else in the gofer opens, wraps or closes it,
    // and `take_inherited_fd` is called once per `--fd`. So the new `OwnedFd` is its sole
    // owner, as `from_raw_fd` requires.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `MOUNT_ATTR_*` bits of `mount_setattr(2)` (include/uapi/linux/mount.h); libc lacks them.
pub(crate) mod mount_attr {
    /// Read-only.
    pub(crate) const RDONLY: u64 = 0x1;
    /// Ignore set-user-ID and set-group-ID bits and file capabilities.
    pub(crate) const NOSUID: u64 = 0x2;
    /// No device access.
    pub(crate) const NODEV: u64 = 0x4;
}

/// The kernel's `struct mount_attr` (`MOUNT_ATTR_SIZE_VER0`, 32 bytes).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, {attr_set})`: adds the
/// [`mount_attr`] bits `set` to the mount `fd` refers to and every mount below it. Linux 5.12.
pub(crate) fn mount_setattr_recursive(fd: BorrowedFd<'_>, set: u64) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `fd` is live for the call; the path is a NUL-terminated empty string; `attr`
    // is a correctly laid out `struct mount_attr` whose size is passed, and the kernel only
    // reads it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(ret).map(drop)
}

/// Moves the calling thread into new namespaces of the kinds in `flags`
/// (`unshare(2)`). Only for start-up: the caller must be the process's only thread, so no
/// other thread shares the state (files, filesystem root and cwd) being unshared.
pub(crate) fn unshare_single_threaded(flags: rustix::thread::UnshareFlags) -> io::Result<()> {
    // SAFETY: rustix marks unshare unsafe because unsharing CLONE_FILES or CLONE_FS under
    // other threads changes state they rely on; the caller guarantees there are none.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(io::Error::from)
}

/// What [`fork_single_threaded`] returns in each process.
pub(crate) enum Forked {
    /// In the parent: the child's process ID.
    Parent(rustix::process::Pid),
    /// In the child.
    Child,
}

/// `fork(2)`. Only for start-up: the caller must be the process's only thread, so the
/// child cannot inherit a lock held by a thread that does not exist in it.
pub(crate) fn fork_single_threaded() -> io::Result<Forked> {
    // SAFETY: with a single thread, the child's copy of memory is consistent (no lock is
    // held by another thread, no allocator state is mid-update), which is what makes
    // running arbitrary Rust code in the child sound.
    let pid = unsafe { libc::fork() };
    match pid {
        0 => Ok(Forked::Child),
        pid if pid > 0 => Ok(Forked::Parent(
            rustix::process::Pid::from_raw(pid).ok_or_else(io::Error::last_os_error)?,
        )),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Closes every FD from 3 up except those in `keep` (the inherited connections): whatever
/// else the launcher left open (a host directory, say) must not reach a process serving
/// untrusted clients. Called at start-up, before the process has opened anything itself.
pub(crate) fn close_inherited_except(keep: &[RawFd]) {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .filter(|&fd| fd >= 3)
        .collect();
    keep.sort_unstable();
    let mut first = 3;
    for fd in keep {
        if fd >= first {
            close_range(first, fd - 1);
            first = fd.saturating_add(1);
        }
    }
    close_range(first, u32::MAX);
}

/// `close_range(first, last, 0)`; an empty range does nothing.
fn close_range(first: u32, last: u32) {
    if first > last {
        return;
    }
    // SAFETY: the callers guarantee that no live `OwnedFd` (or other owner) refers to an FD
    // in the range, so closing them cannot invalidate an owner's FD.
    unsafe {
        libc::close_range(first, last, 0);
    }
}

/// `setfsuid(2)` on the calling thread only (the filesystem UID is per thread and neither
/// the kernel nor libc passes it to other threads). Returns the previous filesystem UID;
/// fails with `EPERM` if the kernel kept the old one.
pub(crate) fn setfsuid(uid: u32) -> io::Result<u32> {
    // SAFETY: setfsuid takes a plain integer and changes only the calling thread's
    // credentials; it touches no memory of this process.
    let old = unsafe { libc::setfsuid(uid) };
    // The call cannot report failure: it returns the previous ID either way. An invalid ID
    // (-1) changes nothing and returns the current one, which tells whether `uid` took.
    // SAFETY: as above.
    let now = unsafe { libc::setfsuid(u32::MAX) };
    fs_id_result(old, now, uid)
}

/// `setfsgid(2)` on the calling thread only; as [`setfsuid`], for the filesystem GID.
pub(crate) fn setfsgid(gid: u32) -> io::Result<u32> {
    // SAFETY: setfsgid takes a plain integer and changes only the calling thread's
    // credentials; it touches no memory of this process.
    let old = unsafe { libc::setfsgid(gid) };
    // SAFETY: as above; -1 is an invalid ID, so this only reads the current one.
    let now = unsafe { libc::setfsgid(u32::MAX) };
    fs_id_result(old, now, gid)
}

/// The previous ID if the current one is `wanted`. The calls return IDs as a C `int`, so
/// IDs above `i32::MAX` come back negative: the bits are reinterpreted, not converted.
fn fs_id_result(old: libc::c_int, now: libc::c_int, wanted: u32) -> io::Result<u32> {
    let id = |ret: libc::c_int| u32::from_ne_bytes(ret.to_ne_bytes());
    match id(now) == wanted {
        true => Ok(id(old)),
        false => Err(io::Error::from_raw_os_error(libc::EPERM)),
    }
}
