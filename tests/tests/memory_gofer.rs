//! `gofer --memory` as a real process (issue 11): confined by default around an empty
//! root, unconfined with `--sandbox none`, with `--memory-size` and `--memory-from`, and
//! against hostile input. The backend's own semantics are tested in process in
//! `memory.rs`; here the question is whether the program serves it, and how.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use lisafs_client::{Client, ControlFd, Owner};
use lisafs_protocol::transport::socket::FramedSocket;
use lisafs_protocol::wire::*;
use lisafs_tests::{attacks, errno, proc_status, Gofer};

const GOFER: &str = env!("CARGO_BIN_EXE_test-gofer");
const O_RDONLY: u32 = 0;
const O_WRONLY: u32 = 1;
const O_RDWR: u32 = 2;
const MIB: u64 = 1 << 20;

fn me() -> Owner {
    Owner::new(
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    )
}

fn names_in(dir: &ControlFd) -> BTreeSet<String> {
    let opened = dir.open_at(O_RDONLY).unwrap();
    let mut names = BTreeSet::new();
    loop {
        let batch = opened.fd.getdents64(4096).unwrap();
        if batch.is_empty() {
            break;
        }
        for d in &batch {
            let name = String::from_utf8_lossy(d.name).into_owned();
            if name != "." && name != ".." {
                names.insert(name);
            }
        }
    }
    names
}

fn host_names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// The everyday operations through `client`: create, write and read over RPC and through
/// the donated FD, rename, unlink, list; and none of it reaches the host directory the
/// test made beside the gofer.
fn exercise(gofer: &Gofer, client: &Client) {
    let root = client.root();
    let dir = root.mkdir_at("dir", 0o755, me()).unwrap();
    let (file, opened) = dir.fd.open_create_at("f", O_RDWR, 0o644, me()).unwrap();
    assert_eq!(opened.fd.pwrite(0, b"hello, memory").unwrap(), 13);
    let mut buf = [0u8; 64];
    let n = opened.fd.pread(0, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello, memory");
    // The donated FD is the same file: a memfd, written and read without RPCs.
    let host = opened.host_fd.as_ref().expect("a donated FD");
    assert_eq!(rustix::io::pwrite(host, b"HELLO", 0).unwrap(), 5);
    let n = opened.fd.pread(0, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"HELLO, memory");
    assert_eq!(file.fd.fstat().unwrap().size, 13);
    // A read-only open donates a read-only FD.
    let reader = file.fd.open_at(O_RDONLY).unwrap();
    let read_only = reader.host_fd.as_ref().expect("a donated FD");
    assert_eq!(
        rustix::io::pwrite(read_only, b"x", 0).err(),
        Some(rustix::io::Errno::BADF)
    );
    let mut host_buf = [0u8; 5];
    assert_eq!(rustix::io::pread(read_only, &mut host_buf, 0).unwrap(), 5);
    assert_eq!(&host_buf, b"HELLO");
    drop((reader, opened));
    // Rename within and across directories, then unlink.
    dir.fd.rename_at("f", &dir.fd, "g", 0).unwrap();
    dir.fd.rename_at("g", root, "top", 0).unwrap();
    assert_eq!(names_in(root), BTreeSet::from(["dir".into(), "top".into()]));
    assert!(names_in(&dir.fd).is_empty());
    let top = root.walk(&["top"]).unwrap().1.remove(0);
    assert_eq!(top.stat.ino, file.stat.ino);
    root.unlink_at("top", 0).unwrap();
    assert!(root.walk_stat(&["top"]).unwrap().is_empty());
    root.unlink_at("dir", 0x200).unwrap();
    assert!(names_in(root).is_empty());
    // Nothing on the host: the unserved directory stays empty, the canary untouched.
    assert!(host_names(&gofer.root()).is_empty());
    gofer.assert_canary_untouched();
}

/// Bytes free in `statfs`.
fn free_bytes(statfs: &StatFS) -> u64 {
    statfs.blocks_free * u64::try_from(statfs.block_size).unwrap()
}

fn caps(pid: u32, field: &str) -> u64 {
    u64::from_str_radix(&proc_status(pid, field), 16).unwrap()
}

#[test]
fn default_memory_gofer_is_confined_around_an_empty_root() {
    let gofer = Gofer::start_memory(GOFER, &[]);
    let pid = gofer.server_pid();
    assert_ne!(
        pid,
        gofer.pid(),
        "serving in a child in a new PID namespace"
    );
    for ns in ["mnt", "pid", "ipc", "uts", "net"] {
        let theirs = fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        let ours = fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(theirs, ours, "{ns} namespace shared with the host");
    }
    // No capability at all: a memory tree needs none.
    for field in ["CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"] {
        assert_eq!(caps(pid, field), 0, "{field}");
    }
    assert_eq!(proc_status(pid, "NoNewPrivs"), "1");
    assert_eq!(proc_status(pid, "Seccomp"), "2");
    // Its root is an empty, read-only tmpfs, the only mount it has.
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    assert!(host_names(&root).is_empty());
    let mountinfo = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let mounts: Vec<_> = mountinfo.lines().collect();
    assert_eq!(mounts.len(), 1, "{mountinfo}");
    let fields: Vec<_> = mounts[0].split_whitespace().collect();
    assert_eq!(fields[4], "/", "{mountinfo}");
    let options: BTreeSet<_> = fields[5].split(',').collect();
    for option in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(options.contains(option), "{option} in {mountinfo}");
    }
    assert!(mounts[0].contains(" - tmpfs "), "{mountinfo}");
    // And it serves, over channels and over the socket alone.
    exercise(&gofer, &gofer.client());
    exercise(&gofer, &gofer.socket_client());
}

