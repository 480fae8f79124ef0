//! `--memory-from DIR`: copying a host tree in at start.
//!
//! The host tree is the operator's and is only read, and only through FDs: each
//! directory is opened relative to its parent's FD with `O_NOFOLLOW | O_DIRECTORY`, each
//! entry examined with `statx(AT_SYMLINK_NOFOLLOW)` and opened with `O_NOFOLLOW`, so a
//! host process swapping a name for a symlink mid-copy cannot lead the copy out of the
//! tree; symlinks are copied as links and never followed. FIFOs, sockets and devices
//! become inert nodes, hard links stay hard links, and modes, owners, atimes and mtimes
//! are kept (ctimes are the time of the copy, as with `cp -a`). Extended attributes are
//! not copied.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use lisafs_protocol::wire::{
    Errno, StatxTimestamp, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
};
use rustix::fs::{AtFlags, Dir, Mode, OFlags, StatxFlags, Timestamps, UTIME_OMIT};

use super::inode::{reserve, settle, Inode, Kind, Meta};
use super::namespace::check_name;
use super::MemoryBackend;

fn os_error(errno: Errno) -> io::Error {
    io::Error::from_raw_os_error(i32::try_from(errno.raw()).unwrap_or(libc::EIO))
}

/// A host timestamp as a statx one.
fn timestamp(t: &rustix::fs::StatxTimestamp) -> StatxTimestamp {
    StatxTimestamp {
        sec: t.tv_sec,
        nsec: t.tv_nsec,
        _pad: 0,
    }
}

/// The metadata of a copy of a host file with `st`.
fn meta_of(st: &rustix::fs::Statx, nlink: u32) -> Meta {
    let mut meta = Meta::new(st.stx_mode, st.stx_uid, st.stx_gid, nlink);
    meta.atime = timestamp(&st.stx_atime);
    meta.mtime = timestamp(&st.stx_mtime);
    meta
}

/// `statx` of `name` in `dir` (of `dir` itself for ""), never following a symlink.
fn stat_at(dir: BorrowedFd<'_>, name: &CString) -> io::Result<rustix::fs::Statx> {
    let mut flags = AtFlags::SYMLINK_NOFOLLOW;
    if name.is_empty() {
        flags |= AtFlags::EMPTY_PATH;
    }
    Ok(rustix::fs::statx(
        dir,
        name,
        flags,
        StatxFlags::BASIC_STATS,
    )?)
}

/// Opens `name` in `dir` for reading, refusing symlinks; never blocks on a FIFO.
fn open_at(dir: BorrowedFd<'_>, name: &CString, extra: OFlags) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | extra;
    Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?)
}

impl MemoryBackend {
    /// Copies the host directory `dir` into the tree: its entries become the root's, its
    /// mode, owner and times the root's. Files count against the limits (`ENOSPC` if the
    /// tree does not fit). See the `populate` module for what is kept and how the host
    /// is read.
    pub fn populate_from(&self, dir: &Path) -> io::Result<()> {
        // The operator's path itself is trusted and may contain symlinks.
        let top = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let st = stat_at(top.as_fd(), &CString::default())?;
        {
            let copy = meta_of(&st, 2);
            let mut meta = self.root.meta.lock();
            meta.mode = copy.mode;
            meta.uid = copy.uid;
            meta.gid = copy.gid;
            meta.atime = copy.atime;
            meta.mtime = copy.mtime;
        }
        // Hard links: host (device, inode) of files with several names → the copy.
        let mut links: HashMap<(u32, u32, u64), Arc<Inode>> = HashMap::new();
        let mut pending: Vec<(OwnedFd, Arc<Inode>)> = vec![(top, Arc::clone(&self.root))];
        while let Some((host_dir, into)) = pending.pop() {
            for entry in Dir::read_from(&host_dir)? {
                let entry = entry?;
                let name = entry.file_name().to_owned();
                let bytes = name.as_bytes();
                if bytes == b"." || bytes == b".." {
                    continue;
                }
                check_name(bytes).map_err(os_error)?;
                let st = stat_at(host_dir.as_fd(), &name)?;
                let key = (st.stx_dev_major, st.stx_dev_minor, st.stx_ino);
                let inode = match links.get(&key) {
                    Some(inode) => {
                        let mut meta = inode.meta.lock();
                        meta.nlink = meta.nlink.saturating_add(1);
                        drop(meta);
                        Arc::clone(inode)
                    }
                    None => self.copy_one(host_dir.as_fd(), &name, &st, &into)?,
                };
                let is_dir = st.stx_mode & S_IFMT == S_IFDIR;
                if !is_dir && st.stx_nlink > 1 {
                    links.entry(key).or_insert_with(|| Arc::clone(&inode));
                }
                into.dir()
                    .map_err(os_error)?
                    .entries
                    .write()
                    .insert(bytes, Arc::clone(&inode));
                if is_dir {
                    let mut meta = into.meta.lock();
                    meta.nlink = meta.nlink.saturating_add(1);
                    drop(meta);
                    let sub = open_at(host_dir.as_fd(), &name, OFlags::DIRECTORY)?;
                    pending.push((sub, inode));
                }
            }
        }
        Ok(())
    }

