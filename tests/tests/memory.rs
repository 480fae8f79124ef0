//! The memory backend (`lisafs_gofer::memory`) through the real client and server, in
//! this process: gVisor's conformance cases, then the semantics a local filesystem has
//! that the memory backend implements itself (renames, links, unlinked files, directory
//! offsets, xattrs, the size limit, times), and a multi-threaded stress run.

use lisafs_gofer::memory::{MemoryBackend, MemoryOptions};

fn backend() -> MemoryBackend {
    MemoryBackend::new(MemoryOptions::default()).expect("memory backend")
}

/// Every gVisor case but UDS passes; UDS needs BindAt, which this backend refuses with
/// EOPNOTSUPP (checked instead).
#[test]
fn every_conformance_test_but_uds_passes() {
    let no_sockets = "BindAt is EOPNOTSUPP: a memory tree has no host socket to bind";
    lisafs_tests::conformance::run_backend_in_process(backend, &[("UDS", no_sockets)]);
    let server = lisafs_server::Server::new(backend(), lisafs_server::ServerOptions::default());
    let (client_end, server_end) = FramedSocket::pair().expect("socket pair");
    server.spawn(server_end).expect("server thread");
    let client = Client::from_fd(client_end.into_inner()).expect("mount");
    lisafs_tests::conformance::uds_unsupported(&client);
}

use std::collections::{BTreeSet, HashMap};
use std::os::fd::AsFd;
use std::time::Duration;

use lisafs_client::{Client, ControlFd, Opened, Owner, SetStat};
use lisafs_protocol::transport::socket::FramedSocket;
use lisafs_protocol::wire::{
    DirentList, Errno, Statx, Timespec, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG,
    S_IFSOCK,
};
use lisafs_server::{Server, ServerOptions};
use lisafs_tests::errno;

const O_RDONLY: u32 = 0;
const O_WRONLY: u32 = 1;
const O_RDWR: u32 = 2;
const AT_REMOVEDIR: u32 = 0x200;
const RENAME_NOREPLACE: u32 = 1;
const RENAME_EXCHANGE: u32 = 2;
const RENAME_WHITEOUT: u32 = 4;
const XATTR_CREATE: u32 = 1;
const XATTR_REPLACE: u32 = 2;

/// A client mounted on `backend`, served by a thread in this process that ends when the
/// client hangs up.
fn mount(backend: MemoryBackend) -> Client {
    let server = Server::new(backend, ServerOptions::default());
    let (client_end, server_end) = FramedSocket::pair().expect("socket pair");
    server.spawn(server_end).expect("server thread");
    Client::from_fd(client_end.into_inner()).expect("mount")
}

fn me() -> Owner {
    Owner::new(
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    )
}

fn create(dir: &ControlFd, name: &str) -> (lisafs_client::Inode, Opened) {
    dir.open_create_at(name, O_RDWR, 0o644, me())
        .expect("OpenCreateAt")
}

fn stat_of(dir: &ControlFd, name: &str) -> Statx {
    let stats = dir.walk_stat(&[name]).expect("WalkStat");
    assert_eq!(stats.len(), 1, "{name} does not exist");
    stats[0]
}

fn exists(dir: &ControlFd, name: &str) -> bool {
    !dir.walk_stat(&[name]).expect("WalkStat").is_empty()
}

/// Every entry of the open directory, read `chunk` bytes at a time from the start.
fn list(dir: &ControlFd, chunk: i32) -> DirentList {
    let opened = dir.open_at(O_RDONLY).expect("OpenAt dir");
    let mut all = DirentList::new();
    loop {
        let batch = opened.fd.getdents64(chunk).expect("Getdents64");
        if batch.is_empty() {
            return all;
        }
        all.extend(&batch);
    }
}

fn names(dirents: &DirentList) -> BTreeSet<String> {
    dirents
        .iter()
        .map(|d| String::from_utf8_lossy(d.name).into_owned())
        .collect()
}

fn key(t: &lisafs_protocol::wire::StatxTimestamp) -> (i64, u32) {
    (t.sec, t.nsec)
}

