//! The operations of the issue, each as a native syscall sequence and as lisafs RPCs.
//!
//! The native column does what a program with direct access to the tmpfs would do for
//! the same result, so `channel / native` is the price of going through the gofer.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;

use lisafs_client::{Client, ControlFd, OpenFd, Owner, AT_REMOVEDIR, O_RDONLY, O_RDWR};
use rustix::fs::{mkdirat, openat, statx, unlinkat, AtFlags, Mode, OFlags, StatxFlags};
use rustix::io::{pread, pwrite};

use crate::fixture::{names, BIG_SIZE, LIST_ENTRIES, SMALL_SIZE};

/// A benchmarked operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    FStat,
    WalkStat3,
    OpenReadClose,
    PWrite4k,
    Getdents1000,
    MkdirUnlink,
    PRead1M,
    PWrite1M,
}

impl Op {
    pub(crate) const ALL: [Op; 8] = [
        Op::FStat,
        Op::WalkStat3,
        Op::OpenReadClose,
        Op::PWrite4k,
        Op::Getdents1000,
        Op::MkdirUnlink,
        Op::PRead1M,
        Op::PWrite1M,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::FStat => "FStat",
            Op::WalkStat3 => "WalkStat, 3 components",
            Op::OpenReadClose => "OpenAt + PRead 4 KiB + Close",
            Op::PWrite4k => "PWrite 4 KiB",
            Op::Getdents1000 => "Getdents64, 1,000 entries (listings)",
            Op::MkdirUnlink => "MkdirAt + UnlinkAt",
            Op::PRead1M => "PRead 1 MiB",
            Op::PWrite1M => "PWrite 1 MiB",
        }
    }

    /// Short name for `--only`.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Op::FStat => "fstat",
            Op::WalkStat3 => "walkstat",
            Op::OpenReadClose => "open",
            Op::PWrite4k => "pwrite",
            Op::Getdents1000 => "getdents",
            Op::MkdirUnlink => "mkdir",
            Op::PRead1M => "pread",
            Op::PWrite1M => "pwrite1m",
        }
    }

    /// What the native column runs.
    pub(crate) fn native_equivalent(self) -> &'static str {
        match self {
            Op::FStat => "`statx(fd, \"\", AT_EMPTY_PATH)` on an `O_PATH` fd",
            Op::WalkStat3 => "`statx` of `a`, `a/b`, `a/b/c` from the root fd",
            Op::OpenReadClose => "`openat` + `pread` 4 KiB + `close`",
            Op::PWrite4k => "`pwrite` 4 KiB at offset 0",
            Op::Getdents1000 => "`std::fs::read_dir` to the end (open + getdents64 + close)",
            Op::MkdirUnlink => "`mkdirat` + `unlinkat(AT_REMOVEDIR)`",
            Op::PRead1M => "`pread` 1 MiB at offset 0",
            Op::PWrite1M => "`pwrite` 1 MiB at offset 0",
        }
    }

    /// Bytes moved per operation, for a bandwidth figure.
    pub(crate) fn bytes(self) -> Option<usize> {
        matches!(self, Op::PRead1M | Op::PWrite1M).then_some(BIG_SIZE)
    }

    /// gVisor's Go client and gofer on these machines (tmpfs), ops/s.
    pub(crate) fn gvisor_channel(self) -> Option<f64> {
        match self {
            Op::FStat => Some(140_000.0),
            Op::WalkStat3 => Some(55_000.0),
            Op::OpenReadClose => Some(31_000.0),
            Op::PWrite4k => Some(125_000.0),
            Op::Getdents1000 => Some(650.0),
            Op::MkdirUnlink => Some(33_000.0),
            Op::PRead1M | Op::PWrite1M => None,
        }
    }
}

/// A benchmark body: one call is one operation; it panics on any error, which ends the
/// report (a failing operation has no meaningful timing).
pub(crate) type Body<'a> = Box<dyn FnMut() + 'a>;

/// Host FDs for the native column, opened once.
#[derive(Debug)]
pub(crate) struct Native {
    root: OwnedFd,
    small_path: OwnedFd,
    write: OwnedFd,
    big: OwnedFd,
    list: std::path::PathBuf,
}

