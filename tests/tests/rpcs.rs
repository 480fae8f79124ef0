//! Every RPC through the real gofer: its success path and the errno rules specific to it
//! (SPEC.md §6), beyond what gVisor's own test cases cover.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use lisafs_client::{Client, ControlFd, Owner, SetStat};
use lisafs_protocol::wire::{Errno, Mid, SetStatReq, WalkStatus};
use lisafs_tests::{errno, Gofer};

const GOFER: &str = env!("CARGO_BIN_EXE_test-gofer");
const O_RDONLY: u32 = 0;
const O_WRONLY: u32 = 1;
const O_RDWR: u32 = 2;
const AT_REMOVEDIR: u32 = 0x200;
const RENAME_NOREPLACE: u32 = 1;
const RENAME_EXCHANGE: u32 = 2;
const XATTR_CREATE: u32 = 1;
const FALLOC_FL_KEEP_SIZE: u64 = 1;
const FALLOC_FL_PUNCH_HOLE: u64 = 2;
const SOCK_STREAM: u32 = 1;

fn walk1(client: &Client, path: &[&str]) -> ControlFd {
    let (status, mut inodes) = client.root().walk(path).unwrap();
    assert_eq!(status, WalkStatus::Success, "{path:?}");
    inodes.pop().unwrap().fd
}

#[test]
fn open_donates_regular_files_only_and_enforces_access_modes() {
    let gofer = Gofer::start(GOFER, &[]);
    fs::write(gofer.root().join("f"), b"content").unwrap();
    fs::create_dir(gofer.root().join("d")).unwrap();
    let client = gofer.client();
    let file = walk1(&client, &["f"]);
    let dir = walk1(&client, &["d"]);

    let opened = file.open_at(O_RDONLY).unwrap();
    let mut host = fs::File::from(opened.host_fd.unwrap());
    let mut content = String::new();
    host.read_to_string(&mut content).unwrap();
    assert_eq!(content, "content");
    let dir_opened = dir.open_at(O_RDONLY).unwrap();
    assert!(dir_opened.host_fd.is_none(), "a directory FD was donated");

    assert_eq!(errno(dir.open_at(O_RDWR)), Errno::EISDIR);
    let wo = file.open_at(O_WRONLY).unwrap();
    assert_eq!(errno(wo.fd.pread(0, &mut [0u8; 4])), Errno::EBADF);
    assert_eq!(wo.fd.pwrite(0, b"C").unwrap(), 1);
    assert_eq!(fs::read(gofer.root().join("f")).unwrap(), b"Content");
    // End of file is a zero-byte read.
    assert_eq!(opened.fd.pread(7, &mut [0u8; 4]).unwrap(), 0);
    // Truncation on open.
    file.open_at(O_WRONLY | 0o1000).unwrap();
    assert_eq!(fs::metadata(gofer.root().join("f")).unwrap().len(), 0);
}

#[test]
fn create_ops_refuse_existing_names_and_strip_setid_bits() {
    let gofer = Gofer::start(GOFER, &[]);
    fs::write(gofer.root().join("taken"), b"").unwrap();
    let client = gofer.client();
    let root = client.root();
    assert_eq!(
        errno(root.open_create_at("taken", O_RDWR, 0o644, Owner::UNSET)),
        Errno::EEXIST
    );
    assert_eq!(
        errno(root.mkdir_at("taken", 0o755, Owner::UNSET)),
        Errno::EEXIST
    );
    assert_eq!(
        errno(root.symlink_at("taken", "x", Owner::UNSET)),
        Errno::EEXIST
    );

    let (file, _) = root
        .open_create_at("suid", O_RDWR, 0o4755, Owner::UNSET)
        .unwrap();
    assert_eq!(file.stat.mode & 0o7777, 0o755, "setuid survived");
    let dir = root.mkdir_at("sgid", 0o2775, Owner::UNSET).unwrap();
    assert_eq!(dir.stat.mode & 0o7777, 0o775, "setgid survived");
    let chmod = file
        .fd
        .set_stat(&SetStat {
            mode: Some(0o6755),
            ..Default::default()
        })
        .unwrap();
    assert!(chmod.is_complete());
    assert_eq!(
        fs::metadata(gofer.root().join("suid")).unwrap().mode() & 0o7777,
        0o755
    );
}

