//! Directory listings through `lisafs-mount`. A long listing takes several Getdents64
//! batches, and the bridge reads each next one while the kernel takes the last: the
//! listing must still come out whole and once, seeks back and rewinds must see what a
//! local directory shows, and listings closed halfway must leave nothing open on the gofer.
//! Needs root and /dev/fuse.
#![allow(clippy::unwrap_used)]

mod mount_harness;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use mount_harness::{ready, wait_for, Dirs, Mount};
use rustix::fs::{Dir, Mode, OFlags};
use rustix::process::Pid;

/// Entries of the long directory: 64-byte Linux records, so 1,024 per 64 KiB batch and
/// six batches in all (the last one short).
const ENTRIES: usize = 6_000;

/// A mount of `b`, which holds `long` with [`ENTRIES`] empty files. Fields drop in
/// order: the mount goes before its directories.
struct LongDir {
    mount: Mount,
    /// The names in `long`.
    names: BTreeSet<String>,
    dirs: Dirs,
}

impl LongDir {
    /// `None` where mounting cannot be tried.
    fn mount() -> Option<Self> {
        if !ready() {
            return None;
        }
        let dirs = Dirs::new();
        let dir = dirs.path("b").join("long");
        fs::create_dir(&dir).unwrap();
        let names = (0..ENTRIES)
            .map(|i| {
                let name = format!("entry-{i:06}-{}", "x".repeat(26));
                fs::write(dir.join(&name), b"").unwrap();
                name
            })
            .collect();
        let mount = Mount::new(&dirs, &[]);
        Some(Self { mount, names, dirs })
    }

    /// `long` on the host.
    fn host(&self) -> PathBuf {
        self.dirs.path("b").join("long")
    }

    /// `long` through the mount.
    fn mounted(&self) -> PathBuf {
        self.dirs.m().join("long")
    }
}

fn open_dir(path: &Path) -> Dir {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    Dir::new(fd).unwrap()
}

/// The next `n` entries' names and, for each, the position after it (`telldir`).
fn next(dir: &mut Dir, n: usize) -> Vec<(String, i64)> {
    (0..n)
        .map_while(|_| dir.read())
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_str().unwrap().to_string();
            (name, entry.offset())
        })
        .collect()
}

fn names(entries: &[(String, i64)]) -> Vec<String> {
    entries.iter().map(|(name, _)| name.clone()).collect()
}

/// Every name once, "." and ".." included, sorted; fails on a repeated name.
fn as_set(entries: &[(String, i64)]) -> BTreeSet<String> {
    let set: BTreeSet<String> = names(entries).into_iter().collect();
    assert_eq!(set.len(), entries.len(), "a name came twice");
    set
}

fn with_dots(mut names: BTreeSet<String>) -> BTreeSet<String> {
    names.insert(".".into());
    names.insert("..".into());
    names
}

#[test]
fn a_long_listing_comes_out_whole_and_once() {
    let Some(long) = LongDir::mount() else {
        return;
    };
    for _ in 0..3 {
        let listed = next(&mut open_dir(&long.mounted()), usize::MAX);
        assert_eq!(as_set(&listed), with_dots(long.names.clone()));
    }
    // std's walk, as programs list: the same names.
    let std_names: BTreeSet<String> = fs::read_dir(long.mounted())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(std_names, long.names);
}

#[test]
fn seeking_back_and_rewinding_midway_see_what_a_local_directory_shows() {
    let Some(long) = LongDir::mount() else {
        return;
    };
    let mut dir = open_dir(&long.mounted());

    // Two and a half batches in: the third is being read ahead.
    let first = next(&mut dir, 2_600);
    assert_eq!(first.len(), 2_600);
    let (_, mark) = first[1_200].clone();
    let after_mark = names(&first[1_201..]);
    dir.seek(mark).unwrap();
    assert_eq!(names(&next(&mut dir, after_mark.len())), after_mark);

    // A file made meanwhile shows after a rewind, and nothing comes twice.
    fs::write(long.host().join("late"), b"").unwrap();
    dir.rewind();
    let mut now = long.names.clone();
    now.insert("late".into());
    assert_eq!(as_set(&next(&mut dir, usize::MAX)), with_dots(now.clone()));

    // A rewind while the next batch is being read, and one before anything more is read.
    dir.rewind();
    assert_eq!(next(&mut dir, 1_500).len(), 1_500);
    dir.rewind();
    dir.rewind();
    assert_eq!(as_set(&next(&mut dir, usize::MAX)), with_dots(now));
}

/// The gofer process that serves the mount: the last of the bridge's descendants (the
/// gofer forks once into its sandbox).
fn serving_gofer(bridge: Pid) -> Pid {
    let mut pid = bridge;
    loop {
        let raw = pid.as_raw_nonzero();
        let children = fs::read_to_string(format!("/proc/{raw}/task/{raw}/children")).unwrap();
        match children.split_whitespace().next() {
            Some(child) => pid = Pid::from_raw(child.parse().unwrap()).unwrap(),
            None => return pid,
        }
    }
}

fn open_fds(pid: Pid) -> usize {
    fs::read_dir(format!("/proc/{}/fd", pid.as_raw_nonzero()))
        .unwrap()
        .count()
}

#[test]
fn listings_closed_midway_leave_nothing_open_on_the_gofer() {
    let Some(long) = LongDir::mount() else {
        return;
    };
    let gofer = serving_gofer(long.mount.pid());
    let before = open_fds(gofer);
    // Each stops with the next batch being read ahead; 300 are three batched Closes.
    const LISTINGS: usize = 300;
    for _ in 0..LISTINGS {
        assert_eq!(next(&mut open_dir(&long.mounted()), 1_100).len(), 1_100);
    }
    // At most one Close batch may still be waiting; a listing that kept its OpenFd would
    // leave LISTINGS more.
    wait_for("listings' FDs closed", || {
        open_fds(gofer) < before + lisafs_client::CLOSE_BATCH + 10
    });
    // And the mount still lists.
    let listed = next(&mut open_dir(&long.mounted()), usize::MAX);
    assert_eq!(as_set(&listed), with_dots(long.names.clone()));
}
