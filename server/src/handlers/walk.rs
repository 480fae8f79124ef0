//! Walk and WalkStat (SPEC.md §6.5, §6.6, §7.1).

use std::sync::Arc;

use lisafs_protocol::wire::{
    Errno, Inode, Statx, WalkReq, WalkResp, WalkStatReq, WalkStatResp, WalkStatus,
    MAX_MESSAGE_SIZE, S_IFDIR, S_IFLNK, S_IFMT,
};

use crate::backend::Backend;
use crate::connection::Connection;
use crate::fd_table::ControlFd;
use crate::handlers::name;
use crate::name::Name;

/// Fails with `EIO` unless `count` items of `item` bytes after a `head`-byte prefix fit
/// in one response (checked before any work, so a huge path costs nothing).
fn check_capacity(head: usize, item: usize, count: usize) -> Result<(), Errno> {
    let size = count.saturating_mul(item).saturating_add(head);
    if size > MAX_MESSAGE_SIZE as usize {
        return Err(Errno::EIO);
    }
    Ok(())
}

impl<B: Backend> Connection<B> {
    pub(crate) fn walk(&self, req: WalkReq) -> Result<WalkResp, Errno> {
        let start = self.dir(req.dir_fd)?;
        let names = req.path.iter().map(name).collect::<Result<Vec<_>, _>>()?;
        check_capacity(3, size_of::<Inode>(), names.len())?;

        let _rename = self.server.rename_lock.read();
        let mut inodes: Vec<Inode> = Vec::with_capacity(names.len());
        let mut status = WalkStatus::Success;
        let mut cur = start;
        for name in names {
            if cur.is_symlink() {
                status = WalkStatus::ComponentSymlink;
                break;
            }
            if !cur.is_dir() {
                self.forget(inodes.iter().map(|i| i.control_fd));
                return Err(Errno::ENOTDIR);
            }
            match self.walk_one(&cur, name) {
                Ok((inode, next)) => {
                    inodes.push(inode);
                    cur = next;
                }
                Err(Errno::ENOENT) => {
                    status = WalkStatus::ComponentDoesNotExist;
                    break;
                }
                Err(errno) => {
                    self.forget(inodes.iter().map(|i| i.control_fd));
                    return Err(errno);
                }
            }
        }
        Ok(WalkResp { status, inodes })
    }

    fn walk_one(
        &self,
        dir: &ControlFd<B>,
        name: Name<'_>,
    ) -> Result<(Inode, Arc<ControlFd<B>>), Errno> {
        let node = {
            let _dir = dir.node.lock.read();
            self.server.backend().walk(&dir.file, name)?
        };
        self.new_control(node)
    }

    pub(crate) fn walk_stat(&self, req: WalkStatReq) -> Result<WalkStatResp, Errno> {
        let start = self.control(req.dir_fd)?;
        let (stat_self, rest) = match req.path.split_first() {
            Some((first, rest)) if first.is_empty() => (true, rest),
            _ => (false, &req.path[..]),
        };
        let names = rest.iter().map(name).collect::<Result<Vec<_>, _>>()?;
        check_capacity(2, size_of::<Statx>(), req.path.len())?;

        let backend = self.server.backend();
        let _rename = self.server.rename_lock.read();
        let mut stats = Vec::with_capacity(req.path.len());
        if stat_self {
            let _node = start.node.lock.read();
            stats.push(backend.stat(&start.file)?);
            if start.is_symlink() {
                return Ok(WalkStatResp { stats });
            }
        }
        if names.is_empty() {
            return Ok(WalkStatResp { stats });
        }
        if !start.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        // Intermediate files are the backend's alone (no FDIDs): released as we go, or
        // kept in the walk cache.
        let mut owned: Option<Arc<B::File>> = None;
        for (i, name) in names.iter().enumerate() {
            let dir = owned.as_deref().unwrap_or(&start.file);
            let last = i + 1 == names.len();
            if last {
                // No handle needed past the last component.
                match backend.stat_at(dir, *name) {
                    Ok(stat) => stats.push(stat),
                    Err(Errno::ENOENT) => {}
                    Err(errno) => return Err(errno),
                }
                break;
            }
            let (stat, next) = match self.walk_through(dir, *name) {
                Ok(step) => step,
                Err(Errno::ENOENT) => break,
                Err(errno) => return Err(errno),
            };
            let file_type = stat.mode & S_IFMT;
            stats.push(stat);
            if file_type == S_IFLNK {
                break;
            }
            if file_type != S_IFDIR {
                return Err(Errno::ENOTDIR);
            }
            owned = Some(next);
        }
        Ok(WalkStatResp { stats })
    }

    /// A WalkStat step before the last component: `name`'s attributes and a handle to go
    /// on from, the cached one if the backend confirms that `name` still names it.
    fn walk_through(&self, dir: &B::File, name: Name<'_>) -> Result<(Statx, Arc<B::File>), Errno> {
        let backend = self.server.backend();
        let cache = &self.walk_cache;
        if let Some(known) = cache.get(dir, name) {
            match backend.revalidate(dir, name, &known) {
                Ok(Some(stat)) => return Ok((stat, known)),
                // Not confirmed: forget it, and walk unless that failed too.
                failed => {
                    cache.remove(dir, name);
                    failed?;
                }
            }
        }
        let node = backend.walk(dir, name)?;
        let next = Arc::new(node.file);
        if node.stat.mode & S_IFMT == S_IFDIR && backend.revalidates() {
            cache.insert(dir, name, next.clone());
        }
        Ok((node.stat, next))
    }
}
