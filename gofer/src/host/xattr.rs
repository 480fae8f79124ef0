//! Extended attributes: FGetXattr, FSetXattr, FListXattr, FRemoveXattr.
//!
//! Control FDs are `O_PATH`, which the `f*xattr` calls refuse, and symlinks and sockets
//! have nothing else. So the inode is named as the entry `"<n>"` of the validated
//! `/proc/self/fd` handle with the `*xattrat` calls (Linux 6.13): following that magic link
//! lands exactly on the pinned inode (a symlink itself, never its target), with no path
//! resolved from the root. Older kernels fall back to the `/proc/self/fd/<n>` path.
//!
//! The operator's `--xattr` policy decides which namespaces clients reach: by default only
//! `user.*`. The others carry host security state (file capabilities in
//! `security.capability`, LSM labels, IMA hashes, overlayfs markers in `trusted.overlay.*`,
//! POSIX ACLs in `system.*`) that a sandboxed client must neither set nor learn; a refused
//! name is `EOPNOTSUPP`, as for a namespace the filesystem does not have, and listing
//! leaves it out.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};

use lisafs_protocol::wire::Errno;
use lisafs_server::{refused, BResult, Refusal};
use rustix::fs::XattrFlags;

use super::file::HostFile;
use super::resolve::Resolver;
use super::{HostBackend, XattrPolicy};
use crate::sys;

/// Largest xattr value and list Linux has (`XATTR_SIZE_MAX`, `XATTR_LIST_MAX`); also what a
/// buffer size of 0 means on the wire.
const XATTR_MAX: usize = 65_536;

/// Set once a `*xattrat` call reports `ENOSYS` (kernel before 6.13).
static XATTRAT_MISSING: AtomicBool = AtomicBool::new(false);