#[test]
fn memory_gofer_serves_the_same_in_every_sandbox_mode() {
    for mode in ["chroot", "none"] {
        let gofer = Gofer::start_memory(GOFER, &["--sandbox", mode]);
        let pid = gofer.server_pid();
        assert_eq!(proc_status(pid, "Seccomp"), "2", "{mode}");
        assert_eq!(caps(pid, "CapEff"), 0, "{mode}");
        if mode == "none" {
            assert_eq!(pid, gofer.pid());
            assert_eq!(
                fs::read_link(format!("/proc/{pid}/root")).unwrap(),
                PathBuf::from("/")
            );
        } else {
            assert!(host_names(Path::new(&format!("/proc/{pid}/root"))).is_empty());
        }
        exercise(&gofer, &gofer.client());
    }
}

#[test]
fn memory_size_bounds_the_tree_and_statfs_reports_it() {
    let gofer = Gofer::start_memory(GOFER, &["--memory-size", "1M"]);
    let client = gofer.socket_client();
    let root = client.root();
    let statfs = root.fstatfs().unwrap();
    assert_eq!(statfs.fs_type, 0x0102_1994, "tmpfs magic");
    assert_eq!(
        statfs.blocks * u64::try_from(statfs.block_size).unwrap(),
        MIB
    );
    assert_eq!(statfs.files, 1024, "one file per KiB");
    let (_, opened) = root.open_create_at("big", O_WRONLY, 0o644, me()).unwrap();
    let chunk = vec![7u8; 64 << 10];
    let mut written = 0u64;
    let err = loop {
        match opened.fd.pwrite(written, &chunk) {
            Ok(n) => written += n as u64,
            Err(err) => break err.errno(),
        }
        assert!(written <= MIB, "wrote {written} bytes into 1 MiB");
    };
    assert_eq!(err, Errno::ENOSPC);
    assert!(written >= MIB - (128 << 10), "only {written} bytes fit");
    let full = root.fstatfs().unwrap();
    assert!(free_bytes(&full) < 128 << 10);
    assert_eq!(
        errno(opened.fd.fallocate(0, 0, 2 * MIB)),
        Errno::ENOSPC,
        "FAllocate beyond the limit"
    );
    // Removing the file gives the space back, once it is closed too.
    drop(opened);
    client.flush_closes().unwrap();
    root.unlink_at("big", 0).unwrap();
    let emptied = root.fstatfs().unwrap();
    assert!(free_bytes(&emptied) > MIB - (16 << 10));
    let (_, again) = root.open_create_at("again", O_WRONLY, 0o644, me()).unwrap();
    assert_eq!(again.fd.pwrite(0, &chunk).unwrap(), chunk.len());
}

