//! Escape attempts (security.md §2 A) against the real gofer: bad names, symlinks absolute
//! and relative, `..` chains, magic links, mount crossing, and a host process racing
//! directory/symlink swaps while the client walks. The oracle is the canary directory
//! beside the root: nothing outside the root may be reached, created or changed.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use lisafs_client::{Client, Owner};
use lisafs_protocol::wire::{
    decode, encode, Errno, ErrorResp, FdId, Mid, SizedString, WalkReq, WalkResp, WalkStatus,
    MAX_MESSAGE_SIZE,
};
use lisafs_tests::{errno, Gofer};

const GOFER: &str = env!("CARGO_BIN_EXE_test-gofer");
const O_RDONLY: u32 = 0;
const O_RDWR: u32 = 2;

#[test]
fn names_that_leave_the_directory_are_einval_on_the_wire() {
    let gofer = Gofer::start(GOFER, &[]);
    fs::create_dir(gofer.root().join("d")).unwrap();
    let (mut sock, root) = gofer.mounted_raw();
    for bad in ["..", ".", "", "/", "d/..", "../out", "/etc", "d\0"] {
        let req = WalkReq {
            dir_fd: root,
            path: vec![SizedString::from("d"), SizedString::from(bad)],
        };
        sock.send(Mid::Walk.as_u16(), &encode(&req).unwrap(), &[])
            .unwrap();
        let frame = sock.recv(MAX_MESSAGE_SIZE, 0).unwrap();
        assert_eq!(frame.mid, 0, "{bad:?} was walked");
        let err = decode::<ErrorResp>(frame.payload).unwrap().errno;
        assert_eq!(err, Errno::EINVAL, "{bad:?}");
    }
    // The walks created nothing: the next FDID is 2.
    let req = WalkReq {
        dir_fd: root,
        path: vec![SizedString::from("d")],
    };
    sock.send(Mid::Walk.as_u16(), &encode(&req).unwrap(), &[])
        .unwrap();
    let resp = decode::<WalkResp>(sock.recv(MAX_MESSAGE_SIZE, 0).unwrap().payload).unwrap();
    assert_eq!(resp.inodes[0].control_fd, FdId(2));
    gofer.assert_canary_untouched();
}

#[test]
fn symlinks_end_the_walk_and_are_never_followed() {
    let gofer = Gofer::start(GOFER, &[]);
    let root = gofer.root();
    symlink("/", root.join("abs")).unwrap();
    symlink("../out", root.join("rel")).unwrap();
    symlink("/proc/self/root", root.join("magic")).unwrap();
    fs::create_dir(root.join("d")).unwrap();
    symlink("../../out/secret", root.join("d/up")).unwrap();
    let client = gofer.client();

    for (path, target) in [
        (&["abs", "etc", "passwd"][..], "/"),
        (&["rel", "secret"][..], "../out"),
        (&["magic", "etc"][..], "/proc/self/root"),
        (&["d", "up", "x"][..], "../../out/secret"),
    ] {
        let (status, inodes) = client.root().walk(path).unwrap();
        assert_eq!(status, WalkStatus::ComponentSymlink, "{path:?}");
        let link = inodes.last().unwrap();
        assert_eq!(link.stat.mode & 0o170000, 0o120000, "{path:?}");
        assert_eq!(link.fd.readlink_at().unwrap(), target.as_bytes());
        // A symlink cannot be opened, so its target is never reached.
        assert_eq!(errno(link.fd.open_at(O_RDONLY)), Errno::EINVAL, "{path:?}");
    }
    // A symlink as the last component is walked to (it is the file), not through.
    let (status, inodes) = client.root().walk(&["d", "up"]).unwrap();
    assert_eq!((status, inodes.len()), (WalkStatus::Success, 2));
    // WalkStat stops after the symlink, too.
    let stats = client.root().walk_stat(&["rel", "secret"]).unwrap();
    assert_eq!(stats.len(), 1);
    gofer.assert_canary_untouched();
}

#[test]
fn creating_through_a_symlinked_directory_is_impossible() {
    let gofer = Gofer::start(GOFER, &[]);
    symlink("../out", gofer.root().join("rel")).unwrap();
    let client = gofer.client();
    let (_, inodes) = client.root().walk(&["rel"]).unwrap();
    let link = &inodes[0].fd;
    // A symlink's ControlFd is not a directory: nothing can be created "in" it.
    assert_eq!(
        errno(link.open_create_at("evil", O_RDWR, 0o644, Owner::UNSET)),
        Errno::ENOTDIR
    );
    assert_eq!(
        errno(link.mkdir_at("evil", 0o755, Owner::UNSET)),
        Errno::ENOTDIR
    );
    assert_eq!(
        errno(link.symlink_at("evil", "x", Owner::UNSET)),
        Errno::ENOTDIR
    );
    assert_eq!(errno(link.unlink_at("secret", 0)), Errno::ENOTDIR);
    gofer.assert_canary_untouched();
}

/// Mounts a tmpfs inside the root for one test; unmounts on drop.
struct TmpfsMount(std::path::PathBuf);

