//! security.md #18 (setgid directory inheritance) and #19 (kill-priv on write, truncate
//! and chown) against the real gofer, checked with the host's `stat` and `getxattr`.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::Path;

use lisafs_client::{Owner, SetStat, O_RDWR, O_WRONLY};
use lisafs_tests::Gofer;

const GOFER: &str = env!("CARGO_BIN_EXE_test-gofer");
/// The group of the set-group-ID directory; neither the client nor the gofer is in it.
const G: u32 = 4321;
const CLIENT: u32 = 1000;
const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const S_IFREG: u16 = 0o100_000;

fn stat(path: &Path) -> fs::Metadata {
    fs::symlink_metadata(path).unwrap()
}

/// Would catch CVE-2022-0358's class: a file created by a client in a set-group-ID
/// directory of a group the client is not in keeping `S_ISGID` (for OpenCreateAt,
/// MknodAt, and SetStat afterwards, with the client's owner or none), a gofer that keeps
/// supplementary groups, or one that breaks the normal inheritance (the group and a
/// subdirectory's `S_ISGID`).
#[test]
fn files_in_a_setgid_directory_never_get_setgid_for_its_group() {
    let gofer = Gofer::start(GOFER, &[]);
    let sg = gofer.root().join("sg");
    fs::create_dir(&sg).unwrap();
    chown(&sg, Some(0), Some(G)).unwrap();
    fs::set_permissions(&sg, fs::Permissions::from_mode(0o2777)).unwrap();

    let groups = fs::read_to_string(format!("/proc/{}/status", gofer.server_pid())).unwrap();
    let groups = groups.lines().find(|l| l.starts_with("Groups:")).unwrap();
    assert_eq!(
        groups.trim(),
        "Groups:",
        "the gofer kept supplementary groups"
    );

    let client = gofer.client();
    let (_, inodes) = client.root().walk(&["sg"]).unwrap();
    let dir = &inodes[0].fd;
    for (i, owner) in [Owner::new(CLIENT, CLIENT), Owner::UNSET]
        .into_iter()
        .enumerate()
    {
        let (f1, _) = dir
            .open_create_at(format!("setgid{i}"), O_RDWR, 0o2755, owner)
            .unwrap();
        let (_, _) = dir
            .open_create_at(format!("plain{i}"), O_RDWR, 0o755, owner)
            .unwrap();
        dir.mknod_at(format!("mknod{i}"), S_IFREG | 0o2755, 0, 0, owner)
            .unwrap();
        dir.mkdir_at(format!("sub{i}"), 0o2755, owner).unwrap();
        for name in [
            format!("setgid{i}"),
            format!("plain{i}"),
            format!("mknod{i}"),
        ] {
            let meta = stat(&sg.join(&name));
            assert_eq!(meta.gid(), G, "{name}: the directory's group is inherited");
            assert_eq!(
                meta.mode() & (S_ISUID | S_ISGID),
                0,
                "{name}: mode {:o}",
                meta.mode()
            );
        }
        let sub = stat(&sg.join(format!("sub{i}")));
        assert_eq!(sub.gid(), G);
        assert_ne!(sub.mode() & S_ISGID, 0, "a subdirectory inherits S_ISGID");
        // Asking again afterwards does not set it either.
        let outcome = f1
            .fd
            .set_stat(&SetStat {
                mode: Some(0o2755),
                ..SetStat::default()
            })
            .unwrap();
        let meta = stat(&sg.join(format!("setgid{i}")));
        assert_eq!(
            meta.mode() & (S_ISUID | S_ISGID),
            0,
            "SetStat kept S_ISGID ({outcome:?})"
        );
    }
    gofer.assert_canary_untouched();
}

/// A file capability granting CAP_SYS_ADMIN (revision 2, effective).
fn cap_sys_admin() -> Vec<u8> {
    let mut blob = Vec::new();
    blob.extend_from_slice(&0x0200_0001u32.to_le_bytes()); // revision 2 | effective
    blob.extend_from_slice(&(1u32 << 21).to_le_bytes()); // permitted: CAP_SYS_ADMIN
    blob.extend_from_slice(&0u32.to_le_bytes()); // inheritable
    blob.extend_from_slice(&0u32.to_le_bytes()); // permitted, high word
    blob.extend_from_slice(&0u32.to_le_bytes()); // inheritable, high word
    blob
}

/// The privileged binary of #19: owned 1000:G, mode 06775, with a file capability.
fn make_privileged(path: &Path) {
    fs::write(path, b"#!/bin/sh\n").unwrap();
    chown(path, Some(CLIENT), Some(G)).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o6775)).unwrap();
    rustix::fs::setxattr(
        path,
        "security.capability",
        &cap_sys_admin(),
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    assert_eq!(stat(path).mode() & 0o7777, 0o6775);
}

fn assert_privileges_killed(path: &Path, after: &str) {
    let meta = stat(path);
    assert_eq!(
        meta.mode() & (S_ISUID | S_ISGID),
        0,
        "after {after}: mode {:o} kept set-ID bits",
        meta.mode()
    );
    let mut buf = [0u8; 64];
    assert_eq!(
        rustix::fs::getxattr(path, "security.capability", &mut buf),
        Err(rustix::io::Errno::NODATA),
        "after {after}: the file capability survived"
    );
}

/// Would catch: a gofer that writes, truncates or changes the owner with CAP_FSETID in
/// effect (the kernel then keeps S_ISUID/S_ISGID and `security.capability`), so a client
/// could modify a privileged binary and keep its privileges (CVE-2021-20263's class).
#[test]
fn write_truncate_and_chown_kill_setid_bits_and_file_capabilities() {
    let gofer = Gofer::start(GOFER, &[]);
    let bin = gofer.root().join("bin");
    let client = gofer.client();

    make_privileged(&bin);
    let (_, inodes) = client.root().walk(&["bin"]).unwrap();
    let opened = inodes[0].fd.open_at(O_WRONLY).unwrap();
    assert_eq!(opened.fd.pwrite(0, b"X").unwrap(), 1);
    assert_privileges_killed(&bin, "PWrite");
    assert_eq!(fs::read(&bin).unwrap()[0], b'X', "the write happened");

    make_privileged(&bin);
    let outcome = inodes[0]
        .fd
        .set_stat(&SetStat {
            size: Some(1),
            ..SetStat::default()
        })
        .unwrap();
    assert!(outcome.is_complete(), "{outcome:?}");
    assert_eq!(stat(&bin).len(), 1);
    assert_privileges_killed(&bin, "SetStat(size)");

    make_privileged(&bin);
    let outcome = inodes[0]
        .fd
        .set_stat(&SetStat {
            uid: Some(CLIENT + 1),
            ..SetStat::default()
        })
        .unwrap();
    assert!(outcome.is_complete(), "{outcome:?}");
    assert_eq!(stat(&bin).uid(), CLIENT + 1);
    assert_privileges_killed(&bin, "SetStat(uid)");
    gofer.assert_canary_untouched();
}
