//! Names: OpenCreateAt, MkdirAt, MknodAt, SymlinkAt, LinkAt, UnlinkAt, RenameAt(2).
//!
//! A create holds its directory's entries lock for writing from the existence check to
//! the insertion, so two creates of one name cannot both succeed, and builds the inode
//! before it inserts it, so a failure leaves nothing behind.

use std::sync::Arc;

use lisafs_protocol::wire::{
    Errno, Gid, Uid, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK,
};
use lisafs_server::{BResult, Create, Node, OpenFlags, Opened};
use parking_lot::RwLockWriteGuard;

use super::inode::{file_type, now, perm_bits, Entries, Inode, Meta};
use super::{io, node, MemoryBackend, MemoryFile, MemoryOpen};

/// The longest name a directory holds (`NAME_MAX`).
pub(super) const NAME_MAX: usize = 255;
/// Symlink targets must be shorter than this (`PATH_MAX`).
const PATH_MAX: usize = 4096;
/// `S_ISGID`: on a directory, new files take its group and new directories the bit.
const S_ISGID: u16 = 0o2000;
/// `AT_REMOVEDIR`.
const AT_REMOVEDIR: u32 = 0x200;
/// `renameat2(2)` flags.
const RENAME_NOREPLACE: u32 = 1;
const RENAME_EXCHANGE: u32 = 2;
const RENAME_WHITEOUT: u32 = 4;

/// `ENAMETOOLONG` for a name longer than [`NAME_MAX`].
pub(super) fn check_name(name: &[u8]) -> BResult<()> {
    match name.len() > NAME_MAX {
        true => Err(Errno::ENAMETOOLONG),
        false => Ok(()),
    }
}

/// Owner and group defaults of what a directory's creates make.
struct Parent {
    gid: u32,
    setgid: bool,
}

impl MemoryBackend {
    /// The owner of a new file: what the client asked for, else the process's user and,
    /// in a set-group-ID directory, the directory's group (else the process's).
    fn owner(&self, parent: &Parent, uid: Uid, gid: Gid) -> (u32, u32) {
        let uid = match uid {
            Uid::NONE => self.default_owner.0,
            Uid(uid) => uid,
        };
        let gid = match gid {
            Gid::NONE if parent.setgid => parent.gid,
            Gid::NONE => self.default_owner.1,
            Gid(gid) => gid,
        };
        (uid, gid)
    }
}

/// Adds the inode `make` builds as `name` in `dir`: `ENOENT` if `dir` was removed,
/// `EEXIST` if the name is taken. Updates the directory's times and, for a new
/// subdirectory, its link count.
fn add(
    dir: &Inode,
    name: &[u8],
    make: impl FnOnce(&Parent) -> BResult<Arc<Inode>>,
) -> BResult<Arc<Inode>> {
    check_name(name)?;
    let mut entries = dir.dir()?.entries.write();
    if entries.removed {
        return Err(Errno::ENOENT);
    }
    if entries.get(name).is_some() {
        return Err(Errno::EEXIST);
    }
    let parent = {
        let meta = dir.meta.lock();
        Parent {
            gid: meta.gid,
            setgid: meta.mode & S_ISGID != 0,
        }
    };
    let inode = make(&parent)?;
    entries.insert(name, Arc::clone(&inode));
    let mut meta = dir.meta.lock();
    meta.touch_modified();
    if inode.is_dir() {
        meta.nlink = meta.nlink.saturating_add(1);
    }
    Ok(inode)
}

/// OpenCreateAt: a new regular file, opened with `flags`. If the open fails the name is
/// removed again.
pub(super) fn create(
    b: &MemoryBackend,
    dir: &Arc<Inode>,
    name: &[u8],
    attrs: Create,
    flags: OpenFlags,
) -> BResult<(Node<MemoryFile>, Opened<MemoryOpen>)> {
    let inode = add(dir, name, |parent| {
        let (uid, gid) = b.owner(parent, attrs.uid, attrs.gid);
        let meta = Meta::new(S_IFREG | perm_bits(attrs.mode), uid, gid, 1);
        Inode::new_regular(b.alloc_ino(), meta, &b.usage, b.sealable)
    })?;
    let opened = match io::open(b, &inode, flags) {
        Ok(opened) => opened,
        Err(errno) => {
            // Nothing may be left behind; the name is still ours (the server holds the
            // directory's node lock), but only our inode is removed.
            let mut entries = dir.dir()?.entries.write();
            if entries.get(name).is_some_and(|i| Arc::ptr_eq(i, &inode)) {
                entries.remove(name);
                inode.meta.lock().nlink = 0;
            }
            return Err(errno);
        }
    };
    Ok((node(inode)?, opened))
}