#[test]
fn mknod_allows_regular_files_and_whiteouts_only() {
    let gofer = Gofer::start(GOFER, &[]);
    let client = gofer.client();
    let root = client.root();
    let whiteout = root.mknod_at("wh", 0o020000, 0, 0, Owner::UNSET).unwrap();
    assert_eq!(whiteout.stat.mode & 0o170000, 0o020000);
    for (name, mode, major, minor) in [
        ("null", 0o020666, 1, 3),
        ("blk", 0o060600, 8, 0),
        ("fifo", 0o010644, 0, 0),
        ("sock", 0o140644, 0, 0),
    ] {
        assert_eq!(
            errno(root.mknod_at(name, mode, major, minor, Owner::UNSET)),
            Errno::EPERM,
            "{name}"
        );
        assert!(!gofer.root().join(name).exists());
    }
}

#[test]
fn special_files_are_refused_and_never_block() {
    let gofer = Gofer::start(GOFER, &[]);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        gofer.root().join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o666),
        0,
    )
    .unwrap();
    let client = gofer.client();
    let fifo = walk1(&client, &["fifo"]);
    let started = Instant::now();
    assert_eq!(errno(fifo.open_at(O_RDONLY)), Errno::EPERM);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn links_readlink_and_unlink_rules() {
    let gofer = Gofer::start(GOFER, &[]);
    fs::create_dir_all(gofer.root().join("d/sub")).unwrap();
    fs::write(gofer.root().join("f"), b"x").unwrap();
    symlink("f", gofer.root().join("l")).unwrap();
    let client = gofer.client();
    let root = client.root();
    let dir = walk1(&client, &["d"]);
    assert_eq!(errno(root.link_at(&dir, "dirlink")), Errno::EPERM);
    assert_eq!(errno(walk1(&client, &["f"]).readlink_at()), Errno::EINVAL);
    assert_eq!(walk1(&client, &["l"]).readlink_at().unwrap(), b"f");

    assert_eq!(errno(root.unlink_at("d", AT_REMOVEDIR)), Errno::ENOTEMPTY);
    assert_eq!(errno(root.unlink_at("d", 0)), Errno::EISDIR);
    dir.unlink_at("sub", AT_REMOVEDIR).unwrap();
    root.unlink_at("l", 0).unwrap();
    assert!(!gofer.root().join("l").exists() && gofer.root().join("f").exists());
    assert_eq!(errno(root.unlink_at("missing", 0)), Errno::ENOENT);
}

#[test]
fn rename2_exchange_and_noreplace() {
    let gofer = Gofer::start(GOFER, &[]);
    fs::write(gofer.root().join("a"), b"A").unwrap();
    fs::write(gofer.root().join("b"), b"B").unwrap();
    let client = gofer.client();
    let root = client.root();
    assert!(client.supported(Mid::RenameAt2));
    root.rename_at("a", root, "b", RENAME_EXCHANGE).unwrap();
    assert_eq!(fs::read(gofer.root().join("a")).unwrap(), b"B");
    assert_eq!(fs::read(gofer.root().join("b")).unwrap(), b"A");
    assert_eq!(
        errno(root.rename_at("a", root, "b", RENAME_NOREPLACE)),
        Errno::EEXIST
    );
    // The same name in the same directory is a successful no-op.
    root.rename_at("a", root, "a", 0).unwrap();
    assert_eq!(fs::read(gofer.root().join("a")).unwrap(), b"B");
}

