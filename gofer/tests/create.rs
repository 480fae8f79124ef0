//! Creating and removing names: exact modes, set-ID policy, owners, mknod policy, links,
//! renames, and the containment check on a directory moved out of the root.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;
use lisafs_gofer::host::{FileKind, HostOptions, MknodKind, MknodKinds};
use lisafs_gofer::wire::{Errno, Gid, Uid};
use lisafs_server::{Backend, Create};

const RENAME_NOREPLACE: u32 = 1;
const RENAME_EXCHANGE: u32 = 2;
const AT_REMOVEDIR: u32 = 0x200;

#[test]
fn create_makes_an_open_file_with_the_exact_mode() {
    let fx = Fixture::new();
    let (node, opened) = fx
        .backend
        .create(&fx.root, n("f"), attrs(0o640), RDWR)
        .unwrap();
    assert_eq!(node.file.kind(), FileKind::Regular);
    assert_eq!(node.stat.mode, 0o100_640);
    assert_eq!(lstat(&fx.path("f")).mode(), 0o100_640);
    assert!(opened.open.readable() && opened.open.writable());
    // The donated FD is a real (not O_PATH) FD of the new file, with the requested access.
    let donated = opened.donated.unwrap();
    assert_eq!(rustix::io::pwrite(&donated, b"hi", 0).unwrap(), 2);
    assert_eq!(std::fs::read(fx.path("f")).unwrap(), b"hi");
    assert_eq!(fd_path(&donated), fx.path("f").canonicalize().unwrap());
}

#[test]
fn create_is_exclusive_and_never_follows_a_symlink() {
    let fx = Fixture::new();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path().join("new"), fx.path("abs")).unwrap();
    std::fs::write(fx.path("exists"), b"keep").unwrap();
    assert_eq!(
        errno(fx.backend.create(&fx.root, n("abs"), attrs(0o644), RDWR)),
        Errno::EEXIST
    );
    assert_eq!(
        errno(fx.backend.create(&fx.root, n("exists"), attrs(0o644), RDWR)),
        Errno::EEXIST
    );
    assert!(!outside.path().join("new").exists());
    assert_eq!(std::fs::read(fx.path("exists")).unwrap(), b"keep");
}

#[test]
fn create_write_only_gives_a_write_only_open_file() {
    let fx = Fixture::new();
    let (_, opened) = fx
        .backend
        .create(&fx.root, n("w"), attrs(0o600), WRONLY)
        .unwrap();
    assert!(!opened.open.readable() && opened.open.writable());
    let mut buf = [0u8; 4];
    assert_eq!(
        errno(fx.backend.read(&opened.open, 0, &mut buf)),
        Errno::EBADF
    );
}

#[test]
fn mkdir_symlink_and_mknod_create_what_they_say() {
    let fx = Fixture::new();
    let d = fx.mkdir(&fx.root, "d", 0o750).unwrap();
    assert_eq!(d.file.kind(), FileKind::Directory);
    assert_eq!(lstat(&fx.path("d")).mode(), 0o040_750);
    let l = fx
        .backend
        .symlink(&d.file, n("l"), b"../../etc/passwd", Uid::NONE, Gid::NONE)
        .unwrap();
    assert_eq!(l.file.kind(), FileKind::Symlink);
    assert_eq!(fx.backend.readlink(&l.file).unwrap(), b"../../etc/passwd");
    let r = fx
        .backend
        .mknod(&d.file, n("r"), attrs(0o100_604), 0, 0)
        .unwrap();
    assert_eq!(r.stat.mode, 0o100_604);
    let w = fx
        .backend
        .mknod(&d.file, n("w"), attrs(0o020_000), 0, 0)
        .unwrap();
    assert_eq!(w.file.kind(), FileKind::CharDevice);
    assert_eq!((w.stat.rdev_major, w.stat.rdev_minor), (0, 0));
}

#[test]
fn mknod_allows_only_regular_files_and_whiteouts() {
    let fx = Fixture::new();
    let refused = [
        (0o020_644, 1, 3), // /dev/null
        (0o020_644, 0, 1), // a char device other than 0:0
        (0o060_644, 7, 0), // block device
        (0o060_644, 0, 0), // block device 0:0
        (0o010_644, 0, 0), // FIFO
        (0o140_644, 0, 0), // socket
        (0o040_755, 0, 0), // directory
        (0o000_644, 0, 0), // no type bits
        (0o120_777, 0, 0), // symlink
    ];
    for (mode, major, minor) in refused {
        let result = fx
            .backend
            .mknod(&fx.root, n("x"), attrs(mode), major, minor);
        assert_eq!(errno(result), Errno::EPERM, "mode {mode:o} {major}:{minor}");
        assert!(!fx.path("x").exists());
    }
}

