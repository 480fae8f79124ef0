//! Getdents64: directory entries within a byte budget, continuing where the last call
//! stopped.

use std::os::fd::AsFd;

use lisafs_protocol::wire::{Dirent64, DirentList, Errno};
use lisafs_server::{BResult, DirentBatch};
use rustix::fs::{AtFlags, FileType, RawDir, SeekFrom, StatxFlags};

use super::file::{FileKind, HostOpen};
use super::HostBackend;

/// The largest `getdents64` buffer one call uses; bigger budgets take several reads.
const MAX_READ_BUFFER: usize = 64 * 1024;
/// The smallest buffer that holds any entry (a 255-byte name needs 280 bytes).
const MIN_READ_BUFFER: usize = 512;

/// The `DT_*` value of a file type.
fn d_type(file_type: FileType) -> u8 {
    match file_type {
        FileType::Fifo => 1,
        FileType::CharacterDevice => 2,
        FileType::Directory => 4,
        FileType::BlockDevice => 6,
        FileType::RegularFile => 8,
        FileType::Symlink => 10,
        FileType::Socket => 12,
        _ => 0,
    }
}

/// Reads entries from the directory position (from the start if `rewind`) while their
/// Linux record lengths fit `budget`, the encoded response fits `MAX_MESSAGE_SIZE` and
/// there are fewer than 65,535 of them. "." and ".." are consumed but never returned. When
/// it stops early the position is set right after the last entry consumed, so the next
/// call starts at the first entry not returned.
pub(super) fn getdents(
    b: &HostBackend,
    open: &HostOpen,
    rewind: bool,
    budget: usize,
) -> BResult<DirentList> {
    if open.kind() != FileKind::Directory {
        return Err(Errno::ENOTDIR);
    }
    let _serial = open.dir_lock.lock();
    let fd = open.as_fd();
    if rewind {
        rustix::fs::seek(fd, SeekFrom::Start(0))?;
    }
    if budget == 0 {
        return Ok(DirentList::new());
    }
    // One stat per call: entries live on the directory's device unless they are mount
    // points, which are only reachable when submounts are allowed; then every entry is
    // stat'ed, since a file can be a mount point too (a bind-mounted /etc/hosts).
    let dir_stat = rustix::fs::statx(fd, c"", AtFlags::EMPTY_PATH, StatxFlags::TYPE)?;
    let dir_dev = (dir_stat.stx_dev_major, dir_stat.stx_dev_minor);
    let start = rustix::fs::tell(fd)?;

    let mut buf: Vec<u8> = Vec::with_capacity(budget.clamp(MIN_READ_BUFFER, MAX_READ_BUFFER));
    let mut dir = RawDir::new(fd, buf.spare_capacity_mut());
    let mut batch = DirentBatch::new(budget);
    let mut resume: Option<u64> = None;
    let mut stopped_early = false;
    while let Some(entry) = dir.next() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            resume = Some(entry.next_entry_cookie());
            continue;
        }
        let file_type = entry.file_type();
        let dev = match file_type {
            // A symlink cannot be mounted on (mount follows it).
            kind if kind != FileType::Symlink && b.options.allow_submounts => {
                let flags = AtFlags::SYMLINK_NOFOLLOW;
                match rustix::fs::statx(fd, entry.file_name(), flags, StatxFlags::TYPE) {
                    Ok(st) => (st.stx_dev_major, st.stx_dev_minor),
                    Err(_) => {
                        // Gone or unreadable: skipped, as gVisor skips entries it cannot stat.
                        resume = Some(entry.next_entry_cookie());
                        continue;
                    }
                }
            }
            _ => dir_dev,
        };
        let taken = batch.push(&Dirent64 {
            ino: entry.ino(),
            dev_minor: dev.1,
            dev_major: dev.0,
            off: entry.next_entry_cookie(),
            d_type: d_type(file_type),
            name,
        });
        if !taken {
            stopped_early = true;
            break;
        }
        resume = Some(entry.next_entry_cookie());
    }
    if stopped_early {
        let position = resume.unwrap_or(start);
        rustix::fs::seek(fd, SeekFrom::Start(position))?;
    }
    Ok(batch.into_list())
}
