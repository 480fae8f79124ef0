//! The hook layer (`lisafs_server::hooks`) around the host backend, served in this process
//! over a real socket to a real client: a policy written as a rules engine would write it
//! (by path and operation class) refuses, hides, observes and rewrites, and always judges
//! a file by where it is at the time of the request.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::borrow::Cow;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use lisafs_client::{Client, ControlFd, SetStat, WalkStatus, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY};
use lisafs_gofer::host::{HostBackend, HostOptions, ShareMount};
use lisafs_protocol::transport::socket::FramedSocket;
use lisafs_protocol::wire::Errno;
use lisafs_server::hooks::{Deferred, Hook, Hooked, Op, OpClass, OwnedOp};
use lisafs_server::{Server, ServerOptions};
use lisafs_tests::errno;
use rustix::fs::{Mode, OFlags, CWD};
use rustix::mount::OpenTreeFlags;

/// What `before` saw: the operation with its paths.
type Seen = OwnedOp;
/// What `after` saw.
type Outcome = (&'static str, OpClass, Result<(), Errno>);

/// Writes under `secret/` (or to a file whose place cannot be told) are refused; entries
/// named `hidden*` do not exist; writes to `shout*` files are upper-cased; files under
/// `nodonate/` keep their I/O on RPCs. Records everything.
#[derive(Default)]
struct Policy {
    seen: Mutex<Vec<Seen>>,
    outcomes: Mutex<Vec<Outcome>>,
}

fn is_hidden(name: &[u8]) -> bool {
    name.starts_with(b"hidden")
}

impl Hook for Policy {
    fn before(&self, op: &Op<'_>) -> Result<(), Errno> {
        self.seen.lock().unwrap().push(OwnedOp::of(op));
        let path = op.path();
        if path
            .and_then(Path::file_name)
            .is_some_and(|name| is_hidden(name.as_encoded_bytes()))
        {
            return Err(Errno::ENOENT);
        }
        let secret = path.is_none_or(|path| path.starts_with("secret"));
        if op.class() == OpClass::Write && secret {
            return Err(Errno::EACCES);
        }
        Ok(())
    }

    fn after(&self, op: &Op<'_>, outcome: Result<(), Errno>) {
        let record = (op.name(), op.class(), outcome);
        self.outcomes.lock().unwrap().push(record);
    }

    fn write_data<'d>(&self, op: &Op<'_>, data: &'d [u8]) -> Result<Cow<'d, [u8]>, Errno> {
        let shout = op
            .path()
            .and_then(Path::file_name)
            .is_some_and(|name| name.as_encoded_bytes().starts_with(b"shout"));
        Ok(match shout {
            true => Cow::Owned(data.to_ascii_uppercase()),
            false => Cow::Borrowed(data),
        })
    }

    fn hides(&self, _dir: &Op<'_>, name: &[u8]) -> bool {
        is_hidden(name)
    }

    fn donate(&self, op: &Op<'_>) -> bool {
        !op.path().is_some_and(|path| path.starts_with("nodonate"))
    }
}

impl Policy {
    /// The path of the last operation named `name` that `before` saw.
    fn last_path(&self, name: &str) -> Option<PathBuf> {
        let seen = self.seen.lock().unwrap();
        let op = seen.iter().rev().find(|op| op.name == name);
        op.unwrap_or_else(|| panic!("no {name} seen")).path.clone()
    }

    fn outcomes(&self) -> Vec<Outcome> {
        self.outcomes.lock().unwrap().clone()
    }
}

/// A temp directory with `root/` served and `outside/` beside it.
struct Served {
    client: Client,
    policy: Arc<Policy>,
    serving: JoinHandle<()>,
    root: PathBuf,
    outside: PathBuf,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Ends the connection; every FD of the client must be gone (they keep it open).
    fn stop(self) {
        drop(self.client);
        self.serving.join().unwrap();
    }
}

/// The root as the gofer opens it: a detached bind mount (`None` if this process may not
/// make one: not root) or a plain directory FD.
fn open_root(root: &Path, mount: ShareMount) -> Option<OwnedFd> {
    match mount {
        ShareMount::Plain => {
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
            Some(rustix::fs::open(root, flags, Mode::empty()).unwrap())
        }
        ShareMount::Detached => {
            let flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
            match rustix::mount::open_tree(CWD, root, flags) {
                Ok(tree) => Some(tree),
                Err(rustix::io::Errno::PERM) => None,
                Err(err) => panic!("open_tree: {err}"),
            }
        }
    }
}

fn serve_with<H: Hook>(mount: ShareMount, hook: H) -> Option<(Client, JoinHandle<()>, Paths)> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(&outside).unwrap();
    let Some(fd) = open_root(&root, mount) else {
        eprintln!("skipped: no privilege for a detached mount");
        return None;
    };
    let backend = HostBackend::with_root(fd, mount, HostOptions::default()).unwrap();
    let server = Server::new(Hooked::new(backend, hook), ServerOptions::default());
    let (client_end, server_end) = FramedSocket::pair().unwrap();
    let serving = server.spawn(server_end).unwrap();
    let client = Client::from_fd(client_end.into_inner()).unwrap();
    Some((client, serving, Paths { root, outside, dir }))
}

