//! `--memory-from DIR`: copying a host tree in at start.
//!
//! The host tree is the operator's and is only read: symlinks are copied as links and
//! never followed (every file is looked at with `lstat` and opened with `O_NOFOLLOW`),
//! FIFOs, sockets and devices become inert nodes, hard links stay hard links, and modes,
//! owners, atimes and mtimes are kept (ctimes are the time of the copy, as with `cp -a`).
//! Extended attributes are not copied.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lisafs_protocol::wire::{Errno, StatxTimestamp, S_IFMT};
use rustix::fs::{AtFlags, Timestamps, UTIME_OMIT};

use super::inode::{reserve, Inode, Kind, Meta};
use super::namespace::check_name;
use super::MemoryBackend;

fn os_error(errno: Errno) -> io::Error {
    io::Error::from_raw_os_error(i32::try_from(errno.raw()).unwrap_or(libc::EIO))
}

/// A host timestamp as a statx one.
fn timestamp(sec: i64, nsec: i64) -> StatxTimestamp {
    StatxTimestamp {
        sec,
        nsec: u32::try_from(nsec).unwrap_or(0),
        _pad: 0,
    }
}

/// The metadata of a copy of a host file with `md`.
fn meta_of(md: &Metadata, nlink: u32) -> Meta {
    // st_mode's type and permission bits fit in 16 bits.
    let mode = (md.mode() & 0o177_777) as u16;
    let mut meta = Meta::new(mode, md.uid(), md.gid(), nlink);
    meta.atime = timestamp(md.atime(), md.atime_nsec());
    meta.mtime = timestamp(md.mtime(), md.mtime_nsec());
    meta
}

impl MemoryBackend {
    /// Copies the host directory `dir` into the (empty) tree: its entries become the
    /// root's, its mode, owner and times the root's. Files count against the limits
    /// (`ENOSPC` if the tree does not fit). See the `populate` module for what is kept.
    pub fn populate_from(&self, dir: &Path) -> io::Result<()> {
        let md = std::fs::symlink_metadata(dir)?;
        if !md.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        {
            let copy = meta_of(&md, 2);
            let mut meta = self.root.meta.lock();
            meta.mode = copy.mode;
            meta.uid = copy.uid;
            meta.gid = copy.gid;
            meta.atime = copy.atime;
            meta.mtime = copy.mtime;
        }
        // Hard links: host (device, inode) of files with several names → the copy.
        let mut links: HashMap<(u64, u64), Arc<Inode>> = HashMap::new();
        let mut pending: Vec<(PathBuf, Arc<Inode>)> =
            vec![(dir.to_path_buf(), Arc::clone(&self.root))];
        while let Some((path, into)) = pending.pop() {
            for entry in std::fs::read_dir(&path)? {
                let entry = entry?;
                let name = entry.file_name();
                let name = name.as_bytes();
                check_name(name).map_err(os_error)?;
                let host_path = entry.path();
                let md = std::fs::symlink_metadata(&host_path)?;
                let key = (md.dev(), md.ino());
                let inode = match links.get(&key) {
                    Some(inode) => {
                        let mut meta = inode.meta.lock();
                        meta.nlink = meta.nlink.saturating_add(1);
                        drop(meta);
                        Arc::clone(inode)
                    }
                    None => self.copy_one(&host_path, &md, &into)?,
                };
                if !md.is_dir() && md.nlink() > 1 {
                    links.entry(key).or_insert_with(|| Arc::clone(&inode));
                }
                into.dir()
                    .map_err(os_error)?
                    .entries
                    .write()
                    .insert(name, Arc::clone(&inode));
                if inode.is_dir() {
                    let mut meta = into.meta.lock();
                    meta.nlink = meta.nlink.saturating_add(1);
                    drop(meta);
                    pending.push((host_path, inode));
                }
            }
        }
        Ok(())
    }

    /// A copy of the one host file at `path` (not followed) with metadata `md`, for the
    /// directory `parent`.
    fn copy_one(&self, path: &Path, md: &Metadata, parent: &Arc<Inode>) -> io::Result<Arc<Inode>> {
        let ino = self.alloc_ino();
        let file_type = md.file_type();
        let inode = if file_type.is_dir() {
            let meta = meta_of(md, 2);
            Inode::new_directory(ino, meta, Arc::downgrade(parent), &self.usage)
        } else if file_type.is_symlink() {
            let target = std::fs::read_link(path)?;
            let meta = meta_of(md, 1);
            Inode::new_symlink(ino, meta, target.as_os_str().as_bytes(), &self.usage)
        } else if file_type.is_file() {
            let inode = Inode::new_regular(ino, meta_of(md, 1), &self.usage).map_err(os_error)?;
            copy_data(path, md, &inode)?;
            Ok(inode)
        } else if file_type.is_char_device() || file_type.is_block_device() {
            let rdev = (rustix::fs::major(md.rdev()), rustix::fs::minor(md.rdev()));
            Inode::new_special(ino, meta_of(md, 1), rdev, &self.usage)
        } else if file_type.is_fifo() || file_type.is_socket() {
            Inode::new_special(ino, meta_of(md, 1), (0, 0), &self.usage)
        } else {
            return Err(io::Error::other(format!(
                "{}: unknown file type {:o}",
                path.display(),
                md.mode() & u32::from(S_IFMT)
            )));
        };
        inode.map_err(os_error)
    }
}

/// Copies the data of the regular host file `path` into `inode`'s memfd, charging its
/// size first, and gives the memfd the host file's mtime.
fn copy_data(path: &Path, md: &Metadata, inode: &Inode) -> io::Result<()> {
    let Kind::Regular(regular) = &inode.kind else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    let mut source = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let mut charged = regular.charged.lock();
    reserve(inode.usage(), &mut charged, md.size()).map_err(os_error)?;
    let mut target = File::from(rustix::io::fcntl_dupfd_cloexec(&regular.data, 0)?);
    io::copy(&mut source, &mut target)?;
    let actual = regular.size().map_err(os_error)?;
    super::inode::settle(inode.usage(), &mut charged, actual);
    let times = Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: md.mtime(),
            tv_nsec: md.mtime_nsec(),
        },
    };
    rustix::fs::utimensat(&regular.data, c"", &times, AtFlags::EMPTY_PATH)?;
    Ok(())
}
