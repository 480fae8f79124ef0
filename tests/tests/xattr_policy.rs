//! The `--xattr` policy through the real gofer: by default a client reaches only `user.*`;
//! file capabilities, overlayfs markers, LSM labels and ACLs stay out of its reach.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;

use lisafs_client::ControlFd;
use lisafs_protocol::wire::{Errno, WalkStatus};
use lisafs_tests::{errno, Gofer};

const GOFER: &str = env!("CARGO_BIN_EXE_test-gofer");

/// A valid `security.capability` v2 value: `CAP_NET_BIND_SERVICE`, effective.
fn cap_v2() -> Vec<u8> {
    [0x0200_0001u32, 1 << 10, 0, 0, 0]
        .iter()
        .flat_map(|word| word.to_le_bytes())
        .collect()
}

fn host_get(path: &Path, name: &str) -> Result<Vec<u8>, rustix::io::Errno> {
    let mut buf = vec![0u8; 4096];
    let len = rustix::fs::getxattr(path, name, &mut buf[..])?;
    buf.truncate(len);
    Ok(buf)
}

fn host_set(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::setxattr(path, name, value, rustix::fs::XattrFlags::empty()).unwrap();
}

fn walk_to(client: &lisafs_client::Client, name: &str) -> ControlFd {
    let (status, mut inodes) = client.root().walk(&[name]).unwrap();
    assert_eq!(status, WalkStatus::Success);
    inodes.pop().unwrap().fd
}

#[test]
fn by_default_a_client_reaches_only_user_xattrs() {
    let gofer = Gofer::start(GOFER, &[]);
    let path = gofer.root().join("f");
    fs::write(&path, b"#!/bin/sh\n").unwrap();
    host_set(&path, "trusted.overlay.opaque", b"y");
    let client = gofer.client();
    let file = walk_to(&client, "f");

    assert_eq!(
        errno(file.set_xattr("security.capability", cap_v2(), 0)),
        Errno::EOPNOTSUPP
    );
    assert_eq!(
        host_get(&path, "security.capability"),
        Err(rustix::io::Errno::NODATA),
        "a file capability reached the host"
    );
    assert_eq!(
        errno(file.set_xattr("trusted.overlay.opaque", "n", 0)),
        Errno::EOPNOTSUPP
    );
    assert_eq!(
        errno(file.get_xattr("trusted.overlay.opaque", 0)),
        Errno::EOPNOTSUPP
    );
    assert_eq!(
        errno(file.remove_xattr("trusted.overlay.opaque")),
        Errno::EOPNOTSUPP
    );
    assert_eq!(host_get(&path, "trusted.overlay.opaque").unwrap(), b"y");

    file.set_xattr("user.k", "v", 0).unwrap();
    assert_eq!(file.get_xattr("user.k", 0).unwrap(), b"v");
    assert_eq!(file.list_xattr(0).unwrap(), [b"user.k".to_vec()]);
    // Exactly the visible list's size ("user.k\0") is enough: the hidden name takes no room.
    assert_eq!(file.list_xattr(7).unwrap(), [b"user.k".to_vec()]);
}

#[test]
fn xattr_all_lets_a_trusted_client_reach_every_namespace() {
    let gofer = Gofer::start(GOFER, &["--xattr", "all"]);
    let path = gofer.root().join("f");
    fs::write(&path, b"").unwrap();
    // Reading security.* needs no capability; setting most namespaces needs ones
    // (CAP_SYS_ADMIN, CAP_SETFCAP) a confined gofer does not keep, so the policy is shown
    // by reading and listing.
    host_set(&path, "security.lisafs-test", b"1");
    let client = gofer.client();
    let file = walk_to(&client, "f");
    assert_eq!(file.get_xattr("security.lisafs-test", 0).unwrap(), b"1");
    assert!(file
        .list_xattr(0)
        .unwrap()
        .contains(&b"security.lisafs-test".to_vec()));
}

#[test]
fn xattr_none_refuses_even_user_xattrs() {
    let gofer = Gofer::start(GOFER, &["--xattr", "none"]);
    let path = gofer.root().join("f");
    fs::write(&path, b"").unwrap();
    host_set(&path, "user.host", b"h");
    let client = gofer.client();
    let file = walk_to(&client, "f");
    assert_eq!(errno(file.set_xattr("user.k", "v", 0)), Errno::EOPNOTSUPP);
    assert_eq!(errno(file.get_xattr("user.host", 0)), Errno::EOPNOTSUPP);
    assert!(file.list_xattr(0).unwrap().is_empty());
}