/// MkdirAt; in a set-group-ID directory the new one is set-group-ID too.
pub(super) fn mkdir(
    b: &MemoryBackend,
    dir: &Arc<Inode>,
    name: &[u8],
    attrs: Create,
) -> BResult<Arc<Inode>> {
    add(dir, name, |parent| {
        let (uid, gid) = b.owner(parent, attrs.uid, attrs.gid);
        let mut mode = S_IFDIR | perm_bits(attrs.mode);
        if parent.setgid {
            mode |= S_ISGID;
        }
        let meta = Meta::new(mode, uid, gid, 2);
        Inode::new_directory(b.alloc_ino(), meta, Arc::downgrade(dir), &b.usage)
    })
}

/// MknodAt, with the types `mknod(2)` accepts: regular files (type 0 too), FIFOs,
/// sockets and devices (all inert here); a directory is `EPERM`, anything else `EINVAL`.
pub(super) fn mknod(
    b: &MemoryBackend,
    dir: &Arc<Inode>,
    name: &[u8],
    attrs: Create,
    rdev: (u32, u32),
) -> BResult<Arc<Inode>> {
    let kind = match file_type(attrs.mode) {
        0 | S_IFREG => S_IFREG,
        kind @ (S_IFCHR | S_IFBLK | S_IFIFO | S_IFSOCK) => kind,
        S_IFDIR => return Err(Errno::EPERM),
        _ => return Err(Errno::EINVAL),
    };
    add(dir, name, |parent| {
        let (uid, gid) = b.owner(parent, attrs.uid, attrs.gid);
        let meta = Meta::new(kind | perm_bits(attrs.mode), uid, gid, 1);
        match kind {
            S_IFREG => Inode::new_regular(b.alloc_ino(), meta, &b.usage, b.sealable),
            S_IFCHR | S_IFBLK => Inode::new_special(b.alloc_ino(), meta, rdev, &b.usage),
            _ => Inode::new_special(b.alloc_ino(), meta, (0, 0), &b.usage),
        }
    })
}

/// SymlinkAt: an empty target is `ENOENT`, one of `PATH_MAX` bytes or more
/// `ENAMETOOLONG`, as `symlink(2)`.
pub(super) fn symlink(
    b: &MemoryBackend,
    dir: &Arc<Inode>,
    name: &[u8],
    target: &[u8],
    (uid, gid): (Uid, Gid),
) -> BResult<Arc<Inode>> {
    if target.is_empty() {
        return Err(Errno::ENOENT);
    }
    if target.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    if target.contains(&0) {
        return Err(Errno::EINVAL);
    }
    add(dir, name, |parent| {
        let (uid, gid) = b.owner(parent, uid, gid);
        let meta = Meta::new(S_IFLNK | 0o777, uid, gid, 1);
        Inode::new_symlink(b.alloc_ino(), meta, target, &b.usage)
    })
}

/// LinkAt: a directory is `EPERM`; a file already unlinked everywhere `ENOENT` (it
/// cannot come back); a link count at its maximum `EMLINK`.
pub(super) fn link(
    _b: &MemoryBackend,
    dir: &Arc<Inode>,
    name: &[u8],
    target: &Arc<Inode>,
) -> BResult<Arc<Inode>> {
    if target.is_dir() {
        return Err(Errno::EPERM);
    }
    add(dir, name, |_| {
        let mut meta = target.meta.lock();
        match meta.nlink {
            0 => return Err(Errno::ENOENT),
            u32::MAX => return Err(Errno::EMLINK),
            _ => meta.nlink += 1,
        }
        meta.ctime = now();
        Ok(Arc::clone(target))
    })
}