#[test]
fn empty_and_nul_symlink_targets_fail_and_leave_nothing() {
    let fx = Fixture::new();
    assert_eq!(
        errno(
            fx.backend
                .symlink(&fx.root, n("l"), b"", Uid::NONE, Gid::NONE)
        ),
        Errno::ENOENT
    );
    assert_eq!(
        errno(
            fx.backend
                .symlink(&fx.root, n("l"), b"a\0b", Uid::NONE, Gid::NONE)
        ),
        Errno::EINVAL
    );
    assert!(std::fs::symlink_metadata(fx.path("l")).is_err());
}

#[test]
fn setid_bits_are_stripped_unless_allowed() {
    let fx = Fixture::new();
    let (f, _) = fx
        .backend
        .create(&fx.root, n("f"), attrs(0o7755), RDWR)
        .unwrap();
    assert_eq!(
        f.stat.mode, 0o100_755,
        "setuid, setgid and sticky removed on a file"
    );
    let d = fx.mkdir(&fx.root, "d", 0o7775).unwrap();
    assert_eq!(d.stat.mode, 0o041_775, "sticky kept on a directory");
    let m = fx
        .backend
        .mknod(&fx.root, n("m"), attrs(0o106_755), 0, 0)
        .unwrap();
    assert_eq!(m.stat.mode, 0o100_755);

    let options = HostOptions {
        allow_setid: true,
        ..HostOptions::default()
    };
    let fx = Fixture::with(options);
    let (f, _) = fx
        .backend
        .create(&fx.root, n("f"), attrs(0o6755), RDWR)
        .unwrap();
    assert_eq!(f.stat.mode, 0o106_755);
}

#[test]
fn client_owners_are_applied_and_none_leaves_them() {
    let fx = Fixture::new();
    assert!(fx.backend.can_chown(), "the tests run as root");
    let owned = Create {
        mode: 0o644,
        uid: Uid(1234),
        gid: Gid(5678),
    };
    let (f, _) = fx.backend.create(&fx.root, n("f"), owned, RDWR).unwrap();
    assert_eq!((f.stat.uid, f.stat.gid), (1234, 5678));
    let d = fx
        .backend
        .mkdir(
            &fx.root,
            n("d"),
            Create {
                uid: Uid::NONE,
                ..owned
            },
        )
        .unwrap();
    assert_eq!((d.stat.uid, d.stat.gid), (0, 5678));
    let l = fx
        .backend
        .symlink(&fx.root, n("l"), b"t", Uid(42), Gid::NONE)
        .unwrap();
    assert_eq!((l.stat.uid, l.stat.gid), (42, 0));
    assert_eq!(
        lstat(&fx.path("l")).uid(),
        42,
        "the link itself, not its target"
    );
}

#[test]
fn setid_bits_survive_the_owner_change_when_allowed() {
    let options = HostOptions {
        allow_setid: true,
        ..HostOptions::default()
    };
    let fx = Fixture::with(options);
    let owned = Create {
        mode: 0o4755,
        uid: Uid(1000),
        gid: Gid(1000),
    };
    let (f, _) = fx.backend.create(&fx.root, n("f"), owned, RDWR).unwrap();
    assert_eq!(f.stat.mode, 0o104_755);
    assert_eq!(f.stat.uid, 1000);
}

#[test]
fn link_makes_a_second_name_for_the_same_inode() {
    let fx = Fixture::new();
    let f = fx.file(&fx.root, "f", b"data");
    let d = fx.mkdir(&fx.root, "d", 0o755).unwrap();
    let linked = fx.backend.link(&d.file, n("g"), &f.file).unwrap();
    assert_eq!(linked.stat.ino, f.stat.ino);
    assert_eq!(linked.stat.nlink, 2);
    assert_eq!(std::fs::read(fx.path("d/g")).unwrap(), b"data");
    // A symlink target links the symlink itself.
    let l = fx
        .backend
        .symlink(&fx.root, n("l"), b"f", Uid::NONE, Gid::NONE)
        .unwrap();
    let l2 = fx.backend.link(&fx.root, n("l2"), &l.file).unwrap();
    assert_eq!(l2.file.kind(), FileKind::Symlink);
    assert_eq!(std::fs::read_link(fx.path("l2")).unwrap().as_os_str(), "f");
    // Directories cannot be linked; an existing name is EEXIST.
    assert_eq!(
        errno(fx.backend.link(&fx.root, n("d2"), &d.file)),
        Errno::EPERM
    );
    assert_eq!(
        errno(fx.backend.link(&fx.root, n("l2"), &f.file)),
        Errno::EEXIST
    );
}

