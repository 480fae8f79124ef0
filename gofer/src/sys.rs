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
