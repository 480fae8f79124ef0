//! The path-level API on [`Client`], shaped after `std::fs`. Each operation resolves its
//! path with one multi-component Walk (see `path.rs` for symlinks), never one RPC per
//! component, and releases every FDID it creates.

use std::path::Path;

use lisafs_protocol::wire::{Errno, Mid, StatFS, Statx};

use crate::error::{Error, Result};
use crate::fd::{ControlFd, Owner};
use crate::file::File;
use crate::path::{is_symlink, split, Node};
use crate::types::{DirEntry, FileType, SetStat, AT_REMOVEDIR, O_RDONLY, O_TRUNC, O_WRONLY};
use crate::Client;

/// Getdents64 budget per call, as gVisor's client uses.
const GETDENTS_BUDGET: i32 = 65_536;

/// The first PRead of [`Client::read`], in bytes; later ones double.
const FIRST_READ: usize = 64 * 1024;

impl Client {
    /// The attributes of `path`, following symlinks (like `std::fs::metadata`). One
    /// WalkStat when no symlink is on the way.
    pub fn metadata(&self, path: impl AsRef<Path>) -> Result<Statx> {
        self.stat_path(path.as_ref(), true)
    }

    /// The attributes of `path` without following a final symlink (like
    /// `std::fs::symlink_metadata`).
    pub fn symlink_metadata(&self, path: impl AsRef<Path>) -> Result<Statx> {
        self.stat_path(path.as_ref(), false)
    }

    fn stat_path(&self, path: &Path, follow: bool) -> Result<Statx> {
        let components = split(path)?;
        if self.supported(Mid::WalkStat) {
            // A leading "" asks for the root's own stat, needed only for the root itself.
            let query: Vec<&[u8]> = if components.is_empty() {
                vec![b""]
            } else {
                components.iter().map(Vec::as_slice).collect()
            };
            let stats = self.root().walk_stat(&query)?;
            match stats.last() {
                Some(last) if stats.len() == query.len() => {
                    if !(follow && is_symlink(last)) {
                        return Ok(*last);
                    }
                }
                Some(last) if is_symlink(last) => {}
                // Stopped before the end, not at a symlink: a component is missing.
                _ => return Err(Error::remote(Errno::ENOENT)),
            }
            // A symlink to follow: resolve it with walks below.
        }
        self.resolve(components, follow)?.existing()?.stat()
    }

    /// Opens `path` (following symlinks) with `open(2)` flags such as
    /// [`O_RDONLY`](crate::O_RDONLY) or `O_RDWR | O_TRUNC`.
    pub fn open(&self, path: impl AsRef<Path>, flags: u32) -> Result<File> {
        let found = self.resolve(split(path.as_ref())?, true)?.existing()?;
        Ok(File::new(found.node.open_at(flags)?))
    }

    /// Opens `path` for writing, creating it with permission bits `mode` if it does not
    /// exist and truncating it if it does (like `std::fs::File::create`).
    pub fn create(&self, path: impl AsRef<Path>, mode: u16) -> Result<File> {
        let mut found = self.resolve(split(path.as_ref())?, true)?;
        match found.missing.len() {
            0 => Ok(File::new(found.node.open_at(O_WRONLY | O_TRUNC)?)),
            1 => {
                let name = found.missing.remove(0);
                let (_, opened) = found
                    .node
                    .open_create_at(name, O_WRONLY, mode, Owner::UNSET)?;
                Ok(File::new(opened))
            }
            _ => Err(Error::remote(Errno::ENOENT)),
        }
    }

    /// Creates the regular file `path` (failing with `EEXIST` if it exists) and opens it
    /// with `flags`.
    pub fn create_new(&self, path: impl AsRef<Path>, mode: u16, flags: u32) -> Result<File> {
        let (dir, name) = self.parent(path.as_ref(), Errno::EEXIST)?;
        let (_, opened) = dir.open_create_at(name, flags, mode, Owner::UNSET)?;
        Ok(File::new(opened))
    }

    /// The whole contents of the file at `path`, read until a zero-length PRead.
    pub fn read(&self, path: impl AsRef<Path>) -> Result<Vec<u8>> {
        let file = self.open(path, O_RDONLY)?;
        let max_chunk = usize::try_from(self.max_message_size().saturating_sub(8)).unwrap_or(0);
        // Small reads first, doubling up to the message limit: a small file costs small
        // buffers (on both ends), a large one soon moves in the largest chunks.
        let mut chunk = FIRST_READ.min(max_chunk).max(1);
        let mut out = Vec::new();
        loop {
            let len = out.len();
            out.resize(len + chunk, 0);
            let n = file.read_at(&mut out[len..], u64::try_from(len).unwrap_or(u64::MAX))?;
            out.truncate(len + n);
            if n == 0 {
                return Ok(out);
            }
            chunk = (chunk * 2).min(max_chunk).max(1);
        }
    }

