//! Inodes: what every file has (metadata, xattrs) and what each kind holds (a memfd, the
//! entries of a directory, a symlink target), and their Statx.
//!
//! Locks: a directory's entries have their own `RwLock`, and every inode's metadata its
//! own `Mutex`. Order: directory entries before metadata (a parent's entries before a
//! child's, and two directories of a rename by inode number); a thread holds at most one
//! metadata lock, and never takes an entries lock while it does.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use lisafs_protocol::wire::{
    Errno, Statx, StatxTimestamp, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG,
    S_IFSOCK,
};
use lisafs_server::BResult;
use parking_lot::{Mutex, RwLock};
use rustix::fs::{AtFlags, MemfdFlags, StatxFlags};

use super::usage::{blocks_of, Usage, BLOCK_SIZE};

/// [`BLOCK_SIZE`] as the `u32` of `st_blksize`.
const BLOCK_SIZE_U32: u32 = 4096;
const _: () = assert!(BLOCK_SIZE_U32 as u64 == BLOCK_SIZE);

/// The device number every inode reports (`st_dev`): made up, the same for the whole tree.
pub(super) const DEV_MAJOR: u32 = 0;
/// See [`DEV_MAJOR`]; "me" in ASCII.
pub(super) const DEV_MINOR: u32 = 0x6d65;

/// The size every directory reports, whatever it holds (as ext4 for small directories):
/// a directory's stat stays the same while entries come and go, which clients comparing
/// the stats of one directory over time (gVisor's Walk case) expect.
const DIR_SIZE: u64 = BLOCK_SIZE;

/// The `STATX_*` basic-stats bits: what every Statx of this backend fills in.
const STATX_BASIC_STATS: u32 = 0x7ff;

/// The current time as a statx timestamp.
pub(super) fn now() -> StatxTimestamp {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    StatxTimestamp {
        sec: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nsec: since.subsec_nanos(),
        _pad: 0,
    }
}

/// A timestamp as a comparable pair.
pub(super) fn ts_key(t: &StatxTimestamp) -> (i64, u32) {
    (t.sec, t.nsec)
}

/// The file-independent attributes of an inode.
#[derive(Debug)]
pub(super) struct Meta {
    /// Type and permission bits; the type never changes.
    pub(super) mode: u16,
    pub(super) uid: u32,
    pub(super) gid: u32,
    /// Names pointing here; for a directory 2 plus its subdirectories, 0 once removed.
    pub(super) nlink: u32,
    pub(super) atime: StatxTimestamp,
    /// For regular files the memfd's own mtime is the truth (donated writes move it).
    pub(super) mtime: StatxTimestamp,
    /// For regular files the later of this and the memfd's ctime.
    pub(super) ctime: StatxTimestamp,
    pub(super) btime: StatxTimestamp,
    /// Extended attributes, every namespace, as bytes.
    pub(super) xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Meta {
    /// Metadata of a new inode of `mode`, all times now.
    pub(super) fn new(mode: u16, uid: u32, gid: u32, nlink: u32) -> Self {
        let t = now();
        Self {
            mode,
            uid,
            gid,
            nlink,
            atime: t,
            mtime: t,
            ctime: t,
            btime: t,
            xattrs: BTreeMap::new(),
        }
    }

    /// A change of contents: mtime and ctime now (tmpfs for a directory's entries).
    pub(super) fn touch_modified(&mut self) {
        let t = now();
        self.mtime = t;
        self.ctime = t;
    }

    /// An access, with `relatime` rules (the Linux default): atime moves only if it is
    /// not newer than mtime or ctime, or is a day old.
    pub(super) fn touch_accessed(&mut self) {
        let t = now();
        let stale = ts_key(&self.atime) <= ts_key(&self.mtime)
            || ts_key(&self.atime) <= ts_key(&self.ctime)
            || self.atime.sec.saturating_add(24 * 3600) <= t.sec;
        if stale {
            self.atime = t;
        }
    }

    /// What the kernel does to a non-directory on chown, write and truncate by a process
    /// without `CAP_FSETID` (the gofer, as the host backend's kernel sees it): set-user-ID
    /// goes, set-group-ID too if group execute is set (otherwise it marks mandatory
    /// locking, not privilege).
    pub(super) fn kill_setid(&mut self) {
        const S_ISUID: u16 = 0o4000;
        const S_ISGID: u16 = 0o2000;
        const S_IXGRP: u16 = 0o0010;
        if self.mode & S_IFMT == S_IFDIR {
            return;
        }
        self.mode &= !S_ISUID;
        if self.mode & S_IXGRP != 0 {
            self.mode &= !S_ISGID;
        }
    }

    /// Bytes the xattrs take (names and values), as charged against the size limit.
    pub(super) fn xattr_bytes(&self) -> u64 {
        self.xattrs
            .iter()
            .map(|(name, value)| (name.len() + value.len()) as u64)
            .sum()
    }
}

/// A regular file's data: a memfd, so that its FD can be donated.
#[derive(Debug)]
pub(super) struct Regular {
    /// The memfd (`O_RDWR`); never donated itself: clients get reopened FDs with their
    /// own access mode and file position.
    pub(super) data: OwnedFd,
    /// Bytes charged for the data: the size as last seen, rounded up to blocks. Also
    /// serialises the RPC writes and size changes of this file with their charges.
    pub(super) charged: Mutex<u64>,
}

impl Regular {
    /// A fresh, empty memfd; `sealable` lets [`super::MemoryBackend::seal_read_only`]
    /// seal it later (otherwise it is born with `F_SEAL_SEAL`, so that no holder of a
    /// donated FD can seal it).
    fn new(sealable: bool) -> BResult<Self> {
        let mut flags = MemfdFlags::CLOEXEC;
        if sealable {
            flags |= MemfdFlags::ALLOW_SEALING;
        }
        let data = match rustix::fs::memfd_create(c"lisafs-memory", flags) {
            Ok(fd) => fd,
            // Out of FDs is, for the client, out of space in this filesystem.
            Err(rustix::io::Errno::MFILE | rustix::io::Errno::NFILE) => return Err(Errno::ENOSPC),
            Err(err) => return Err(err.into()),
        };
        Ok(Self {
            data,
            charged: Mutex::new(0),
        })
    }

