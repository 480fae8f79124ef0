//! SetStat and FStatFS.

use lisafs_protocol::wire::{
    Errno, Gid, SetStatReq, SetStatResp, StatFS, StatxTimestamp, Timespec, Uid, S_IFMT,
};
use lisafs_server::BResult;
use rustix::fs::{AtFlags, Timestamps, UTIME_NOW, UTIME_OMIT};

use super::inode::{now, perm_bits, Inode, Kind};
use super::io::truncate;
use super::namespace::NAME_MAX;
use super::usage::{Usage, BLOCK_SIZE};

/// `TMPFS_MAGIC`: what this filesystem is most like, for clients that look.
const TMPFS_MAGIC: u64 = 0x0102_1994;

/// Applies `req.mask` attribute by attribute, in the order MODE, SIZE, times, owner (as
/// the host backend); one failing attribute does not stop the others. Each change moves
/// ctime.
pub(super) fn set_stat(inode: &Inode, req: &SetStatReq) -> BResult<SetStatResp> {
    let mut failures = SetStatResp::default();
    if req.mask & SetStatReq::MODE != 0 {
        failures.record(SetStatReq::MODE, set_mode(inode, req.mode));
    }
    if req.mask & SetStatReq::SIZE != 0 {
        failures.record(SetStatReq::SIZE, set_size(inode, req.size));
    }
    let times = req.mask & (SetStatReq::ATIME | SetStatReq::MTIME);
    if times != 0 {
        let atime = (times & SetStatReq::ATIME != 0).then_some(req.atime);
        let mtime = (times & SetStatReq::MTIME != 0).then_some(req.mtime);
        failures.record(times, set_times(inode, atime, mtime));
    }
    let owner = req.mask & (SetStatReq::UID | SetStatReq::GID);
    if owner != 0 {
        let uid = (owner & SetStatReq::UID != 0 && req.uid != Uid::NONE).then_some(req.uid.0);
        let gid = (owner & SetStatReq::GID != 0 && req.gid != Gid::NONE).then_some(req.gid.0);
        let mut meta = inode.meta.lock();
        if let Some(uid) = uid {
            meta.uid = uid;
        }
        if let Some(gid) = gid {
            meta.gid = gid;
        }
        meta.kill_setid();
        meta.ctime = now();
    }
    Ok(failures)
}

/// MODE: the permission bits; a symlink has none to set (`EOPNOTSUPP`, as the host).
fn set_mode(inode: &Inode, mode: u32) -> BResult<()> {
    if matches!(inode.kind, Kind::Symlink(_)) {
        return Err(Errno::EOPNOTSUPP);
    }
    let mut meta = inode.meta.lock();
    meta.mode = (meta.mode & S_IFMT) | perm_bits(mode);
    meta.ctime = now();
    Ok(())
}

/// SIZE: only a regular file has one to set (a directory `EISDIR`, others `EINVAL`).
fn set_size(inode: &Inode, size: u64) -> BResult<()> {
    match &inode.kind {
        Kind::Regular(regular) => {
            truncate(inode, regular, size)?;
            let mut meta = inode.meta.lock();
            meta.kill_setid();
            meta.ctime = now();
            Ok(())
        }
        Kind::Directory(_) => Err(Errno::EISDIR),
        _ => Err(Errno::EINVAL),
    }
}

/// A wire time as the kernel's, `UTIME_NOW` and `UTIME_OMIT` included; a nanosecond
/// count out of range is `EINVAL`.
fn host_time(t: Option<Timespec>) -> BResult<rustix::fs::Timespec> {
    let Some(t) = t else {
        return Ok(rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        });
    };
    if t.nsec != UTIME_NOW && t.nsec != UTIME_OMIT && !(0..1_000_000_000).contains(&t.nsec) {
        return Err(Errno::EINVAL);
    }
    Ok(rustix::fs::Timespec {
        tv_sec: t.sec,
        tv_nsec: t.nsec,
    })
}

/// A kernel time as a statx timestamp: `None` for `UTIME_OMIT`, now for `UTIME_NOW`.
fn meta_time(t: rustix::fs::Timespec) -> Option<StatxTimestamp> {
    match t.tv_nsec {
        UTIME_OMIT => None,
        UTIME_NOW => Some(now()),
        // Checked to be in 0..1e9 by `host_time`.
        nsec => Some(StatxTimestamp {
            sec: t.tv_sec,
            nsec: u32::try_from(nsec).unwrap_or(0),
            _pad: 0,
        }),
    }
}

/// ATIME/MTIME. A regular file's mtime is its memfd's (so writes through donated FDs move
/// it), set with `utimensat`; everything else lives in the inode.
fn set_times(inode: &Inode, atime: Option<Timespec>, mtime: Option<Timespec>) -> BResult<()> {
    let (atime, mtime) = (host_time(atime)?, host_time(mtime)?);
    if let Kind::Regular(regular) = &inode.kind {
        if mtime.tv_nsec != UTIME_OMIT {
            let times = Timestamps {
                last_access: rustix::fs::Timespec {
                    tv_sec: 0,
                    tv_nsec: UTIME_OMIT,
                },
                last_modification: mtime,
            };
            rustix::fs::utimensat(&regular.data, c"", &times, AtFlags::EMPTY_PATH)?;
        }
    }
    let mut meta = inode.meta.lock();
    if let Some(atime) = meta_time(atime) {
        meta.atime = atime;
    }
    if let Some(mtime) = meta_time(mtime) {
        meta.mtime = mtime;
    }
    meta.ctime = now();
    Ok(())
}

/// FStatFS: the limits and what is in use, in 4 KiB blocks.
pub(super) fn statfs(usage: &Usage) -> StatFS {
    let blocks = usage.max_bytes() / BLOCK_SIZE;
    let used = usage.bytes().div_ceil(BLOCK_SIZE);
    let free = blocks.saturating_sub(used);
    let files = usage.max_inodes();
    StatFS {
        fs_type: TMPFS_MAGIC,
        block_size: BLOCK_SIZE as i64,
        blocks,
        blocks_free: free,
        blocks_available: free,
        files,
        files_free: files.saturating_sub(usage.inodes()),
        name_length: NAME_MAX as u64,
    }
}