#[test]
fn unlink_removes_files_and_directories() {
    let fx = Fixture::new();
    fx.file(&fx.root, "f", b"");
    fx.mkdir(&fx.root, "d", 0o755).unwrap();
    assert_eq!(errno(fx.backend.unlink(&fx.root, n("d"), 0)), Errno::EISDIR);
    assert_eq!(
        errno(fx.backend.unlink(&fx.root, n("f"), AT_REMOVEDIR)),
        Errno::ENOTDIR
    );
    fx.backend.unlink(&fx.root, n("f"), 0).unwrap();
    fx.backend.unlink(&fx.root, n("d"), AT_REMOVEDIR).unwrap();
    assert_eq!(errno(fx.backend.unlink(&fx.root, n("f"), 0)), Errno::ENOENT);
    assert_eq!(std::fs::read_dir(fx.dir.path()).unwrap().count(), 0);
}

#[test]
fn rename_moves_exchanges_and_refuses_to_replace_when_asked() {
    let fx = Fixture::new();
    fx.file(&fx.root, "a", b"A");
    fx.file(&fx.root, "b", b"B");
    let d = fx.mkdir(&fx.root, "d", 0o755).unwrap();
    let noreplace = fx
        .backend
        .rename(&fx.root, n("a"), &fx.root, n("b"), RENAME_NOREPLACE);
    assert_eq!(errno(noreplace), Errno::EEXIST);
    fx.backend
        .rename(&fx.root, n("a"), &fx.root, n("b"), RENAME_EXCHANGE)
        .unwrap();
    assert_eq!(std::fs::read(fx.path("a")).unwrap(), b"B");
    assert_eq!(std::fs::read(fx.path("b")).unwrap(), b"A");
    fx.backend
        .rename(&fx.root, n("a"), &d.file, n("moved"), 0)
        .unwrap();
    assert_eq!(std::fs::read(fx.path("d/moved")).unwrap(), b"B");
    let missing = fx
        .backend
        .rename(&fx.root, n("a"), &fx.root, n("c"), RENAME_EXCHANGE);
    assert_eq!(errno(missing), Errno::ENOENT);
    let bad_flags = fx
        .backend
        .rename(&fx.root, n("b"), &fx.root, n("c"), 0x8000_0000);
    assert_eq!(errno(bad_flags), Errno::EINVAL);
}

#[test]
fn a_directory_moved_out_of_the_root_refuses_changes() {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("root");
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    let backend = lisafs_gofer::host::HostBackend::new(&root, HostOptions::default()).unwrap();
    let root_node = backend.mount().unwrap().root.file;
    let a = backend.walk(&root_node, n("a")).unwrap().file;
    let b = backend.walk(&a, n("b")).unwrap().file;
    backend.mkdir(&b, n("before"), attrs(0o755)).unwrap();
    // A host process moves the subtree out of the share.
    std::fs::rename(root.join("a"), parent.path().join("a")).unwrap();
    assert_eq!(
        errno(backend.mkdir(&b, n("after"), attrs(0o755))),
        Errno::EXDEV
    );
    assert_eq!(
        errno(backend.create(&a, n("f"), attrs(0o644), RDWR)),
        Errno::EXDEV
    );
    assert_eq!(
        errno(backend.unlink(&b, n("before"), AT_REMOVEDIR)),
        Errno::EXDEV
    );
    assert_eq!(
        errno(backend.rename(&b, n("before"), &root_node, n("x"), 0)),
        Errno::EXDEV
    );
    assert!(!parent.path().join("a/b/after").exists());
    // Moved back, it works again; the root itself always passes.
    std::fs::rename(parent.path().join("a"), root.join("a")).unwrap();
    backend.mkdir(&b, n("after"), attrs(0o755)).unwrap();
    backend.mkdir(&root_node, n("top"), attrs(0o755)).unwrap();
}

#[test]
fn the_process_umask_does_not_change_modes() {
    let fx = Fixture::new();
    // HostBackend::new set the umask to 0; a created directory gets exactly its mode.
    let d = fx.mkdir(&fx.root, "d", 0o777).unwrap();
    assert_eq!(d.stat.mode & 0o777, 0o777);
    assert_eq!(lstat(&fx.path("d")).permissions().mode() & 0o777, 0o777);
}