    /// A copy of the host file `name` in `dir` (not followed), whose statx is `st`, for
    /// the directory `parent`.
    fn copy_one(
        &self,
        dir: BorrowedFd<'_>,
        name: &CString,
        st: &rustix::fs::Statx,
        parent: &Arc<Inode>,
    ) -> io::Result<Arc<Inode>> {
        let ino = self.alloc_ino();
        let inode = match st.stx_mode & S_IFMT {
            S_IFDIR => {
                Inode::new_directory(ino, meta_of(st, 2), Arc::downgrade(parent), &self.usage)
            }
            S_IFLNK => {
                let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
                Inode::new_symlink(ino, meta_of(st, 1), target.as_bytes(), &self.usage)
            }
            S_IFREG => {
                let inode = Inode::new_regular(ino, meta_of(st, 1), &self.usage, self.sealable)
                    .map_err(os_error)?;
                copy_data(open_at(dir, name, OFlags::empty())?, st, &inode)?;
                Ok(inode)
            }
            S_IFCHR | S_IFBLK => {
                let rdev = (st.stx_rdev_major, st.stx_rdev_minor);
                Inode::new_special(ino, meta_of(st, 1), rdev, &self.usage)
            }
            S_IFIFO | S_IFSOCK => Inode::new_special(ino, meta_of(st, 1), (0, 0), &self.usage),
            other => {
                return Err(io::Error::other(format!(
                    "{}: unknown file type {other:o}",
                    name.to_string_lossy()
                )))
            }
        };
        inode.map_err(os_error)
    }
}

/// Copies the data of the open host file `source` (statx `st`) into `inode`'s memfd,
/// charging its size first, and gives the memfd the host file's mtime.
fn copy_data(source: OwnedFd, st: &rustix::fs::Statx, inode: &Inode) -> io::Result<()> {
    let Kind::Regular(regular) = &inode.kind else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    // It was a regular file when stat'ed; check the file actually opened is one.
    if rustix::fs::fstat(&source)?.st_mode & u32::from(S_IFMT) != u32::from(S_IFREG) {
        return Err(io::Error::from_raw_os_error(libc::EAGAIN));
    }
    let mut charged = regular.charged.lock();
    reserve(inode.usage(), &mut charged, st.stx_size).map_err(os_error)?;
    let mut target = File::from(rustix::io::fcntl_dupfd_cloexec(&regular.data, 0)?);
    io::copy(&mut File::from(source), &mut target)?;
    let actual = regular.size().map_err(os_error)?;
    settle(inode.usage(), &mut charged, actual);
    let times = Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: st.stx_mtime.tv_sec,
            tv_nsec: i64::from(st.stx_mtime.tv_nsec),
        },
    };
    rustix::fs::utimensat(&regular.data, c"", &times, AtFlags::EMPTY_PATH)?;
    Ok(())
}
