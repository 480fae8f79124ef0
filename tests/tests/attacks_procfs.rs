//! security.md #8 (procfs and magic links inside the share) and #53 (the gofer's own
//! `/proc/self/fd` handle), against the real gofer.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use lisafs_client::Client;
use lisafs_protocol::wire::{Errno, WalkStatus};
use lisafs_tests::{errno, Gofer};
use rustix::mount::{mount, unmount, MountFlags, UnmountFlags};

const GOFER: &str = env!("CARGO_BIN_EXE_test-gofer");
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// A filesystem the test mounted; lazily unmounted on drop.
struct Mounted(PathBuf);

impl Mounted {
    fn new(source: &str, at: &Path, fstype: &str) -> Self {
        if !at.exists() {
            fs::create_dir(at).unwrap();
        }
        mount(source, at, fstype, MountFlags::empty(), None).unwrap_or_else(|e| {
            panic!(
                "mount {fstype} on {} (tests run as root): {e}",
                at.display()
            )
        });
        Self(at.to_owned())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = unmount(&self.0, UnmountFlags::DETACH);
    }
}

/// The share of #8: a procfs at `proc` (a misconfigured share), a tmpfs at `tmp` (the
/// control: an ordinary submount), and `fdl -> /proc/self/fd/3`.
fn procfs_share(root: &Path, mounts: &mut Vec<Mounted>) {
    mounts.push(Mounted::new("proc", &root.join("proc"), "proc"));
    mounts.push(Mounted::new("tmpfs", &root.join("tmp"), "tmpfs"));
    fs::write(root.join("tmp/inside-tmpfs"), b"x").unwrap();
    symlink("/proc/self/fd/3", root.join("fdl")).unwrap();
}

/// Every walk of #8's recipe into the procfs, by Walk and by WalkStat.
fn proc_paths(server_pid: u32) -> Vec<Vec<String>> {
    let paths: [&[&str]; 5] = [
        &["proc"],
        &["proc", "self", "root", "etc", "passwd"],
        &["proc", "1", "cwd"],
        &["proc", "thread-self", "fd", "3"],
        &["proc", "self", "fd", "3"],
    ];
    let mut out: Vec<Vec<String>> = paths
        .iter()
        .map(|p| p.iter().map(|s| (*s).to_owned()).collect())
        .collect();
    out.push(vec![
        "proc".into(),
        server_pid.to_string(),
        "fd".into(),
        "3".into(),
    ]);
    out
}

fn assert_fdl_is_inert(client: &Client) {
    // The magic-link-shaped symlink is a symlink: walked to, never through, never opened.
    let (status, inodes) = client.root().walk(&["fdl"]).unwrap();
    assert_eq!((status, inodes.len()), (WalkStatus::Success, 1));
    assert_eq!(inodes[0].stat.mode & 0o170000, 0o120000);
    assert_eq!(inodes[0].fd.readlink_at().unwrap(), b"/proc/self/fd/3");
    assert_eq!(errno(inodes[0].fd.open_at(0)), Errno::EINVAL);
    let (status, inodes) = client.root().walk(&["fdl", "etc"]).unwrap();
    assert_eq!((status, inodes.len()), (WalkStatus::ComponentSymlink, 1));
    assert_eq!(client.root().walk_stat(&["fdl", "etc"]).unwrap().len(), 1);
}

/// Would catch: a gofer that walks onto a procfs inside the share by default (no
/// `RESOLVE_NO_XDEV`), or that follows `fdl` (a magic link to its own FD 3, the root)
/// or opens it.
#[test]
fn a_procfs_inside_the_share_is_not_entered_by_default() {
    let mut mounts = Vec::new();
    let gofer = Gofer::start_after(GOFER, &[], |root| procfs_share(root, &mut mounts));
    let client = gofer.client();
    for path in proc_paths(gofer.server_pid()) {
        assert_eq!(errno(client.root().walk(&path)), Errno::EXDEV, "{path:?}");
        assert_eq!(
            errno(client.root().walk_stat(&path)),
            Errno::EXDEV,
            "{path:?}"
        );
    }
    assert_fdl_is_inert(&client);
    gofer.assert_canary_untouched();
}

/// Issue 8 hole 6. With `--allow-submounts` the tmpfs beside it IS crossed (so the mount
/// crossing itself is allowed and only the filesystem type stops the walk), and the
/// procfs is still refused with EXDEV. Would catch: removing the pseudo-filesystem check
/// of `gofer/src/host/resolve.rs` (`PSEUDO_FILESYSTEMS`): the walks into `proc` would
/// then succeed (or stop at the `self` symlink) instead of failing with EXDEV.
#[test]
fn with_allow_submounts_procfs_is_still_refused_while_a_tmpfs_is_crossed() {
    for sandbox in ["namespace", "none"] {
        let mut mounts = Vec::new();
        let gofer = Gofer::start_after(
            GOFER,
            &["--allow-submounts", "--sandbox", sandbox],
            |root| procfs_share(root, &mut mounts),
        );
        let client = gofer.client();
        // The control: an ordinary submount is crossed.
        let (status, inodes) = client.root().walk(&["tmp", "inside-tmpfs"]).unwrap();
        assert_eq!(
            (status, inodes.len()),
            (WalkStatus::Success, 2),
            "{sandbox}"
        );
        for path in proc_paths(gofer.server_pid()) {
            assert_eq!(
                errno(client.root().walk(&path)),
                Errno::EXDEV,
                "{sandbox}: {path:?}"
            );
            assert_eq!(
                errno(client.root().walk_stat(&path)),
                Errno::EXDEV,
                "{sandbox}: {path:?}"
            );
        }
        // Listing the share shows the mount point; it just cannot be entered.
        let names: BTreeSet<String> = client
            .read_dir("/")
            .unwrap()
            .iter()
            .map(|e| e.name_lossy().into_owned())
            .collect();
        assert!(names.contains("proc"), "{names:?}");
        assert_fdl_is_inert(&client);
        gofer.assert_canary_untouched();
    }
}

