//! The gofer's self-confinement, seen from outside (issue 8): namespaces, the share as the
//! root, the capability set, the share's mount flags enforced by the kernel through donated
//! FDs, files moved out of the share, deep trees, and FD and connection limits with the
//! default flags.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use lisafs_client::{Client, Owner, SetStat};
use lisafs_protocol::wire::Errno;
use lisafs_tests::{errno, proc_status, Gofer};
use rustix::fs::{Mode, OFlags};

const GOFER: &str = env!("CARGO_BIN_EXE_test-gofer");
const O_RDONLY: u32 = 0;
const O_RDWR: u32 = 2;

/// The capability set of a gofer with default flags: CHOWN, DAC_OVERRIDE,
/// DAC_READ_SEARCH, FOWNER, SETGID and SETUID (bits 0-3, 6, 7).
const DEFAULT_CAPS: u64 = 0xcf;

fn caps(pid: u32, field: &str) -> u64 {
    u64::from_str_radix(&proc_status(pid, field), 16).unwrap()
}

fn names(dir: &std::path::Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

#[test]
fn default_gofer_is_confined() {
    let gofer = Gofer::start(GOFER, &[]);
    fs::write(gofer.root().join("f"), b"x").unwrap();
    let pid = gofer.server_pid();
    assert_ne!(
        pid,
        gofer.pid(),
        "the serving process is a child in a new PID namespace"
    );
    for ns in ["mnt", "pid", "ipc", "uts", "net"] {
        let theirs = fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        let ours = fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(theirs, ours, "{ns} namespace shared with the host");
    }
    for field in ["CapBnd", "CapEff", "CapPrm"] {
        assert_eq!(caps(pid, field), DEFAULT_CAPS, "{field}");
    }
    assert_eq!(caps(pid, "CapInh"), 0);
    assert_eq!(caps(pid, "CapAmb"), 0);
    assert_eq!(proc_status(pid, "Groups"), "");
    assert_eq!(proc_status(pid, "NoNewPrivs"), "1");
    assert_eq!(proc_status(pid, "Seccomp"), "2");
    // The parent that only waits keeps nothing.
    let parent = gofer.pid();
    for field in ["CapBnd", "CapEff", "CapPrm"] {
        assert_eq!(caps(parent, field), 0, "parent {field}");
    }
    assert_eq!(proc_status(parent, "Seccomp"), "2");
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "{core}");
    // The root is the share, and the share is the only mount, nosuid and nodev.
    assert_eq!(
        names(&std::path::PathBuf::from(format!("/proc/{pid}/root"))),
        names(&gofer.root())
    );
    let mountinfo = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let mounts: Vec<_> = mountinfo.lines().collect();
    assert_eq!(mounts.len(), 1, "{mountinfo}");
    let options = mounts[0].split_whitespace().nth(5).unwrap();
    for option in ["nosuid", "nodev"] {
        assert!(options.split(',').any(|o| o == option), "{options}");
    }
    // And it serves.
    let client = gofer.client();
    let (_, inodes) = client.root().walk(&["f"]).unwrap();
    assert_eq!(inodes[0].stat.size, 1);
}

/// The supervising parent passes a stop signal on (the child stops gracefully and both
/// exit 0), and turns SIGQUIT into the immediate end of the child, dying of SIGQUIT itself.
#[test]
fn signals_to_the_parent_reach_the_confined_child() {
    use rustix::process::Signal;
    for (signal, expected) in [
        (Signal::TERM, None),
        (Signal::INT, None),
        (Signal::HUP, None),
        (Signal::QUIT, Some(3)),
    ] {
        let mut gofer = Gofer::start(GOFER, &[]);
        let child = gofer.server_pid();
        let parent = rustix::process::Pid::from_raw(i32::try_from(gofer.pid()).unwrap());
        rustix::process::kill_process(parent.unwrap(), signal).unwrap();
        let status = gofer.wait();
        match expected {
            None => assert_eq!(status.code(), Some(0), "{signal:?}: {status}"),
            Some(number) => assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status),
                Some(number),
                "{signal:?}: {status}"
            ),
        }
        // The child was reaped by its parent: no such process any more.
        assert!(!std::path::Path::new(&format!("/proc/{child}")).exists());
        assert!(!gofer.socket().exists(), "{signal:?}: socket file left");
    }
}

