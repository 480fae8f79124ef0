//! gVisor's lisafs test cases (`pkg/lisafs/testsuite`), by name and content, written
//! against our client so that they run against any lisafs server: each takes a freshly
//! mounted client on an empty served directory and panics on failure.
//!
//! [`TESTS`] lists them; the gofer runs them all in `tests/tests/gvisor_suite.rs`.

use std::os::fd::AsFd;
use std::time::{SystemTime, UNIX_EPOCH};

use lisafs_client::{Client, ControlFd, Owner, SetStat};
use lisafs_protocol::wire::{
    Errno, Statx, Timespec, WalkStatus, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
};

const O_RDONLY: u32 = 0;
const O_RDWR: u32 = 2;
const DT_REG: u8 = 8;
const SOCK_STREAM: u32 = 1;

/// One conformance test: it gets a freshly mounted client on an empty directory.
pub type ConformanceTest = fn(&Client);

/// Every test, by gVisor's name.
pub const TESTS: &[(&str, ConformanceTest)] = &[
    ("Stat", stat),
    ("RegularFileIO", regular_file_io),
    ("RegularFileOpen", regular_file_open),
    ("SetStat", set_stat),
    ("Allocate", allocate),
    ("StatFS", statfs),
    ("Unlink", unlink),
    ("Symlink", symlink),
    ("HardLink", hard_link),
    ("Walk", walk),
    ("Rename", rename),
    ("Mknod", mknod),
    ("UDS", uds),
    ("Getdents", getdents),
];

/// The caller's identity, which created files must carry.
fn me() -> Owner {
    Owner::new(
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    )
}

fn assert_type(stat: &Statx, file_type: u16) {
    assert_eq!(
        stat.mode & S_IFMT,
        file_type,
        "file type of mode {:o}",
        stat.mode
    );
}

fn assert_owned_by_me(stat: &Statx) {
    let me = me();
    assert_eq!((stat.uid, stat.gid), (me.uid.0, me.gid.0));
}

/// The stat fields a second stat of the same file must repeat.
fn identity(stat: &Statx) -> (u64, u32, u32, u16, u32, u32, u64) {
    let Statx {
        ino,
        dev_major,
        dev_minor,
        mode,
        uid,
        gid,
        size,
        ..
    } = *stat;
    (ino, dev_major, dev_minor, mode, uid, gid, size)
}

fn create_file(dir: &ControlFd, name: &str) -> (lisafs_client::Inode, lisafs_client::Opened) {
    dir.open_create_at(name, O_RDWR, 0o777, me())
        .expect("OpenCreateAt")
}

/// Stat: the mount point is a directory.
pub fn stat(client: &Client) {
    assert_type(&client.root().fstat().expect("FStat"), S_IFDIR);
}

