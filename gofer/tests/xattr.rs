//! Extended attributes on regular files, directories, symlinks and sockets, through the
//! pinned inode (never a symlink's target).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use lisafs_gofer::host::HostOptions;
use lisafs_gofer::wire::{Errno, Gid, Uid};
use lisafs_server::Backend;

const XATTR_CREATE: u32 = 1;
const XATTR_REPLACE: u32 = 2;

#[test]
fn xattrs_round_trip_on_a_regular_file() {
    let fx = Fixture::new();
    let f = fx.file(&fx.root, "f", b"");
    fx.backend.set_xattr(&f.file, b"user.a", b"1", 0).unwrap();
    fx.backend
        .set_xattr(&f.file, b"user.k", b"value", XATTR_CREATE)
        .unwrap();
    assert_eq!(
        fx.backend.get_xattr(&f.file, b"user.k", 0).unwrap(),
        b"value"
    );
    assert_eq!(
        fx.backend.get_xattr(&f.file, b"user.k", 5).unwrap(),
        b"value"
    );
    assert_eq!(
        errno(fx.backend.get_xattr(&f.file, b"user.k", 4)),
        Errno::ERANGE
    );
    let mut names = fx.backend.list_xattr(&f.file, 0).unwrap();
    names.sort();
    assert_eq!(names, [b"user.a".to_vec(), b"user.k".to_vec()]);
    assert_eq!(errno(fx.backend.list_xattr(&f.file, 3)), Errno::ERANGE);
    // The host sees the same attribute.
    let mut buf = [0u8; 16];
    let len = rustix::fs::getxattr(fx.path("f").as_path(), "user.k", &mut buf[..]).unwrap();
    assert_eq!(&buf[..len], b"value");
    fx.backend.remove_xattr(&f.file, b"user.k").unwrap();
    assert_eq!(
        errno(fx.backend.get_xattr(&f.file, b"user.k", 0)),
        Errno::ENODATA
    );
    assert_eq!(
        errno(fx.backend.remove_xattr(&f.file, b"user.k")),
        Errno::ENODATA
    );
}

#[test]
fn create_and_replace_flags_are_passed_through() {
    let fx = Fixture::new();
    let f = fx.file(&fx.root, "f", b"");
    assert_eq!(
        errno(
            fx.backend
                .set_xattr(&f.file, b"user.x", b"1", XATTR_REPLACE)
        ),
        Errno::ENODATA
    );
    fx.backend
        .set_xattr(&f.file, b"user.x", b"1", XATTR_CREATE)
        .unwrap();
    assert_eq!(
        errno(fx.backend.set_xattr(&f.file, b"user.x", b"2", XATTR_CREATE)),
        Errno::EEXIST
    );
    fx.backend
        .set_xattr(&f.file, b"user.x", b"2", XATTR_REPLACE)
        .unwrap();
    assert_eq!(fx.backend.get_xattr(&f.file, b"user.x", 0).unwrap(), b"2");
    assert_eq!(
        errno(fx.backend.set_xattr(&f.file, b"user.x", b"3", 4)),
        Errno::EINVAL
    );
}

#[test]
fn xattrs_round_trip_on_a_directory() {
    let fx = Fixture::new();
    let d = fx.mkdir(&fx.root, "d", 0o755).unwrap();
    fx.backend
        .set_xattr(&d.file, b"user.dir", b"yes", 0)
        .unwrap();
    assert_eq!(
        fx.backend.get_xattr(&d.file, b"user.dir", 0).unwrap(),
        b"yes"
    );
    assert_eq!(
        fx.backend.list_xattr(&d.file, 0).unwrap(),
        [b"user.dir".to_vec()]
    );
    fx.backend.remove_xattr(&d.file, b"user.dir").unwrap();
    assert!(fx.backend.list_xattr(&d.file, 0).unwrap().is_empty());
}

#[test]
fn xattrs_of_a_symlink_are_the_links_own_never_the_targets() {
    let fx = Fixture::new();
    let target = fx.file(&fx.root, "target", b"");
    fx.backend
        .set_xattr(&target.file, b"user.t", b"target", 0)
        .unwrap();
    let l = fx
        .backend
        .symlink(&fx.root, n("l"), b"target", Uid::NONE, Gid::NONE)
        .unwrap();
    // Linux permits no user.* xattrs on symlinks: the link itself was reached.
    assert_eq!(
        errno(fx.backend.set_xattr(&l.file, b"user.x", b"1", 0)),
        Errno::EPERM
    );
    assert_eq!(
        errno(fx.backend.get_xattr(&l.file, b"user.t", 0)),
        Errno::ENODATA
    );
    assert!(fx
        .backend
        .list_xattr(&l.file, 0)
        .unwrap()
        .iter()
        .all(|name| name != b"user.t"));
    // trusted.* works on a symlink for root, and lands on the link.
    fx.backend
        .set_xattr(&l.file, b"trusted.x", b"link", 0)
        .unwrap();
    assert_eq!(
        fx.backend.get_xattr(&l.file, b"trusted.x", 0).unwrap(),
        b"link"
    );
    assert_eq!(
        errno(fx.backend.get_xattr(&target.file, b"trusted.x", 0)),
        Errno::ENODATA
    );
    fx.backend.remove_xattr(&l.file, b"trusted.x").unwrap();
}

#[test]
fn xattrs_reach_a_socket_file() {
    let fx = Fixture::with(HostOptions {
        uds_create: true,
        ..HostOptions::default()
    });
    let (node, _socket, _donated) = fx.backend.bind(&fx.root, n("s"), 1, attrs(0o755)).unwrap();
    assert_eq!(
        errno(fx.backend.set_xattr(&node.file, b"user.x", b"1", 0)),
        Errno::EPERM
    );
    fx.backend
        .set_xattr(&node.file, b"trusted.x", b"sock", 0)
        .unwrap();
    assert_eq!(
        fx.backend.get_xattr(&node.file, b"trusted.x", 0).unwrap(),
        b"sock"
    );
}

#[test]
fn names_with_a_nul_are_einval() {
    let fx = Fixture::new();
    let f = fx.file(&fx.root, "f", b"");
    assert_eq!(
        errno(fx.backend.set_xattr(&f.file, b"user.a\0b", b"1", 0)),
        Errno::EINVAL
    );
    assert_eq!(
        errno(fx.backend.get_xattr(&f.file, b"user.a\0b", 0)),
        Errno::EINVAL
    );
}

/// tmpfs takes values up to the Linux maximum of 65,536 bytes, which a `u16` length
/// cannot carry.
#[test]
fn a_value_too_long_for_the_wire_is_e2big() {
    let dir = tempfile::tempdir_in("/dev/shm").unwrap();
    let fx = Fixture::serve(dir, HostOptions::default());
    let f = fx.file(&fx.root, "f", b"");
    let big = vec![7u8; 65_536];
    rustix::fs::setxattr(
        fx.path("f").as_path(),
        "user.big",
        &big,
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    assert_eq!(
        errno(fx.backend.get_xattr(&f.file, b"user.big", 0)),
        Errno::E2BIG
    );
    fx.backend
        .set_xattr(&f.file, b"user.ok", &big[..65_535], 0)
        .unwrap();
    assert_eq!(
        fx.backend
            .get_xattr(&f.file, b"user.ok", 65_535)
            .unwrap()
            .len(),
        65_535
    );
}