#[test]
fn no_sandbox_still_serves_a_nosuid_nodev_share() {
    let gofer = Gofer::start(GOFER, &["--sandbox", "none"]);
    assert_eq!(gofer.server_pid(), gofer.pid());
    fs::write(gofer.root().join("f"), b"x").unwrap();
    let client = gofer.client();
    let (_, inodes) = client.root().walk(&["f"]).unwrap();
    let host = inodes[0].fd.open_at(O_RDONLY).unwrap().host_fd.unwrap();
    let flags = rustix::fs::fstatvfs(&host).unwrap().f_flag;
    assert!(
        flags.contains(rustix::fs::StatVfsMountFlags::NOSUID),
        "{flags:?}"
    );
    assert!(
        flags.contains(rustix::fs::StatVfsMountFlags::NODEV),
        "{flags:?}"
    );
}

/// security.md #24: a client holding a donated read-only FD reopens it through its own
/// `/proc/self/fd/N` for writing; the share's read-only mount refuses (EROFS), with and
/// without the sandbox.
#[test]
fn readonly_is_enforced_by_the_kernel_on_donated_fds() {
    for sandbox in ["namespace", "none"] {
        let gofer = Gofer::start(GOFER, &["--readonly", "--sandbox", sandbox]);
        fs::write(gofer.root().join("f"), b"original").unwrap();
        let client = gofer.client();
        let (_, inodes) = client.root().walk(&["f"]).unwrap();
        let host = inodes[0].fd.open_at(O_RDONLY).unwrap().host_fd.unwrap();
        let name = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&host));
        let reopened = rustix::fs::open(name.as_str(), OFlags::RDWR, Mode::empty());
        assert_eq!(
            reopened.err(),
            Some(rustix::io::Errno::ROFS),
            "--sandbox {sandbox}"
        );
        assert_eq!(fs::read(gofer.root().join("f")).unwrap(), b"original");
    }
}

/// A host process moves the directory holding a file the client has a control FD on out
/// of the share: every mutation through that FD is refused with EXDEV, and the moved file
/// is untouched.
#[test]
fn files_moved_out_of_the_share_cannot_be_changed() {
    for sandbox in ["namespace", "none"] {
        let gofer = Gofer::start(GOFER, &["--sandbox", sandbox]);
        let root = gofer.root();
        fs::create_dir(root.join("a")).unwrap();
        fs::write(root.join("a/f"), b"data").unwrap();
        let client = gofer.client();
        let (_, inodes) = client.root().walk(&["a", "f"]).unwrap();
        let (dir, file) = (&inodes[0].fd, &inodes[1].fd);
        let moved = gofer.outside().join("a");
        fs::rename(root.join("a"), &moved).unwrap();
        let before = fs::metadata(moved.join("f")).unwrap();

        let chmod = SetStat {
            mode: Some(0o777),
            ..SetStat::default()
        };
        let outcome = file.set_stat(&chmod);
        assert_eq!(
            errno(outcome),
            Errno::EXDEV,
            "SetStat mode, --sandbox {sandbox}"
        );
        let chown = SetStat {
            uid: Some(1234),
            size: Some(2),
            ..SetStat::default()
        };
        assert_eq!(errno(file.set_stat(&chown)), Errno::EXDEV);
        assert_eq!(errno(file.set_xattr("user.x", "v", 0)), Errno::EXDEV);
        assert_eq!(errno(file.remove_xattr("user.x")), Errno::EXDEV);
        assert_eq!(errno(file.open_at(O_RDWR)), Errno::EXDEV);
        assert_eq!(errno(dir.mkdir_at("n", 0o755, Owner::UNSET)), Errno::EXDEV);
        assert_eq!(errno(client.root().link_at(file, "l")), Errno::EXDEV);
        // Reading is not a mutation: still allowed, as through any held FD.
        assert!(file.open_at(O_RDONLY).is_ok());

        let after = fs::metadata(moved.join("f")).unwrap();
        assert_eq!(after.permissions().mode(), before.permissions().mode());
        assert_eq!((after.uid(), after.len()), (before.uid(), 4));
        assert_eq!(xattr_names(&moved.join("f")), 0);
        assert!(!root.join("l").exists());
        // Moved back, everything works again.
        fs::rename(&moved, root.join("a")).unwrap();
        assert!(file.set_stat(&chmod).unwrap().failure_errno.is_none());
        assert!(file.open_at(O_RDWR).is_ok());
    }
}