/// One link fewer for `inode`, which lost a name (0 for a directory: it is gone).
fn drop_link(inode: &Inode) {
    let mut meta = inode.meta.lock();
    meta.nlink = match inode.is_dir() {
        true => 0,
        false => meta.nlink.saturating_sub(1),
    };
    meta.ctime = now();
}

/// Marks the directory `inode` removed if it is empty, else `ENOTEMPTY`. Locks its
/// entries after its parent's (the lock order).
fn remove_dir(inode: &Inode) -> BResult<()> {
    let mut entries = inode.dir()?.entries.write();
    if !entries.is_empty() {
        return Err(Errno::ENOTEMPTY);
    }
    entries.removed = true;
    Ok(())
}

/// UnlinkAt: with `AT_REMOVEDIR` only an empty directory (`ENOTDIR`, `ENOTEMPTY`),
/// without it only a non-directory (`EISDIR`); other flags are `EINVAL`.
pub(super) fn unlink(dir: &Inode, name: &[u8], flags: u32) -> BResult<()> {
    if flags & !AT_REMOVEDIR != 0 {
        return Err(Errno::EINVAL);
    }
    let mut entries = dir.dir()?.entries.write();
    let inode = Arc::clone(entries.get(name).ok_or(Errno::ENOENT)?);
    match (flags & AT_REMOVEDIR != 0, inode.is_dir()) {
        (true, false) => return Err(Errno::ENOTDIR),
        (false, true) => return Err(Errno::EISDIR),
        (true, true) => remove_dir(&inode)?,
        (false, false) => {}
    }
    entries.remove(name);
    drop_link(&inode);
    let mut meta = dir.meta.lock();
    meta.touch_modified();
    if inode.is_dir() {
        meta.nlink = meta.nlink.saturating_sub(1);
    }
    Ok(())
}

/// Whether `ancestor` is `dir` or one of the directories above it. Reads parent links
/// only, which renames change under the rename lock the caller holds.
fn is_ancestor_or_self(ancestor: &Arc<Inode>, dir: &Arc<Inode>) -> bool {
    let mut current = Arc::clone(dir);
    loop {
        if Arc::ptr_eq(&current, ancestor) {
            return true;
        }
        let parent = match current.dir() {
            Ok(d) => d.parent.lock().upgrade(),
            Err(_) => None,
        };
        match parent {
            Some(parent) => current = parent,
            None => return false,
        }
    }
}

/// The entries of both directories of a rename, locked in inode-number order; one guard
/// when they are the same directory.
struct Locked<'a> {
    old: RwLockWriteGuard<'a, Entries>,
    new: Option<RwLockWriteGuard<'a, Entries>>,
}

impl<'a> Locked<'a> {
    fn lock(old_dir: &'a Inode, new_dir: &'a Inode) -> BResult<Self> {
        let (old, new) = (&old_dir.dir()?.entries, &new_dir.dir()?.entries);
        Ok(if std::ptr::eq(old_dir, new_dir) {
            Self {
                old: old.write(),
                new: None,
            }
        } else if old_dir.ino < new_dir.ino {
            let old = old.write();
            Self {
                old,
                new: Some(new.write()),
            }
        } else {
            let new = new.write();
            Self {
                old: old.write(),
                new: Some(new),
            }
        })
    }

    fn source(&mut self) -> &mut Entries {
        &mut self.old
    }

    fn target(&mut self) -> &mut Entries {
        match &mut self.new {
            Some(new) => new,
            None => &mut self.old,
        }
    }
}