#[test]
fn rename_flags_follow_renameat2() {
    let client = mount(backend());
    let root = client.root();
    let a = root.mkdir_at("a", 0o755, me()).expect("mkdir a");
    let b = root.mkdir_at("b", 0o755, me()).expect("mkdir b");
    drop(create(&a.fd, "f"));
    drop(create(&b.fd, "g"));
    b.fd.mkdir_at("sub", 0o755, me()).expect("mkdir b/sub");

    // NOREPLACE refuses an existing target and works without one.
    assert_eq!(
        errno(a.fd.rename_at("f", &b.fd, "g", RENAME_NOREPLACE)),
        Errno::EEXIST
    );
    a.fd.rename_at("f", &a.fd, "f2", RENAME_NOREPLACE)
        .expect("NOREPLACE");
    assert!(exists(&a.fd, "f2") && !exists(&a.fd, "f"));

    // EXCHANGE swaps a file and a directory across directories; link counts follow.
    let f2 = stat_of(&a.fd, "f2");
    let sub = stat_of(&b.fd, "sub");
    assert_eq!((stat_of(root, "a").nlink, stat_of(root, "b").nlink), (2, 3));
    a.fd.rename_at("f2", &b.fd, "sub", RENAME_EXCHANGE)
        .expect("EXCHANGE");
    assert_eq!(stat_of(&a.fd, "f2").ino, sub.ino);
    assert_eq!(stat_of(&b.fd, "sub").ino, f2.ino);
    assert_eq!((stat_of(root, "a").nlink, stat_of(root, "b").nlink), (3, 2));
    // ... and ".." of the moved directory is its new parent.
    let moved = a.fd.walk(&["f2"]).expect("walk").1.remove(0);
    assert_eq!(moved.stat.mode & S_IFMT, S_IFDIR);
    assert_eq!(
        errno(a.fd.rename_at("nothing", &b.fd, "sub", RENAME_EXCHANGE)),
        Errno::ENOENT
    );
    assert_eq!(
        errno(a.fd.rename_at("f2", &b.fd, "none", RENAME_EXCHANGE)),
        Errno::ENOENT
    );
    assert_eq!(
        errno(a.fd.rename_at("f2", &b.fd, "sub", RENAME_EXCHANGE | RENAME_NOREPLACE)),
        Errno::EINVAL
    );
    assert_eq!(
        errno(a.fd.rename_at("f2", &b.fd, "sub", 0x80)),
        Errno::EINVAL
    );

    // WHITEOUT leaves a 0:0 character device at the old name.
    b.fd.rename_at("g", &a.fd, "g", RENAME_WHITEOUT)
        .expect("WHITEOUT");
    let whiteout = stat_of(&b.fd, "g");
    assert_eq!(whiteout.mode & S_IFMT, S_IFCHR);
    assert_eq!((whiteout.rdev_major, whiteout.rdev_minor), (0, 0));
    assert_eq!(stat_of(&a.fd, "g").mode & S_IFMT, S_IFREG);

    // A directory into itself or below itself.
    assert_eq!(errno(root.rename_at("a", &a.fd, "x", 0)), Errno::EINVAL);
    assert_eq!(errno(root.rename_at("a", &moved.fd, "x", 0)), Errno::EINVAL);
    // Over a non-empty directory, a directory over a file, a file over a directory.
    let c = root.mkdir_at("c", 0o755, me()).expect("mkdir c");
    assert_eq!(errno(root.rename_at("c", root, "a", 0)), Errno::ENOTEMPTY);
    assert_eq!(errno(a.fd.rename_at("f2", &a.fd, "g", 0)), Errno::ENOTDIR);
    assert_eq!(errno(a.fd.rename_at("g", root, "c", 0)), Errno::EISDIR);
    // A directory above the source as the target: not empty.
    assert_eq!(errno(a.fd.rename_at("g", root, "a", 0)), Errno::EISDIR);
    assert_eq!(errno(moved.fd.rename_at("x", root, "a", 0)), Errno::ENOENT);
    drop(create(&moved.fd, "x"));
    b.fd.mkdir_at("y", 0o755, me()).expect("mkdir y");
    assert_eq!(errno(b.fd.rename_at("y", root, "a", 0)), Errno::ENOTEMPTY);
    // A directory over an empty one replaces it; the parent loses a link.
    let before = stat_of(root, "c");
    assert_eq!(stat_of(root, "b").nlink, 3);
    b.fd.rename_at("y", root, "c", 0)
        .expect("dir over empty dir");
    assert_ne!(stat_of(root, "c").ino, before.ino);
    assert_eq!(c.fd.fstat().expect("FStat").nlink, 0);
    assert_eq!(stat_of(root, "b").nlink, 2);
    assert_eq!(errno(c.fd.mkdir_at("late", 0o755, me())), Errno::ENOENT);
    // Two names of one file: nothing happens.
    a.fd.link_at(&a.fd.walk(&["g"]).expect("walk").1.remove(0).fd, "g2")
        .expect("link");
    a.fd.rename_at("g", &a.fd, "g2", 0)
        .expect("rename onto own link");
    assert!(exists(&a.fd, "g") && exists(&a.fd, "g2"));
}