impl Native {
    pub(crate) fn open(root: &Path) -> std::io::Result<Self> {
        let dir = openat(
            rustix::fs::CWD,
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let small_path = openat(
            &dir,
            names::SMALL,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let write = File::create(root.join("native.w"))?.into();
        let big = File::open(root.join(names::BIG))?.into();
        Ok(Self {
            root: dir,
            small_path,
            write,
            big,
            list: root.join(names::LIST),
        })
    }

    pub(crate) fn body(&self, op: Op) -> Body<'_> {
        // Same mask and flags as the gofer's own statx.
        let mask = StatxFlags::BASIC_STATS | StatxFlags::BTIME;
        let nofollow = AtFlags::SYMLINK_NOFOLLOW;
        match op {
            Op::FStat => Box::new(move || {
                statx(&self.small_path, "", AtFlags::EMPTY_PATH | nofollow, mask).expect("statx");
            }),
            Op::WalkStat3 => {
                let [a, b, c] = names::DEEP;
                let prefixes = [a.to_owned(), format!("{a}/{b}"), format!("{a}/{b}/{c}")];
                Box::new(move || {
                    for prefix in &prefixes {
                        statx(&self.root, prefix.as_str(), nofollow, mask).expect("statx");
                    }
                })
            }
            Op::OpenReadClose => {
                let mut buf = vec![0u8; SMALL_SIZE];
                Box::new(move || {
                    let fd = openat(&self.root, names::SMALL, OFlags::RDONLY, Mode::empty())
                        .expect("openat");
                    let n = pread(&fd, &mut buf, 0).expect("pread");
                    assert_eq!(n, SMALL_SIZE, "short read");
                })
            }
            Op::PWrite4k => {
                let data = vec![0x11u8; SMALL_SIZE];
                Box::new(move || {
                    let n = pwrite(&self.write, &data, 0).expect("pwrite");
                    assert_eq!(n, SMALL_SIZE, "short write");
                })
            }
            Op::Getdents1000 => Box::new(move || {
                let count = std::fs::read_dir(&self.list).expect("read_dir").count();
                assert_eq!(count, LIST_ENTRIES, "listing size");
            }),
            Op::MkdirUnlink => Box::new(move || {
                mkdirat(&self.root, "mk", Mode::from_raw_mode(0o755)).expect("mkdirat");
                unlinkat(&self.root, "mk", AtFlags::REMOVEDIR).expect("unlinkat");
            }),
            Op::PRead1M => {
                let mut buf = vec![0u8; BIG_SIZE];
                Box::new(move || {
                    let n = pread(&self.big, &mut buf, 0).expect("pread");
                    assert_eq!(n, BIG_SIZE, "short read");
                })
            }
            Op::PWrite1M => {
                let data = vec![0x33u8; BIG_SIZE];
                Box::new(move || {
                    let n = pwrite(&self.write, &data, 0).expect("pwrite");
                    assert_eq!(n, BIG_SIZE, "short write");
                })
            }
        }
    }
}

/// Server-side handles for the lisafs columns, walked and opened once per client.
#[derive(Debug)]
pub(crate) struct Remote<'c> {
    client: &'c Client,
    small: ControlFd,
    list: ControlFd,
    write: OpenFd,
    big: OpenFd,
}

impl<'c> Remote<'c> {
    /// `tag` keeps each client's written file apart.
    pub(crate) fn open(client: &'c Client, tag: &str) -> lisafs_client::Result<Self> {
        let root = client.root();
        let small = walk_one(root, names::SMALL)?;
        let list = walk_one(root, names::LIST)?;
        let (_, write) = root.open_create_at(format!("{tag}.w"), O_RDWR, 0o644, Owner::UNSET)?;
        let big = walk_one(root, names::BIG)?.open_at(O_RDONLY)?;
        Ok(Self {
            client,
            small,
            list,
            write: write.fd,
            big: big.fd,
        })
    }

    /// The ControlFd FStat runs on (shared by the multi-threaded runs).
    pub(crate) fn small(&self) -> &ControlFd {
        &self.small
    }

    pub(crate) fn body(&self, op: Op) -> Body<'_> {
        let root = self.client.root();
        match op {
            Op::FStat => Box::new(move || {
                self.small.fstat().expect("FStat");
            }),
            Op::WalkStat3 => Box::new(move || {
                let stats = root.walk_stat(&names::DEEP).expect("WalkStat");
                assert_eq!(stats.len(), 3, "WalkStat stopped early");
            }),
            Op::OpenReadClose => {
                let mut buf = vec![0u8; SMALL_SIZE];
                Box::new(move || {
                    // Dropping `opened` queues the Close (sent in batches of 100, as the
                    // client always does) and closes any donated host FD.
                    let opened = self.small.open_at(O_RDONLY).expect("OpenAt");
                    let n = opened.fd.pread(0, &mut buf).expect("PRead");
                    assert_eq!(n, SMALL_SIZE, "short read");
                })
            }
            Op::PWrite4k => {
                let data = vec![0x22u8; SMALL_SIZE];
                Box::new(move || {
                    let n = self.write.pwrite(0, &data).expect("PWrite");
                    assert_eq!(n, SMALL_SIZE, "short write");
                })
            }
            Op::Getdents1000 => Box::new(move || {
                // Like read_dir: open, read to the end (an empty batch), close.
                let opened = self.list.open_at(O_RDONLY).expect("OpenAt dir");
                let mut count = 0;
                let mut budget = -GETDENTS_BUDGET;
                loop {
                    let batch = opened.fd.getdents64(budget).expect("Getdents64");
                    if batch.is_empty() {
                        break;
                    }
                    count += batch.len();
                    budget = GETDENTS_BUDGET;
                }
                assert_eq!(count, LIST_ENTRIES, "listing size");
            }),
            Op::MkdirUnlink => Box::new(move || {
                let made = root.mkdir_at("mk", 0o755, Owner::UNSET).expect("MkdirAt");
                drop(made);
                root.unlink_at("mk", AT_REMOVEDIR).expect("UnlinkAt");
            }),
            Op::PRead1M => {
                let mut buf = vec![0u8; BIG_SIZE];
                Box::new(move || {
                    let n = self.big.pread(0, &mut buf).expect("PRead");
                    assert_eq!(n, BIG_SIZE, "short read");
                })
            }
            Op::PWrite1M => {
                let data = vec![0x44u8; BIG_SIZE];
                Box::new(move || {
                    let n = self.write.pwrite(0, &data).expect("PWrite");
                    assert_eq!(n, BIG_SIZE, "short write");
                })
            }
        }
    }
}

/// The byte budget per Getdents64, as the client's `read_dir` uses: 64 KiB of Linux
/// dirent records, enough for the 1,000 entries in one batch.
const GETDENTS_BUDGET: i32 = 65_536;

fn walk_one(dir: &ControlFd, name: &str) -> lisafs_client::Result<ControlFd> {
    let (_, mut inodes) = dir.walk(&[name])?;
    inodes
        .pop()
        .map(|inode| inode.fd)
        .ok_or_else(|| std::io::Error::other(format!("{name} is missing")).into())
}
