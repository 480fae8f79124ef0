//! Creating with a client-supplied owner while a host process swaps the new name with a
//! root-owned victim (RENAME_EXCHANGE), as fast as it can. The owner must land on the
//! object the gofer created and never on the victim: a create that applies the owner by
//! looking the name up again would chown whatever the racer swapped in.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use lisafs_client::{ControlFd, Owner};
use lisafs_protocol::wire::WalkStatus;
use lisafs_tests::Gofer;
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};

const GOFER: &str = env!("CARGO_BIN_EXE_test-gofer");
const O_RDWR: u32 = 2;
const AT_REMOVEDIR: u32 = 0x200;
const S_IFREG: u16 = 0o100_000;
const SOCK_STREAM: u32 = 1;
/// The owner every client create asks for.
const CLIENT: u32 = 1000;

/// A root-owned file in the race directory that the racer swaps with `new`.
struct Victim {
    name: &'static str,
    /// Where the test keeps a second name (a hard link) for a non-directory, so that a
    /// client UnlinkAt of the swapped-in victim cannot make it vanish, and the racer can
    /// put it back.
    keep: Option<PathBuf>,
    /// An `O_PATH` FD of the victim, for its attributes at the end wherever it is named.
    fd: OwnedFd,
    ino: u64,
    mode: u32,
}

impl Victim {
    fn new(name: &'static str, dir: &Path, keep_dir: &Path) -> Self {
        let path = dir.join(name);
        let meta = fs::symlink_metadata(&path).unwrap();
        let keep = (!meta.is_dir()).then(|| {
            let keep = keep_dir.join(name);
            rustix::fs::linkat(
                rustix::fs::CWD,
                &path,
                rustix::fs::CWD,
                &keep,
                AtFlags::empty(),
            )
            .unwrap();
            keep
        });
        let fd = rustix::fs::open(
            &path,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        Self {
            name,
            keep,
            fd,
            ino: meta.ino(),
            mode: meta.mode(),
        }
    }

    /// Panics unless the victim still has its owner (root) and mode.
    fn assert_untouched(&self, what: &str) {
        let st = rustix::fs::fstat(&self.fd).unwrap();
        assert_eq!(
            (st.st_uid, st.st_gid),
            (0, 0),
            "{what}: the victim {} was given the client's owner",
            self.name
        );
        assert_eq!(st.st_mode, self.mode, "{what}: victim {} mode", self.name);
        if self.keep.is_none() {
            // A directory victim still holds its file, wherever its name ended up.
            let f = rustix::fs::statat(&self.fd, "f", AtFlags::SYMLINK_NOFOLLOW).unwrap();
            assert_eq!(f.st_uid, 0, "{what}: the victim's file was given an owner");
        }
    }
}

/// Inode number of `name` in `dir`, if it exists.
fn ino_at(dir: &OwnedFd, name: &str) -> Option<u64> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .ok()
        .map(|st| st.st_ino)
}

