//! Walking: one component at a time, never following a host symlink, never leaving the
//! root, serving devices as inert nodes and refusing (by default) other mounts.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::symlink;

use common::*;
use lisafs_gofer::host::{FileKind, HostOptions};
use lisafs_gofer::wire::Errno;
use lisafs_server::Backend;
use rustix::fs::{FileType, Mode};

#[test]
fn walk_returns_each_component_with_its_stat() {
    let fx = Fixture::new();
    std::fs::create_dir_all(fx.path("a/b")).unwrap();
    std::fs::write(fx.path("a/b/f"), b"x").unwrap();
    let a = fx.walk(&fx.root, "a").unwrap();
    let b = fx.walk(&a.file, "b").unwrap();
    let f = fx.walk(&b.file, "f").unwrap();
    assert_eq!(a.file.kind(), FileKind::Directory);
    assert_eq!(f.file.kind(), FileKind::Regular);
    assert_eq!(f.stat.size, 1);
    assert_eq!(
        f.stat.ino,
        std::os::unix::fs::MetadataExt::ino(&lstat(&fx.path("a/b/f")))
    );
    assert_eq!(
        f.stat.mask & 0x7ff,
        0x7ff,
        "basic stats and btime are requested"
    );
}

#[test]
fn walk_of_a_missing_name_is_enoent() {
    let fx = Fixture::new();
    assert_eq!(errno(fx.walk(&fx.root, "nope")), Errno::ENOENT);
}

#[test]
fn walk_through_a_regular_file_is_enotdir() {
    let fx = Fixture::new();
    let f = fx.file(&fx.root, "f", b"");
    assert_eq!(errno(fx.walk(&f.file, "x")), Errno::ENOTDIR);
}

#[test]
fn symlinks_are_returned_as_themselves_and_cannot_be_walked_through() {
    let fx = Fixture::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"s").unwrap();
    symlink("/", fx.path("to_root")).unwrap();
    symlink("..", fx.path("to_parent")).unwrap();
    symlink(outside.path(), fx.path("absolute")).unwrap();
    symlink("to_parent", fx.path("chain")).unwrap();
    for name in ["to_root", "to_parent", "absolute", "chain"] {
        let link = fx.walk(&fx.root, name).unwrap();
        assert_eq!(link.file.kind(), FileKind::Symlink, "{name}");
        assert_eq!(file_type(link.stat.mode), 0o120_000, "{name}");
        // The server would pass the symlink as a directory: the host refuses.
        assert_eq!(
            errno(fx.walk(&link.file, "secret")),
            Errno::ENOTDIR,
            "{name}"
        );
        assert_eq!(errno(fx.walk(&link.file, "etc")), Errno::ENOTDIR, "{name}");
        // Opening a symlink is refused too, so its target is never reached.
        assert_eq!(
            errno(fx.backend.open(&link.file, RDONLY)),
            Errno::EINVAL,
            "{name}"
        );
    }
}

#[test]
fn a_directory_swapped_for_a_symlink_stops_the_walk() {
    let fx = Fixture::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(outside.path().join("d")).unwrap();
    std::fs::create_dir(fx.path("d")).unwrap();
    // A host process replaces the directory by a symlink to the outside.
    std::fs::remove_dir(fx.path("d")).unwrap();
    symlink(outside.path(), fx.path("d")).unwrap();
    let d = fx.walk(&fx.root, "d").unwrap();
    assert_eq!(d.file.kind(), FileKind::Symlink);
    assert_eq!(errno(fx.walk(&d.file, "d")), Errno::ENOTDIR);
}

#[test]
fn devices_are_walkable_but_never_opened() {
    let fx = Fixture::new();
    let dir = rustix::fs::open(fx.dir.path(), rustix::fs::OFlags::PATH, Mode::empty()).unwrap();
    let loop0 = rustix::fs::makedev(7, 0);
    rustix::fs::mknodat(
        &dir,
        "blk",
        FileType::BlockDevice,
        Mode::from_raw_mode(0o600),
        loop0,
    )
    .unwrap();
    let null = rustix::fs::makedev(1, 3);
    rustix::fs::mknodat(
        &dir,
        "null",
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        null,
    )
    .unwrap();
    let blk = fx.walk(&fx.root, "blk").unwrap();
    assert_eq!(blk.file.kind(), FileKind::BlockDevice);
    assert_eq!((blk.stat.rdev_major, blk.stat.rdev_minor), (7, 0));
    for flags in [RDONLY, RDWR] {
        assert_eq!(errno(fx.backend.open(&blk.file, flags)), Errno::EPERM);
    }
    let null = fx.walk(&fx.root, "null").unwrap();
    assert_eq!(null.file.kind(), FileKind::CharDevice);
    assert_eq!((null.stat.rdev_major, null.stat.rdev_minor), (1, 3));
    assert_eq!(errno(fx.backend.open(&null.file, RDONLY)), Errno::EPERM);
}

