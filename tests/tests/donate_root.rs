//! OpenAt of the mount point with `--donate-mount-fd` (SPEC.md §6.7, §7.11 item 6): what a
//! gVisor sentry in directfs mode needs to list a mount's root. The donated FD is a fresh
//! read-only directory FD of the root, only for the control FD Mount returned, only with
//! the flag, and `..` from it stays in the share.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use lisafs_client::Client;
use lisafs_protocol::wire::{Errno, WalkStatus};
use lisafs_tests::{errno, Gofer};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno as HostErrno;

const GOFER: &str = env!("CARGO_BIN_EXE_test-gofer");
const O_RDONLY: u32 = 0;

/// The host FD donated with OpenAt(O_RDONLY) of the mount point, if any.
fn open_root(client: &Client) -> Option<OwnedFd> {
    client.root().open_at(O_RDONLY).unwrap().host_fd
}

fn names(dir: &OwnedFd) -> Vec<String> {
    let dir = rustix::fs::openat(dir, ".", OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty());
    let mut names: Vec<_> = rustix::fs::Dir::read_from(dir.unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "." && name != "..")
        .collect();
    names.sort();
    names
}

fn same_file(fd: &OwnedFd, path: &std::path::Path) -> bool {
    let host = fs::metadata(path).unwrap();
    let st = rustix::fs::fstat(fd).unwrap();
    (st.st_dev, st.st_ino) == (host.dev(), host.ino())
}

#[test]
fn opening_the_mount_point_donates_a_fresh_read_only_directory_fd() {
    let gofer = Gofer::start(GOFER, &["--donate-mount-fd"]);
    fs::write(gofer.root().join("f"), b"x").unwrap();
    fs::create_dir(gofer.root().join("d")).unwrap();
    let client = gofer.client();
    let fd = open_root(&client).expect("OpenAt of the mount point donates");

    let status = rustix::fs::fcntl_getfl(&fd).unwrap();
    assert!(!status.contains(OFlags::PATH), "an O_PATH FD was donated");
    assert_eq!(status & OFlags::ACCMODE, OFlags::RDONLY);
    assert!(rustix::io::fcntl_getfd(&fd)
        .unwrap()
        .contains(rustix::io::FdFlags::CLOEXEC));
    assert!(same_file(&fd, &gofer.root()));
    assert_eq!(names(&fd), ["d", "f"]);
    // Not writable as a file, and not reopenable for writing.
    assert_eq!(rustix::io::write(&fd, b"x").err(), Some(HostErrno::BADF));
    let proc_path = format!("/proc/self/fd/{}", rustix::fd::AsRawFd::as_raw_fd(&fd));
    let reopened = rustix::fs::open(proc_path.as_str(), OFlags::RDWR, Mode::empty());
    assert_eq!(reopened.err(), Some(HostErrno::ISDIR));
    // Each OpenAt gets its own open file description, not the gofer's or the Mount one.
    let again = open_root(&client).unwrap();
    rustix::fs::seek(&fd, rustix::fs::SeekFrom::End(0)).unwrap();
    assert_eq!(
        rustix::fs::seek(&again, rustix::fs::SeekFrom::Current(0)).unwrap(),
        0
    );
    gofer.assert_canary_untouched();
}

#[test]
fn without_the_flag_nothing_is_donated() {
    let gofer = Gofer::start(GOFER, &[]);
    let mut client = gofer.client();
    assert!(client.take_mount_fd().is_none());
    let opened = client.root().open_at(O_RDONLY).unwrap();
    assert!(opened.host_fd.is_none(), "a directory FD was donated");
    // The OpenFd itself still lists the root over lisafs.
    assert!(opened.fd.getdents64(1 << 16).is_ok());
}

#[test]
fn only_the_mount_point_is_donated_not_other_directories() {
    let gofer = Gofer::start(GOFER, &["--donate-mount-fd"]);
    fs::create_dir(gofer.root().join("d")).unwrap();
    fs::write(gofer.root().join("f"), b"x").unwrap();
    let client = gofer.client();
    let (status, mut inodes) = client.root().walk(&["d"]).unwrap();
    assert_eq!(status, WalkStatus::Success);
    let dir = inodes.pop().unwrap().fd;
    assert!(dir.open_at(O_RDONLY).unwrap().host_fd.is_none());
    // Regular files are donated as always; the mount point still opens read-only only.
    let (_, mut inodes) = client.root().walk(&["f"]).unwrap();
    assert!(inodes
        .pop()
        .unwrap()
        .fd
        .open_at(O_RDONLY)
        .unwrap()
        .host_fd
        .is_some());
    assert_eq!(errno(client.root().open_at(2)), Errno::EISDIR);
}

/// `..` from the donated FD, however often, stays at the share's root: the FD comes from
/// the gofer's detached mount of the share, whose root has no parent. With and without
/// the sandbox (the detached mount is made in both).
#[test]
fn dot_dot_from_the_donated_fd_stays_in_the_share() {
    for sandbox in ["namespace", "none"] {
        let gofer = Gofer::start(GOFER, &["--donate-mount-fd", "--sandbox", sandbox]);
        let client = gofer.client();
        let mut dir = open_root(&client).unwrap();
        for _ in 0..64 {
            let up = OFlags::DIRECTORY | OFlags::RDONLY;
            dir = rustix::fs::openat(&dir, "..", up, Mode::empty()).unwrap();
        }
        assert!(same_file(&dir, &gofer.root()), "--sandbox {sandbox}");
        let outside = rustix::fs::openat(&dir, "../out/secret", OFlags::RDONLY, Mode::empty());
        assert_eq!(outside.err(), Some(HostErrno::NOENT), "--sandbox {sandbox}");
    }
}

/// The donated FD is read-only as a file; what its holder may change *inside* the
/// directory is decided by the kernel: the share's mount flags and the holder's own
/// credentials. On a `--readonly` share nothing can be created, removed or renamed
/// through it.
#[test]
fn on_a_read_only_share_nothing_changes_through_the_donated_fd() {
    let gofer = Gofer::start(GOFER, &["--donate-mount-fd", "--readonly"]);
    fs::write(gofer.root().join("f"), b"x").unwrap();
    let client = gofer.client();
    let fd = open_root(&client).unwrap();
    let create = OFlags::CREATE | OFlags::WRONLY;
    let created = rustix::fs::openat(&fd, "new", create, Mode::from_raw_mode(0o644));
    assert_eq!(created.err(), Some(HostErrno::ROFS));
    let made = rustix::fs::mkdirat(&fd, "newdir", Mode::from_raw_mode(0o755));
    assert_eq!(made.err(), Some(HostErrno::ROFS));
    let removed = rustix::fs::unlinkat(&fd, "f", rustix::fs::AtFlags::empty());
    assert_eq!(removed.err(), Some(HostErrno::ROFS));
    let written = rustix::fs::openat(&fd, "f", OFlags::WRONLY, Mode::empty());
    assert_eq!(written.err(), Some(HostErrno::ROFS));
    assert_eq!(fs::read(gofer.root().join("f")).unwrap(), b"x");
    assert!(!gofer.root().join("new").exists());
    // Reading through it works: that is what it is for.
    let file = rustix::fs::openat(fd.as_fd(), "f", OFlags::RDONLY, Mode::empty()).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(rustix::io::read(&file, &mut buf).unwrap(), 1);
}