/// Create attributes with `mode` owned by `uid`:`gid`.
fn owned(mode: u32, uid: u32, gid: u32) -> Create {
    Create {
        mode,
        uid: Uid(uid),
        gid: Gid(gid),
    }
}

/// This thread's filesystem UID and GID (the fourth field of `Uid:`/`Gid:`) and its
/// effective capabilities, as the kernel reports them.
fn thread_creds() -> (String, String, String) {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    let field = |key: &str, index: usize| {
        let line = status.lines().find_map(|l| l.strip_prefix(key)).unwrap();
        line.split_whitespace().nth(index).unwrap().to_owned()
    };
    (field("Uid:", 3), field("Gid:", 3), field("CapEff:", 0))
}

#[test]
fn every_kind_of_create_gets_exactly_the_clients_owner() {
    let fx = Fixture::with(HostOptions {
        uds_create: true,
        ..HostOptions::default()
    });
    let (f, _) = fx
        .backend
        .create(&fx.root, n("f"), owned(0o644, 1001, 2001), RDWR)
        .unwrap();
    let d = fx
        .backend
        .mkdir(&fx.root, n("d"), owned(0o755, 1002, 2002))
        .unwrap();
    let l = fx
        .backend
        .symlink(&fx.root, n("l"), b"f", Uid(1003), Gid(2003))
        .unwrap();
    let r = fx
        .backend
        .mknod(&fx.root, n("r"), owned(0o100_600, 1004, 2004), 0, 0)
        .unwrap();
    let w = fx
        .backend
        .mknod(&fx.root, n("w"), owned(0o020_000, 1005, 2005), 0, 0)
        .unwrap();
    let (s, _socket, _donated) = fx
        .backend
        .bind(&fx.root, n("s"), 1, owned(0o755, 1006, 2006))
        .unwrap();
    for (name, node, id) in [
        ("f", &f, 1001),
        ("d", &d, 1002),
        ("l", &l, 1003),
        ("r", &r, 1004),
        ("w", &w, 1005),
        ("s", &s, 1006),
    ] {
        assert_eq!((node.stat.uid, node.stat.gid), (id, id + 1000), "{name}");
        let host = lstat(&fx.path(name));
        assert_eq!(
            (host.uid(), host.gid()),
            (id, id + 1000),
            "{name} on the host"
        );
    }
    // The modes are exact: no set-ID bit appeared or vanished with the owner.
    assert_eq!(f.stat.mode, 0o100_644);
    assert_eq!(d.stat.mode, 0o040_755);
    assert_eq!(r.stat.mode, 0o100_600);
}

#[test]
fn a_client_owner_keeps_the_gofers_permission_semantics() {
    let fx = Fixture::new();
    // Root-owned and closed to user 1000: creating there as 1000 works all the same,
    // because the client, not the host, checks permissions.
    let sealed = fx.mkdir(&fx.root, "sealed", 0o755).unwrap();
    let private = fx.mkdir(&fx.root, "private", 0o700).unwrap();
    assert_eq!(lstat(&fx.path("sealed")).uid(), 0);
    let (f, opened) = fx
        .backend
        .create(&sealed.file, n("f"), owned(0o600, 1000, 1000), RDWR)
        .unwrap();
    assert_eq!((f.stat.uid, f.stat.gid), (1000, 1000));
    assert_eq!(fx.backend.write(&opened.open, 0, b"x").unwrap(), 1);
    let sub = fx
        .backend
        .mkdir(&private.file, n("sub"), owned(0o000, 1000, 1000))
        .unwrap();
    // Even a directory its new owner may not write to takes a file from the gofer.
    fx.backend
        .symlink(&sub.file, n("l"), b"t", Uid(1000), Gid(1000))
        .unwrap();
    assert_eq!(lstat(&fx.path("private/sub/l")).uid(), 1000);
}

#[test]
fn the_threads_credentials_are_restored_after_every_create() {
    let fx = Fixture::new();
    let before = thread_creds();
    assert_eq!((before.0.as_str(), before.1.as_str()), ("0", "0"));
    fx.backend
        .mkdir(&fx.root, n("d"), owned(0o755, 1000, 1000))
        .unwrap();
    assert_eq!(thread_creds(), before, "after a mkdir");
    fx.backend
        .create(&fx.root, n("f"), owned(0o644, 1000, 1000), RDWR)
        .unwrap();
    assert_eq!(thread_creds(), before, "after a create");
    // Failing creates (the name exists) restore them as well.
    assert_eq!(
        errno(fx.backend.mkdir(&fx.root, n("d"), owned(0o755, 1000, 1000))),
        Errno::EEXIST
    );
    assert_eq!(thread_creds(), before, "after a failed mkdir");
    assert_eq!(
        errno(
            fx.backend
                .create(&fx.root, n("f"), owned(0o644, 1000, 1000), RDWR)
        ),
        Errno::EEXIST
    );
    assert_eq!(thread_creds(), before, "after a failed create");
    assert_eq!(
        errno(
            fx.backend
                .symlink(&fx.root, n("f"), b"t", Uid(1000), Gid::NONE)
        ),
        Errno::EEXIST
    );
    assert_eq!(thread_creds(), before, "after a failed symlink");
}