struct Paths {
    root: PathBuf,
    outside: PathBuf,
    dir: tempfile::TempDir,
}

fn serve(mount: ShareMount) -> Option<Served> {
    let policy = Arc::new(Policy::default());
    let (client, serving, paths) = serve_with(mount, Arc::clone(&policy))?;
    Some(Served {
        client,
        policy,
        serving,
        root: paths.root,
        outside: paths.outside,
        _dir: paths.dir,
    })
}

/// The ControlFd at the end of `path` (every component exists).
fn walk(client: &Client, path: &[&str]) -> ControlFd {
    let (status, mut inodes) = client.root().walk(path).unwrap();
    assert_eq!(status, WalkStatus::Success, "{path:?}");
    inodes.pop().unwrap().fd
}

fn host_tree(root: &Path, dirs: &[&str], files: &[&str]) {
    for dir in dirs {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    for file in files {
        std::fs::write(root.join(file), b"data").unwrap();
    }
}

fn paths_follow_every_move(mount: ShareMount) {
    let Some(s) = serve(mount) else { return };
    host_tree(&s.root, &["a/b"], &["a/b/f", "gone"]);
    let f = walk(&s.client, &["a", "b", "f"]);
    assert_eq!(s.policy.last_path("Walk"), Some("a/b/f".into()));
    f.fstat().unwrap();
    assert_eq!(s.policy.last_path("FStat"), Some("a/b/f".into()));
    s.client.root().fstat().unwrap();
    assert_eq!(s.policy.last_path("FStat"), Some("".into()));

    // The client renames an ancestor: the held FD's file is now c/b/f.
    let root = s.client.root();
    root.rename_at("a", root, "c", 0).unwrap();
    f.fstat().unwrap();
    assert_eq!(s.policy.last_path("FStat"), Some("c/b/f".into()));

    // A host process moves its directory: d/f.
    std::fs::rename(s.root.join("c/b"), s.root.join("d")).unwrap();
    f.fstat().unwrap();
    assert_eq!(s.policy.last_path("FStat"), Some("d/f".into()));

    // Moved out of the share: no path, even though the FD still works.
    std::fs::rename(s.root.join("d"), s.outside.join("d")).unwrap();
    f.fstat().unwrap();
    assert_eq!(s.policy.last_path("FStat"), None);

    // Unlinked: no path either.
    let gone = walk(&s.client, &["gone"]);
    std::fs::remove_file(s.root.join("gone")).unwrap();
    gone.fstat().unwrap();
    assert_eq!(s.policy.last_path("FStat"), None);
    drop((f, gone));
    s.stop();
}

#[test]
fn paths_follow_every_move_on_a_plain_root() {
    paths_follow_every_move(ShareMount::Plain);
}

#[test]
fn paths_follow_every_move_on_a_detached_root() {
    paths_follow_every_move(ShareMount::Detached);
}

#[test]
fn writes_are_judged_by_the_files_current_place() {
    let Some(s) = serve(ShareMount::Detached).or_else(|| serve(ShareMount::Plain)) else {
        return;
    };
    host_tree(&s.root, &["secret"], &["secret/key"]);
    let key = walk(&s.client, &["secret", "key"]);
    let reading = lisafs_client::File::new(key.open_at(O_RDONLY).unwrap());
    assert_eq!(errno(key.open_at(O_WRONLY)), Errno::EACCES);
    assert_eq!(errno(key.open_at(O_RDONLY | O_TRUNC)), Errno::EACCES);
    let truncate = SetStat {
        size: Some(0),
        ..SetStat::default()
    };
    assert_eq!(errno(key.set_stat(&truncate)), Errno::EACCES);
    let chmod = SetStat {
        mode: Some(0o600),
        ..SetStat::default()
    };
    key.set_stat(&chmod).unwrap();

    // The client moves the directory out of secret/: the same FD may now be written.
    let root = s.client.root();
    root.rename_at("secret", root, "public", 0).unwrap();
    let writing = lisafs_client::File::new(key.open_at(O_RDWR).unwrap());
    assert_eq!(writing.write_at(b"DATA", 0).unwrap(), 4);

    // A host process moves it back: the next PWrite on the open FD is refused, and so is
    // a new open; the read FD held all along still reads.
    std::fs::rename(s.root.join("public"), s.root.join("secret")).unwrap();
    assert_eq!(errno(writing.write_at(b"data", 0)), Errno::EACCES);
    assert_eq!(errno(key.open_at(O_WRONLY)), Errno::EACCES);
    let mut buf = [0; 4];
    assert_eq!(reading.read_at(&mut buf, 0).unwrap(), 4);
    assert_eq!(&buf, b"DATA");

    // Moved out of the share, it has no place: unknown counts as secret here.
    std::fs::rename(s.root.join("secret"), s.outside.join("secret")).unwrap();
    assert_eq!(errno(writing.write_at(b"data", 0)), Errno::EACCES);
    drop((key, reading, writing));
    s.stop();
}

#[test]
fn hidden_entries_are_absent() {
    let Some(s) = serve(ShareMount::Plain) else {
        return;
    };
    host_tree(&s.root, &["dir"], &["dir/seen", "dir/hidden"]);
    // Enough hidden entries that whole Getdents64 batches hold nothing else.
    for i in 0..5000 {
        std::fs::write(s.root.join(format!("dir/hidden-{i:04}")), b"").unwrap();
    }
    std::fs::write(s.root.join("dir/last"), b"").unwrap();

    let (status, inodes) = s.client.root().walk(&["dir", "hidden"]).unwrap();
    assert_eq!(status, WalkStatus::ComponentDoesNotExist);
    assert_eq!(inodes.len(), 1);
    drop(inodes);
    let stats = s.client.root().walk_stat(&["dir", "hidden"]).unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(
        errno(s.client.metadata("dir/hidden")),
        Errno::ENOENT,
        "through the path API too"
    );

    let mut names: Vec<_> = s
        .client
        .read_dir("dir")
        .unwrap()
        .into_iter()
        .map(|entry| entry.name)
        .collect();
    names.sort();
    assert_eq!(names, [&b"last"[..], b"seen"]);

    // A file the client holds, renamed into a hidden name: the policy's before-hook says
    // it does not exist any more.
    let seen = walk(&s.client, &["dir", "seen"]);
    std::fs::rename(s.root.join("dir/seen"), s.root.join("dir/hidden-seen")).unwrap();
    assert_eq!(errno(seen.fstat()), Errno::ENOENT);
    drop(seen);
    s.stop();
}

/// WalkStat's walk cache (SPEC.md §7.1 item 6) changes nothing a hook sees: each step is
/// one Walk to the hook, with its current path, cached or not; a hidden name stays hidden.
#[test]
fn walk_stat_steps_through_cached_directories_are_seen_once_each() {
    let Some(s) = serve(ShareMount::Plain) else {
        return;
    };
    host_tree(&s.root, &["a/b"], &["a/b/c"]);
    let walks = || {
        let seen = s.policy.seen.lock().unwrap();
        seen.iter().filter(|op| op.name == "Walk").count()
    };
    for round in 1..=3 {
        let stats = s.client.root().walk_stat(&["a", "b", "c"]).unwrap();
        assert_eq!(stats.len(), 3);
        assert_eq!(walks(), 3 * round, "round {round}");
        assert_eq!(s.policy.last_path("Walk"), Some("a/b/c".into()));
    }
    // The cached a/b renamed to a hidden name and back under its old one: hidden, then seen.
    std::fs::rename(s.root.join("a/b"), s.root.join("a/hidden-b")).unwrap();
    let stats = s.client.root().walk_stat(&["a", "hidden-b", "c"]).unwrap();
    assert_eq!(stats.len(), 1);
    std::fs::rename(s.root.join("a/hidden-b"), s.root.join("a/b")).unwrap();
    assert_eq!(s.client.root().walk_stat(&["a", "b"]).unwrap().len(), 2);
    assert_eq!(s.policy.last_path("Walk"), Some("a/b".into()));
    s.stop();
}

#[test]
fn after_sees_every_mutating_operation_with_its_outcome() {
    let Some(s) = serve(ShareMount::Plain) else {
        return;
    };
    host_tree(&s.root, &["secret"], &[]);
    let root = s.client.root();
    let owner = lisafs_client::Owner::UNSET;
    root.mkdir_at("d", 0o755, owner).unwrap();
    assert_eq!(errno(root.mkdir_at("d", 0o755, owner)), Errno::EEXIST);
    let d = walk(&s.client, &["d"]);
    let (f, opened) = d.open_create_at("f", O_RDWR, 0o644, owner).unwrap();
    let file = lisafs_client::File::new(opened);
    file.write_at(b"x", 0).unwrap();
    let secret = walk(&s.client, &["secret"]);
    let (_, opened) = secret.open_create_at("s", O_RDWR, 0o644, owner).unwrap();
    let secret_file = lisafs_client::File::new(opened);
    assert_eq!(errno(secret_file.write_at(b"x", 0)), Errno::EACCES);
    d.link_at(&f.fd, "g").unwrap();
    d.symlink_at("l", "f", owner).unwrap();
    d.rename_at("g", root, "h", 0).unwrap();
    root.unlink_at("h", 0).unwrap();
    let chmod = SetStat {
        mode: Some(0o600),
        ..SetStat::default()
    };
    f.fd.set_stat(&chmod).unwrap();

    let outcomes = s.policy.outcomes();
    let expected: [Outcome; 10] = [
        ("MkdirAt", OpClass::Create, Ok(())),
        ("MkdirAt", OpClass::Create, Err(Errno::EEXIST)),
        ("OpenCreateAt", OpClass::Create, Ok(())),
        ("PWrite", OpClass::Write, Ok(())),
        ("OpenCreateAt", OpClass::Create, Ok(())),
        ("PWrite", OpClass::Write, Err(Errno::EACCES)),
        ("LinkAt", OpClass::Create, Ok(())),
        ("SymlinkAt", OpClass::Create, Ok(())),
        ("RenameAt", OpClass::Rename, Ok(())),
        ("UnlinkAt", OpClass::Remove, Ok(())),
    ];
    let mutating: Vec<_> = outcomes
        .iter()
        .filter(|(_, class, _)| !matches!(class, OpClass::Stat | OpClass::Read))
        .cloned()
        .collect();
    assert_eq!(mutating[..10], expected, "{outcomes:?}");
    assert_eq!(mutating[10], ("SetStat", OpClass::SetAttr, Ok(())));

    let seen = s.policy.seen.lock().unwrap().clone();
    let find = |name: &str| seen.iter().find(|op| op.name == name).unwrap().clone();
    let rename = find("RenameAt");
    assert_eq!(rename.path, Some("d/g".into()));
    assert_eq!(rename.new_path, Some("h".into()));
    let link = find("LinkAt");
    assert_eq!(link.path, Some("d/f".into()));
    assert_eq!(link.new_path, Some("d/g".into()));
    assert_eq!(find("PWrite").count, Some(1));
    drop((seen, d, f, file, secret, secret_file));
    s.stop();
}

#[test]
fn write_data_rewrites_rpc_writes_and_donation_can_be_withheld() {
    let Some(s) = serve(ShareMount::Plain) else {
        return;
    };
    host_tree(&s.root, &["nodonate"], &["nodonate/f"]);
    let owner = lisafs_client::Owner::UNSET;
    let (_, opened) = s
        .client
        .root()
        .open_create_at("shout.txt", O_RDWR, 0o644, owner)
        .unwrap();
    let shout = lisafs_client::File::new(opened);
    assert!(shout.host_fd().is_some(), "donated as usual");
    assert_eq!(shout.write_at(b"hello, ", 0).unwrap(), 7);
    assert_eq!(shout.write_at(b"world", 7).unwrap(), 5);
    assert_eq!(
        std::fs::read(s.root.join("shout.txt")).unwrap(),
        b"HELLO, WORLD"
    );

    let kept = walk(&s.client, &["nodonate", "f"]);
    let file = lisafs_client::File::new(kept.open_at(O_RDWR).unwrap());
    assert!(file.host_fd().is_none());
    assert_eq!(file.write_at(b"over rpc", 0).unwrap(), 8);
    drop((shout, kept, file));
    s.stop();
}

/// Counts outcomes on the worker `Deferred` runs it on.
type Audit = Mutex<Vec<(OwnedOp, Result<(), Errno>)>>;

struct Auditor(Arc<Audit>);

impl Hook for Auditor {
    fn after(&self, op: &Op<'_>, outcome: Result<(), Errno>) {
        self.0.lock().unwrap().push((OwnedOp::of(op), outcome));
    }
}

#[test]
fn a_deferred_after_hook_has_seen_everything_once_the_server_is_gone() {
    let audit = Arc::new(Audit::default());
    let deferred = Deferred::new(Auditor(Arc::clone(&audit)), 4).unwrap();
    let Some((client, serving, paths)) = serve_with(ShareMount::Plain, deferred) else {
        return;
    };
    client.create_dir("a", 0o755).unwrap();
    client.rename("a", "b").unwrap();
    assert_eq!(errno(client.remove_file("nothing")), Errno::ENOENT);
    drop(client);
    serving.join().unwrap();
    // The server (and with it the Deferred, which drains its queue) went with the
    // connection's last reference.
    let audit = audit.lock().unwrap();
    let names: Vec<_> = audit
        .iter()
        .filter(|(op, _)| op.class != OpClass::Stat)
        .map(|(op, outcome)| (op.name, op.path.clone(), op.new_path.clone(), *outcome))
        .collect();
    assert_eq!(
        names,
        [
            ("MkdirAt", Some("a".into()), None, Ok(())),
            ("RenameAt", Some("a".into()), Some("b".into()), Ok(())),
            ("UnlinkAt", Some("nothing".into()), None, Err(Errno::ENOENT)),
        ],
        "{audit:?}"
    );
    drop(paths);
}

#[test]
fn every_conformance_test_passes_through_a_no_op_hook() {
    lisafs_tests::conformance::run_in_process(|backend| {
        Hooked::new(backend, lisafs_server::hooks::NoHook)
    });
}