#[test]
fn a_renamed_root_keeps_serving_the_original_directory() {
    let parent = tempfile::tempdir().unwrap();
    let root_path = parent.path().join("root");
    std::fs::create_dir(&root_path).unwrap();
    std::fs::write(root_path.join("inside"), b"in").unwrap();
    let backend = lisafs_gofer::host::HostBackend::new(&root_path, HostOptions::default()).unwrap();
    std::fs::rename(&root_path, parent.path().join("moved")).unwrap();
    symlink("/", &root_path).unwrap();
    let root = backend.mount().unwrap().root.file;
    assert!(backend.walk(&root, n("inside")).is_ok());
    assert_eq!(errno(backend.walk(&root, n("etc"))), Errno::ENOENT);
}

#[test]
fn mount_donates_a_read_only_directory_fd_only_when_asked() {
    let fx = Fixture::new();
    assert!(fx.backend.mount().unwrap().donated.is_none());
    let options = HostOptions {
        donate_mount_fd: true,
        ..HostOptions::default()
    };
    let fx = Fixture::with(options);
    let mounted = fx.backend.mount().unwrap();
    let fd = mounted.donated.unwrap();
    let status = rustix::fs::fcntl_getfl(&fd).unwrap();
    assert!(!status.contains(rustix::fs::OFlags::PATH));
    assert_eq!(
        status & rustix::fs::OFlags::ACCMODE,
        rustix::fs::OFlags::RDONLY
    );
    assert_eq!(fd_path(&fd), fx.dir.path().canonicalize().unwrap());
    assert_eq!(file_type(mounted.root.stat.mode), 0o040_000);
}

#[test]
fn a_root_that_is_missing_or_not_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), b"").unwrap();
    let missing =
        lisafs_gofer::host::HostBackend::new(&dir.path().join("nope"), HostOptions::default());
    assert_eq!(
        missing.unwrap_err().raw_os_error(),
        Some(rustix::io::Errno::NOENT.raw_os_error())
    );
    let file =
        lisafs_gofer::host::HostBackend::new(&dir.path().join("file"), HostOptions::default());
    assert_eq!(
        file.unwrap_err().raw_os_error(),
        Some(rustix::io::Errno::NOTDIR.raw_os_error())
    );
}

/// Mounts a tmpfs below the root in a private mount namespace of this thread: walking
/// onto it is EXDEV by default and allowed with `allow_submounts`, where Getdents reports
/// the submount's own device.
#[test]
#[allow(unsafe_code)]
fn submounts_are_refused_unless_allowed() {
    use rustix::mount::{
        mount, mount_change, unmount, MountFlags, MountPropagationFlags, UnmountFlags,
    };
    use rustix::thread::{unshare_unsafe, UnshareFlags};
    // SAFETY: only NEWNS (with the FS attributes it implies) is unshared; the FD table
    // stays shared, so no thread can observe FDs from another table.
    unsafe { unshare_unsafe(UnshareFlags::NEWNS) }.unwrap();
    // Nothing done here may propagate to the host's mount namespace.
    mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let sub = dir.path().join("sub");
    mount("none", &sub, "tmpfs", MountFlags::empty(), None).unwrap();
    std::fs::write(sub.join("f"), b"").unwrap();
    // A file can be a mount point too, as a runtime's bind-mounted /etc/hosts is.
    std::fs::write(dir.path().join("hosts"), b"").unwrap();
    mount(
        sub.join("f"),
        dir.path().join("hosts"),
        "",
        MountFlags::BIND,
        None,
    )
    .unwrap();

    let strict = lisafs_gofer::host::HostBackend::new(dir.path(), HostOptions::default()).unwrap();
    let root = strict.mount().unwrap().root.file;
    assert_eq!(errno(strict.walk(&root, n("sub"))), Errno::EXDEV);

    let options = HostOptions {
        allow_submounts: true,
        ..HostOptions::default()
    };
    let open = lisafs_gofer::host::HostBackend::new(dir.path(), options).unwrap();
    let root = open.mount().unwrap().root;
    let sub_node = open.walk(&root.file, n("sub")).unwrap();
    assert!(open.walk(&sub_node.file, n("f")).is_ok());
    assert_ne!(
        (sub_node.stat.dev_major, sub_node.stat.dev_minor),
        (root.stat.dev_major, root.stat.dev_minor)
    );
    let listing = open.open(&root.file, RDONLY).unwrap().open;
    let entries = open.getdents(&listing, true, 65536).unwrap();
    let entry = entries.iter().find(|e| e.name == b"sub").unwrap();
    assert_eq!(
        (entry.dev_major, entry.dev_minor),
        (sub_node.stat.dev_major, sub_node.stat.dev_minor)
    );
    let hosts = entries.iter().find(|e| e.name == b"hosts").unwrap();
    assert_eq!(
        (hosts.dev_major, hosts.dev_minor),
        (sub_node.stat.dev_major, sub_node.stat.dev_minor),
        "a file mount point reports its own device"
    );

    drop((root, sub_node, listing, open, strict));
    unmount(dir.path().join("hosts"), UnmountFlags::DETACH).unwrap();
    unmount(&sub, UnmountFlags::DETACH).unwrap();
}
