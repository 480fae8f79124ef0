//! `--sandbox namespace` and `--sandbox chroot`: new namespaces, and the share as the
//! process root.
//!
//! [`unshare`] moves the process into new mount, PID, IPC, UTS and network namespaces (and
//! a user namespace when started without privileges); the fork that follows (`supervisor`)
//! makes the serving child PID 1 of the new PID namespace. [`pivot_into`] then makes the
//! share the root of the child's private mount namespace and detaches everything else,
//! host `/proc` included.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::CWD;
use rustix::mount::{MountFlags, MountPropagationFlags, MoveMountFlags, UnmountFlags};
use rustix::thread::{CapabilitySet, UnshareFlags};

use crate::sys;

/// Moves the process into new mount, PID, IPC, UTS and network namespaces, and a user
/// namespace too when it lacks the privilege for the others. The process's next child is
/// the new PID namespace's init (see `supervisor`). Must be called while the process has
/// one thread.
pub(crate) fn unshare() -> io::Result<()> {
    let flags = UnshareFlags::NEWNS
        | UnshareFlags::NEWPID
        | UnshareFlags::NEWIPC
        | UnshareFlags::NEWUTS
        | UnshareFlags::NEWNET;
    let privileged = rustix::thread::capabilities(None)
        .is_ok_and(|caps| caps.effective.contains(CapabilitySet::SYS_ADMIN));
    if privileged {
        sys::unshare_single_threaded(flags)
    } else {
        // The IDs outside, read before the new user namespace hides them.
        let (uid, gid) = (rustix::process::geteuid(), rustix::process::getegid());
        sys::unshare_single_threaded(flags | UnshareFlags::NEWUSER)?;
        map_ids(uid.as_raw(), gid.as_raw())
    }
}

/// Maps the caller's IDs to root in the new user namespace (a process may map its own
/// IDs once `setgroups` is denied).
fn map_ids(uid: u32, gid: u32) -> io::Result<()> {
    std::fs::write("/proc/self/setgroups", "deny")?;
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    Ok(())
}

/// Makes every mount in the new namespace a slave, so nothing done here propagates back
/// to the host, and mounts a procfs of the new PID namespace (where the gofer is the only
/// process) on `/proc`, for the `/proc/self/fd` handle. (`subset=pid` would hide more, but
/// the handle's validation rejects such an instance.)
pub(crate) fn private_mounts() -> io::Result<()> {
    rustix::mount::mount_change(
        c"/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )?;
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    rustix::mount::mount(c"proc", c"/proc", c"proc", flags, c"")?;
    Ok(())
}

/// Attaches the detached share `tree` at `mountpoint` (in this private namespace only),
/// makes it the root with `pivot_root`, and detaches the old root, `/proc` with it. FDs
/// opened before (the `/proc/self/fd` handle) keep working.
pub(crate) fn pivot_into(tree: BorrowedFd<'_>, mountpoint: &Path) -> io::Result<()> {
    rustix::mount::move_mount(
        tree,
        c"",
        CWD,
        mountpoint,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    rustix::process::fchdir(tree)?;
    // The old root is stacked on "." and then detached: the usual way to pivot without a
    // directory for it inside the new root (the share must not be changed).
    rustix::process::pivot_root(c".", c".")?;
    rustix::mount::unmount(c".", UnmountFlags::DETACH)?;
    rustix::process::chdir(c"/")?;
    Ok(())
}

/// `--sandbox chroot`: the share (still detached) as the process root.
pub(crate) fn chroot_into(tree: BorrowedFd<'_>) -> io::Result<()> {
    rustix::process::fchdir(tree.as_fd())?;
    rustix::process::chroot(c".")?;
    Ok(())
}