/// A fixture whose MknodAt may create `kinds` (everything else default).
fn mknod_fixture(kinds: MknodKinds) -> Fixture {
    Fixture::with(HostOptions {
        mknod: kinds,
        ..HostOptions::default()
    })
}

/// The special nodes MknodAt may be asked for: the `--mknod` kind, a mode, a device number,
/// and the kind of file it makes.
const SPECIAL: [(MknodKind, u32, u32, u32, FileKind); 4] = [
    (MknodKind::Fifo, 0o010_640, 0, 0, FileKind::Fifo),
    (MknodKind::Socket, 0o140_640, 0, 0, FileKind::Socket),
    (MknodKind::Char, 0o020_640, 1, 3, FileKind::CharDevice),
    (MknodKind::Block, 0o060_640, 7, 0, FileKind::BlockDevice),
];

#[test]
fn mknod_creates_exactly_the_kinds_allowed() {
    for (allowed, ..) in SPECIAL {
        let fx = mknod_fixture(MknodKinds::from_list(&[allowed]));
        for (kind, mode, major, minor, file_kind) in SPECIAL {
            let result = fx
                .backend
                .mknod(&fx.root, n("x"), owned(mode, 1000, 1001), major, minor);
            if kind != allowed {
                assert_eq!(errno(result), Errno::EPERM, "{kind:?} with {allowed:?}");
                assert!(std::fs::symlink_metadata(fx.path("x")).is_err());
                continue;
            }
            let node = result.unwrap();
            assert_eq!(node.file.kind(), file_kind);
            assert_eq!(u32::from(node.stat.mode), mode, "{kind:?}");
            assert_eq!((node.stat.rdev_major, node.stat.rdev_minor), (major, minor));
            // The owner came with the create, as for every other file.
            let host = lstat(&fx.path("x"));
            assert_eq!((host.mode(), host.uid(), host.gid()), (mode, 1000, 1001));
            assert_eq!(host.rdev(), rustix::fs::makedev(major, minor));
            std::fs::remove_file(fx.path("x")).unwrap();
        }
        // Regular files and whiteouts stay allowed whatever the list.
        fx.backend
            .mknod(&fx.root, n("r"), attrs(0o100_644), 0, 0)
            .unwrap();
        fx.backend
            .mknod(&fx.root, n("w"), attrs(0o020_000), 0, 0)
            .unwrap();
    }
}

#[test]
fn created_special_nodes_stay_inert_for_the_gofer() {
    let all = MknodKinds::from_list(&[
        MknodKind::Fifo,
        MknodKind::Socket,
        MknodKind::Char,
        MknodKind::Block,
    ]);
    let fx = mknod_fixture(all);
    for (_, mode, major, minor, _) in SPECIAL {
        let node = fx
            .backend
            .mknod(&fx.root, n("x"), attrs(mode), major, minor)
            .unwrap();
        // Without --host-fifo / --host-uds nothing can be opened; a device never can.
        for flags in [RDONLY, WRONLY, RDWR] {
            assert_eq!(
                errno(fx.backend.open(&node.file, flags)),
                Errno::EPERM,
                "mode {mode:o}"
            );
        }
        std::fs::remove_file(fx.path("x")).unwrap();
    }
    // A character device stays unopenable even where FIFOs may be opened, and a FIFO
    // made by MknodAt opens like any host FIFO once the operator allows it.
    let fx = Fixture::with(HostOptions {
        mknod: all,
        fifo_open: true,
        ..HostOptions::default()
    });
    let c = fx
        .backend
        .mknod(&fx.root, n("null"), attrs(0o020_666), 1, 3)
        .unwrap();
    assert_eq!(errno(fx.backend.open(&c.file, RDWR)), Errno::EPERM);
    let p = fx
        .backend
        .mknod(&fx.root, n("p"), attrs(0o010_666), 0, 0)
        .unwrap();
    assert!(fx.backend.open(&p.file, RDWR).is_ok());
}