/// Swaps `d/new` with each victim in turn until `stop`; returns how many swaps succeeded.
/// A victim whose name a client UnlinkAt removed (while it was named `new`) is linked back
/// from its kept name, so the race keeps going against the real victim.
fn racer(
    dir: PathBuf,
    victims: Vec<(&'static str, u64, Option<PathBuf>)>,
    stop: Arc<AtomicBool>,
) -> u64 {
    let d = rustix::fs::open(
        &dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    let mut swaps = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for (name, ino, keep) in &victims {
            if rustix::fs::renameat_with(&d, "new", &d, *name, RenameFlags::EXCHANGE).is_ok() {
                swaps += 1;
            }
            let Some(keep) = keep else { continue };
            if ino_at(&d, "new") != Some(*ino) && ino_at(&d, name) != Some(*ino) {
                let _ = rustix::fs::unlinkat(&d, *name, AtFlags::empty());
                let _ = rustix::fs::linkat(rustix::fs::CWD, keep, &d, *name, AtFlags::empty());
            }
        }
    }
    swaps
}

/// Runs `rounds` rounds of `round` (a client create of `new` owned by 1000:1000 and its
/// removal, both allowed to fail) against the racer, then checks every victim. `setup`
/// makes the victims in the race directory `d` (root-owned 0755).
fn race(
    extra: &[&str],
    what: &str,
    rounds: usize,
    setup: impl FnOnce(&Path) -> Vec<&'static str>,
    mut round: impl FnMut(&ControlFd) -> bool,
) {
    let gofer = Gofer::start(GOFER, extra);
    let dir = gofer.root().join("d");
    let keep_dir = gofer.root().join("keep");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(&keep_dir).unwrap();
    let victims: Vec<Victim> = setup(&dir)
        .into_iter()
        .map(|name| Victim::new(name, &dir, &keep_dir))
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let handle = {
        let list = victims
            .iter()
            .map(|v| (v.name, v.ino, v.keep.clone()))
            .collect();
        let (dir, stop) = (dir.clone(), Arc::clone(&stop));
        thread::spawn(move || racer(dir, list, stop))
    };

    let client = gofer.client();
    let (status, mut inodes) = client.root().walk(&["d"]).unwrap();
    assert_eq!(status, WalkStatus::Success);
    let d = inodes.pop().unwrap().fd;
    let mut created = 0usize;
    for _ in 0..rounds {
        created += usize::from(round(&d));
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = handle.join().unwrap();

    assert!(created > 0, "{what}: no create succeeded");
    assert!(swaps > 0, "{what}: the racer never swapped: no real race");
    for victim in &victims {
        victim.assert_untouched(what);
    }
}

fn owner() -> Owner {
    Owner::new(CLIENT, CLIENT)
}

/// A root-owned 0755 regular file named `victim` in `dir`.
fn victim_file(dir: &Path) -> Vec<&'static str> {
    fs::write(dir.join("victim"), b"root's").unwrap();
    fs::set_permissions(dir.join("victim"), fs::Permissions::from_mode(0o755)).unwrap();
    vec!["victim"]
}

#[test]
fn mkdir_never_gives_a_swapped_in_directory_the_clients_owner() {
    race(
        &[],
        "MkdirAt",
        10_000,
        |dir| {
            // Not empty, so a client UnlinkAt of the swapped-in victim fails (ENOTEMPTY).
            let victim = dir.join("victim");
            fs::create_dir(&victim).unwrap();
            fs::set_permissions(&victim, fs::Permissions::from_mode(0o700)).unwrap();
            fs::write(victim.join("f"), b"private").unwrap();
            vec!["victim"]
        },
        |d| {
            let ok = d.mkdir_at("new", 0o755, owner()).is_ok();
            let _ = d.unlink_at("new", AT_REMOVEDIR);
            ok
        },
    );
}

#[test]
fn symlink_never_gives_a_swapped_in_file_or_link_the_clients_owner() {
    race(
        &[],
        "SymlinkAt",
        2_000,
        |dir| {
            victim_file(dir);
            // A root-owned symlink: the kind a re-lookup of the new name would accept.
            symlink("target", dir.join("victim-link")).unwrap();
            vec!["victim", "victim-link"]
        },
        |d| {
            let ok = d.symlink_at("new", "target", owner()).is_ok();
            let _ = d.unlink_at("new", 0);
            ok
        },
    );
}

#[test]
fn open_create_never_gives_a_swapped_in_file_the_clients_owner() {
    race(&[], "OpenCreateAt", 2_000, victim_file, |d| {
        let ok = d.open_create_at("new", O_RDWR, 0o644, owner()).is_ok();
        let _ = d.unlink_at("new", 0);
        ok
    });
}

#[test]
fn mknod_never_gives_a_swapped_in_file_the_clients_owner() {
    race(&[], "MknodAt", 2_000, victim_file, |d| {
        let ok = d.mknod_at("new", S_IFREG | 0o644, 0, 0, owner()).is_ok();
        let _ = d.unlink_at("new", 0);
        ok
    });
}

#[test]
fn bind_never_gives_a_swapped_in_socket_the_clients_owner() {
    let mut listener = None;
    race(
        &["--host-uds", "create"],
        "BindAt",
        2_000,
        |dir| {
            // A root-owned socket file: the kind a re-lookup of the new name would accept.
            listener = Some(UnixListener::bind(dir.join("victim")).unwrap());
            fs::set_permissions(dir.join("victim"), fs::Permissions::from_mode(0o755)).unwrap();
            vec!["victim"]
        },
        |d| {
            let ok = d.bind_at("new", SOCK_STREAM, 0o755, owner()).is_ok();
            let _ = d.unlink_at("new", 0);
            ok
        },
    );
}
