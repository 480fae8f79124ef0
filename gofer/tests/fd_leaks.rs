//! No host FD leaks: after a batch of succeeding and failing operations, and dropping
//! every handle they returned, the process has exactly the FDs it had before.
//!
//! One test in its own binary, so no other test thread opens FDs while it counts.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use lisafs_gofer::host::HostOptions;
use lisafs_gofer::wire::{Gid, SetStatReq, Timespec, Uid};
use lisafs_server::{Backend, OpenFlags};

/// The FDs open in this process, excluding the one `read_dir` itself uses.
fn open_fds() -> Vec<String> {
    let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    fds.sort();
    fds
}

/// Whether FD `fd` of this process has close-on-exec set (`flags:` in fdinfo is octal).
fn cloexec(fd: &str) -> bool {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
    let flags = info
        .lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .unwrap();
    let flags = u32::from_str_radix(flags.trim(), 8).unwrap();
    flags & 0o2_000_000 != 0
}

#[test]
fn no_operation_leaks_a_host_fd() {
    let baseline = open_fds();
    let options = HostOptions {
        uds_connect: true,
        uds_create: true,
        fifo_open: true,
        donate_mount_fd: true,
        ..HostOptions::default()
    };
    let fx = Fixture::with(options);
    std::fs::create_dir(fx.path("dir")).unwrap();
    std::os::unix::fs::symlink("dir", fx.path("link")).unwrap();
    // Warm up lazily opened process-wide handles (the procfs handle, the xattr probe).
    drop(fx.backend.mount().unwrap());
    let _ = fx.backend.list_xattr(&fx.root, 0);
    let before = open_fds();

    for _ in 0..3 {
        batch(&fx);
    }

    let after = open_fds();
    assert_eq!(before, after, "FDs leaked");

    // Every FD the backend holds or hands out is close-on-exec.
    let held = hold_one_of_each(&fx);
    let new: Vec<String> = open_fds()
        .into_iter()
        .filter(|fd| !baseline.contains(fd))
        .collect();
    assert!(new.len() > 10, "the handles are held");
    for fd in new {
        // The FD read_dir used is gone by now; skip any FD that closed since listing.
        if std::path::Path::new(&format!("/proc/self/fdinfo/{fd}")).exists() {
            assert!(cloexec(&fd), "FD {fd} lacks O_CLOEXEC");
        }
    }
    drop(held);
}

/// One handle of every kind the backend creates, kept alive.
fn hold_one_of_each(fx: &Fixture) -> Vec<Box<dyn std::any::Any>> {
    let b = &fx.backend;
    let mut held: Vec<Box<dyn std::any::Any>> = Vec::new();
    let mounted = b.mount().unwrap();
    held.push(Box::new(mounted.donated));
    held.push(Box::new(mounted.root.file));
    let dir = fx.walk(&fx.root, "dir").unwrap();
    let (file, opened) = b.create(&dir.file, n("held"), attrs(0o644), RDWR).unwrap();
    held.push(Box::new(b.open(&file.file, RDONLY).unwrap()));
    held.push(Box::new(b.open(&dir.file, RDONLY).unwrap()));
    held.push(Box::new((file, opened)));
    let (node, socket, donated) = b.bind(&dir.file, n("held.sock"), 1, attrs(0o777)).unwrap();
    b.listen(&socket, 4).unwrap();
    let client = b.connect(&node.file, 1, None).unwrap();
    let accepted = b.accept(&socket).unwrap();
    held.push(Box::new((node, socket, donated, client, accepted)));
    held.push(Box::new(
        b.mkdir(&dir.file, n("held.d"), attrs(0o755)).unwrap(),
    ));
    held.push(Box::new(dir));
    held
}