#[test]
fn hard_links_share_the_inode_and_count() {
    let client = mount(backend());
    let root = client.root();
    let (file, opened) = create(root, "f");
    let d = root.mkdir_at("d", 0o755, me()).expect("mkdir");
    let link = d.fd.link_at(&file.fd, "l").expect("LinkAt");
    assert_eq!(link.stat.ino, file.stat.ino);
    assert_eq!(link.stat.nlink, 2);
    assert_eq!(opened.fd.pwrite(0, b"shared").expect("PWrite"), 6);
    let via_link = d.fd.walk(&["l"]).expect("walk").1.remove(0);
    let mut buf = [0u8; 6];
    let o = via_link.fd.open_at(O_RDONLY).expect("OpenAt");
    assert_eq!(o.fd.pread(0, &mut buf).expect("PRead"), 6);
    assert_eq!(&buf, b"shared");
    root.unlink_at("f", 0).expect("unlink");
    assert_eq!(file.fd.fstat().expect("FStat").nlink, 1);
    assert_eq!(errno(root.link_at(&d.fd, "dirlink")), Errno::EPERM);
    assert_eq!(errno(root.link_at(&link.fd, "d")), Errno::EEXIST);
    // Directories: 2, plus one per subdirectory.
    assert_eq!(stat_of(root, "d").nlink, 2);
    let root_before = root.fstat().expect("FStat").nlink;
    d.fd.mkdir_at("s1", 0o755, me()).expect("mkdir");
    d.fd.mkdir_at("s2", 0o755, me()).expect("mkdir");
    assert_eq!(stat_of(root, "d").nlink, 4);
    d.fd.unlink_at("s1", AT_REMOVEDIR).expect("rmdir");
    assert_eq!(stat_of(root, "d").nlink, 3);
    assert_eq!(root.fstat().expect("FStat").nlink, root_before);
    assert_eq!(errno(root.unlink_at("d", AT_REMOVEDIR)), Errno::ENOTEMPTY);
    assert_eq!(errno(root.unlink_at("d", 0)), Errno::EISDIR);
    assert_eq!(errno(d.fd.unlink_at("l", AT_REMOVEDIR)), Errno::ENOTDIR);
    assert_eq!(errno(d.fd.unlink_at("l", 1)), Errno::EINVAL);
}

#[test]
fn unlinked_open_files_keep_working() {
    let client = mount(backend());
    let root = client.root();
    let (file, opened) = create(root, "f");
    root.unlink_at("f", 0).expect("unlink");
    assert!(!exists(root, "f"));
    assert_eq!(opened.fd.pwrite(0, b"after unlink").expect("PWrite"), 12);
    let host = opened.host_fd.as_ref().expect("donated");
    let mut buf = [0u8; 12];
    assert_eq!(
        rustix::io::pread(host.as_fd(), &mut buf, 0).expect("pread"),
        12
    );
    assert_eq!(&buf, b"after unlink");
    let stat = file.fd.fstat().expect("FStat");
    assert_eq!((stat.nlink, stat.size), (0, 12));
    // It cannot come back.
    assert_eq!(errno(root.link_at(&file.fd, "again")), Errno::ENOENT);
    // A removed directory held open lists nothing and takes no new names.
    let d = root.mkdir_at("d", 0o755, me()).expect("mkdir");
    root.unlink_at("d", AT_REMOVEDIR).expect("rmdir");
    assert!(list(&d.fd, 4096).is_empty());
    assert_eq!(
        errno(d.fd.open_create_at("x", O_RDWR, 0o644, me())),
        Errno::ENOENT
    );
}

#[test]
fn donated_fds_have_the_access_asked_for_and_their_own_position() {
    let client = mount(backend());
    let root = client.root();
    let (file, rw) = create(root, "f");
    rw.fd.pwrite(0, b"0123456789").expect("PWrite");
    let ro = file.fd.open_at(O_RDONLY).expect("OpenAt");
    let ro_host = ro.host_fd.expect("donated");
    assert_eq!(
        rustix::io::write(&ro_host, b"x"),
        Err(rustix::io::Errno::BADF)
    );
    let wo = file.fd.open_at(O_WRONLY).expect("OpenAt");
    let mut buf = [0u8; 1];
    assert_eq!(errno(wo.fd.pread(0, &mut buf)), Errno::EBADF);
    // Reads through two donated FDs do not move each other's position.
    let other = file
        .fd
        .open_at(O_RDONLY)
        .expect("OpenAt")
        .host_fd
        .expect("donated");
    let mut a = [0u8; 4];
    rustix::io::read(&ro_host, &mut a).expect("read");
    let mut b = [0u8; 4];
    rustix::io::read(&other, &mut b).expect("read");
    assert_eq!((&a, &b), (b"0123", b"0123"));
    // Growth through a donated FD shows in stat.
    let rw_host = rw.host_fd.expect("donated");
    rustix::io::pwrite(&rw_host, b"tail", 100).expect("pwrite");
    assert_eq!(file.fd.fstat().expect("FStat").size, 104);
    // Special files: sockets are ENXIO, FIFOs and devices EPERM, as documented.
    let fifo = root
        .mknod_at("p", S_IFIFO | 0o644, 0, 0, me())
        .expect("mknod fifo");
    let sock = root
        .mknod_at("s", S_IFSOCK | 0o644, 0, 0, me())
        .expect("mknod sock");
    let dev = root
        .mknod_at("c", S_IFCHR | 0o644, 1, 3, me())
        .expect("mknod chr");
    assert_eq!((dev.stat.rdev_major, dev.stat.rdev_minor), (1, 3));
    assert_eq!(errno(fifo.fd.open_at(O_RDONLY)), Errno::EPERM);
    assert_eq!(errno(sock.fd.open_at(O_RDONLY)), Errno::ENXIO);
    assert_eq!(errno(dev.fd.open_at(O_RDONLY)), Errno::EPERM);
    assert_eq!(
        errno(root.mknod_at("d", S_IFDIR | 0o755, 0, 0, me())),
        Errno::EPERM
    );
    assert_eq!(errno(root.bind_at("u", 1, 0o755, me())), Errno::EOPNOTSUPP);
    assert_eq!(errno(sock.fd.connect(1, Owner::UNSET)), Errno::EOPNOTSUPP);
}

