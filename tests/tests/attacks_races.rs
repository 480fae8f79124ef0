//! Host racers against the real gofer (security.md #4, #10, #15, #46, #52): a thread of
//! the test (attacker H) renames, exchanges and replaces files while clients work. Each
//! test states its allowed outcomes, checks the canary beside the root with a full
//! snapshot, and runs its clients under a watchdog: every RPC must answer (no RPC may go
//! 5 s without one answering).

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use lisafs_client::{Client, ControlFd, Owner, SetStat, RENAME_EXCHANGE};
use lisafs_protocol::wire::{Errno, Timespec, WalkStatus};
use lisafs_tests::attacks::{snapshot, Progress, Racer};
use lisafs_tests::Gofer;
use rustix::fs::{Mode, OFlags, RenameFlags};

const GOFER: &str = env!("CARGO_BIN_EXE_test-gofer");
const STALL: Duration = Duration::from_secs(5);
const S_IFMT: u16 = 0o170_000;
const S_IFREG: u16 = 0o100_000;

fn dir_fd(path: &Path) -> OwnedFd {
    rustix::fs::open(path, OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap()
}

/// A racer exchanging `a` and `b` (paths relative to `dir`) and back, as fast as it can.
fn exchanger(dir: &Path, pairs: &[(&str, &str)]) -> Racer {
    let dir = dir_fd(dir);
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    Racer::spawn(move || {
        for (a, b) in &pairs {
            for _ in 0..2 {
                rustix::fs::renameat_with(
                    &dir,
                    a.as_str(),
                    &dir,
                    b.as_str(),
                    RenameFlags::EXCHANGE,
                )
                .unwrap();
            }
        }
    })
}

/// One walk's outcome, coarse enough to compare between runs: the status and how many
/// components it returned, or the errno. EXDEV (the gofer's still-inside check meeting a
/// rename half-way) and EAGAIN are timing-dependent refusals that may show in either run:
/// they are one class, "refused", left out of the comparison (fail closed either way).
fn outcome(
    result: &Result<(WalkStatus, Vec<lisafs_client::Inode>), lisafs_client::Error>,
) -> String {
    match result {
        Ok((status, inodes)) => format!("{status:?}/{}", inodes.len()),
        Err(err) if [Errno::EXDEV, Errno::EAGAIN].contains(&err.errno()) => "refused".into(),
        Err(err) => format!("{:?}", err.errno()),
    }
}

/// The #3 racer for one exchange pair; returns the set of outcomes of the two walks.
fn outcomes_under_race(gofer: &Gofer, other: &str) -> BTreeSet<String> {
    let client = gofer.client();
    let racer = exchanger(&gofer.root(), &[("a/b", other)]);
    let mut seen = BTreeSet::new();
    let inside: [&str; 5] = ["a", "b", "c", "d", "inside"];
    let secret: [&str; 3] = ["a", "b", "secret"];
    for round in 0..20_000 {
        let walked = client.root().walk(&inside);
        if let Ok((WalkStatus::Success, inodes)) = &walked {
            let opened = inodes[4].fd.open_at(0).unwrap();
            let mut buf = [0u8; 16];
            let n = opened.fd.pread(0, &mut buf).unwrap();
            assert_eq!(&buf[..n], b"inside", "{other}: round {round}");
        }
        for (what, result) in [("inside", walked), ("secret", client.root().walk(&secret))] {
            let class = outcome(&result);
            if class != "refused" {
                seen.insert(format!("{what}: {class}"));
            }
        }
        // WalkStat through the same names, its steps cached (SPEC.md §7.1 item 6): it
        // stops at a/b whatever a/b is, so it never stats `secret`.
        if let Ok(stats) = client.root().walk_stat(&secret) {
            assert!(stats.len() <= 2, "{other}: WalkStat went through a/b");
        }
        // Both walks have their normal and their swapped outcome: enough to compare.
        if round >= 500 && seen.len() >= 4 {
            break;
        }
    }
    assert!(racer.stop() > 10, "{other}: the racer barely ran");
    seen
}

/// security.md #4 (with #3's racer): the outcomes of walks racing a host process that
/// swaps `a/b` with a file, a dangling symlink and symlinks to the canary directory are
/// the same whether or not `out/secret` exists. Would catch: a gofer that follows (or
/// stats through) a swapped-in symlink, so that the existence of a file outside the
/// share shows as a different status or errno (ENOENT vs success, ENOTDIR vs ELOOP).
/// (The recipe's latency histogram is not checked: no timing assertions here.)
#[test]
fn walk_outcomes_do_not_reveal_whether_an_outside_file_exists() {
    let mut runs = Vec::new();
    for secret_present in [true, false] {
        let gofer = Gofer::start(GOFER, &[]);
        let (root, out) = (gofer.root(), gofer.outside());
        fs::create_dir_all(root.join("a/b/c/d")).unwrap();
        fs::write(root.join("a/b/c/d/inside"), b"inside").unwrap();
        fs::write(root.join("file"), b"file").unwrap();
        symlink("/non/exist", root.join("bad-link")).unwrap();
        symlink("../../out", root.join("rel-link")).unwrap();
        symlink(&out, root.join("abs-link")).unwrap();
        if !secret_present {
            fs::remove_file(out.join("secret")).unwrap();
        }
        let before = snapshot(&out);
        let mut per_pair = Vec::new();
        for other in ["file", "bad-link", "rel-link", "abs-link"] {
            per_pair.push((other, outcomes_under_race(&gofer, other)));
        }
        assert_eq!(snapshot(&out), before, "the canary directory changed");
        runs.push(per_pair);
    }
    for ((other, present), (_, absent)) in runs[0].iter().zip(&runs[1]) {
        assert_eq!(
            present, absent,
            "a/b <-> {other}: outcomes differ with out/secret"
        );
        assert!(
            present.len() >= 4,
            "a/b <-> {other}: no real race: {present:?}"
        );
    }
}

/// security.md #10: SetStat (mode and times) and xattr RPCs on a symlink and a socket
/// (files the gofer holds only as `O_PATH`) while a racer exchanges their parent
/// directory with a symlink to the canary directory, which holds a symlink and a socket
/// of the same names. Would catch: any metadata operation done by a path through the
/// parent (as gVisor's `l*xattr`/`fchmodat` on the full path do): the canary entries'
/// mode, times or xattrs would change.
#[test]
fn metadata_rpcs_on_o_path_files_never_follow_a_swapped_parent() {
    let gofer = Gofer::start(GOFER, &[]);
    let (root, out) = (gofer.root(), gofer.outside());
    fs::create_dir(root.join("d")).unwrap();
    symlink("t", root.join("d/l")).unwrap();
    let _inside_socket = UnixListener::bind(root.join("d/s")).unwrap();
    symlink("t", out.join("l")).unwrap();
    let _outside_socket = UnixListener::bind(out.join("s")).unwrap();
    fs::set_permissions(out.join("s"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink(&out, root.join("evil")).unwrap();
    let before = snapshot(&out);

    let client = gofer.client();
    let pinned: Vec<ControlFd> = ["l", "s"]
        .iter()
        .map(|name| {
            let (_, mut inodes) = client.root().walk(&["d", name]).unwrap();
            inodes.pop().unwrap().fd
        })
        .collect();
    let racer = exchanger(&root, &[("d", "evil")]);
    let (mut walked, mut stopped) = (0, 0);
    let (mut last_time, mut applied, mut refused) = (0, 0, 0);
    for round in 0..2_000i64 {
        let time = Timespec {
            sec: 1_000_000 + round,
            nsec: 0,
        };
        last_time = time.sec;
        let mut targets: Vec<&ControlFd> = pinned.iter().collect();
        let fresh = client
            .root()
            .walk(&["d", if round % 2 == 0 { "l" } else { "s" }]);
        let fresh = match fresh {
            Ok((WalkStatus::Success, mut inodes)) => {
                walked += 1;
                inodes.pop()
            }
            Ok((WalkStatus::ComponentSymlink, _)) => {
                stopped += 1;
                None
            }
            other => panic!("round {round}: {:?}", other.map(|(s, i)| (s, i.len()))),
        };
        if let Some(inode) = &fresh {
            targets.push(&inode.fd);
        }
        for fd in targets {
            // The outcome may report the mode as unsupported (a symlink): not an error.
            // EXDEV: the gofer's still-inside-the-share check met the rename half-way
            // and refused (fail closed); the file never left the share.
            match fd.set_stat(&SetStat {
                mode: Some(0o640),
                atime: Some(time),
                mtime: Some(time),
                ..SetStat::default()
            }) {
                Ok(_) => applied += 1,
                Err(err) => {
                    assert_eq!(err.errno(), Errno::EXDEV, "round {round}");
                    refused += 1;
                }
            }
            // user.* xattrs on symlinks and sockets are refused by the kernel.
            let err = fd.set_xattr("user.race", b"x", 0).unwrap_err().errno();
            assert!(
                [Errno::EPERM, Errno::EOPNOTSUPP, Errno::EXDEV].contains(&err),
                "round {round}: {err:?}"
            );
            let _ = fd.get_xattr("user.race", 0);
        }
    }
    assert!(racer.stop() > 10, "the racer barely ran");
    assert!(
        walked > 0 && stopped > 0,
        "walked {walked}, stopped {stopped}: no real race"
    );
    assert_eq!(snapshot(&out), before, "the canary directory changed");
    assert!(applied > 0, "no SetStat applied ({refused} refused)");
    // Once more without the racer, then the operations must show on the files inside.
    let time = Timespec {
        sec: last_time,
        nsec: 0,
    };
    for fd in &pinned {
        fd.set_stat(&SetStat {
            mode: Some(0o640),
            atime: Some(time),
            mtime: Some(time),
            ..SetStat::default()
        })
        .unwrap();
    }
    let socket = fs::symlink_metadata(root.join("d/s")).unwrap();
    assert_eq!(socket.mode() & 0o777, 0o640);
    assert_eq!(socket.mtime(), last_time);
    assert_eq!(
        fs::symlink_metadata(root.join("d/l")).unwrap().mtime(),
        last_time
    );
}

/// security.md #15: a racer exchanges a regular file with a FIFO (which has a writer
/// blocked in `open(O_WRONLY)`) and with a character device, while the client walks to
/// the name, opens what it got and reads. Would catch: a type check on anything but the
/// walked inode (a FIFO or device opened as the "regular" file), a gofer thread
/// blocked opening the FIFO (the watchdog), or an open that completes the writer's open
/// (the side effect of opening a FIFO for reading).
#[test]
fn a_type_swap_between_walk_and_open_yields_the_file_or_eperm_and_never_blocks() {
    let gofer = Gofer::start(GOFER, &[]);
    let root = gofer.root();
    fs::write(root.join("f"), b"regular").unwrap();
    let dir = dir_fd(&root);
    rustix::fs::mknodat(
        &dir,
        "p",
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o666),
        0,
    )
    .unwrap();
    rustix::fs::mknodat(
        &dir,
        "n",
        rustix::fs::FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    let fifo = root.join("p");
    let writer = thread::spawn(move || {
        // Blocks until something opens the FIFO for reading.
        rustix::fs::open(&fifo, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty()).unwrap()
    });
    thread::sleep(Duration::from_millis(50));

    let racer = exchanger(&root, &[("f", "p"), ("f", "n")]);
    let client = Arc::new(gofer.client());
    let progress = Progress::new();
    let worker = {
        let (client, progress) = (Arc::clone(&client), progress.clone());
        thread::spawn(move || {
            let (mut regular, mut special) = (0, 0);
            for round in 0..3_000 {
                let (status, inodes) = client.root().walk(&["f"]).unwrap();
                progress.tick();
                assert_eq!(status, WalkStatus::Success);
                let node = &inodes[0];
                let opened = node.fd.open_at(0);
                progress.tick();
                if node.stat.mode & S_IFMT == S_IFREG {
                    let opened = opened.unwrap();
                    if let Some(host) = &opened.host_fd {
                        let kind = rustix::fs::fstat(host).unwrap().st_mode & 0o170_000;
                        assert_eq!(kind, 0o100_000, "round {round}: donated a non-regular FD");
                    }
                    let mut buf = [0u8; 16];
                    let n = opened.fd.pread(0, &mut buf).unwrap();
                    progress.tick();
                    assert_eq!(&buf[..n], b"regular", "round {round}");
                    regular += 1;
                } else {
                    let err = opened.map(|o| o.host_fd.is_some()).unwrap_err().errno();
                    assert_eq!(
                        err,
                        Errno::EPERM,
                        "round {round}: mode {:o}",
                        node.stat.mode
                    );
                    special += 1;
                }
            }
            (regular, special)
        })
    };
    let (regular, special) = progress.watch(vec![worker], STALL)[0];
    assert!(racer.stop() > 10, "the racer barely ran");
    assert!(
        regular > 0 && special > 0,
        "regular {regular}, special {special}: no race"
    );
    assert!(
        !writer.is_finished(),
        "the gofer opened the FIFO: the writer got through"
    );
    // Release the writer: this open is the side effect the gofer must never cause.
    let _reader = rustix::fs::open(
        root.join("p"),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    writer.join().unwrap();
    gofer.assert_canary_untouched();
}

/// The server's view of `dir` and everything beneath it, by path through the client.
fn server_view(client: &Client, dir: &str, out: &mut BTreeSet<String>) {
    let at = if dir.is_empty() { "/" } else { dir };
    for entry in client.read_dir(at).unwrap() {
        let path = format!("{dir}/{}", entry.name_lossy());
        if entry.file_type.is_dir() {
            server_view(client, &path, out);
        }
        out.insert(path);
    }
}

fn host_view(root: &Path, dir: &str, out: &mut BTreeSet<String>) {
    for entry in fs::read_dir(root.join(dir.trim_start_matches('/'))).unwrap() {
        let entry = entry.unwrap();
        let path = format!("{dir}/{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            host_view(root, &path, out);
        }
        out.insert(path);
    }
}

/// security.md #46: two connections, four threads: renames a/x <-> b/y and b/y2 <-> a/x2
/// between the two directories, RENAME_EXCHANGE of the directories themselves, renames
/// of a directory into its own descendant, and deep walks into both, for 3 s. Would
/// catch: a lock-order deadlock between the rename lock, directory and file node locks
/// (the watchdog: 5 s without any RPC answering), an errno outside what Linux gives for
/// these renames, or a server view that differs from the host tree afterwards.
#[test]
fn rename_storms_from_two_connections_never_deadlock() {
    let gofer = Gofer::start(GOFER, &[]);
    let root = gofer.root();
    for top in ["a", "b"] {
        fs::create_dir_all(root.join(top).join("deep/1/2/3/4/5")).unwrap();
        fs::write(root.join(top).join("deep/1/2/3/4/5/leaf"), top).unwrap();
    }
    fs::write(root.join("a/x"), b"x").unwrap();
    fs::write(root.join("b/y2"), b"y2").unwrap();
    let conns = [Arc::new(gofer.client()), Arc::new(gofer.client())];
    let progress = Progress::new();
    let until = Instant::now() + Duration::from_secs(3);
    let allowed = [
        Errno::ENOENT,
        Errno::EEXIST,
        Errno::ENOTEMPTY,
        Errno::EINVAL,
        Errno::ENOTDIR,
    ];
    type Job = fn(&Client, usize) -> Vec<Result<(), Errno>>;
    let jobs: [(usize, Job); 4] = [
        (0, |c, i| {
            let (a, b) = (dir(c, "a"), dir(c, "b"));
            let (from, to) = if i % 2 == 0 {
                ((&a, "x"), (&b, "y"))
            } else {
                ((&b, "y"), (&a, "x"))
            };
            vec![from
                .0
                .rename_at(from.1, to.0, to.1, 0)
                .map_err(|e| e.errno())]
        }),
        (1, |c, i| {
            let (a, b) = (dir(c, "a"), dir(c, "b"));
            let (from, to) = if i % 2 == 0 {
                ((&b, "y2"), (&a, "x2"))
            } else {
                ((&a, "x2"), (&b, "y2"))
            };
            vec![from
                .0
                .rename_at(from.1, to.0, to.1, 0)
                .map_err(|e| e.errno())]
        }),
        (0, |c, _| {
            let root = c.root();
            let mut out = vec![root
                .rename_at("a", root, "b", RENAME_EXCHANGE)
                .map_err(|e| e.errno())];
            // Into its own descendant: EINVAL from the kernel.
            if let Ok((WalkStatus::Success, inodes)) = root.walk(&["a", "deep", "1"]) {
                let moved = root
                    .rename_at("a", &inodes[2].fd, "a", 0)
                    .map_err(|e| e.errno());
                assert_ne!(moved, Ok(()), "a directory moved into its own descendant");
                out.push(moved);
            }
            out
        }),
        (1, |c, _| {
            let mut out = Vec::new();
            for top in ["a", "b"] {
                let path = [top, "deep", "1", "2", "3", "4", "5", "leaf"];
                let walked = c.root().walk(&path).map_err(|e| e.errno());
                if let Ok((status, _)) = &walked {
                    assert_eq!(*status, WalkStatus::Success, "{path:?}");
                }
                out.push(walked.map(drop));
                out.push(c.root().walk_stat(&path).map(drop).map_err(|e| e.errno()));
            }
            out
        }),
    ];
    let workers: Vec<_> = jobs
        .into_iter()
        .map(|(conn, job)| {
            let (client, progress) = (Arc::clone(&conns[conn]), progress.clone());
            thread::spawn(move || {
                let mut i = 0;
                while Instant::now() < until {
                    for result in job(&client, i) {
                        progress.tick();
                        if let Err(err) = result {
                            assert!(allowed.contains(&err), "unexpected {err:?}");
                        }
                    }
                    i += 1;
                }
                i
            })
        })
        .collect();
    let rounds = progress.watch(workers, STALL);
    assert!(
        rounds.iter().all(|&r| r > 10),
        "a worker barely ran: {rounds:?}"
    );
    // Quiesced: the server's view through a fresh connection equals the host tree.
    let fresh = gofer.client();
    let (mut server, mut host) = (BTreeSet::new(), BTreeSet::new());
    server_view(&fresh, "", &mut server);
    host_view(&root, "", &mut host);
    assert_eq!(server, host);
    for name in ["x", "y", "x2", "y2"] {
        let count = host
            .iter()
            .filter(|p| p.ends_with(&format!("/{name}")))
            .count();
        assert!(count <= 1, "{name} exists {count} times");
    }
    gofer.assert_canary_untouched();
}

fn dir(client: &Client, name: &str) -> ControlFd {
    let (_, mut inodes) = client.root().walk(&[name]).unwrap();
    inodes.pop().unwrap().fd
}

/// security.md #52: racer threads rename unrelated files and directories outside the
/// share as fast as they can (every rename bumps the kernel's global rename sequence,
/// which makes `openat2` `..` resolution under RESOLVE_BENEATH fail with EAGAIN), while
/// two connections walk deep paths, read, create and remove names and change modes
/// (the mutations run the gofer's still-inside-the-share check). Would catch: an
/// unbounded retry loop (the watchdog), a hang, or an error other than EAGAIN/ENOENT.
#[test]
fn rename_storms_elsewhere_on_the_host_never_hang_or_confuse_the_gofer() {
    let gofer = Gofer::start(GOFER, &[]);
    let root = gofer.root();
    let deep = "1/2/3/4/5/6/7/8";
    fs::create_dir_all(root.join(deep)).unwrap();
    fs::write(root.join(deep).join("f"), b"deep file").unwrap();
    let elsewhere = tempfile::tempdir_in("/tmp").unwrap();
    let racers: Vec<Racer> = (0..2)
        .map(|i| {
            let dir = elsewhere.path().join(format!("r{i}"));
            fs::create_dir_all(dir.join("x/sub")).unwrap();
            fs::create_dir_all(dir.join("y/sub")).unwrap();
            fs::write(dir.join("fx"), b"").unwrap();
            fs::write(dir.join("fy"), b"").unwrap();
            exchanger(&dir, &[("x", "y"), ("fx", "fy")])
        })
        .collect();
    let progress = Progress::new();
    let until = Instant::now() + Duration::from_secs(2);
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let (client, progress) = (gofer.client(), progress.clone());
            thread::spawn(move || {
                let path: Vec<&str> = deep.split('/').chain(["f"]).collect();
                let mut errors = Vec::new();
                let mut i = 0u64;
                while Instant::now() < until {
                    let mut check = |r: Result<(), lisafs_client::Error>| {
                        progress.tick();
                        if let Err(err) = r {
                            errors.push(err.errno());
                        }
                    };
                    match client.root().walk(&path) {
                        Ok((WalkStatus::Success, inodes)) => {
                            let file = &inodes[8].fd;
                            let mut buf = [0u8; 16];
                            let read = file.open_at(0).and_then(|o| o.fd.pread(0, &mut buf));
                            if let Ok(n) = read {
                                assert_eq!(&buf[..n], b"deep file");
                            }
                            check(read.map(drop));
                            let dir = &inodes[7].fd;
                            let name = format!("w{w}-{i}");
                            check(dir.mkdir_at(&name, 0o755, Owner::UNSET).map(drop));
                            check(dir.unlink_at(&name, lisafs_client::AT_REMOVEDIR));
                            check(
                                file.set_stat(&SetStat {
                                    mode: Some(0o600 + (i % 2) as u32 * 0o40),
                                    ..SetStat::default()
                                })
                                .map(drop),
                            );
                        }
                        other => check(other.map(drop)),
                    }
                    i += 1;
                }
                errors
            })
        })
        .collect();
    let errors: Vec<Errno> = progress.watch(workers, STALL).concat();
    for racer in racers {
        assert!(racer.stop() > 10, "a racer barely ran");
    }
    for err in &errors {
        assert!(
            [Errno::EAGAIN, Errno::ENOENT].contains(err),
            "unexpected error under rename storms: {err:?}"
        );
    }
    assert!(progress.count() > 100, "too few RPCs: {}", progress.count());
    // Nothing left behind: every created name was removed (or never created).
    assert_eq!(fs::read_dir(root.join(deep)).unwrap().count(), 1);
    gofer.assert_canary_untouched();
}