/// RegularFileIO: create, write 2 MiB (more than one message), read it back whole and
/// from offset 50, read it through the donated host FD, fsync.
pub fn regular_file_io(client: &Client) {
    let (_file, opened) = create_file(client.root(), "file");
    let host = opened
        .host_fd
        .as_ref()
        .expect("regular files donate their host FD");
    let data: Vec<u8> = (0..2 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    assert_eq!(opened.fd.pwrite(0, &data).expect("PWrite"), data.len());

    let mut back = vec![0u8; data.len()];
    assert_eq!(opened.fd.pread(0, &mut back).expect("PRead"), data.len());
    assert!(back == data, "data read back differs");

    let mut tail = vec![0u8; data.len() - 50];
    assert_eq!(
        opened.fd.pread(50, &mut tail).expect("PRead at 50"),
        tail.len()
    );
    assert!(tail[..] == data[50..]);

    let mut direct = vec![0u8; 4096];
    let n = rustix::io::pread(host.as_fd(), &mut direct, 100).expect("pread on host FD");
    assert_eq!(&direct[..n], &data[100..100 + n]);

    opened.fd.fsync().expect("FSync");
}

/// RegularFileOpen: a file opened read-only refuses PWrite with EBADF.
pub fn regular_file_open(client: &Client) {
    let (file, _rw) = create_file(client.root(), "file");
    let ro = file.fd.open_at(O_RDONLY).expect("OpenAt");
    assert_eq!(
        ro.fd.pwrite(0, b"x").map_err(|e| e.errno()),
        Err(Errno::EBADF)
    );
}

/// SetStat: mode, size and both times in one request; nothing fails, and FStat shows the
/// new values to the nanosecond.
pub fn set_stat(client: &Client) {
    let (file, _opened) = create_file(client.root(), "file");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    let atime = Timespec {
        sec: now.as_secs() as i64 + 1,
        nsec: i64::from(now.subsec_nanos()),
    };
    let mtime = Timespec {
        sec: now.as_secs() as i64,
        nsec: i64::from(now.subsec_nanos()),
    };
    let me = me();
    let outcome = file
        .fd
        .set_stat(&SetStat {
            mode: Some(0o760),
            size: Some(50),
            atime: Some(atime),
            mtime: Some(mtime),
            uid: Some(me.uid.0),
            gid: Some(me.gid.0),
        })
        .expect("SetStat");
    assert!(outcome.is_complete(), "{outcome:?}");

    let stat = file.fd.fstat().expect("FStat");
    assert_eq!(stat.mode & 0o7777, 0o760);
    assert_eq!(stat.size, 50);
    assert_eq!(
        (stat.atime.sec, i64::from(stat.atime.nsec)),
        (atime.sec, atime.nsec)
    );
    assert_eq!(
        (stat.mtime.sec, i64::from(stat.mtime.nsec)),
        (mtime.sec, mtime.nsec)
    );
    assert_owned_by_me(&stat);
}

/// Allocate: fallocate grows the file to the end of each range.
pub fn allocate(client: &Client) {
    let (file, opened) = create_file(client.root(), "file");
    opened.fd.fallocate(0, 0, 40).expect("FAllocate 0+40");
    assert_eq!(file.fd.fstat().expect("FStat").size, 40);
    opened.fd.fallocate(0, 20, 100).expect("FAllocate 20+100");
    assert_eq!(file.fd.fstat().expect("FStat").size, 120);
}

/// StatFS: works on the root.
pub fn statfs(client: &Client) {
    let stat = client.root().fstatfs().expect("FStatFS");
    assert!(stat.block_size > 0 && stat.name_length > 0, "{stat:?}");
}

/// Unlink: a removed file can no longer be walked to.
pub fn unlink(client: &Client) {
    let root = client.root();
    drop(create_file(root, "file"));
    root.unlink_at("file", 0).expect("UnlinkAt");
    let (status, inodes) = root.walk(&["file"]).expect("Walk");
    assert_eq!(
        (status, inodes.len()),
        (WalkStatus::ComponentDoesNotExist, 0)
    );
}

/// Symlink: a symlink is a symlink, and reads back its target.
pub fn symlink(client: &Client) {
    let target = "/tmp/some/path";
    let link = client
        .root()
        .symlink_at("symlink", target, me())
        .expect("SymlinkAt");
    assert_type(&link.stat, S_IFLNK);
    assert_eq!(
        link.fd.readlink_at().expect("ReadLinkAt"),
        target.as_bytes()
    );
}

/// HardLink: a hard link is the same inode on the same device.
pub fn hard_link(client: &Client) {
    let (file, _opened) = create_file(client.root(), "file");
    let link = client.root().link_at(&file.fd, "link").expect("LinkAt");
    let (a, b) = (file.fd.fstat().expect("FStat"), link.stat);
    assert_eq!(
        (a.ino, a.dev_major, a.dev_minor),
        (b.ino, b.dev_major, b.dev_minor)
    );
}

/// Walk: ten nested directories; a walk of those plus three missing components returns
/// exactly ten inodes, and WalkStat with a leading "" returns the start's stat and the
/// same ten stats.
pub fn walk(client: &Client) {
    let names: Vec<String> = (0..10).map(|i| format!("dir{i}")).collect();
    let mut dirs = Vec::new();
    let mut stats = Vec::new();
    for name in &names {
        let parent = dirs
            .last()
            .map_or(client.root(), |d: &lisafs_client::Inode| &d.fd);
        let dir = parent.mkdir_at(name, 0o777, me()).expect("MkdirAt");
        stats.push(dir.stat);
        dirs.push(dir);
    }

    let mut path: Vec<&str> = names.iter().map(String::as_str).collect();
    path.extend(["a", "b", "c"]);
    let (status, inodes) = client.root().walk(&path).expect("Walk");
    assert_eq!(status, WalkStatus::ComponentDoesNotExist);
    assert_eq!(inodes.len(), 10);
    for (inode, want) in inodes.iter().zip(&stats) {
        assert_eq!(identity(&inode.stat), identity(want));
    }

    let mut with_self = vec![""];
    with_self.extend(names.iter().map(String::as_str));
    let walked = client.root().walk_stat(&with_self).expect("WalkStat");
    assert_eq!(walked.len(), 11);
    let root = client.root().fstat().expect("FStat");
    assert_eq!(identity(&walked[0]), identity(&root));
    for (got, want) in walked[1..].iter().zip(&stats) {
        assert_eq!(identity(got), identity(want));
    }
}

/// Rename: a file moved into another directory under a new name is found there.
pub fn rename(client: &Client) {
    let root = client.root();
    drop(create_file(root, "file"));
    let dir = root.mkdir_at("tempDir", 0o777, me()).expect("MkdirAt");
    root.rename_at("file", &dir.fd, "movedFile", 0)
        .expect("RenameAt");
    let stats = root.walk_stat(&["tempDir", "movedFile"]).expect("WalkStat");
    assert_eq!(stats.len(), 2);
    assert_type(&stats[1], S_IFREG);
}

/// Mknod: a regular file made by mknod has the caller's owner, and FStat agrees.
pub fn mknod(client: &Client) {
    let node = client
        .root()
        .mknod_at("file", S_IFREG | 0o777, 0, 0, me())
        .expect("MknodAt");
    assert_type(&node.stat, S_IFREG);
    assert_owned_by_me(&node.stat);
    assert_eq!(
        identity(&node.fd.fstat().expect("FStat")),
        identity(&node.stat)
    );
}

/// UDS: a bound socket file is a socket with the caller's owner. Needs a server that
/// allows creating host sockets (`gofer --host-uds create`).
pub fn uds(client: &Client) {
    let (file, _bound, _socket) = client
        .root()
        .bind_at("sock", SOCK_STREAM, 0o777, me())
        .expect("BindAt");
    assert_type(&file.stat, S_IFSOCK);
    assert_owned_by_me(&file.stat);
    assert_eq!(
        identity(&file.fd.fstat().expect("FStat")),
        identity(&file.stat)
    );
}

/// Getdents: ten files listed 40 bytes at a time come back exactly once each, as regular
/// files with the inode and device of their stat.
pub fn getdents(client: &Client) {
    let dir = client.root().mkdir_at("dir", 0o777, me()).expect("MkdirAt");
    let mut want = std::collections::BTreeMap::new();
    for i in 0..10 {
        let name = format!("file{i}");
        let node = dir
            .fd
            .mknod_at(&name, S_IFREG | 0o777, 0, 0, me())
            .expect("MknodAt");
        want.insert(name.into_bytes(), node.stat);
    }
    let opened = dir.fd.open_at(O_RDONLY).expect("OpenAt dir");
    let mut seen = std::collections::BTreeMap::new();
    loop {
        let dirents = opened.fd.getdents64(40).expect("Getdents64");
        if dirents.is_empty() {
            break;
        }
        for d in &dirents {
            if d.name == b"." || d.name == b".." {
                continue;
            }
            let fields = (d.d_type, d.ino, (d.dev_major, d.dev_minor));
            assert!(
                seen.insert(d.name.to_vec(), fields).is_none(),
                "an entry came twice"
            );
        }
    }
    assert_eq!(seen.len(), 10);
    for (name, &(d_type, ino, dev)) in &seen {
        let stat = &want[name];
        assert_eq!(d_type, DT_REG);
        assert_eq!(ino, stat.ino);
        assert_eq!(dev, (stat.dev_major, stat.dev_minor));
    }
}

/// Runs every test in [`TESTS`] against a [`HostBackend`](lisafs_gofer::host::HostBackend)
/// served in this process over a socket pair, each on a fresh empty directory, with the
/// backend as `wrap` makes it (hooks around it, say). Panics, naming the test, if one fails
/// or the server thread panics.
pub fn run_in_process<B: lisafs_server::Backend>(
    wrap: impl Fn(lisafs_gofer::host::HostBackend) -> B,
) {
    use lisafs_gofer::host::{HostBackend, HostOptions};

    for (name, test) in TESTS {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = HostOptions {
            uds_create: true,
            ..HostOptions::default()
        };
        let backend = HostBackend::new(dir.path(), options).expect("host backend");
        serve_one(name, *test, wrap(backend));
    }
}

/// Runs every test in [`TESTS`] but those named in `skip` against a fresh backend from
/// `make`, served in this process over a socket pair as [`run_in_process`] does: for
/// backends other than the host's (the memory backend), whose trees start empty. Each
/// skipped test comes with the reason, printed with the test's output. Panics, naming the
/// test, if one fails or the server thread panics, or if `skip` names a test that does
/// not exist.
pub fn run_backend_in_process<B: lisafs_server::Backend>(
    make: impl Fn() -> B,
    skip: &[(&str, &str)],
) {
    if let Some((unknown, _)) = skip
        .iter()
        .find(|(s, _)| !TESTS.iter().any(|(name, _)| name == s))
    {
        panic!("no conformance test is called {unknown}");
    }
    for (name, test) in TESTS {
        match skip.iter().find(|(skipped, _)| skipped == name) {
            Some((_, reason)) => println!("skipped {name}: {reason}"),
            None => serve_one(name, *test, make()),
        }
    }
}

/// What a server that offers no sockets (the memory backend) answers in place of the UDS
/// case: BindAt is `EOPNOTSUPP`, and nothing is created.
pub fn uds_unsupported(client: &Client) {
    let root = client.root();
    let bound = root.bind_at("sock", SOCK_STREAM, 0o777, me());
    assert_eq!(bound.err().map(|err| err.errno()), Some(Errno::EOPNOTSUPP));
    assert!(root.walk_stat(&["sock"]).expect("WalkStat").is_empty());
}

/// Serves `backend` in a thread over a socket pair, runs `test` with a client mounted on
/// it, and joins the server thread once the client is gone.
fn serve_one<B: lisafs_server::Backend>(name: &str, test: ConformanceTest, backend: B) {
    use lisafs_protocol::transport::socket::FramedSocket;
    use lisafs_server::{Server, ServerOptions};

    let server = Server::new(backend, ServerOptions::default());
    let (client_end, server_end) = FramedSocket::pair().expect("socket pair");
    let serving = server.spawn(server_end).expect("server thread");
    let client = Client::from_fd(client_end.into_inner()).expect("mount");
    test(&client);
    drop(client);
    serving
        .join()
        .unwrap_or_else(|_| panic!("{name}: the server thread panicked"));
}