fn xattr_names(path: &std::path::Path) -> usize {
    let mut buf = [0u8; 256];
    rustix::fs::listxattr(path, &mut buf[..]).unwrap()
}

/// Containment is decided in a fixed number of system calls: creating, renaming and
/// removing at the bottom of a chain deeper than PATH_MAX works (security.md #38).
#[test]
fn containment_holds_at_any_depth() {
    const DEPTH: usize = 5_000;
    let gofer = Gofer::start(GOFER, &[]);
    // Build the chain on the host, fd-relative (no path can name its bottom).
    let mut dir = rustix::fs::open(gofer.root(), OFlags::DIRECTORY, Mode::empty()).unwrap();
    for _ in 0..DEPTH {
        rustix::fs::mkdirat(&dir, "d", Mode::from_raw_mode(0o755)).unwrap();
        dir = rustix::fs::openat(&dir, "d", OFlags::DIRECTORY, Mode::empty()).unwrap();
    }
    let client = gofer.socket_client();
    let mut held = client.root().walk(&["d"]).unwrap().1.remove(0).fd;
    for _ in 1..DEPTH {
        held = held.walk(&["d"]).unwrap().1.remove(0).fd;
    }
    held.mkdir_at("new", 0o755, Owner::UNSET).unwrap();
    held.rename_at("new", &held, "renamed", 0).unwrap();
    held.unlink_at("renamed", 0x200).unwrap();
    let made = rustix::fs::statat(&dir, "renamed", rustix::fs::AtFlags::empty());
    assert_eq!(made.err(), Some(rustix::io::Errno::NOENT));
}

/// security.md #37 with default flags: a client holding as many FDs as it may gets EMFILE,
/// and other clients still connect, mount, walk and read.
#[test]
fn a_greedy_client_cannot_starve_others_with_default_limits() {
    let gofer = Gofer::start(GOFER, &[]);
    fs::write(gofer.root().join("f"), b"data").unwrap();
    let greedy = gofer.socket_client();
    let mut held = Vec::new();
    let err = loop {
        match greedy.root().walk(&["f"]) {
            Ok((_, mut inodes)) => held.push(inodes.remove(0)),
            Err(err) => break err.errno(),
        }
        assert!(held.len() < 1_000_000, "no per-connection limit");
    };
    assert_eq!(err, Errno::EMFILE);
    for _ in 0..3 {
        let other = gofer.client();
        let (_, inodes) = other.root().walk(&["f"]).unwrap();
        let opened = inodes[0].fd.open_at(O_RDONLY).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(opened.fd.pread(0, &mut buf).unwrap(), 4);
    }
}

/// `--max-connections`: a connection beyond the cap is closed at once; once one ends,
/// a new one is served.
#[test]
fn connections_beyond_the_cap_are_closed() {
    let gofer = Gofer::start(GOFER, &["--max-connections", "2"]);
    // The start-up probe's connection may hold a slot for a moment.
    let first = connect_within_5s(&gofer);
    let _second = connect_within_5s(&gofer);
    assert!(Client::connect(gofer.socket()).is_err());
    drop(first);
    connect_within_5s(&gofer);
}

