//! Extended attributes on regular files, directories, symlinks and sockets, through the
//! pinned inode (never a symlink's target), and the `--xattr` namespace policy.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::MetadataExt;

use common::*;
use lisafs_gofer::host::{HostOptions, XattrPolicy};
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
    // trusted.* (which Linux allows on symlinks) needs the "all" policy.
    let fx = Fixture::with(HostOptions {
        xattr: XattrPolicy::All,
        ..HostOptions::default()
    });
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
        xattr: XattrPolicy::All,
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

/// A fixture whose backend has the xattr `policy` (everything else default).
fn with_policy(policy: XattrPolicy) -> Fixture {
    Fixture::with(HostOptions {
        xattr: policy,
        ..HostOptions::default()
    })
}

/// `security.capability` v2 (`VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE`, permitted
/// `CAP_NET_BIND_SERVICE`): a valid file capability, the kind that would make an executable
/// privileged when run on the host.
fn cap_v2() -> Vec<u8> {
    [0x0200_0001u32, 1 << 10, 0, 0, 0]
        .iter()
        .flat_map(|word| word.to_le_bytes())
        .collect()
}

/// `security.capability` v3 (namespaced, root ID 0), otherwise as [`cap_v2`].
fn cap_v3() -> Vec<u8> {
    [0x0300_0001u32, 1 << 10, 0, 0, 0, 0]
        .iter()
        .flat_map(|word| word.to_le_bytes())
        .collect()
}

/// A valid `system.posix_acl_access` value (version 2) that grants user 1000 read-write
/// beyond what the mode says: USER_OBJ rw, USER 1000 rw, GROUP_OBJ r, MASK rw, OTHER r.
fn acl_blob() -> Vec<u8> {
    const ANY: u32 = u32::MAX;
    let mut blob = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, ANY),
        (0x02, 6, 1000),
        (0x04, 4, ANY),
        (0x10, 6, ANY),
        (0x20, 4, ANY),
    ] {
        blob.extend_from_slice(&tag.to_le_bytes());
        blob.extend_from_slice(&perm.to_le_bytes());
        blob.extend_from_slice(&id.to_le_bytes());
    }
    blob
}

/// Every namespace outside `user.*` that matters, with a value the host accepts.
fn privileged_xattrs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("security.capability", cap_v2()),
        ("security.capability", cap_v3()),
        ("trusted.x", b"1".to_vec()),
        ("trusted.overlay.opaque", b"y".to_vec()),
        (
            "security.selinux",
            b"system_u:object_r:shadow_t:s0\0".to_vec(),
        ),
        ("security.ima", b"\x03\x02\x04".to_vec()),
        ("system.posix_acl_access", acl_blob()),
    ]
}

/// The host's value of `name` on `path`, read with the host's own getxattr.
fn host_get(path: &std::path::Path, name: &str) -> Result<Vec<u8>, rustix::io::Errno> {
    let mut buf = vec![0u8; 65_536];
    let len = rustix::fs::getxattr(path, name, &mut buf[..])?;
    buf.truncate(len);
    Ok(buf)
}

fn host_set(path: &std::path::Path, name: &str, value: &[u8]) {
    rustix::fs::setxattr(path, name, value, rustix::fs::XattrFlags::empty()).unwrap();
}

#[test]
fn the_default_policy_sets_nothing_outside_user() {
    let fx = Fixture::new();
    assert_eq!(fx.backend.options().xattr, XattrPolicy::User);
    let f = fx.file(&fx.root, "f", b"");
    let d = fx.mkdir(&fx.root, "d", 0o755).unwrap();
    for (node, path) in [(&f, fx.path("f")), (&d, fx.path("d"))] {
        let mode = lstat(&path).mode();
        for (name, value) in privileged_xattrs() {
            for flags in [0, XATTR_CREATE] {
                assert_eq!(
                    errno(
                        fx.backend
                            .set_xattr(&node.file, name.as_bytes(), &value, flags)
                    ),
                    Errno::EOPNOTSUPP,
                    "{name}"
                );
            }
            assert_eq!(
                host_get(&path, name),
                Err(rustix::io::Errno::NODATA),
                "{name} reached the host"
            );
        }
        // The refused ACL did not change the mode (an ACL's mask would).
        assert_eq!(lstat(&path).mode(), mode);
        // user.* still works.
        fx.backend
            .set_xattr(&node.file, b"user.ok", b"1", 0)
            .unwrap();
        assert_eq!(host_get(&path, "user.ok").unwrap(), b"1");
    }
}