/// Offsets stay valid while the directory changes: a listing read in small pieces, with
/// names added and removed between the pieces, returns every name that was there all
/// along exactly once, never a removed one after its removal, and offsets that only grow.
#[test]
fn getdents_offsets_are_stable_while_the_directory_changes() {
    let client = mount(backend());
    let root = client.root();
    let d = root.mkdir_at("d", 0o755, me()).expect("mkdir");
    for i in 0..100 {
        d.fd.mknod_at(format!("f{i:03}"), S_IFREG | 0o644, 0, 0, me())
            .expect("mknod");
    }
    let opened = d.fd.open_at(O_RDONLY).expect("OpenAt");
    let mut seen: Vec<String> = Vec::new();
    let mut removed: BTreeSet<String> = BTreeSet::new();
    let mut last_off = 0;
    let mut round = 0;
    let mut added = 0;
    loop {
        let batch = opened.fd.getdents64(100).expect("Getdents64");
        if batch.is_empty() {
            break;
        }
        for dirent in &batch {
            assert!(dirent.off > last_off, "offsets only grow");
            last_off = dirent.off;
            let name = String::from_utf8_lossy(dirent.name).into_owned();
            assert!(!removed.contains(&name), "{name} came after its removal");
            seen.push(name);
        }
        // Between pieces: add a name (for a while: every new one comes later, so adding
        // forever would never end the listing) and remove one not listed yet.
        if round < 30 {
            d.fd.mknod_at(format!("new{round}"), S_IFREG | 0o644, 0, 0, me())
                .expect("mknod");
            added += 1;
        }
        let victim = format!("f{:03}", 99usize.saturating_sub(round));
        if round < 50 && !seen.contains(&victim) {
            d.fd.unlink_at(&victim, 0).expect("unlink");
            removed.insert(victim);
        }
        round += 1;
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a name came twice");
    for i in 0..100 {
        let name = format!("f{i:03}");
        assert!(
            removed.contains(&name) || unique.contains(&name),
            "{name} was there all along but never listed"
        );
    }
    assert!(round > 5, "the listing took several pieces");
    // A rewind starts over and sees the directory as it is now.
    let now = opened.fd.getdents64(-65536).expect("rewind");
    assert_eq!(now.len(), 100 - removed.len() + added);
    for i in 0..added {
        assert!(
            unique.contains(&format!("new{i}")),
            "new{i}, added ahead of the cursor"
        );
    }
}

#[test]
fn xattrs_in_every_namespace() {
    let client = mount(backend());
    let root = client.root();
    let (file, _) = create(root, "f");
    let f = &file.fd;
    for name in ["user.a", "trusted.b", "security.c", "system.d"] {
        f.set_xattr(name, name.as_bytes(), 0).expect("set");
        assert_eq!(f.get_xattr(name, 0).expect("get"), name.as_bytes());
    }
    assert_eq!(f.list_xattr(0).expect("list").len(), 4);
    assert_eq!(errno(f.list_xattr(10)), Errno::ERANGE);
    assert_eq!(
        errno(f.set_xattr("user.a", "v", XATTR_CREATE)),
        Errno::EEXIST
    );
    assert_eq!(
        errno(f.set_xattr("user.z", "v", XATTR_REPLACE)),
        Errno::ENODATA
    );
    f.set_xattr("user.a", "new", XATTR_REPLACE)
        .expect("replace");
    assert_eq!(f.get_xattr("user.a", 0).expect("get"), b"new");
    assert_eq!(errno(f.get_xattr("user.a", 2)), Errno::ERANGE);
    assert_eq!(errno(f.get_xattr("user.none", 0)), Errno::ENODATA);
    assert_eq!(errno(f.set_xattr("other.x", "v", 0)), Errno::EOPNOTSUPP);
    assert_eq!(errno(f.set_xattr("user.", "v", 0)), Errno::EINVAL);
    assert_eq!(errno(f.set_xattr("user.a", "v", 4)), Errno::EINVAL);
    f.remove_xattr("user.a").expect("remove");
    assert_eq!(errno(f.remove_xattr("user.a")), Errno::ENODATA);
    // The largest value a request can carry round-trips.
    let big = vec![7u8; 65_535];
    f.set_xattr("user.big", &big, 0).expect("set 64 KiB - 1");
    assert_eq!(f.get_xattr("user.big", 0).expect("get big"), big);
    // user.* only on regular files and directories, as Linux.
    let link = root.symlink_at("l", "f", me()).expect("symlink");
    assert_eq!(errno(link.fd.set_xattr("user.a", "v", 0)), Errno::EPERM);
    assert_eq!(errno(link.fd.get_xattr("user.a", 0)), Errno::ENODATA);
    link.fd
        .set_xattr("trusted.a", "v", 0)
        .expect("trusted on a symlink");
    root.set_xattr("user.dir", "v", 0)
        .expect("user on a directory");
}

#[test]
fn the_size_limit_is_enospc_and_statfs_reports_it() {
    let options = MemoryOptions {
        max_bytes: Some(1 << 20),
        max_inodes: Some(8),
        read_only: false,
    };
    let client = mount(MemoryBackend::new(options).expect("backend"));
    let root = client.root();
    let fs = root.fstatfs().expect("FStatFS");
    assert_eq!((fs.block_size, fs.blocks, fs.blocks_free), (4096, 256, 256));
    assert_eq!((fs.files, fs.files_free), (8, 7)); // the root is one
    let (file, opened) = create(root, "f");
    opened.fd.pwrite(0, &vec![1u8; 512 * 1024]).expect("PWrite");
    let fs = root.fstatfs().expect("FStatFS");
    assert_eq!((fs.blocks_free, fs.files_free), (128, 6));
    // Beyond the limit: nothing is written.
    assert_eq!(
        errno(opened.fd.pwrite(512 * 1024, &vec![2u8; 600 * 1024])),
        Errno::ENOSPC
    );
    assert_eq!(file.fd.fstat().expect("FStat").size, 512 * 1024);
    assert_eq!(errno(opened.fd.fallocate(0, 0, 2 << 20)), Errno::ENOSPC);
    let outcome = file
        .fd
        .set_stat(&SetStat {
            size: Some(2 << 20),
            ..SetStat::default()
        })
        .expect("SetStat");
    assert_eq!(outcome.failure_errno, Some(Errno::ENOSPC));
    // Up to the limit exactly is fine.
    opened
        .fd
        .pwrite(512 * 1024, &vec![2u8; 512 * 1024])
        .expect("fill");
    assert_eq!(root.fstatfs().expect("FStatFS").blocks_free, 0);
    assert_eq!(errno(opened.fd.pwrite(1 << 20, b"x")), Errno::ENOSPC);
    // Shrinking gives the space back.
    file.fd
        .set_stat(&SetStat {
            size: Some(4096),
            ..SetStat::default()
        })
        .expect("SetStat");
    assert_eq!(root.fstatfs().expect("FStatFS").blocks_free, 255);
    // The inode limit.
    for i in 0..6 {
        root.mkdir_at(format!("d{i}"), 0o755, me()).expect("mkdir");
    }
    assert_eq!(root.fstatfs().expect("FStatFS").files_free, 0);
    assert_eq!(
        errno(root.mkdir_at("one-too-many", 0o755, me())),
        Errno::ENOSPC
    );
    // A removed directory's inode is freed once no FD holds it any more.
    root.unlink_at("d0", AT_REMOVEDIR).expect("rmdir");
    client.flush_closes().expect("close");
    assert_eq!(root.fstatfs().expect("FStatFS").files_free, 1);
    root.symlink_at("l", "target", me()).expect("room again");
}

/// Times as tmpfs keeps them: a create changes the directory's mtime and ctime, a write
/// the file's, a chmod only ctime, a rename the moved file's ctime and both directories'.
#[test]
fn times_follow_the_local_filesystem_rules() {
    let client = mount(backend());
    let root = client.root();
    let a = root.mkdir_at("a", 0o755, me()).expect("mkdir");
    let b = root.mkdir_at("b", 0o755, me()).expect("mkdir");
    let old = Timespec { sec: 1000, nsec: 0 };
    let age = |fd: &ControlFd| {
        fd.set_stat(&SetStat {
            atime: Some(old),
            mtime: Some(old),
            ..SetStat::default()
        })
        .expect("SetStat times");
        let stat = fd.fstat().expect("FStat");
        assert_eq!((stat.mtime.sec, stat.atime.sec), (1000, 1000));
        stat
    };
    let pause = || std::thread::sleep(Duration::from_millis(20));

    let a0 = age(&a.fd);
    pause();
    let (file, opened) = create(&a.fd, "f");
    let a1 = a.fd.fstat().expect("FStat");
    assert!(a1.mtime.sec > 1000 && key(&a1.ctime) > key(&a0.ctime));

    let f0 = age(&file.fd);
    pause();
    opened.fd.pwrite(0, b"data").expect("PWrite");
    let f1 = file.fd.fstat().expect("FStat");
    assert!(f1.mtime.sec > 1000 && key(&f1.ctime) > key(&f0.ctime));
    assert_eq!(f1.atime.sec, 1000, "a write is not an access");

    let f1 = age(&file.fd);
    pause();
    file.fd
        .set_stat(&SetStat {
            mode: Some(0o600),
            ..SetStat::default()
        })
        .expect("chmod");
    let f2 = file.fd.fstat().expect("FStat");
    assert_eq!(f2.mtime.sec, 1000, "chmod leaves mtime");
    assert!(key(&f2.ctime) > key(&f1.ctime));
    assert_eq!(f2.mode & 0o7777, 0o600);

    let (a2, b2) = (age(&a.fd), age(&b.fd));
    pause();
    a.fd.rename_at("f", &b.fd, "g", 0).expect("rename");
    let (a3, b3, f3) = (
        a.fd.fstat().expect("FStat"),
        b.fd.fstat().expect("FStat"),
        file.fd.fstat().expect("FStat"),
    );
    assert!(a3.mtime.sec > 1000 && key(&a3.ctime) > key(&a2.ctime));
    assert!(b3.mtime.sec > 1000 && key(&b3.ctime) > key(&b2.ctime));
    assert!(key(&f3.ctime) > key(&f2.ctime));
    assert_eq!(f3.mtime.sec, 1000, "a rename leaves the file's mtime");

    // A read over RPC is an access (relatime: atime older than mtime moves).
    let o = b.fd.walk(&["g"]).expect("walk").1.remove(0);
    let r = o.fd.open_at(O_RDONLY).expect("OpenAt");
    r.fd.pread(0, &mut [0u8; 4]).expect("PRead");
    assert!(o.fd.fstat().expect("FStat").atime.sec > 1000);
}

#[test]
fn symlinks_and_owners_are_as_the_client_sets_them() {
    let client = mount(backend());
    let root = client.root();
    let link = root
        .symlink_at("l", "../outside/target", Owner::new(1234, 5678))
        .expect("symlink");
    assert_eq!(link.stat.mode & S_IFMT, S_IFLNK);
    assert_eq!((link.stat.uid, link.stat.gid), (1234, 5678));
    assert_eq!(
        link.fd.readlink_at().expect("readlink"),
        b"../outside/target"
    );
    assert_eq!(link.stat.size, 17);
    assert_eq!(errno(root.symlink_at("e", "", me())), Errno::ENOENT);
    assert_eq!(
        errno(root.symlink_at("n".repeat(256), "t", me())),
        Errno::ENAMETOOLONG
    );
    let owned = root
        .mknod_at("f", S_IFREG | 0o4755, 0, 0, Owner::new(42, 43))
        .expect("mknod");
    assert_eq!(
        (owned.stat.uid, owned.stat.gid, owned.stat.mode & 0o7777),
        (42, 43, 0o4755)
    );
    let outcome = owned
        .fd
        .set_stat(&SetStat {
            uid: Some(7),
            ..SetStat::default()
        })
        .expect("chown");
    assert!(outcome.is_complete());
    let stat = owned.fd.fstat().expect("FStat");
    assert_eq!(
        (stat.uid, stat.gid),
        (7, 43),
        "an unset group is left alone"
    );
    // A set-group-ID directory hands its group down, and its bit to subdirectories.
    let sg = root
        .mkdir_at("sg", 0o2775, Owner::new(1, 99))
        .expect("mkdir");
    let inner = sg.fd.mkdir_at("inner", 0o755, Owner::UNSET).expect("mkdir");
    assert_eq!(inner.stat.gid, 99);
    assert_eq!(inner.stat.mode & 0o2000, 0o2000);
}

/// `populate_from` copies a host tree: data, modes and mtimes kept, symlinks as links
/// (even one pointing out of the tree), hard links as one inode, FIFOs as inert nodes.
#[test]
fn populate_from_copies_a_host_tree() {
    let host = tempfile::tempdir().expect("temp dir");
    let p = host.path();
    std::fs::create_dir(p.join("sub")).expect("mkdir");
    std::fs::write(p.join("sub/data"), b"hello").expect("write");
    std::fs::hard_link(p.join("sub/data"), p.join("hard")).expect("link");
    std::os::unix::fs::symlink("/etc/passwd", p.join("escape")).expect("symlink");
    std::os::unix::fs::symlink("/", p.join("sub/up")).expect("symlink");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .expect("mkfifo");
    let mtime = std::time::UNIX_EPOCH + Duration::from_secs(123_456);
    std::fs::File::options()
        .write(true)
        .open(p.join("sub/data"))
        .and_then(|f| f.set_modified(mtime))
        .expect("set mtime");
    rustix::fs::chmod(p.join("sub/data"), rustix::fs::Mode::from_raw_mode(0o604)).expect("chmod");

    let memory = backend();
    memory.populate_from(p).expect("populate");
    let client = mount(memory);
    let root = client.root();
    assert_eq!(
        names(&list(root, 4096)),
        ["escape", "fifo", "hard", "sub"].map(String::from).into()
    );
    let data = root.walk(&["sub", "data"]).expect("walk").1.remove(1);
    assert_eq!(
        (
            data.stat.mode & 0o7777,
            data.stat.mtime.sec,
            data.stat.nlink
        ),
        (0o604, 123_456, 2)
    );
    assert_eq!(stat_of(root, "hard").ino, data.stat.ino);
    let mut buf = [0u8; 5];
    data.fd
        .open_at(O_RDONLY)
        .expect("OpenAt")
        .fd
        .pread(0, &mut buf)
        .expect("PRead");
    assert_eq!(&buf, b"hello");
    let escape = root.walk(&["escape"]).expect("walk").1.remove(0);
    assert_eq!(escape.fd.readlink_at().expect("readlink"), b"/etc/passwd");
    // A symlink to a host directory is a link, its target's contents not copied.
    let sub = root.walk(&["sub"]).expect("walk").1.remove(0);
    assert_eq!(stat_of(&sub.fd, "up").mode & S_IFMT, S_IFLNK);
    assert_eq!(
        names(&list(&sub.fd, 4096)),
        ["data", "up"].map(String::from).into()
    );
    let fifo = stat_of(root, "fifo");
    assert_eq!((fifo.mode & S_IFMT, fifo.mode & 0o777), (S_IFIFO, 0o640));
    // Changes stay in memory.
    root.unlink_at("hard", 0).expect("unlink");
    assert!(p.join("hard").exists());
}

/// A tiny deterministic generator, so a failing stress run can be repeated.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(self.0 >> 33).unwrap_or(0) % n
    }
}