/// RenameAt and RenameAt2 with `renameat2(2)` semantics: `RENAME_NOREPLACE` (`EEXIST`),
/// `RENAME_EXCHANGE` (`ENOENT` without a target), `RENAME_WHITEOUT` (a 0:0 character
/// device is left at the old name); a directory into itself or a descendant is `EINVAL`;
/// over a non-empty directory `ENOTEMPTY`; a directory over a non-directory `ENOTDIR`,
/// the reverse `EISDIR`. Two names of one inode: nothing happens.
pub(super) fn rename(
    b: &MemoryBackend,
    (old_dir, old_name): (&Arc<Inode>, &[u8]),
    (new_dir, new_name): (&Arc<Inode>, &[u8]),
    flags: u32,
) -> BResult<()> {
    let known = RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT;
    let exchange = flags & RENAME_EXCHANGE != 0;
    if flags & !known != 0 || (exchange && flags & (RENAME_NOREPLACE | RENAME_WHITEOUT) != 0) {
        return Err(Errno::EINVAL);
    }
    check_name(new_name)?;
    let _serial = b.rename_lock.lock();
    let same_dir = Arc::ptr_eq(old_dir, new_dir);
    let mut locked = Locked::lock(old_dir, new_dir)?;
    if locked.source().removed || locked.target().removed {
        return Err(Errno::ENOENT);
    }
    let source = Arc::clone(locked.source().get(old_name).ok_or(Errno::ENOENT)?);
    let target = locked.target().get(new_name).cloned();
    if target.as_ref().is_some_and(|t| Arc::ptr_eq(t, &source)) {
        return Ok(());
    }
    if flags & RENAME_NOREPLACE != 0 && target.is_some() {
        return Err(Errno::EEXIST);
    }
    if source.is_dir() && is_ancestor_or_self(&source, new_dir) {
        return Err(Errno::EINVAL);
    }
    if exchange {
        let target = target.ok_or(Errno::ENOENT)?;
        if target.is_dir() && is_ancestor_or_self(&target, old_dir) {
            return Err(Errno::EINVAL);
        }
        locked.source().replace(old_name, Arc::clone(&target));
        locked.target().replace(new_name, Arc::clone(&source));
        drop(locked);
        if !same_dir {
            moved_dir(&source, old_dir, new_dir);
            moved_dir(&target, new_dir, old_dir);
        }
        for inode in [&source, &target] {
            inode.meta.lock().ctime = now();
        }
        touch_dirs(old_dir, new_dir, same_dir);
        return Ok(());
    }
    if let Some(target) = &target {
        match (source.is_dir(), target.is_dir()) {
            (true, false) => return Err(Errno::ENOTDIR),
            (false, true) => return Err(Errno::EISDIR),
            // The target holds the source (it is above it): it is not empty.
            (true, true) if is_ancestor_or_self(target, old_dir) => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
    }
    let whiteout = match flags & RENAME_WHITEOUT != 0 {
        true => {
            let (uid, gid) = b.default_owner;
            let meta = Meta::new(S_IFCHR, uid, gid, 1);
            Some(Inode::new_special(b.alloc_ino(), meta, (0, 0), &b.usage)?)
        }
        false => None,
    };
    // Last check, after which nothing fails: an empty target directory is removed.
    if let Some(target) = target.as_ref().filter(|t| t.is_dir()) {
        remove_dir(target)?;
    }
    locked.source().remove(old_name);
    if let Some(whiteout) = whiteout {
        locked.source().insert(old_name, whiteout);
    }
    if target.is_some() {
        locked.target().remove(new_name);
    }
    locked.target().insert(new_name, Arc::clone(&source));
    drop(locked);
    if let Some(target) = &target {
        drop_link(target);
        if target.is_dir() {
            let mut meta = new_dir.meta.lock();
            meta.nlink = meta.nlink.saturating_sub(1);
        }
    }
    if !same_dir {
        moved_dir(&source, old_dir, new_dir);
    }
    source.meta.lock().ctime = now();
    touch_dirs(old_dir, new_dir, same_dir);
    Ok(())
}

/// After `inode` moved from `from` to `to` (different directories): if it is a directory,
/// its parent link and both link counts follow.
fn moved_dir(inode: &Arc<Inode>, from: &Arc<Inode>, to: &Arc<Inode>) {
    let Ok(dir) = inode.dir() else {
        return;
    };
    *dir.parent.lock() = Arc::downgrade(to);
    {
        let mut meta = from.meta.lock();
        meta.nlink = meta.nlink.saturating_sub(1);
    }
    let mut meta = to.meta.lock();
    meta.nlink = meta.nlink.saturating_add(1);
}

/// mtime and ctime of the directories a rename changed.
fn touch_dirs(old_dir: &Inode, new_dir: &Inode, same_dir: bool) {
    old_dir.meta.lock().touch_modified();
    if !same_dir {
        new_dir.meta.lock().touch_modified();
    }
}