fn fdinfo_field(pid: u32, fd: &str, field: &str) -> String {
    let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in fdinfo {fd}"))
        .trim()
        .to_owned()
}

/// The mount IDs of the test's own mount namespace.
fn host_mount_ids() -> BTreeSet<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect()
}

/// The serving process's FDs that are on a procfs: (fd number, link text, mount ID).
fn procfs_fds(pid: u32) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let path = format!("/proc/{pid}/fd/{name}");
        let Ok(fd) = rustix::fs::open(
            path.as_str(),
            rustix::fs::OFlags::PATH,
            rustix::fs::Mode::empty(),
        ) else {
            continue;
        };
        if rustix::fs::fstatfs(&fd).unwrap().f_type == PROC_SUPER_MAGIC {
            let link = fs::read_link(&path).unwrap().to_string_lossy().into_owned();
            out.push((name.clone(), link, fdinfo_field(pid, &name, "mnt_id")));
        }
    }
    out
}

/// security.md #53 with the default sandbox: the gofer's `/proc/self/fd` handle is on a
/// procfs instance of its own (mounted in its PID and mount namespaces, not the host's
/// `/proc`), shows the gofer as PID 1 (`/1/fd`), and lists exactly the gofer's own FDs.
/// Would catch: a gofer that keeps the host's procfs (its handle would then name the
/// host's `/proc` mount and reach every host process), or one without a PID namespace.
#[test]
fn the_gofers_proc_handle_is_a_private_procfs_of_its_own_fds() {
    let gofer = Gofer::start(GOFER, &[]);
    let pid = gofer.server_pid();
    assert_ne!(pid, gofer.pid(), "no serving child: no PID namespace");
    let fds = procfs_fds(pid);
    let handle = fds
        .iter()
        .find(|(_, link, _)| link == "/1/fd")
        .unwrap_or_else(|| panic!("no /proc/self/fd handle among {fds:?}"));
    let host = host_mount_ids();
    for (fd, link, mnt) in &fds {
        assert!(
            !host.contains(mnt),
            "fd {fd} ({link}) is on the host's mount {mnt}, not a private procfs"
        );
        assert_eq!(mnt, &handle.2, "two procfs instances: {fds:?}");
    }
    // Through the handle: the gofer's own FD table, nothing else.
    let through: BTreeSet<String> = fs::read_dir(format!("/proc/{pid}/fd/{}", handle.0))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let own: BTreeSet<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(through, own, "the handle lists another FD table");
}

/// security.md #53's overmount: after start, the test (an accomplice with mount rights
/// in the host's namespace) mounts a tmpfs over `/proc/<gofer>/fd` and over
/// `/proc/<gofer>`'s `fdinfo`; the gofer keeps reopening files through its handle. Would
/// catch: a gofer that resolves `/proc/self/fd/N` by path after start (it would then hit
/// the empty tmpfs, and OpenAt would fail with ENOENT) — in both sandbox modes.
#[test]
fn an_overmount_of_the_gofers_proc_entries_after_start_changes_nothing() {
    for sandbox in ["namespace", "none"] {
        let gofer = Gofer::start(GOFER, &["--sandbox", sandbox]);
        fs::write(gofer.root().join("f"), b"reopened").unwrap();
        let pid = gofer.server_pid();
        let _over_fd = Mounted::new("tmpfs", Path::new(&format!("/proc/{pid}/fd")), "tmpfs");
        let _over_self = Mounted::new(
            "tmpfs",
            Path::new(&format!("/proc/{}/fd", gofer.pid())),
            "tmpfs",
        );
        assert!(
            fs::read_dir(format!("/proc/{pid}/fd"))
                .unwrap()
                .next()
                .is_none(),
            "the overmount did not take"
        );
        let client = gofer.client();
        for _ in 0..3 {
            let (_, inodes) = client.root().walk(&["f"]).unwrap();
            // OpenAt reopens through the handle; xattrs go through it too.
            let opened = inodes[0].fd.open_at(0).unwrap();
            let mut buf = [0u8; 16];
            let n = opened.fd.pread(0, &mut buf).unwrap();
            assert_eq!(&buf[..n], b"reopened", "{sandbox}");
            inodes[0].fd.set_xattr("user.t", b"v", 0).unwrap();
            assert_eq!(inodes[0].fd.get_xattr("user.t", 0).unwrap(), b"v");
        }
        gofer.assert_canary_untouched();
    }
}