/// Walks the whole tree and checks it: every entry is a live inode of the type its entry
/// says, no directory is reachable twice, directories have 2 + subdirectories links and
/// other files as many links as names.
fn check_tree(root: &ControlFd) -> usize {
    let mut names_per_ino: HashMap<u64, (u32, usize)> = HashMap::new();
    let mut dirs_seen = BTreeSet::new();
    let mut stack: Vec<Vec<String>> = vec![Vec::new()];
    let mut files = 0;
    while let Some(path) = stack.pop() {
        let dir = match path.is_empty() {
            true => None,
            false => Some(root.walk(&path).expect("walk").1.pop().expect("dir")),
        };
        let dir_fd = dir.as_ref().map_or(root, |d| &d.fd);
        let dir_stat = dir_fd.fstat().expect("FStat dir");
        assert!(
            dirs_seen.insert(dir_stat.ino),
            "{path:?}: a directory reachable twice"
        );
        let entries = list(dir_fd, 4096);
        let mut subdirs = 0;
        for entry in &entries {
            let name = String::from_utf8_lossy(entry.name).into_owned();
            let stat = stat_of(dir_fd, &name);
            assert_eq!(
                stat.ino, entry.ino,
                "{path:?}/{name}: entry and inode differ"
            );
            let is_dir = stat.mode & S_IFMT == S_IFDIR;
            assert_eq!(is_dir, entry.d_type == 4, "{path:?}/{name}: d_type");
            assert!(stat.nlink > 0, "{path:?}/{name}: a name of a removed file");
            if is_dir {
                subdirs += 1;
                let mut sub = path.clone();
                sub.push(name);
                stack.push(sub);
            } else {
                files += 1;
                names_per_ino.entry(stat.ino).or_insert((stat.nlink, 0)).1 += 1;
            }
        }
        assert_eq!(
            dir_stat.nlink,
            2 + subdirs,
            "{path:?}: directory link count"
        );
    }
    for (ino, (nlink, names)) in names_per_ino {
        assert_eq!(nlink as usize, names, "inode {ino}: link count vs names");
    }
    files
}