    /// The memfd's statx: the size, blocks, mtime and ctime the kernel keeps.
    pub(super) fn host_stat(&self) -> BResult<rustix::fs::Statx> {
        Ok(rustix::fs::statx(
            &self.data,
            c"",
            AtFlags::EMPTY_PATH,
            StatxFlags::BASIC_STATS,
        )?)
    }

    /// The current size.
    pub(super) fn size(&self) -> BResult<u64> {
        Ok(self.host_stat()?.stx_size)
    }
}

/// One name in a directory.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) name: Box<[u8]>,
    pub(super) inode: Arc<Inode>,
}

/// A directory's names. Each entry gets a cookie, increasing with every insertion, that
/// is its Getdents64 offset: a listing resumes after the last cookie it returned, so
/// entries added or removed meanwhile never make it skip or repeat the others.
#[derive(Debug, Default)]
pub(super) struct Entries {
    by_cookie: BTreeMap<u64, Entry>,
    by_name: HashMap<Box<[u8]>, u64>,
    next_cookie: u64,
    /// Set when the directory is removed: nothing can be created in it any more.
    pub(super) removed: bool,
}

impl Entries {
    /// The inode named `name`.
    pub(super) fn get(&self, name: &[u8]) -> Option<&Arc<Inode>> {
        let cookie = self.by_name.get(name)?;
        self.by_cookie.get(cookie).map(|entry| &entry.inode)
    }

    /// Adds `name` (which must be absent) with the next cookie.
    pub(super) fn insert(&mut self, name: &[u8], inode: Arc<Inode>) {
        // Cookies 0..=2 are never used: 0 is "the start", and Linux gives "." and ".."
        // the first two positions.
        let cookie = self.next_cookie.max(3);
        self.next_cookie = cookie + 1;
        let name: Box<[u8]> = name.into();
        self.by_name.insert(name.clone(), cookie);
        self.by_cookie.insert(cookie, Entry { name, inode });
    }

    /// Removes `name`, returning its inode.
    pub(super) fn remove(&mut self, name: &[u8]) -> Option<Arc<Inode>> {
        let cookie = self.by_name.remove(name)?;
        self.by_cookie.remove(&cookie).map(|entry| entry.inode)
    }

    /// Points the existing `name` at `inode` in place (same cookie); returns the old inode.
    pub(super) fn replace(&mut self, name: &[u8], inode: Arc<Inode>) -> Option<Arc<Inode>> {
        let cookie = self.by_name.get(name)?;
        let entry = self.by_cookie.get_mut(cookie)?;
        Some(std::mem::replace(&mut entry.inode, inode))
    }

    /// Entries after cookie `after`, in cookie order.
    pub(super) fn after(&self, after: u64) -> impl Iterator<Item = (u64, &Entry)> {
        self.by_cookie
            .range(after.saturating_add(1)..)
            .map(|(&cookie, entry)| (cookie, entry))
    }