/// Every backend operation, succeeding and failing; every returned handle is dropped.
fn batch(fx: &Fixture) {
    let b = &fx.backend;
    let root = &fx.root;
    let rdwr_trunc = OpenFlags {
        truncate: true,
        ..RDWR
    };

    drop(b.mount().unwrap());
    let dir = fx.walk(root, "dir").unwrap();
    let link = fx.walk(root, "link").unwrap();
    assert!(fx.walk(root, "missing").is_err());
    assert!(fx.walk(&link.file, "x").is_err());

    // Files.
    let (file, opened) = b.create(&dir.file, n("f"), attrs(0o644), RDWR).unwrap();
    assert!(b.create(&dir.file, n("f"), attrs(0o644), RDWR).is_err());
    b.write(&opened.open, 0, b"data").unwrap();
    let mut buf = [0u8; 8];
    b.read(&opened.open, 0, &mut buf).unwrap();
    b.allocate(&opened.open, 0, 0, 100).unwrap();
    assert!(b.allocate(&opened.open, 0x2, 0, 10).is_err());
    b.sync(&opened.open).unwrap();
    drop(opened);
    drop(b.open(&file.file, rdwr_trunc).unwrap());
    assert!(b.open(&link.file, RDONLY).is_err());
    b.stat(&file.file).unwrap();
    b.statfs(&file.file).unwrap();

    // SetStat, every bit, plus failures (MODE on a symlink, SIZE on a directory).
    let all = SetStatReq {
        mask: SetStatReq::SUPPORTED_MASK,
        mode: 0o600,
        uid: Uid(0),
        gid: Gid(0),
        size: 3,
        atime: Timespec { sec: 1, nsec: 0 },
        mtime: Timespec { sec: 2, nsec: 0 },
        ..SetStatReq::default()
    };
    b.set_stat(&file.file, &all).unwrap();
    b.set_stat(&link.file, &all).unwrap();
    b.set_stat(&dir.file, &all).unwrap();

    // Other creates.
    let sub = b.mkdir(&dir.file, n("sub"), attrs(0o755)).unwrap();
    assert!(b.mkdir(&dir.file, n("sub"), attrs(0o755)).is_err());
    let sym = b
        .symlink(&dir.file, n("sym"), b"f", Uid(1), Gid(1))
        .unwrap();
    assert!(b
        .symlink(&dir.file, n("sym"), b"f", Uid::NONE, Gid::NONE)
        .is_err());
    b.readlink(&sym.file).unwrap();
    assert!(b.readlink(&file.file).is_err());
    let hard = b.link(&sub.file, n("hard"), &file.file).unwrap();
    assert!(b.link(&sub.file, n("hard"), &file.file).is_err());
    assert!(b.link(&sub.file, n("d"), &dir.file).is_err());
    let node = b
        .mknod(&dir.file, n("node"), attrs(0o100_644), 0, 0)
        .unwrap();
    let whiteout = b.mknod(&dir.file, n("wh"), attrs(0o020_000), 0, 0).unwrap();
    assert!(b
        .mknod(&dir.file, n("dev"), attrs(0o020_644), 1, 3)
        .is_err());
    assert!(b
        .mknod(&dir.file, n("node"), attrs(0o100_644), 0, 0)
        .is_err());

    // Xattrs.
    b.set_xattr(&file.file, b"user.k", b"v", 0).unwrap();
    b.get_xattr(&file.file, b"user.k", 0).unwrap();
    assert!(b.get_xattr(&file.file, b"user.none", 0).is_err());
    b.list_xattr(&file.file, 0).unwrap();
    b.remove_xattr(&file.file, b"user.k").unwrap();
    assert!(b.remove_xattr(&file.file, b"user.k").is_err());
    assert!(b.set_xattr(&sym.file, b"user.k", b"v", 0).is_err());

    // Directory listing.
    let listing = b.open(&dir.file, RDONLY).unwrap();
    while !b.getdents(&listing.open, false, 40).unwrap().is_empty() {}
    b.getdents(&listing.open, true, 65536).unwrap();
    drop(listing);

    // Sockets.
    let (sock_node, socket, donated) = b.bind(&dir.file, n("s"), 1, attrs(0o777)).unwrap();
    assert!(b.bind(&dir.file, n("s"), 1, attrs(0o777)).is_err());
    assert!(b
        .bind(&dir.file, n(&"x".repeat(120)), 1, attrs(0o777))
        .is_err());
    b.listen(&socket, 4).unwrap();
    assert!(b.accept(&socket).is_err());
    let client = b.connect(&sock_node.file, 1, None).unwrap();
    let with_creds = b
        .connect(&sock_node.file, 1, Some((Uid(1000), Gid(1000))))
        .unwrap();
    assert!(b.connect(&sock_node.file, 2, None).is_err());
    assert!(b.connect(&file.file, 1, None).is_err());
    drop(b.accept(&socket).unwrap());
    drop(b.accept(&socket).unwrap());
    drop((client, with_creds, donated, socket));

    // Renames and removals, then the tree is back as it was.
    b.rename(&dir.file, n("node"), &sub.file, n("moved"), 0)
        .unwrap();
    assert!(b
        .rename(&dir.file, n("node"), &sub.file, n("moved"), 0)
        .is_err());
    b.rename(&dir.file, n("f"), &dir.file, n("sym"), 2).unwrap();
    for name in ["f", "sym", "wh", "s"] {
        b.unlink(&dir.file, n(name), 0).unwrap();
    }
    assert!(b.unlink(&dir.file, n("sub"), 0).is_err());
    for name in ["hard", "moved"] {
        b.unlink(&sub.file, n(name), 0).unwrap();
    }
    b.unlink(&dir.file, n("sub"), 0x200).unwrap();
    drop((file, sub, sym, hard, node, whiteout, sock_node, dir, link));
}