/// Eight threads create, rename, link, unlink, write, read and list in one small tree
/// at once; afterwards the tree is consistent.
#[test]
fn eight_threads_leave_a_consistent_tree() {
    let client = mount(backend());
    let root = client.root();
    let dirs: Vec<_> = (0..4)
        .map(|i| {
            root.mkdir_at(format!("d{i}"), 0o755, me())
                .expect("mkdir")
                .fd
        })
        .collect();
    // Nested directories, so renames move subtrees and can try to go below themselves.
    dirs[0].mkdir_at("n", 0o755, me()).expect("mkdir");
    let expected = |result: Result<(), lisafs_client::Error>| {
        if let Err(err) = result {
            let ok = [
                Errno::ENOENT,
                Errno::EEXIST,
                Errno::ENOTEMPTY,
                Errno::EISDIR,
                Errno::ENOTDIR,
                Errno::EINVAL,
            ];
            assert!(ok.contains(&err.errno()), "unexpected {:?}", err.errno());
        }
    };
    std::thread::scope(|scope| {
        for t in 0..8u64 {
            let dirs = &dirs;
            scope.spawn(move || {
                let mut rng = Lcg(t + 1);
                for _ in 0..400 {
                    let d = &dirs[rng.below(4)];
                    let other = &dirs[rng.below(4)];
                    let name = format!("n{}", rng.below(12));
                    let other_name = format!("n{}", rng.below(12));
                    match rng.below(9) {
                        0 | 1 => {
                            expected(d.open_create_at(&name, O_RDWR, 0o644, me()).map(|(_, o)| {
                                o.fd.pwrite(0, name.as_bytes()).expect("PWrite");
                            }))
                        }
                        2 => expected(d.mkdir_at(&name, 0o755, me()).map(drop)),
                        3 => expected(d.rename_at(&name, other, &other_name, 0)),
                        4 => expected(d.rename_at(&name, other, &other_name, RENAME_EXCHANGE)),
                        5 => expected(d.unlink_at(&name, 0)),
                        6 => expected(d.unlink_at(&name, AT_REMOVEDIR)),
                        7 => expected(d.walk(&[&name]).and_then(
                            |(_, mut found)| match found.pop() {
                                Some(f) if f.stat.mode & S_IFMT == S_IFREG => {
                                    let o = f.fd.open_at(O_RDONLY)?;
                                    o.fd.pread(0, &mut [0u8; 8])?;
                                    other.link_at(&f.fd, &other_name).map(drop)
                                }
                                _ => Ok(()),
                            },
                        )),
                        _ => drop(list(d, 256)),
                    }
                }
            });
        }
    });
    let files = check_tree(root);
    assert!(files > 0, "the run left files to check");
}

