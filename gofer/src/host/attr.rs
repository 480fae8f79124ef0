//! Attributes: SetStat, FStatFS, ReadLinkAt, and the owner and mode helpers that the
//! creating operations share.

use std::os::fd::AsFd;

use lisafs_protocol::wire::{Errno, Gid, SetStatReq, SetStatResp, StatFS, Timespec, Uid};
use lisafs_server::BResult;
use rustix::fs::{AtFlags, Mode, OFlags, Timestamps, UTIME_OMIT};

use super::file::{FileKind, HostFile};
use super::resolve::Resolver;
use super::HostBackend;

/// `PATH_MAX`: the one buffer a symlink target is read into (SPEC.md §11 #10).
const PATH_MAX: usize = 4096;

/// Applies `req.mask` attribute by attribute, in the order MODE, SIZE, times, owner; one
/// failing attribute does not stop the others (SPEC.md §7.6).
pub(super) fn set_stat(b: &HostBackend, file: &HostFile, req: &SetStatReq) -> BResult<SetStatResp> {
    b.resolver.ensure_beneath(file)?;
    let mut failures = SetStatResp::default();
    if req.mask & SetStatReq::MODE != 0 {
        failures.record(SetStatReq::MODE, set_mode(b, file, req.mode));
    }
    if req.mask & SetStatReq::SIZE != 0 {
        failures.record(SetStatReq::SIZE, set_size(b, file, req.size));
    }
    let times = req.mask & (SetStatReq::ATIME | SetStatReq::MTIME);
    if times != 0 {
        let atime = (times & SetStatReq::ATIME != 0).then_some(req.atime);
        let mtime = (times & SetStatReq::MTIME != 0).then_some(req.mtime);
        failures.record(times, set_times(file, atime, mtime));
    }
    let owner = req.mask & (SetStatReq::UID | SetStatReq::GID);
    if owner != 0 {
        let uid = if owner & SetStatReq::UID != 0 {
            req.uid
        } else {
            Uid::NONE
        };
        let gid = if owner & SetStatReq::GID != 0 {
            req.gid
        } else {
            Gid::NONE
        };
        let result = match b.can_chown {
            true => chown(file, uid, gid),
            false => Err(Errno::EPERM),
        };
        failures.record(owner, result);
    }
    Ok(failures)
}

/// MODE: the permission bits after policy; a symlink has none to set (`EOPNOTSUPP`).
fn set_mode(b: &HostBackend, file: &HostFile, mode: u32) -> BResult<()> {
    if file.kind() == FileKind::Symlink {
        return Err(Errno::EOPNOTSUPP);
    }
    let mode = b.policy_mode(mode, file.kind() == FileKind::Directory);
    chmod(&b.resolver, file, mode)
}

/// `chmod` of the pinned inode, through its `/proc/self/fd` entry: `fchmod` refuses
/// `O_PATH` FDs, and the magic link names exactly the inode the FD pins.
pub(super) fn chmod(resolver: &Resolver, file: &HostFile, mode: u32) -> BResult<()> {
    let name = Resolver::proc_name(file.as_fd());
    let mode = Mode::from_raw_mode(mode);
    Ok(rustix::fs::chmodat(
        resolver.proc_self_fd(),
        name,
        mode,
        AtFlags::empty(),
    )?)
}

/// SIZE: `ftruncate` through a write-only reopen; only regular files have a size to set.
fn set_size(b: &HostBackend, file: &HostFile, size: u64) -> BResult<()> {
    match file.kind() {
        FileKind::Regular => {}
        FileKind::Directory => return Err(Errno::EISDIR),
        _ => return Err(Errno::EINVAL),
    }
    if i64::try_from(size).is_err() {
        return Err(Errno::EINVAL);
    }
    let fd = b.resolver.reopen(file, OFlags::WRONLY)?;
    Ok(rustix::fs::ftruncate(&fd, size)?)
}

/// ATIME/MTIME on the inode itself (never a symlink's target); an unset one is omitted.
fn set_times(file: &HostFile, atime: Option<Timespec>, mtime: Option<Timespec>) -> BResult<()> {
    let convert = |t: Option<Timespec>| match t {
        Some(t) => rustix::fs::Timespec {
            tv_sec: t.sec,
            tv_nsec: t.nsec,
        },
        None => rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
    };
    let times = Timestamps {
        last_access: convert(atime),
        last_modification: convert(mtime),
    };
    let flags = AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW;
    Ok(rustix::fs::utimensat(file, c"", &times, flags)?)
}

/// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)`; `NONE` leaves an ID.
pub(super) fn chown(file: &HostFile, uid: Uid, gid: Gid) -> BResult<()> {
    let uid = (uid != Uid::NONE).then(|| rustix::fs::Uid::from_raw(uid.0));
    let gid = (gid != Gid::NONE).then(|| rustix::fs::Gid::from_raw(gid.0));
    if uid.is_none() && gid.is_none() {
        return Ok(());
    }
    let flags = AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW;
    Ok(rustix::fs::chownat(file, c"", uid, gid, flags)?)
}

/// FStatFS: `fstatfs` of the pinned inode (it accepts `O_PATH` FDs).
pub(super) fn statfs(file: &HostFile) -> BResult<StatFS> {
    let st = rustix::fs::fstatfs(file)?;
    // The kernel's fields are signed C longs that are never negative; a negative value is
    // reported as 0 rather than as a huge number.
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    #[allow(clippy::useless_conversion)] // The field types differ between architectures.
    Ok(StatFS {
        fs_type: u(i64::from(st.f_type)),
        block_size: i64::from(st.f_bsize),
        blocks: u64::from(st.f_blocks),
        blocks_free: u64::from(st.f_bfree),
        blocks_available: u64::from(st.f_bavail),
        files: u64::from(st.f_files),
        files_free: u64::from(st.f_ffree),
        name_length: u(i64::from(st.f_namelen)),
    })
}

/// ReadLinkAt: one `PATH_MAX` buffer; a target that fills it is `ENAMETOOLONG`.
pub(super) fn readlink(file: &HostFile) -> BResult<Vec<u8>> {
    if file.kind() != FileKind::Symlink {
        return Err(Errno::EINVAL);
    }
    let mut buf = vec![0u8; PATH_MAX];
    let len = rustix::fs::readlinkat_raw(file, c"", &mut buf[..])?;
    if len >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    buf.truncate(len);
    Ok(buf)
}