#[test]
fn the_default_policy_hides_host_attributes_outside_user() {
    let fx = Fixture::new();
    let f = fx.file(&fx.root, "f", b"");
    let path = fx.path("f");
    for (name, value) in privileged_xattrs() {
        host_set(&path, name, &value);
    }
    host_set(&path, "user.visible", b"v");
    for (name, _) in privileged_xattrs() {
        assert_eq!(
            errno(fx.backend.get_xattr(&f.file, name.as_bytes(), 0)),
            Errno::EOPNOTSUPP,
            "{name} was read"
        );
        assert_eq!(
            errno(fx.backend.remove_xattr(&f.file, name.as_bytes())),
            Errno::EOPNOTSUPP,
            "{name} was removed"
        );
        assert!(host_get(&path, name).is_ok(), "{name} is gone on the host");
    }
    assert_eq!(
        fx.backend.list_xattr(&f.file, 0).unwrap(),
        [b"user.visible".to_vec()]
    );
}

#[test]
fn none_refuses_every_name_and_lists_nothing() {
    let fx = with_policy(XattrPolicy::None);
    let f = fx.file(&fx.root, "f", b"");
    host_set(&fx.path("f"), "user.host", b"h");
    host_set(&fx.path("f"), "trusted.host", b"h");
    for name in [&b"user.x"[..], b"user.host", b"trusted.host"] {
        assert_eq!(
            errno(fx.backend.set_xattr(&f.file, name, b"1", 0)),
            Errno::EOPNOTSUPP
        );
        assert_eq!(
            errno(fx.backend.get_xattr(&f.file, name, 0)),
            Errno::EOPNOTSUPP
        );
        assert_eq!(
            errno(fx.backend.remove_xattr(&f.file, name)),
            Errno::EOPNOTSUPP
        );
    }
    assert!(fx.backend.list_xattr(&f.file, 0).unwrap().is_empty());
    assert!(fx.backend.list_xattr(&f.file, 1).unwrap().is_empty());
    assert_eq!(
        host_get(&fx.path("f"), "user.x"),
        Err(rustix::io::Errno::NODATA)
    );
    assert_eq!(host_get(&fx.path("f"), "user.host").unwrap(), b"h");
}

#[test]
fn all_reaches_every_namespace() {
    let fx = with_policy(XattrPolicy::All);
    let f = fx.file(&fx.root, "f", b"");
    let path = fx.path("f");
    for (name, value) in privileged_xattrs() {
        fx.backend
            .set_xattr(&f.file, name.as_bytes(), &value, 0)
            .unwrap_or_else(|err| panic!("{name}: {err:?}"));
        assert!(
            host_get(&path, name).is_ok(),
            "{name} did not reach the host"
        );
        assert!(fx.backend.get_xattr(&f.file, name.as_bytes(), 0).is_ok());
    }
    let names = fx.backend.list_xattr(&f.file, 0).unwrap();
    for (name, _) in privileged_xattrs() {
        assert!(
            names.contains(&name.as_bytes().to_vec()),
            "{name} not listed"
        );
    }
    fx.backend.remove_xattr(&f.file, b"trusted.x").unwrap();
    assert_eq!(host_get(&path, "trusted.x"), Err(rustix::io::Errno::NODATA));
}

/// The list size a client gives bounds the list it can see: hidden names take no room
/// and cause no ERANGE; visible ones still do.
#[test]
fn list_sizes_count_only_the_names_the_policy_shows() {
    let fx = Fixture::new();
    let f = fx.file(&fx.root, "f", b"");
    let long = format!("trusted.{}", "x".repeat(200));
    host_set(&fx.path("f"), &long, b"1");
    host_set(&fx.path("f"), "user.a", b"1");
    // "user.a\0" is 7 bytes; the host's whole list is over 200.
    assert_eq!(
        fx.backend.list_xattr(&f.file, 7).unwrap(),
        [b"user.a".to_vec()]
    );
    assert_eq!(errno(fx.backend.list_xattr(&f.file, 6)), Errno::ERANGE);
    let all = with_policy(XattrPolicy::All);
    let g = all.file(&all.root, "g", b"");
    host_set(&all.path("g"), &long, b"1");
    host_set(&all.path("g"), "user.a", b"1");
    assert_eq!(errno(all.backend.list_xattr(&g.file, 7)), Errno::ERANGE);
    assert_eq!(all.backend.list_xattr(&g.file, 0).unwrap().len(), 2);
}