#[test]
fn setstat_partial_failure_is_reported_not_raised() {
    let gofer = Gofer::start(GOFER, &[]);
    symlink("target", gofer.root().join("l")).unwrap();
    let client = gofer.client();
    let link = walk1(&client, &["l"]);
    let outcome = link
        .set_stat(&SetStat {
            mode: Some(0o600),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(outcome.failure_mask, SetStatReq::MODE);
    assert_eq!(outcome.failure_errno, Some(Errno::EOPNOTSUPP));
}

#[test]
fn fsync_many_fallocate_modes_and_getdents_rewind() {
    let gofer = Gofer::start(GOFER, &[]);
    let client = gofer.client();
    let root = client.root();
    let (_, a) = root
        .open_create_at("a", O_RDWR, 0o644, Owner::UNSET)
        .unwrap();
    let (_, b) = root
        .open_create_at("b", O_RDWR, 0o644, Owner::UNSET)
        .unwrap();
    a.fd.pwrite(0, &vec![1u8; 1 << 20]).unwrap();
    client.fsync(&[&a.fd, &b.fd]).unwrap();

    let blocks = |name: &str| fs::metadata(gofer.root().join(name)).unwrap().blocks();
    let before = blocks("a");
    a.fd.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 1 << 19)
        .unwrap();
    assert!(blocks("a") < before, "punching a hole freed nothing");
    assert_eq!(fs::metadata(gofer.root().join("a")).unwrap().len(), 1 << 20);
    assert!(
        a.fd.fallocate(0xff, 0, 1).is_err(),
        "invalid modes are the host's to refuse"
    );

    let dir = root.open_at(O_RDONLY).unwrap();
    let names = |count: i32| -> Vec<Vec<u8>> {
        let batch = dir.fd.getdents64(count).unwrap();
        let mut names: Vec<_> = batch.iter().map(|d| d.name.to_vec()).collect();
        names.sort();
        names
    };
    let first = names(-65536);
    assert_eq!(first, [b"a".to_vec(), b"b".to_vec()]);
    assert!(names(65536).is_empty(), "the listing did not end");
    assert_eq!(names(-65536), first, "a negative count did not rewind");
}

#[test]
fn the_largest_listing_replies_fit_the_client_and_cover_every_name_once() {
    // 6,000 names of 255 bytes: the largest count asks for 2 GiB of records, so each reply
    // is cut by the server's message cap (about 1.5 MB of entries), not by the budget.
    let gofer = Gofer::start(GOFER, &[]);
    let mut want = std::collections::BTreeSet::new();
    for i in 0..6_000 {
        let name = format!("{i:05}{}", "n".repeat(250));
        fs::write(gofer.root().join(&name), b"").unwrap();
        want.insert(name.into_bytes());
    }
    for client in [gofer.client(), gofer.socket_client()] {
        let dir = client.root().open_at(O_RDONLY).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        let (mut count, mut replies) = (-i32::MAX, 0);
        loop {
            let batch = dir.fd.getdents64(count).unwrap();
            if batch.is_empty() {
                break;
            }
            replies += 1;
            for entry in &batch {
                assert!(seen.insert(entry.name.to_vec()), "an entry came twice");
            }
            count = i32::MAX;
        }
        assert_eq!(seen, want);
        assert!(replies > 1, "6,000 long names fit one reply");
    }
}

#[test]
fn xattrs_round_trip_with_their_errors() {
    let gofer = Gofer::start(GOFER, &[]);
    fs::write(gofer.root().join("f"), b"").unwrap();
    let client = gofer.client();
    let file = walk1(&client, &["f"]);
    file.set_xattr("user.k", "v1", 0).unwrap();
    assert_eq!(
        errno(file.set_xattr("user.k", "v2", XATTR_CREATE)),
        Errno::EEXIST
    );
    assert_eq!(file.get_xattr("user.k", 0).unwrap(), b"v1");
    assert!(file.list_xattr(0).unwrap().contains(&b"user.k".to_vec()));
    file.remove_xattr("user.k").unwrap();
    assert_eq!(errno(file.get_xattr("user.k", 0)), Errno::ENODATA);
}

#[test]
fn host_sockets_need_the_policy_and_then_connect_bind_and_accept() {
    let refusing = Gofer::start(GOFER, &[]);
    let _listener = UnixListener::bind(refusing.root().join("svc")).unwrap();
    let client = refusing.client();
    let svc = walk1(&client, &["svc"]);
    assert_eq!(errno(svc.connect(SOCK_STREAM, Owner::UNSET)), Errno::EPERM);
    assert_eq!(
        errno(client.root().bind_at("s", SOCK_STREAM, 0o777, Owner::UNSET)),
        Errno::EPERM
    );
    drop((svc, client, _listener, refusing));

    let gofer = Gofer::start(GOFER, &["--host-uds", "all"]);
    let listener = UnixListener::bind(gofer.root().join("svc")).unwrap();
    let client = gofer.client();
    let svc = walk1(&client, &["svc"]);
    // ConnectWithCreds really connects as that user: a socket only root may write to
    // refuses user 1000, and accepts it once opened up.
    let set_mode = |mode| {
        fs::set_permissions(gofer.root().join("svc"), fs::Permissions::from_mode(mode)).unwrap()
    };
    set_mode(0o700);
    assert_eq!(
        errno(svc.connect(SOCK_STREAM, Owner::new(1000, 1000))),
        Errno::EACCES
    );
    set_mode(0o777);
    for owner in [Owner::UNSET, Owner::new(1000, 1000)] {
        let sock = svc.connect(SOCK_STREAM, owner).unwrap();
        let (mut server_side, _) = listener.accept().unwrap();
        UnixStream::from(sock).write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        server_side.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    }
    assert_eq!(
        errno(walk1(&client, &["svc"]).connect(99, Owner::UNSET)),
        Errno::ENXIO
    );

    let (file, bound, _dup) = client
        .root()
        .bind_at("bound", SOCK_STREAM, 0o777, Owner::UNSET)
        .unwrap();
    assert_eq!(file.stat.mode & 0o170000, 0o140000);
    bound.listen(4).unwrap();
    assert_eq!(
        errno(bound.accept()),
        Errno::EAGAIN,
        "accept must not block"
    );
    let mut peer = UnixStream::connect(gofer.root().join("bound")).unwrap();
    let (accepted, _addr) = bound.accept().unwrap();
    peer.write_all(b"pong").unwrap();
    let mut buf = [0u8; 4];
    UnixStream::from(accepted).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
}

#[test]
fn a_readonly_gofer_refuses_every_change() {
    let gofer = Gofer::start(GOFER, &["--readonly"]);
    fs::write(gofer.root().join("f"), b"data").unwrap();
    let client = gofer.client();
    let root = client.root();
    let file = walk1(&client, &["f"]);
    assert_eq!(errno(root.mkdir_at("d", 0o755, Owner::UNSET)), Errno::EROFS);
    assert_eq!(errno(root.unlink_at("f", 0)), Errno::EROFS);
    assert_eq!(errno(file.open_at(O_RDWR)), Errno::EROFS);
    assert_eq!(errno(file.set_xattr("user.k", "v", 0)), Errno::EROFS);
    assert_eq!(errno(root.rename_at("f", root, "g", 0)), Errno::EROFS);
    let ro = file.open_at(O_RDONLY).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(ro.fd.pread(0, &mut buf).unwrap(), 4);
    assert_eq!(fs::read_dir(gofer.root()).unwrap().count(), 1);
}

#[test]
fn the_path_layer_works_against_the_gofer() {
    let gofer = Gofer::start(GOFER, &[]);
    let client = gofer.client();
    client.create_dir_all("a/b/c", 0o755).unwrap();
    client.write("a/b/c/file", b"hello").unwrap();
    client.symlink("b/c/file", "a/link").unwrap();
    assert_eq!(client.read("a/link").unwrap(), b"hello");
    assert_eq!(client.metadata("a/b/c/file").unwrap().size, 5);
    let names: Vec<_> = client
        .read_dir("a")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names.len(), 2);
    client.rename("a/b/c/file", "a/moved").unwrap();
    assert_eq!(fs::read(gofer.root().join("a/moved")).unwrap(), b"hello");
    client.remove_dir_all("a").unwrap();
    assert_eq!(fs::read_dir(gofer.root()).unwrap().count(), 0);
}