/// How an xattr call names the pinned inode.
enum Target<'a> {
    /// The entry `"<n>"` of the validated `/proc/self/fd` handle, for the `*xattrat` calls.
    ProcEntry(&'a CStr),
    /// The path `/proc/self/fd/<n>`, for kernels without them.
    Path(&'a CStr),
}

/// Runs `op` on the proc entry of `file` unless the kernel lacks the `*xattrat` calls,
/// then on its `/proc/self/fd/<n>` path.
fn call<T>(file: &HostFile, mut op: impl FnMut(Target<'_>) -> io::Result<T>) -> BResult<T> {
    let fd = file.as_fd();
    if !XATTRAT_MISSING.load(Ordering::Relaxed) {
        match op(Target::ProcEntry(&Resolver::proc_cname(fd))) {
            Err(err) if err.raw_os_error() == Some(libc::ENOSYS) => {
                XATTRAT_MISSING.store(true, Ordering::Relaxed);
            }
            result => return Ok(result?),
        }
    }
    let mut path = b"/proc/self/fd/".to_vec();
    path.extend_from_slice(Resolver::proc_name(fd).as_bytes());
    let path = CString::new(path).map_err(|_| Errno::EINVAL)?;
    Ok(op(Target::Path(&path))?)
}

/// A buffer size from the wire: 0 or more than the Linux maximum mean the maximum.
fn buffer_size(size: usize) -> usize {
    match size {
        0 => XATTR_MAX,
        size => size.min(XATTR_MAX),
    }
}

fn c_name(name: &[u8]) -> BResult<CString> {
    CString::new(name).map_err(|_| Errno::EINVAL)
}

/// Whether `policy` lets clients use the attribute `name`.
fn allowed(policy: XattrPolicy, name: &[u8]) -> bool {
    match policy {
        XattrPolicy::None => false,
        XattrPolicy::User => name.starts_with(b"user."),
        XattrPolicy::All => true,
    }
}

/// `name` as a C string if the policy lets clients use it: a NUL is `EINVAL` (whatever the
/// namespace, as for every name), a refused namespace `EOPNOTSUPP`.
fn checked_name(b: &HostBackend, name: &[u8]) -> BResult<CString> {
    let name = c_name(name)?;
    match allowed(b.options.xattr, name.as_bytes()) {
        true => Ok(name),
        false => {
            refused!(
                Refusal::Xattr,
                name = %name.to_bytes().escape_ascii(),
                "refused an xattr outside --xattr"
            );
            Err(Errno::EOPNOTSUPP)
        }
    }
}

/// FGetXattr: the value, at most `size` bytes (`ERANGE` from the host if longer). A value
/// of 65,536 bytes cannot be sent with a `u16` length: `E2BIG` (SPEC.md §7.8).
pub(super) fn get(b: &HostBackend, file: &HostFile, name: &[u8], size: usize) -> BResult<Vec<u8>> {
    let name = checked_name(b, name)?;
    let mut buf = vec![0u8; buffer_size(size)];
    let proc_fd = b.resolver.proc_self_fd();
    let len = call(file, |target| match target {
        Target::ProcEntry(entry) => sys::getxattrat(proc_fd, entry, &name, &mut buf),
        Target::Path(path) => Ok(rustix::fs::getxattr(path, &*name, &mut buf[..])?),
    })?;
    if len > usize::from(u16::MAX) {
        return Err(Errno::E2BIG);
    }
    buf.truncate(len);
    Ok(buf)
}

/// FSetXattr; `flags` (`XATTR_CREATE`, `XATTR_REPLACE`) are passed through.
pub(super) fn set(
    b: &HostBackend,
    file: &HostFile,
    name: &[u8],
    value: &[u8],
    flags: u32,
) -> BResult<()> {
    let name = checked_name(b, name)?;
    b.resolver.ensure_beneath(file)?;
    let proc_fd = b.resolver.proc_self_fd();
    call(file, |target| match target {
        Target::ProcEntry(entry) => sys::setxattrat(proc_fd, entry, &name, value, flags),
        Target::Path(path) => {
            let flags = XattrFlags::from_bits_retain(flags);
            Ok(rustix::fs::setxattr(path, &*name, value, flags)?)
        }
    })
}

/// FListXattr: the names the policy allows, if their list (each name and its NUL) fits
/// in `size` bytes; otherwise `ERANGE`, as the host would answer for a list of just those
/// names. The host list is read whole (it never exceeds the Linux maximum), so names the
/// client may not see neither count against `size` nor make it fail.
pub(super) fn list(b: &HostBackend, file: &HostFile, size: usize) -> BResult<Vec<Vec<u8>>> {
    let policy = b.options.xattr;
    if policy == XattrPolicy::None {
        return Ok(Vec::new());
    }
    let mut buf = vec![0u8; XATTR_MAX];
    let proc_fd = b.resolver.proc_self_fd();
    let len = call(file, |target| match target {
        Target::ProcEntry(entry) => sys::listxattrat(proc_fd, entry, &mut buf),
        Target::Path(path) => Ok(rustix::fs::listxattr(path, &mut buf[..])?),
    })?;
    let list = buf.get(..len).ok_or(Errno::EIO)?;
    let names: Vec<Vec<u8>> = list
        .split(|&byte| byte == 0)
        .filter(|name| !name.is_empty() && allowed(policy, name))
        .map(<[u8]>::to_vec)
        .collect();
    let wanted: usize = names.iter().map(|name| name.len() + 1).sum();
    if wanted > buffer_size(size) {
        return Err(Errno::ERANGE);
    }
    Ok(names)
}

/// FRemoveXattr.
pub(super) fn remove(b: &HostBackend, file: &HostFile, name: &[u8]) -> BResult<()> {
    let name = checked_name(b, name)?;
    b.resolver.ensure_beneath(file)?;
    let proc_fd = b.resolver.proc_self_fd();
    call(file, |target| match target {
        Target::ProcEntry(entry) => sys::removexattrat(proc_fd, entry, &name),
        Target::Path(path) => Ok(rustix::fs::removexattr(path, &*name)?),
    })
}

#[cfg(test)]
mod tests {
    use lisafs_server::{Backend, Create, Name};

    use super::*;
    use crate::host::HostOptions;

    /// The path form used before Linux 6.13 reaches the same inodes. (No other unit test
    /// uses xattrs, so flipping the process-wide switch here affects nothing else.)
    #[test]
    fn the_proc_path_fallback_reaches_the_pinned_inode() {
        let dir = tempfile::tempdir().unwrap();
        let b = HostBackend::new(dir.path(), HostOptions::default()).unwrap();
        let root = b.mount().unwrap().root.file;
        let none = Create {
            mode: 0o644,
            uid: lisafs_protocol::wire::Uid::NONE,
            gid: lisafs_protocol::wire::Gid::NONE,
        };
        let name = Name::new(b"f").unwrap();
        let (file, _) = b
            .create(
                &root,
                name,
                none,
                lisafs_server::OpenFlags {
                    read: true,
                    write: true,
                    truncate: false,
                },
            )
            .unwrap();
        let link = Name::new(b"l").unwrap();
        let link = b.symlink(&root, link, b"f", none.uid, none.gid).unwrap();
        XATTRAT_MISSING.store(true, Ordering::Relaxed);
        set(&b, &file.file, b"user.k", b"v", 0).unwrap();
        assert_eq!(get(&b, &file.file, b"user.k", 0).unwrap(), b"v");
        assert_eq!(list(&b, &file.file, 0).unwrap(), [b"user.k".to_vec()]);
        assert_eq!(get(&b, &link.file, b"user.k", 0), Err(Errno::ENODATA));
        assert_eq!(set(&b, &link.file, b"user.k", b"v", 0), Err(Errno::EPERM));
        remove(&b, &file.file, b"user.k").unwrap();
        XATTRAT_MISSING.store(false, Ordering::Relaxed);
        assert_eq!(get(&b, &file.file, b"user.k", 0), Err(Errno::ENODATA));
    }
}
