//! WalkStat's walk cache (SPEC.md §7.1 item 6) never changes an answer: whatever a host
//! process or the client does to a directory the cache holds (rename, replace, remove,
//! swap for a symlink, mount over it), the next WalkStat answers as a fresh walk would.
//! And it pins a bounded number of host FDs, all gone with the connection.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::Path;
use std::thread::JoinHandle;

use lisafs_client::Client;
use lisafs_gofer::host::{HostBackend, HostOptions, ShareMount};
use lisafs_protocol::transport::socket::FramedSocket;
use lisafs_protocol::wire::{Errno, Statx};
use lisafs_server::{Server, ServerOptions, WALK_CACHE_CAPACITY};
use lisafs_tests::{errno, Gofer};
use rustix::fs::{Mode, OFlags};
use rustix::mount::{mount, unmount, MountFlags, UnmountFlags};

const GOFER: &str = env!("CARGO_BIN_EXE_test-gofer");
const S_IFMT: u16 = 0o170_000;
const S_IFLNK: u16 = 0o120_000;

/// The host backend served in this process on a plain directory FD, so that it sees the
/// host's mounts as they change (the gofer program serves a detached copy).
fn serve_in_process(root: &Path) -> (Client, JoinHandle<()>) {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(root, flags, Mode::empty()).unwrap();
    let backend = HostBackend::with_root(fd, ShareMount::Plain, HostOptions::default()).unwrap();
    let server = Server::new(backend, ServerOptions::default());
    let (client_end, server_end) = FramedSocket::pair().unwrap();
    let serving = server.spawn(server_end).unwrap();
    (Client::from_fd(client_end.into_inner()).unwrap(), serving)
}

/// The inode numbers of `stats`.
fn inos(stats: &[Statx]) -> Vec<u64> {
    stats.iter().map(|s| s.ino).collect()
}

/// The inode numbers of `root/a`, `root/a/b`, ... for the first `n` components of `path`,
/// as the host sees them (not following a symlink).
fn host_inos(root: &Path, path: &[&str], n: usize) -> Vec<u64> {
    let mut at = root.to_path_buf();
    path[..n]
        .iter()
        .map(|name| {
            at.push(name);
            fs::symlink_metadata(&at).unwrap().ino()
        })
        .collect()
}

fn tree(root: &Path) {
    fs::create_dir_all(root.join("a/b")).unwrap();
    fs::write(root.join("a/b/c"), b"c").unwrap();
}

#[test]
fn every_change_to_a_cached_directory_shows_in_the_next_walk_stat() {
    let dir = tempfile::tempdir().unwrap();
    let (root, out) = (dir.path().join("root"), dir.path().join("out"));
    fs::create_dir_all(out.join("c")).unwrap();
    fs::create_dir(&root).unwrap();
    tree(&root);
    let (client, serving) = serve_in_process(&root);
    let path = ["a", "b", "c"];
    let walk_stat = || client.root().walk_stat(&path);

    // Twice: the second goes through the cached a and a/b.
    let first = walk_stat().unwrap();
    assert_eq!(inos(&first), host_inos(&root, &path, 3));
    assert_eq!(inos(&walk_stat().unwrap()), inos(&first));

    // A host process moves a away and makes a new a/b/c: the new inodes.
    fs::rename(root.join("a"), root.join("old")).unwrap();
    tree(&root);
    let now = walk_stat().unwrap();
    assert_eq!(inos(&now), host_inos(&root, &path, 3));
    assert_ne!(now[1].ino, first[1].ino);

    // a/b swapped for a symlink to a directory outside that has a `c`: the walk stops at
    // the symlink and never stats through it.
    fs::rename(root.join("a/b"), root.join("b-old")).unwrap();
    symlink(&out, root.join("a/b")).unwrap();
    let swapped = walk_stat().unwrap();
    assert_eq!(swapped.len(), 2, "went on through a symlink");
    assert_eq!(swapped[1].mode & S_IFMT, S_IFLNK);
    assert_eq!(inos(&swapped), host_inos(&root, &path, 2));

    // And back to a directory; then a removed: nothing.
    fs::remove_file(root.join("a/b")).unwrap();
    fs::rename(root.join("b-old"), root.join("a/b")).unwrap();
    assert_eq!(inos(&walk_stat().unwrap()), host_inos(&root, &path, 3));
    fs::remove_dir_all(root.join("a")).unwrap();
    assert!(walk_stat().unwrap().is_empty());

    // The client renames a cached directory: the old name is gone, the new one walks.
    tree(&root);
    walk_stat().unwrap();
    let top = client.root();
    top.rename_at("a", top, "z", 0).unwrap();
    assert!(walk_stat().unwrap().is_empty());
    assert_eq!(client.root().walk_stat(&["z", "b", "c"]).unwrap().len(), 3);

    // A mount over a cached directory: refused as a fresh walk refuses it.
    tree(&root);
    walk_stat().unwrap();
    let b = root.join("a/b");
    mount("walk-cache", &b, "tmpfs", MountFlags::empty(), c"size=1m").unwrap();
    fs::write(b.join("c"), b"on the mount").unwrap();
    let over = walk_stat();
    unmount(&b, UnmountFlags::DETACH).unwrap();
    assert_eq!(errno(over), Errno::EXDEV);
    assert_eq!(inos(&walk_stat().unwrap()), host_inos(&root, &path, 3));

    drop(client);
    serving.join().unwrap();
}

#[test]
fn the_walk_cache_pins_a_bounded_number_of_fds_all_gone_with_the_connection() {
    let gofer = Gofer::start(GOFER, &[]);
    let dirs = 4 * WALK_CACHE_CAPACITY;
    for i in 0..dirs {
        fs::create_dir_all(gofer.root().join(format!("d{i}/e"))).unwrap();
    }
    let before = gofer.open_fds();
    let client = gofer.client();
    client.root().fstat().unwrap();
    let connected = gofer.open_fds();
    for _ in 0..2 {
        for i in 0..dirs {
            let stats = client
                .root()
                .walk_stat(&[format!("d{i}"), "e".into(), "f".into()])
                .unwrap();
            assert_eq!(stats.len(), 2);
        }
    }
    let walked = gofer.open_fds();
    assert!(
        walked <= connected + WALK_CACHE_CAPACITY,
        "{walked} FDs after the walks, {connected} before: beyond {WALK_CACHE_CAPACITY} cached"
    );
    drop(client);
    let after = gofer.settle_fds(before);
    assert!(
        after <= before,
        "{after} FDs after disconnecting, {before} before"
    );
}