fn connect_within_5s(gofer: &Gofer) -> Client {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Client::connect(gofer.socket()) {
            Ok(client) => return client,
            Err(err) => assert!(std::time::Instant::now() < deadline, "no slot: {err}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `--max-fds` beyond what fits in the open-file limit is a start-up error naming the flag.
#[test]
fn max_fds_that_cannot_fit_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(GOFER)
        .arg("--root")
        .arg(dir.path())
        .arg("--socket")
        .arg(dir.path().join("s"))
        .args(["--max-fds", "100000000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--max-fds 100000000"), "{stderr}");
}

/// Started without privileges, the gofer confines itself all the same, as root of a user
/// namespace of its own; what it creates belongs to the user who started it.
#[test]
fn an_unprivileged_gofer_confines_itself_in_a_user_namespace() {
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65_534;
    let dir = tempfile::Builder::new()
        .prefix("lt")
        .tempdir_in("/tmp")
        .unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    for path in [dir.path(), root.as_path()] {
        fs::set_permissions(path, fs::Permissions::from_mode(0o777)).unwrap();
    }
    let socket = dir.path().join("s");
    let mut child = Command::new(GOFER)
        .arg("--root")
        .arg(&root)
        .arg("--socket")
        .arg(&socket)
        .args(["--log-level", "warn"])
        .uid(NOBODY)
        .gid(NOBODY)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let client = loop {
        if let Ok(client) = Client::connect(&socket) {
            break client;
        }
        assert!(child.try_wait().unwrap().is_none(), "the gofer exited");
        assert!(
            std::time::Instant::now() < deadline,
            "the gofer did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let pid = lisafs_tests::serving_pid(child.id());
    let theirs = fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    assert_ne!(theirs, fs::read_link("/proc/self/ns/user").unwrap());
    assert_eq!(proc_status(pid, "NoNewPrivs"), "1");
    client
        .root()
        .open_create_at("f", O_RDWR, 0o644, Owner::UNSET)
        .unwrap();
    assert_eq!(fs::metadata(root.join("f")).unwrap().uid(), NOBODY);
    let _ = child.kill();
    let _ = child.wait();
}

/// `--sandbox chroot`: no namespaces of its own, but the share is the serving process's root.
#[test]
fn chroot_mode_roots_the_gofer_in_the_share() {
    let gofer = Gofer::start(GOFER, &["--sandbox", "chroot"]);
    fs::write(gofer.root().join("f"), b"x").unwrap();
    let pid = gofer.server_pid();
    // A supervising parent stays outside (to remove the socket file at the end), but
    // there are no new namespaces.
    assert_ne!(pid, gofer.pid());
    for ns in ["pid", "mnt", "net"] {
        assert_eq!(
            fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap(),
            fs::read_link(format!("/proc/self/ns/{ns}")).unwrap(),
            "{ns} namespace"
        );
    }
    let root = std::path::PathBuf::from(format!("/proc/{pid}/root"));
    assert_eq!(names(&root), names(&gofer.root()));
    assert_eq!(proc_status(pid, "Seccomp"), "2");
    assert_eq!(caps(pid, "CapEff"), DEFAULT_CAPS);
    let client = gofer.client();
    assert_eq!(client.root().walk(&["f"]).unwrap().1[0].stat.size, 1);
}

/// security.md #27: the directory FD `--donate-mount-fd` gives the client comes from the
/// gofer's detached mount of the share, so `..` from it, however often, stays at the
/// share's root: an unsandboxed client cannot climb to the host.
#[test]
fn the_donated_mount_fd_cannot_climb_out_of_the_share() {
    for sandbox in ["namespace", "none"] {
        let gofer = Gofer::start(GOFER, &["--donate-mount-fd", "--sandbox", sandbox]);
        let root = fs::metadata(gofer.root()).unwrap();
        let mut client = gofer.client();
        let mut dir = client.take_mount_fd().expect("a donated mount FD");
        for _ in 0..64 {
            dir = rustix::fs::openat(
                &dir,
                "..",
                OFlags::DIRECTORY | OFlags::RDONLY,
                Mode::empty(),
            )
            .unwrap();
        }
        let top = rustix::fs::fstat(&dir).unwrap();
        assert_eq!(
            (top.st_dev, top.st_ino),
            (root.dev(), root.ino()),
            "--sandbox {sandbox}"
        );
        let outside = rustix::fs::openat(&dir, "../out/secret", OFlags::RDONLY, Mode::empty());
        assert_eq!(outside.err(), Some(rustix::io::Errno::NOENT));
    }
}