    /// Whether there are none.
    pub(super) fn is_empty(&self) -> bool {
        self.by_cookie.is_empty()
    }
}

/// A directory: its entries and its parent.
#[derive(Debug)]
pub(super) struct Directory {
    pub(super) entries: RwLock<Entries>,
    /// The directory this one is an entry of (none for the root). Changed only by a
    /// rename, under the backend's rename lock, so ancestry checks can read it without
    /// any entries lock.
    pub(super) parent: Mutex<Weak<Inode>>,
}

/// What an inode holds besides its metadata; fixed for its life.
#[derive(Debug)]
pub(super) enum Kind {
    /// A regular file.
    Regular(Regular),
    /// A directory.
    Directory(Directory),
    /// A symlink and its target.
    Symlink(Box<[u8]>),
    /// A FIFO, socket or device: nothing but attributes (and the device number).
    Special {
        /// `(major, minor)` of a device; 0:0 otherwise.
        rdev: (u32, u32),
    },
}

/// One file of the tree. It lives while a directory entry or a handle holds it, so an
/// unlinked file keeps working for whoever has it open; its memfd and its charges go
/// with it.
#[derive(Debug)]
pub(super) struct Inode {
    /// Unique for the backend's life: numbers are never reused.
    pub(super) ino: u64,
    /// The type bits of the mode (`S_IFMT`), which never change.
    pub(super) file_type: u16,
    pub(super) kind: Kind,
    pub(super) meta: Mutex<Meta>,
    usage: Arc<Usage>,
}

impl Drop for Inode {
    fn drop(&mut self) {
        let mut bytes = self.meta.get_mut().xattr_bytes();
        match &mut self.kind {
            Kind::Regular(regular) => bytes += *regular.charged.get_mut(),
            Kind::Symlink(target) => bytes += target.len() as u64,
            Kind::Directory(dir) => {
                // Dropping a deep tree recursively could exhaust the stack: children are
                // moved to a work list and dropped one level at a time.
                let mut pending: Vec<Arc<Inode>> = Vec::new();
                let entries = std::mem::take(dir.entries.get_mut());
                pending.extend(entries.by_cookie.into_values().map(|e| e.inode));
                while let Some(child) = pending.pop() {
                    if let Ok(mut child) = Arc::try_unwrap(child) {
                        if let Kind::Directory(dir) = &mut child.kind {
                            let entries = std::mem::take(dir.entries.get_mut());
                            pending.extend(entries.by_cookie.into_values().map(|e| e.inode));
                        }
                    }
                }
            }
            Kind::Special { .. } => {}
        }
        self.usage.release_bytes(bytes);
        self.usage.release_inode();
    }
}

impl Inode {
    /// A new inode of `mode` (type bits included) holding `kind`, charged one inode
    /// (and, for a symlink, its target's bytes).
    fn new(ino: u64, kind: Kind, meta: Meta, usage: &Arc<Usage>) -> BResult<Arc<Self>> {
        usage.charge_inode()?;
        if let Kind::Symlink(target) = &kind {
            if let Err(errno) = usage.charge_bytes(target.len() as u64) {
                usage.release_inode();
                return Err(errno);
            }
        }
        Ok(Arc::new(Self {
            ino,
            file_type: meta.mode & S_IFMT,
            kind,
            meta: Mutex::new(meta),
            usage: Arc::clone(usage),
        }))
    }

    /// A new regular file (its memfd `sealable`, see [`Regular`]).
    pub(super) fn new_regular(
        ino: u64,
        meta: Meta,
        usage: &Arc<Usage>,
        sealable: bool,
    ) -> BResult<Arc<Self>> {
        Self::new(ino, Kind::Regular(Regular::new(sealable)?), meta, usage)
    }

    /// A new, empty directory under `parent`.
    pub(super) fn new_directory(
        ino: u64,
        meta: Meta,
        parent: Weak<Inode>,
        usage: &Arc<Usage>,
    ) -> BResult<Arc<Self>> {
        let dir = Directory {
            entries: RwLock::new(Entries::default()),
            parent: Mutex::new(parent),
        };
        Self::new(ino, Kind::Directory(dir), meta, usage)
    }

    /// A new symlink to `target`.
    pub(super) fn new_symlink(
        ino: u64,
        meta: Meta,
        target: &[u8],
        usage: &Arc<Usage>,
    ) -> BResult<Arc<Self>> {
        Self::new(ino, Kind::Symlink(target.into()), meta, usage)
    }