/// The backend does not rely on the server's locks: eight threads call it directly (no
/// rename lock, no node locks) with renames across directories, exchanges, links, removals
/// and listings, and the tree it leaves is consistent. A lock-order bug would hang here.
#[test]
fn the_backend_alone_survives_eight_threads() {
    use lisafs_server::{Backend, Create, Name, OpenFlags};

    let b = backend();
    let root = b.mount().expect("mount").root.file;
    let attrs = Create {
        mode: 0o755,
        uid: lisafs_protocol::wire::Uid::NONE,
        gid: lisafs_protocol::wire::Gid::NONE,
    };
    let rw = OpenFlags {
        read: true,
        write: true,
        truncate: false,
    };
    let dirs: Vec<_> = (0..4)
        .map(|i| {
            let name = format!("d{i}");
            b.mkdir(&root, Name::new(name.as_bytes()).expect("name"), attrs)
                .expect("mkdir")
                .file
        })
        .collect();
    std::thread::scope(|scope| {
        for t in 0..8usize {
            let (b, dirs) = (&b, &dirs);
            scope.spawn(move || {
                let mut rng = Lcg(100 + t as u64);
                for _ in 0..2000 {
                    let (d, other) = (&dirs[rng.below(4)], &dirs[rng.below(4)]);
                    let n1 = format!("n{}", rng.below(10));
                    let n2 = format!("n{}", rng.below(10));
                    let (n1, n2) = (Name::new(n1.as_bytes()), Name::new(n2.as_bytes()));
                    let (n1, n2) = (n1.expect("name"), n2.expect("name"));
                    let result = match rng.below(9) {
                        0 => b.create(d, n1, attrs, rw).map(|(_, o)| {
                            b.write(&o.open, 0, b"data").expect("write");
                        }),
                        1 => b.mkdir(d, n1, attrs).map(drop),
                        2 => b.rename(d, n1, other, n2, 0),
                        3 => b.rename(d, n1, other, n2, RENAME_EXCHANGE),
                        4 => b.unlink(d, n1, 0),
                        5 => b.unlink(d, n1, AT_REMOVEDIR),
                        6 => b.walk(d, n1).and_then(|found| {
                            // Moving names below the top level nests directories, so
                            // later renames move subtrees and meet the ancestry checks.
                            if found.stat.mode & S_IFMT == S_IFDIR {
                                b.rename(other, n2, &found.file, n2, 0)
                            } else {
                                b.link(other, n2, &found.file).map(drop)
                            }
                        }),
                        7 => b
                            .walk(d, n1)
                            .and_then(|found| b.stat(&found.file))
                            .map(drop),
                        _ => b
                            .open(
                                d,
                                OpenFlags {
                                    read: true,
                                    write: false,
                                    truncate: false,
                                },
                            )
                            .and_then(|o| b.getdents(&o.open, true, 512))
                            .map(drop),
                    };
                    if let Err(errno) = result {
                        let ok = [
                            Errno::ENOENT,
                            Errno::EEXIST,
                            Errno::ENOTEMPTY,
                            Errno::EISDIR,
                            Errno::ENOTDIR,
                            Errno::EINVAL,
                        ];
                        assert!(ok.contains(&errno), "unexpected {errno:?}");
                    }
                }
            });
        }
    });
    // Check the result through the client, as the other stress test does.
    let files = check_tree(mount(b).root());
    assert!(files > 0, "the run left files to check");
}