    /// Replaces the contents of `path` with `data`, creating the file (mode 0644) if
    /// needed.
    pub fn write(&self, path: impl AsRef<Path>, data: impl AsRef<[u8]>) -> Result<()> {
        let file = self.create(path, 0o644)?;
        write_all_at(&file, data.as_ref(), 0)
    }

    /// The entries of the directory at `path`, without "." and "..": one Getdents64
    /// with a rewinding budget of −65,536, then +65,536 until an empty reply.
    pub fn read_dir(&self, path: impl AsRef<Path>) -> Result<Vec<DirEntry>> {
        let found = self.resolve(split(path.as_ref())?, true)?.existing()?;
        list_dir(&found.node)
    }

    /// Creates the directory `path` with permission bits `mode`.
    pub fn create_dir(&self, path: impl AsRef<Path>, mode: u16) -> Result<()> {
        let (dir, name) = self.parent(path.as_ref(), Errno::EEXIST)?;
        dir.mkdir_at(name, mode, Owner::UNSET).map(drop)
    }

    /// Creates the directory `path` and any missing parents (one Walk to find the
    /// deepest existing directory, then one MkdirAt per missing component). Succeeds if
    /// `path` already is a directory.
    pub fn create_dir_all(&self, path: impl AsRef<Path>, mode: u16) -> Result<()> {
        let found = self.resolve(split(path.as_ref())?, true)?;
        // The root's type cannot change, so its Mount stat saves an FStat.
        let stat = found.stat.unwrap_or(*self.root_stat());
        if !FileType::from_mode(stat.mode).is_dir() {
            let errno = if found.missing.is_empty() {
                Errno::EEXIST
            } else {
                Errno::ENOTDIR
            };
            return Err(Error::remote(errno));
        }
        let mut dir = found.node;
        for name in found.missing {
            let next = match dir.mkdir_at(&name, mode, Owner::UNSET) {
                Ok(inode) => inode.fd,
                // Created concurrently by someone else: use theirs if it is a directory.
                Err(err) if err.errno() == Errno::EEXIST => walk_dir(&dir, &name, err)?,
                Err(err) => return Err(err),
            };
            dir = Node::Walked(next);
        }
        Ok(())
    }

    /// Removes the non-directory `path` (a symlink itself, not its target).
    pub fn remove_file(&self, path: impl AsRef<Path>) -> Result<()> {
        let (dir, name) = self.parent(path.as_ref(), Errno::EISDIR)?;
        dir.unlink_at(name, 0)
    }

    /// Removes the empty directory `path`.
    pub fn remove_dir(&self, path: impl AsRef<Path>) -> Result<()> {
        let (dir, name) = self.parent(path.as_ref(), Errno::EBUSY)?;
        dir.unlink_at(name, AT_REMOVEDIR)
    }

    /// Removes the directory `path` and everything below it. Subdirectories are reached
    /// with single-component walks from their parent's FD, never by path.
    pub fn remove_dir_all(&self, path: impl AsRef<Path>) -> Result<()> {
        let (parent, name) = self.parent(path.as_ref(), Errno::EBUSY)?;
        let dir = walk_dir(&parent, &name, Error::remote(Errno::ENOTDIR))?;
        remove_contents(&dir)?;
        drop(dir);
        parent.unlink_at(name, AT_REMOVEDIR)
    }

    /// Renames `from` to `to` (replacing `to` if it exists, as `rename(2)`).
    pub fn rename(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> Result<()> {
        self.rename_with_flags(from, to, 0)
    }

    /// Renames with `renameat2(2)` flags ([`RENAME_NOREPLACE`](crate::RENAME_NOREPLACE),
    /// ...). Non-zero flags need a server that supports RenameAt2 (else `EINVAL`).
    pub fn rename_with_flags(
        &self,
        from: impl AsRef<Path>,
        to: impl AsRef<Path>,
        flags: u32,
    ) -> Result<()> {
        let (from_dir, from_name) = self.parent(from.as_ref(), Errno::EBUSY)?;
        let (to_dir, to_name) = self.parent(to.as_ref(), Errno::EBUSY)?;
        from_dir.rename_at(from_name, &to_dir, to_name, flags)
    }

    /// Creates the symlink `link` pointing to `target` (stored as given, not checked).
    pub fn symlink(&self, target: impl AsRef<Path>, link: impl AsRef<Path>) -> Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let (dir, name) = self.parent(link.as_ref(), Errno::EEXIST)?;
        let target = target.as_ref().as_os_str().as_bytes();
        dir.symlink_at(name, target, Owner::UNSET).map(drop)
    }

    /// Creates `link` as a hard link to `original` (a final symlink is linked itself,
    /// as `link(2)` does).
    pub fn hard_link(&self, original: impl AsRef<Path>, link: impl AsRef<Path>) -> Result<()> {
        let target = self.resolve(split(original.as_ref())?, false)?.existing()?;
        let (dir, name) = self.parent(link.as_ref(), Errno::EEXIST)?;
        dir.link_at(&target.node, name).map(drop)
    }

