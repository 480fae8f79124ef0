//! Extended attributes: FGetXattr, FSetXattr, FListXattr, FRemoveXattr.
//!
//! Every namespace (`user.`, `trusted.`, `security.`, `system.`) is plain bytes here: the
//! tree belongs to the sandbox, there is no host state for an attribute to reach. Errnos
//! follow Linux: a name without a known prefix `EOPNOTSUPP`, an empty or over-long name
//! `ERANGE`, a prefix alone `EINVAL`, `user.*` on anything but regular files and
//! directories `EPERM` to change and `ENODATA` to read (as the kernel's
//! `xattr_permission`). Names and values count against the size limit.

use lisafs_protocol::wire::{Errno, S_IFDIR, S_IFREG};
use lisafs_server::BResult;

use super::inode::{now, Inode};

/// Largest xattr value and list Linux has (`XATTR_SIZE_MAX`, `XATTR_LIST_MAX`); also what a
/// buffer size of 0 means on the wire.
const XATTR_MAX: usize = 65_536;
/// Longest xattr name (`XATTR_NAME_MAX`).
const XATTR_NAME_MAX: usize = 255;
/// `XATTR_CREATE`, `XATTR_REPLACE`.
const XATTR_CREATE: u32 = 1;
const XATTR_REPLACE: u32 = 2;
/// The namespaces Linux knows.
const PREFIXES: [&[u8]; 4] = [b"user.", b"trusted.", b"security.", b"system."];

/// A buffer size from the wire: 0 or more than the Linux maximum mean the maximum.
fn buffer_size(size: usize) -> usize {
    match size {
        0 => XATTR_MAX,
        size => size.min(XATTR_MAX),
    }
}

/// Checks `name` as the kernel does; for `user.*` on a file that cannot have them, the
/// errno is `if_user_refused`.
fn check_name(inode: &Inode, name: &[u8], if_user_refused: Errno) -> BResult<()> {
    if name.contains(&0) {
        return Err(Errno::EINVAL);
    }
    if name.is_empty() || name.len() > XATTR_NAME_MAX {
        return Err(Errno::ERANGE);
    }
    let prefix = PREFIXES
        .iter()
        .find(|prefix| name.starts_with(prefix))
        .ok_or(Errno::EOPNOTSUPP)?;
    if name.len() == prefix.len() {
        return Err(Errno::EINVAL);
    }
    if *prefix == b"user." && !matches!(inode.file_type, S_IFREG | S_IFDIR) {
        return Err(if_user_refused);
    }
    Ok(())
}

/// FGetXattr: the value, if it fits `size` (else `ERANGE`); a 65,536-byte value cannot be
/// sent with a `u16` length: `E2BIG` (as the host backend).
pub(super) fn get(inode: &Inode, name: &[u8], size: usize) -> BResult<Vec<u8>> {
    check_name(inode, name, Errno::ENODATA)?;
    let meta = inode.meta.lock();
    let value = meta.xattrs.get(name).ok_or(Errno::ENODATA)?;
    if value.len() > buffer_size(size) {
        return Err(Errno::ERANGE);
    }
    if value.len() > usize::from(u16::MAX) {
        return Err(Errno::E2BIG);
    }
    Ok(value.clone())
}

/// FSetXattr with `XATTR_CREATE` (`EEXIST`) and `XATTR_REPLACE` (`ENODATA`); other flags
/// are `EINVAL`, a value over 64 KiB `E2BIG`, growth beyond the limit `ENOSPC`.
pub(super) fn set(inode: &Inode, name: &[u8], value: &[u8], flags: u32) -> BResult<()> {
    if flags & !(XATTR_CREATE | XATTR_REPLACE) != 0 {
        return Err(Errno::EINVAL);
    }
    check_name(inode, name, Errno::EPERM)?;
    if value.len() > XATTR_MAX {
        return Err(Errno::E2BIG);
    }
    let mut meta = inode.meta.lock();
    let old = meta.xattrs.get(name).map(Vec::len);
    match old {
        Some(_) if flags & XATTR_CREATE != 0 => return Err(Errno::EEXIST),
        None if flags & XATTR_REPLACE != 0 => return Err(Errno::ENODATA),
        _ => {}
    }
    let old_bytes = old.map_or(0, |len| len + name.len()) as u64;
    let new_bytes = (value.len() + name.len()) as u64;
    if new_bytes > old_bytes {
        inode.usage().charge_bytes(new_bytes - old_bytes)?;
    } else {
        inode.usage().release_bytes(old_bytes - new_bytes);
    }
    meta.xattrs.insert(name.to_vec(), value.to_vec());
    meta.ctime = now();
    Ok(())
}

/// FListXattr: every name, if the list (each name and its NUL) fits `size` bytes;
/// otherwise `ERANGE`.
pub(super) fn list(inode: &Inode, size: usize) -> BResult<Vec<Vec<u8>>> {
    let meta = inode.meta.lock();
    let wanted: usize = meta.xattrs.keys().map(|name| name.len() + 1).sum();
    if wanted > buffer_size(size) {
        return Err(Errno::ERANGE);
    }
    Ok(meta.xattrs.keys().cloned().collect())
}

/// FRemoveXattr: `ENODATA` if there is none.
pub(super) fn remove(inode: &Inode, name: &[u8]) -> BResult<()> {
    check_name(inode, name, Errno::EPERM)?;
    let mut meta = inode.meta.lock();
    let value = meta.xattrs.remove(name).ok_or(Errno::ENODATA)?;
    inode
        .usage()
        .release_bytes((name.len() + value.len()) as u64);
    meta.ctime = now();
    Ok(())
}
