//! Conversions between lisafs and FUSE types: attributes, times, device numbers, errnos.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType as FuseType, INodeNo, TimeOrNow};
use lisafs_client::wire::{StatxTimestamp, Timespec};
use lisafs_client::{Error, FileType, Statx};

/// `utimensat(2)`'s "set to the current time".
const UTIME_NOW: i64 = (1 << 30) - 1;

/// The FUSE attributes of a file. fuser uses `ino` both as the FUSE node ID of an entry
/// and as `st_ino`; the node table makes it the host's inode number wherever it can.
pub(crate) fn file_attr(stat: &Statx, ino: u64) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: stat.size,
        blocks: stat.blocks,
        atime: system_time(&stat.atime),
        mtime: system_time(&stat.mtime),
        ctime: system_time(&stat.ctime),
        crtime: system_time(&stat.btime),
        kind: kind(FileType::from_mode(stat.mode)),
        perm: stat.mode & 0o7777,
        nlink: stat.nlink,
        uid: stat.uid,
        gid: stat.gid,
        rdev: encode_dev(stat.rdev_major, stat.rdev_minor),
        blksize: stat.blksize,
        flags: 0,
    }
}

/// The FUSE file type of a lisafs one.
pub(crate) fn kind(file_type: FileType) -> FuseType {
    match file_type {
        FileType::Directory => FuseType::Directory,
        FileType::Symlink => FuseType::Symlink,
        FileType::Socket => FuseType::Socket,
        FileType::Fifo => FuseType::NamedPipe,
        FileType::CharDevice => FuseType::CharDevice,
        FileType::BlockDevice => FuseType::BlockDevice,
        FileType::Regular | FileType::Unknown => FuseType::RegularFile,
    }
}

/// A statx timestamp as a `SystemTime` (times before 1970 included).
fn system_time(ts: &StatxTimestamp) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(ts.nsec));
    match u64::try_from(ts.sec) {
        Ok(sec) => UNIX_EPOCH + Duration::from_secs(sec) + nanos,
        Err(_) => UNIX_EPOCH - Duration::from_secs(ts.sec.unsigned_abs()) + nanos,
    }
}

/// A FUSE setattr time as the SetStat `Timespec` (`UTIME_NOW` for "now").
pub(crate) fn timespec(time: TimeOrNow) -> Timespec {
    match time {
        TimeOrNow::Now => Timespec {
            sec: 0,
            nsec: UTIME_NOW,
        },
        TimeOrNow::SpecificTime(time) => match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Timespec {
                sec: i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
                nsec: i64::from(after.subsec_nanos()),
            },
            Err(before) => {
                // `before` is how far before the epoch: floor the seconds, keep nsec ≥ 0.
                let before = before.duration();
                let mut sec = -i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
                let mut nsec = i64::from(before.subsec_nanos());
                if nsec > 0 {
                    sec -= 1;
                    nsec = 1_000_000_000 - nsec;
                }
                Timespec { sec, nsec }
            }
        },
    }
}

/// Linux's `new_encode_dev`: the 32-bit device number FUSE carries.
pub(crate) fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

/// Linux's `new_decode_dev`: (major, minor) of a FUSE device number.
pub(crate) fn decode_dev(dev: u32) -> (u32, u32) {
    ((dev & 0xfff00) >> 8, (dev & 0xff) | ((dev >> 12) & 0xfff00))
}

/// The FUSE errno of a client error.
pub(crate) fn errno(err: &Error) -> fuser::Errno {
    match i32::try_from(err.errno().0) {
        Ok(code) if code > 0 => fuser::Errno::from_i32(code),
        _ => fuser::Errno::EIO,
    }
}

/// The FUSE errno of a local syscall error (I/O on a donated FD).
pub(crate) fn os_errno(err: rustix::io::Errno) -> fuser::Errno {
    fuser::Errno::from_i32(err.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_round_trip() {
        for (major, minor) in [(0, 0), (1, 3), (8, 17), (259, 65_536), (4095, 0xfffff)] {
            assert_eq!(decode_dev(encode_dev(major, minor)), (major, minor));
        }
    }

    #[test]
    fn times_before_the_epoch_keep_nanoseconds_positive() {
        let time = UNIX_EPOCH - Duration::from_millis(1500);
        let ts = timespec(TimeOrNow::SpecificTime(time));
        assert_eq!((ts.sec, ts.nsec), (-2, 500_000_000));
        let back = system_time(&StatxTimestamp {
            sec: -2,
            nsec: 500_000_000,
            _pad: 0,
        });
        assert_eq!(back, time);
    }
}