    /// The target of the symlink `path`.
    pub fn read_link(&self, path: impl AsRef<Path>) -> Result<Vec<u8>> {
        let found = self.resolve(split(path.as_ref())?, false)?.existing()?;
        found.node.readlink_at()
    }

    /// Sets the permission bits of `path` (following symlinks).
    pub fn set_permissions(&self, path: impl AsRef<Path>, mode: u32) -> Result<()> {
        self.set_stat_path(
            path.as_ref(),
            SetStat {
                mode: Some(mode),
                ..SetStat::default()
            },
        )
    }

    /// Truncates or extends the file at `path` to `size` bytes.
    pub fn set_len(&self, path: impl AsRef<Path>, size: u64) -> Result<()> {
        self.set_stat_path(
            path.as_ref(),
            SetStat {
                size: Some(size),
                ..SetStat::default()
            },
        )
    }

    fn set_stat_path(&self, path: &Path, attrs: SetStat) -> Result<()> {
        let found = self.resolve(split(path)?, true)?.existing()?;
        let outcome = found.node.set_stat(&attrs)?;
        match outcome.failure_errno {
            None => Ok(()),
            Some(errno) => Err(Error::remote(errno)),
        }
    }

    /// The value of extended attribute `name` of `path` (following symlinks).
    pub fn get_xattr(&self, path: impl AsRef<Path>, name: impl AsRef<[u8]>) -> Result<Vec<u8>> {
        self.existing(path.as_ref())?.node.get_xattr(name, 0)
    }

    /// Sets extended attribute `name` of `path`; `flags` as for `setxattr(2)`.
    pub fn set_xattr(
        &self,
        path: impl AsRef<Path>,
        name: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        flags: u32,
    ) -> Result<()> {
        self.existing(path.as_ref())?
            .node
            .set_xattr(name, value, flags)
    }

    /// The extended attribute names of `path`.
    pub fn list_xattr(&self, path: impl AsRef<Path>) -> Result<Vec<Vec<u8>>> {
        self.existing(path.as_ref())?.node.list_xattr(0)
    }

    /// Removes extended attribute `name` of `path`.
    pub fn remove_xattr(&self, path: impl AsRef<Path>, name: impl AsRef<[u8]>) -> Result<()> {
        self.existing(path.as_ref())?.node.remove_xattr(name)
    }

    /// Statistics of the filesystem holding `path`.
    pub fn statfs(&self, path: impl AsRef<Path>) -> Result<StatFS> {
        self.existing(path.as_ref())?.node.fstatfs()
    }

    fn existing(&self, path: &Path) -> Result<crate::path::Resolved<'_>> {
        self.resolve(split(path)?, true)?.existing()
    }
}

/// Writes all of `data` at `offset`, continuing after short writes.
fn write_all_at(file: &File, mut data: &[u8], mut offset: u64) -> Result<()> {
    while !data.is_empty() {
        let n = file.write_at(data, offset)?;
        if n == 0 {
            return Err(Error::protocol(Errno::EIO, "PWrite wrote nothing"));
        }
        data = data.get(n..).unwrap_or_default();
        offset = offset.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
    }
    Ok(())
}

/// Every entry of the directory `dir`, "." and ".." left out.
pub(crate) fn list_dir(dir: &ControlFd) -> Result<Vec<DirEntry>> {
    let opened = dir.open_at(O_RDONLY)?;
    let mut entries = Vec::new();
    let mut budget = -GETDENTS_BUDGET;
    loop {
        let batch = opened.fd.getdents64(budget)?;
        if batch.is_empty() {
            return Ok(entries);
        }
        budget = GETDENTS_BUDGET;
        entries.extend(
            batch
                .iter()
                .filter(|d| d.name != b"." && d.name != b"..")
                .map(DirEntry::from_wire),
        );
    }
}

/// The directory `name` in `dir`, with one single-component Walk; `otherwise` if it is
/// missing or not a directory.
fn walk_dir(dir: &ControlFd, name: &[u8], otherwise: Error) -> Result<ControlFd> {
    let (_, mut inodes) = dir.walk(&[name])?;
    match inodes.pop() {
        Some(inode) if FileType::from_mode(inode.stat.mode).is_dir() => Ok(inode.fd),
        Some(_) => Err(otherwise),
        None => Err(Error::remote(Errno::ENOENT)),
    }
}

/// Empties the directory `dir`, depth first.
fn remove_contents(dir: &ControlFd) -> Result<()> {
    for entry in list_dir(dir)? {
        let is_dir = match entry.file_type {
            FileType::Unknown => dir
                .walk_stat(&[&entry.name])?
                .first()
                .is_some_and(|stat| FileType::from_mode(stat.mode).is_dir()),
            file_type => file_type.is_dir(),
        };
        if is_dir {
            let child = walk_dir(dir, &entry.name, Error::remote(Errno::ENOTDIR))?;
            remove_contents(&child)?;
            drop(child);
            dir.unlink_at(&entry.name, AT_REMOVEDIR)?;
        } else {
            dir.unlink_at(&entry.name, 0)?;
        }
    }
    Ok(())
}