impl TmpfsMount {
    fn new(at: std::path::PathBuf) -> Self {
        fs::create_dir(&at).unwrap();
        rustix::mount::mount(
            "tmpfs",
            &at,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .expect("mount tmpfs (the tests run as root)");
        fs::write(at.join("inside-mount"), b"x").unwrap();
        Self(at)
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

/// A mount inside the share when the gofer starts is part of what it serves, but walking
/// onto it is refused (EXDEV) unless `--allow-submounts`.
#[test]
fn mounts_inside_the_root_are_not_crossed_by_default() {
    let mut mount = None;
    let gofer = Gofer::start_after(GOFER, &[], |root| {
        mount = Some(TmpfsMount::new(root.join("mnt")));
    });
    let client = gofer.client();
    assert_eq!(errno(client.root().walk(&["mnt"])), Errno::EXDEV);
    assert_eq!(
        errno(client.root().walk_stat(&["mnt", "inside-mount"])),
        Errno::EXDEV
    );
    // The mount point as WalkStat's last component, which is stat'ed without a handle.
    assert_eq!(errno(client.root().walk_stat(&["mnt"])), Errno::EXDEV);
}

#[test]
fn mounts_are_crossed_with_allow_submounts() {
    let mut mount = None;
    let gofer = Gofer::start_after(GOFER, &["--allow-submounts"], |root| {
        mount = Some(TmpfsMount::new(root.join("mnt")));
    });
    let client = gofer.client();
    let (status, inodes) = client.root().walk(&["mnt", "inside-mount"]).unwrap();
    assert_eq!((status, inodes.len()), (WalkStatus::Success, 2));
    let stats = client.root().walk_stat(&["mnt"]).unwrap();
    let root_ino = fs::metadata(gofer.root().join("mnt")).unwrap().ino();
    assert_eq!(stats[0].ino, root_ino, "the mounted tmpfs's root");
}

/// A mount the host makes inside the share after start is never reached: the gofer
/// serves its own clone of the mount tree taken at start, which sees later host mounts
/// only where the host's mounts propagate (not here), and then refuses to cross them.
#[test]
fn mounts_made_after_start_are_not_reached() {
    for sandbox in ["namespace", "none"] {
        let gofer = Gofer::start(GOFER, &["--sandbox", sandbox]);
        let _mount = TmpfsMount::new(gofer.root().join("mnt"));
        let client = gofer.client();
        match client.root().walk(&["mnt", "inside-mount"]) {
            Err(err) => assert_eq!(err.errno(), Errno::EXDEV),
            Ok((status, _)) => assert_eq!(status, WalkStatus::ComponentDoesNotExist),
        }
    }
}

/// The race of security.md #1: a host process swaps a directory inside the root with a
/// symlink pointing outside, as fast as it can, while the client walks through the name,
/// opens what it finds and creates files in it. Every walk must end inside the root.
#[test]
fn a_host_racer_swapping_a_directory_for_a_symlink_never_lets_a_walk_out() {
    const ROUNDS: usize = 10_000;
    let gofer = Gofer::start(GOFER, &[]);
    let root = gofer.root();
    fs::create_dir(root.join("d")).unwrap();
    fs::write(root.join("d/f"), b"inside").unwrap();
    fs::write(gofer.outside().join("f"), b"outside").unwrap();
    symlink("../out", root.join("l")).unwrap();
    let inside_ino = std::os::unix::fs::MetadataExt::ino(&fs::metadata(root.join("d/f")).unwrap());
    let outside_ino =
        std::os::unix::fs::MetadataExt::ino(&fs::metadata(gofer.outside().join("f")).unwrap());

    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let (stop, root) = (Arc::clone(&stop), root.clone());
        thread::spawn(move || {
            let dir = fs::File::open(&root).unwrap();
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                rustix::fs::renameat_with(&dir, "d", &dir, "l", rustix::fs::RenameFlags::EXCHANGE)
                    .unwrap();
                swaps += 1;
            }
            swaps
        })
    };

    let client: Client = gofer.client();
    let (mut inside, mut blocked) = (0, 0);
    for round in 0..ROUNDS {
        match client.root().walk(&["d", "f"]) {
            Ok((WalkStatus::Success, inodes)) => {
                let file = &inodes[1];
                assert_ne!(
                    file.stat.ino, outside_ino,
                    "round {round}: walked outside the root"
                );
                assert_eq!(file.stat.ino, inside_ino);
                let opened = file.fd.open_at(O_RDONLY).unwrap();
                let mut buf = [0u8; 16];
                let n = opened.fd.pread(0, &mut buf).unwrap();
                assert_eq!(&buf[..n], b"inside");
                inside += 1;
            }
            Ok((WalkStatus::ComponentSymlink, inodes)) => {
                assert_eq!(inodes.len(), 1);
                blocked += 1;
            }
            other => panic!("round {round}: unexpected walk result {other:?}"),
        }
        if round % 10 == 0 {
            // Create through whatever "d" is now: only a real directory accepts it.
            if let Ok((WalkStatus::Success, inodes)) = client.root().walk(&["d"]) {
                let name = format!("new{round}");
                if let Ok(created) = inodes[0].fd.mkdir_at(&name, 0o755, Owner::UNSET) {
                    assert_eq!(created.stat.mode & 0o170000, 0o040000);
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = racer.join().unwrap();
    assert!(swaps > 100, "the racer barely ran ({swaps} swaps)");
    assert!(
        inside > 0 && blocked > 0,
        "inside {inside}, blocked {blocked}: no real race"
    );
    let out_names: Vec<_> = fs::read_dir(gofer.outside())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        out_names.len(),
        2,
        "something was created outside: {out_names:?}"
    );
    assert_eq!(fs::read(gofer.outside().join("secret")).unwrap(), b"canary");
    assert_eq!(fs::read(gofer.outside().join("f")).unwrap(), b"outside");
}