    /// A new FIFO, socket or device node.
    pub(super) fn new_special(
        ino: u64,
        meta: Meta,
        rdev: (u32, u32),
        usage: &Arc<Usage>,
    ) -> BResult<Arc<Self>> {
        Self::new(ino, Kind::Special { rdev }, meta, usage)
    }

    /// The accounting this inode charges.
    pub(super) fn usage(&self) -> &Usage {
        &self.usage
    }

    /// The directory, or `ENOTDIR`.
    pub(super) fn dir(&self) -> BResult<&Directory> {
        match &self.kind {
            Kind::Directory(dir) => Ok(dir),
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// Whether this is a directory.
    pub(super) fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Directory(_))
    }

    /// The `DT_*` type of a directory entry naming this inode.
    pub(super) fn d_type(&self) -> u8 {
        match self.file_type {
            S_IFIFO => 1,
            S_IFCHR => 2,
            S_IFDIR => 4,
            S_IFBLK => 6,
            S_IFREG => 8,
            S_IFLNK => 10,
            S_IFSOCK => 12,
            _ => 0,
        }
    }

    /// The file's Statx. For a regular file this also brings its charge up to date with
    /// the memfd's size, which a client may have changed through a donated FD.
    pub(super) fn stat(&self) -> BResult<Statx> {
        let (size, blocks, data_times) = match &self.kind {
            Kind::Regular(regular) => {
                let st = {
                    let mut charged = regular.charged.lock();
                    let st = regular.host_stat()?;
                    settle(&self.usage, &mut charged, st.stx_size);
                    st
                };
                let ts = |t: rustix::fs::StatxTimestamp| StatxTimestamp {
                    sec: t.tv_sec,
                    nsec: t.tv_nsec,
                    _pad: 0,
                };
                let times = (ts(st.stx_mtime), ts(st.stx_ctime));
                (st.stx_size, st.stx_blocks, Some(times))
            }
            Kind::Directory(_) => (DIR_SIZE, 0, None),
            Kind::Symlink(target) => (target.len() as u64, 0, None),
            Kind::Special { .. } => (0, 0, None),
        };
        let rdev = match self.kind {
            Kind::Special { rdev } => rdev,
            _ => (0, 0),
        };
        let meta = self.meta.lock();
        let (mtime, ctime) = match data_times {
            Some((mtime, ctime)) => {
                let ctime = match ts_key(&ctime) > ts_key(&meta.ctime) {
                    true => ctime,
                    false => meta.ctime,
                };
                (mtime, ctime)
            }
            None => (meta.mtime, meta.ctime),
        };
        Ok(Statx {
            mask: STATX_BASIC_STATS,
            blksize: BLOCK_SIZE_U32,
            attributes: 0,
            nlink: meta.nlink,
            uid: meta.uid,
            gid: meta.gid,
            mode: meta.mode,
            _pad0: 0,
            ino: self.ino,
            size,
            blocks,
            attributes_mask: 0,
            atime: meta.atime,
            btime: meta.btime,
            ctime,
            mtime,
            rdev_major: rdev.0,
            rdev_minor: rdev.1,
            dev_major: DEV_MAJOR,
            dev_minor: DEV_MINOR,
        })
    }
}

/// Sets the charge `charged` of a file to its actual `size`, whether or not that fits
/// the limit (it already happened).
pub(super) fn settle(usage: &Usage, charged: &mut u64, size: u64) {
    let want = blocks_of(size);
    if want > *charged {
        usage.force_bytes(want - *charged);
    } else {
        usage.release_bytes(*charged - want);
    }
    *charged = want;
}

/// Raises the charge `charged` of a file to cover `size` bytes before they are written,
/// or `ENOSPC`; a smaller `size` changes nothing (the shrink is settled afterwards).
pub(super) fn reserve(usage: &Usage, charged: &mut u64, size: u64) -> BResult<()> {
    let want = blocks_of(size);
    if want > *charged {
        usage.charge_bytes(want - *charged)?;
        *charged = want;
    }
    Ok(())
}

/// The type bits of `mode` as a `u16`.
pub(super) fn file_type(mode: u32) -> u16 {
    // S_IFMT fits in 16 bits, so nothing is lost.
    u16::try_from(mode & u32::from(S_IFMT)).unwrap_or(0)
}

/// The permission bits (`07777`) of `mode`.
pub(super) fn perm_bits(mode: u32) -> u16 {
    u16::try_from(mode & 0o7777).unwrap_or(0)
}
