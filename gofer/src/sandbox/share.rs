//! The share as a detached bind mount.
//!
//! The gofer serves its root from a private clone of the mount tree at `--root`
//! (`open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)`), with `nosuid` and `nodev` always and
//! `ro` with `--readonly` (`mount_setattr`). The kernel then enforces those on every
//! access through any FD the gofer holds or donates, whatever path reaches it: a client
//! that reopens its donated read-only FD through its own `/proc/self/fd/N` gets `EROFS`,
//! set-ID bits and file capabilities mean nothing, and device nodes cannot be opened.
//! Because the clone's root is the share (not the filesystem's root), the kernel also
//! refuses `..` out of a directory that a host process moved out of the share (`ENOENT`),
//! which the containment check relies on.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FileType, CWD};
use rustix::mount::OpenTreeFlags;

use crate::sys::{self, mount_attr};

/// Opens `root` as a detached clone of its mount tree with `nosuid,nodev` (and `ro` when
/// `readonly`). Needs `CAP_SYS_ADMIN` in the user namespace owning the mount namespace.
pub(crate) fn open_detached(root: &Path, readonly: bool) -> io::Result<OwnedFd> {
    let flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_RECURSIVE;
    let tree = rustix::mount::open_tree(CWD, root, flags)?;
    // open_tree clones a file mount as readily as a directory one.
    if FileType::from_raw_mode(rustix::fs::fstat(&tree)?.st_mode) != FileType::Directory {
        return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
    }
    let mut attrs = mount_attr::NOSUID | mount_attr::NODEV;
    if readonly {
        attrs |= mount_attr::RDONLY;
    }
    sys::mount_setattr_recursive(tree.as_fd(), attrs)?;
    Ok(tree)
}

/// The process root of a `--memory` gofer, which has no share on the host: a new, empty,
/// detached tmpfs, mounted read-only, `nosuid,nodev,noexec`, with room for nothing. The
/// pivot (or chroot) into it leaves the confined gofer no host file to reach by path, and
/// Landlock then grants it reading this empty directory only. Needs `CAP_SYS_ADMIN` in
/// the user namespace owning the mount namespace, as [`open_detached`] does.
pub(crate) fn empty_root() -> io::Result<OwnedFd> {
    use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};

    let fs = rustix::mount::fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)?;
    // Read-only anyway; the limits only say that nothing is meant to be here.
    rustix::mount::fsconfig_set_string(&fs, "size", "4k")?;
    rustix::mount::fsconfig_set_string(&fs, "nr_inodes", "1")?;
    rustix::mount::fsconfig_set_string(&fs, "mode", "0555")?;
    rustix::mount::fsconfig_create(&fs)?;
    let attrs = MountAttrFlags::MOUNT_ATTR_RDONLY
        | MountAttrFlags::MOUNT_ATTR_NOSUID
        | MountAttrFlags::MOUNT_ATTR_NODEV
        | MountAttrFlags::MOUNT_ATTR_NOEXEC;
    rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(Into::into)
}