#[test]
fn memory_from_copies_a_host_tree_and_leaves_it_alone() {
    let gofer = Gofer::start_memory_from(GOFER, &[], |root| {
        fs::write(root.join("a"), b"alpha").unwrap();
        fs::set_permissions(root.join("a"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::hard_link(root.join("a"), root.join("a2")).unwrap();
        fs::create_dir_all(root.join("sub/deeper")).unwrap();
        fs::write(root.join("sub/deeper/d"), b"delta").unwrap();
        // Pointing out of the tree: copied as a link, never followed.
        std::os::unix::fs::symlink("../out/secret", root.join("escape")).unwrap();
        std::os::unix::fs::symlink("a", root.join("link")).unwrap();
    });
    let before = attacks::snapshot(&gofer.root());
    let client = gofer.client();
    let root = client.root();
    assert_eq!(
        names_in(root),
        ["a", "a2", "escape", "link", "sub"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    let host_a = fs::metadata(gofer.root().join("a")).unwrap();
    let a = root.walk(&["a"]).unwrap().1.remove(0);
    assert_eq!(a.stat.mode & 0o7777, 0o640);
    assert_eq!((a.stat.uid, a.stat.gid), (host_a.uid(), host_a.gid()));
    assert_eq!(a.stat.mtime.sec, host_a.mtime());
    assert_eq!(a.stat.nlink, 2);
    assert_eq!(root.walk_stat(&["a2"]).unwrap()[0].ino, a.stat.ino);
    let mut buf = [0u8; 16];
    let opened = a.fd.open_at(O_RDWR).unwrap();
    let n = opened.fd.pread(0, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"alpha");
    let d = root.walk(&["sub", "deeper", "d"]).unwrap().1.remove(2);
    let n =
        d.fd.open_at(O_RDONLY)
            .unwrap()
            .fd
            .pread(0, &mut buf)
            .unwrap();
    assert_eq!(&buf[..n], b"delta");
    for (name, target) in [("escape", &b"../out/secret"[..]), ("link", b"a")] {
        let (_, inodes) = root.walk(&[name]).unwrap();
        assert_eq!(inodes[0].stat.mode & S_IFMT, S_IFLNK, "{name}");
        assert_eq!(inodes[0].fd.readlink_at().unwrap(), target);
    }
    // Changes in memory stay there...
    opened.fd.pwrite(0, b"ALPHA, changed").unwrap();
    let host = opened.host_fd.as_ref().unwrap();
    rustix::io::pwrite(host, b"!", 20).unwrap();
    root.open_create_at("new", O_RDWR, 0o644, me()).unwrap();
    root.rename_at("sub", root, "moved", 0).unwrap();
    root.unlink_at("a2", 0).unwrap();
    assert_eq!(
        attacks::snapshot(&gofer.root()),
        before,
        "the host tree changed"
    );
    // ... and later changes on the host stay there.
    fs::write(gofer.root().join("a"), b"host").unwrap();
    fs::write(gofer.root().join("host-only"), b"h").unwrap();
    let n = opened.fd.pread(0, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"ALPHA, changed\0\0");
    assert!(root.walk_stat(&["host-only"]).unwrap().is_empty());
    gofer.assert_canary_untouched();
}

#[test]
fn memory_from_fails_to_start_on_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(GOFER)
        .args(["--memory", "--memory-from"])
        .arg(dir.path().join("missing"))
        .arg("--socket")
        .arg(dir.path().join("s"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--memory-from"), "{stderr}");
    assert!(
        !dir.path().join("s").exists(),
        "a socket file was left behind"
    );
}

/// Sends `payload` under `mid` on a mounted raw connection; the errno of an error reply.
fn raw_call(sock: &mut FramedSocket, mid: Mid, payload: &[u8]) -> Result<Vec<u8>, Errno> {
    sock.send(mid.as_u16(), payload, &[]).unwrap();
    let frame = sock.recv(MAX_MESSAGE_SIZE, 2).unwrap();
    if frame.mid == Mid::Error.as_u16() {
        return Err(decode::<ErrorResp>(frame.payload).unwrap().errno);
    }
    assert_eq!(frame.mid, mid.as_u16());
    Ok(frame.payload.to_vec())
}

#[test]
fn hostile_requests_get_errors_and_the_memory_gofer_lives_on() {
    let gofer = Gofer::start_memory(GOFER, &[]);
    let (mut sock, root) = gofer.mounted_raw();
    // Names that are not one component.
    for name in ["..", ".", "", "a/b", "/etc"] {
        let walk = WalkReq {
            dir_fd: root,
            path: vec![name.into()],
        };
        let mkdir = MkdirAtReq {
            common: CreateCommon {
                dir_fd: root,
                mode: 0o755,
                ..Default::default()
            },
            name: name.into(),
        };
        assert_eq!(
            raw_call(&mut sock, Mid::Walk, &encode(&walk).unwrap()),
            Err(Errno::EINVAL),
            "walk {name:?}"
        );
        assert_eq!(
            raw_call(&mut sock, Mid::MkdirAt, &encode(&mkdir).unwrap()).err(),
            Some(Errno::EINVAL),
            "mkdir {name:?}"
        );
    }
    // Truncated requests, unknown FDIDs, an unknown message.
    let mkdir = encode(&MkdirAtReq {
        common: CreateCommon {
            dir_fd: root,
            mode: 0o755,
            ..Default::default()
        },
        name: "d".into(),
    })
    .unwrap();
    for len in 0..mkdir.len() {
        assert_eq!(
            raw_call(&mut sock, Mid::MkdirAt, &mkdir[..len]).err(),
            Some(Errno::EIO),
            "MkdirAt truncated at {len}"
        );
    }
    let bogus = FStatReq { fd: FdId(9999) };
    assert_eq!(
        raw_call(&mut sock, Mid::FStat, &encode(&bogus).unwrap()).err(),
        Some(Errno::EBADF)
    );
    sock.send(0xfff0, &[1, 2, 3], &[]).unwrap();
    let frame = sock.recv(MAX_MESSAGE_SIZE, 2).unwrap();
    assert_eq!(frame.mid, Mid::Error.as_u16());
    // Sockets cannot be bound in memory: EOPNOTSUPP.
    let bind = BindAtReq {
        common: CreateCommon {
            dir_fd: root,
            mode: 0o755,
            ..Default::default()
        },
        sock_type: 1,
        name: "sock".into(),
    };
    assert_eq!(
        raw_call(&mut sock, Mid::BindAt, &encode(&bind).unwrap()).err(),
        Some(Errno::EOPNOTSUPP)
    );
    // Nothing was created, and the gofer still serves.
    let client = gofer.client();
    assert!(names_in(client.root()).is_empty());
    let stat = decode::<FStatResp>(
        &raw_call(
            &mut sock,
            Mid::FStat,
            &encode(&FStatReq { fd: root }).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(stat.stat.mode & S_IFMT, S_IFDIR);
}

/// The soft open-file limit of process `pid`.
fn nofile(pid: u32) -> u64 {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// Every regular file holds a memfd: half the open-file limit is set aside for files, and
/// beyond it creating one is ENOSPC, while connections and opens still have FDs.
#[test]
fn files_are_bounded_by_the_fds_set_aside_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("s");
    // prlimit (util-linux) execs the gofer with a small hard limit; a gofer allowed to
    // raise it (CAP_SYS_RESOURCE) raises it, and the test then checks the ratio only.
    // One connection at a time, so that the connections' half of 2,000 FDs gives each a
    // useful FDID cap (16 would leave none, with either backend).
    let child = std::process::Command::new("prlimit")
        .arg("--nofile=2000:2000")
        .arg(GOFER)
        .args(["--memory", "--sandbox", "none", "--log-level", "error"])
        .args(["--max-connections", "2", "--socket"])
        .arg(&socket)
        .spawn()
        .unwrap();
    let child = KillOnDrop(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let client = loop {
        match Client::connect(&socket) {
            Ok(client) => break client,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(err) => panic!("the gofer did not serve: {err}"),
        }
    };
    let limit = nofile(child.0.id());
    let root = client.root();
    let statfs = root.fstatfs().unwrap();
    assert_eq!(
        statfs.files,
        limit / 2,
        "files with an open-file limit of {limit}"
    );
    if statfs.files <= 5000 {
        let mut created = 0u64;
        let err = loop {
            match root.mknod_at(format!("f{created}"), S_IFREG | 0o644, 0, 0, me()) {
                Ok(_) => created += 1,
                Err(err) => break err.errno(),
            }
        };
        assert_eq!(err, Errno::ENOSPC);
        assert_eq!(created, statfs.files - 1, "the root is a file too");
        client.flush_closes().unwrap();
        // FDs are left for everything else: a second connection with channels, opens.
        let other = Client::connect(&socket).unwrap();
        assert!(other.idle_channels() > 0);
        let f = other.root().walk(&["f0"]).unwrap().1.remove(0);
        let opened = f.fd.open_at(O_RDWR).unwrap();
        assert!(opened.host_fd.is_some());
        assert_eq!(opened.fd.pwrite(0, b"x").unwrap(), 1);
        root.unlink_at("f1", 0).unwrap();
        root.mknod_at("again", S_IFREG | 0o644, 0, 0, me()).unwrap();
    }
}

/// A child process killed and reaped when the test ends, even by a panic.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// With `--readonly` the server refuses changes, and the kernel refuses writes through a
/// donated read-only FD reopened for writing via `/proc/self/fd` (the memfds are sealed),
/// as the `ro` mount of a host share does.
#[test]
fn read_only_memory_trees_refuse_writes_through_reopened_donated_fds() {
    use std::os::fd::AsRawFd;

    let gofer = Gofer::start_memory_from(GOFER, &["--readonly"], |root| {
        fs::write(root.join("f"), b"original").unwrap();
        fs::hard_link(root.join("f"), root.join("g")).unwrap();
    });
    let client = gofer.client();
    let root = client.root();
    let f = root.walk(&["f"]).unwrap().1.remove(0);
    assert_eq!(errno(f.fd.open_at(O_RDWR)), Errno::EROFS);
    assert_eq!(
        errno(root.open_create_at("new", O_RDWR, 0o644, me())),
        Errno::EROFS
    );
    let opened = f.fd.open_at(O_RDONLY).unwrap();
    let host = opened.host_fd.as_ref().expect("a donated FD");
    let reopened = rustix::fs::open(
        format!("/proc/self/fd/{}", host.as_raw_fd()),
        rustix::fs::OFlags::RDWR,
        rustix::fs::Mode::empty(),
    )
    .expect("a memfd reopens for writing");
    let eperm = Some(rustix::io::Errno::PERM);
    assert_eq!(rustix::io::pwrite(&reopened, b"X", 0).err(), eperm);
    assert_eq!(rustix::io::pwrite(&reopened, b"X", 100).err(), eperm);
    assert_eq!(rustix::fs::ftruncate(&reopened, 0).err(), eperm);
    assert_eq!(rustix::fs::ftruncate(&reopened, 1 << 20).err(), eperm);
    let mut buf = [0u8; 16];
    let n = opened.fd.pread(0, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"original");
    assert_eq!(root.walk_stat(&["g"]).unwrap()[0].size, 8);
}
