//! Creating and removing names: OpenCreateAt, MkdirAt, MknodAt, SymlinkAt, LinkAt,
//! UnlinkAt, RenameAt(2).
//!
//! Each create happens relative to the held directory FD, with the exact mode (the umask
//! is 0) after the set-ID policy, and with the thread's filesystem IDs set to the client's
//! owner (`creds`), so the kernel creates the file with that owner: nothing is chowned
//! afterwards, so a host process swapping names cannot redirect an owner change. The new
//! file's control FD comes from the creating call's own FD where there is one (regular
//! files, links), otherwise from a one-component lookup whose type is checked. Any
//! failure after creation removes the name again.

use std::os::fd::AsFd;

use lisafs_protocol::wire::{Errno, Gid, Statx, Uid, S_IFIFO, S_IFSOCK};
use lisafs_server::{refused, BResult, Create, Name, Node, OpenFlags, Opened, Refusal};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};

use super::creds;
use super::file::{stat_fd, FileKind, HostFile, HostOpen, S_IFBLK, S_IFCHR, S_IFMT, S_IFREG};
use super::resolve::Resolver;
use super::HostBackend;

/// Removes a just-created name on drop unless [`Undo::keep`] was called, so every early
/// return after creation leaves nothing behind (SPEC.md §8.4).
pub(super) struct Undo<'a> {
    dir: &'a HostFile,
    name: &'a [u8],
    flags: AtFlags,
    armed: bool,
}

impl<'a> Undo<'a> {
    pub(super) fn new(dir: &'a HostFile, name: &'a [u8], is_dir: bool) -> Self {
        let flags = if is_dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        Self {
            dir,
            name,
            flags,
            armed: true,
        }
    }

    pub(super) fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Err(err) = rustix::fs::unlinkat(self.dir, self.name, self.flags) {
                tracing::warn!("could not remove a half-created file: {err}");
            }
        }
    }
}

impl HostBackend {
    /// A one-component lookup of a name this backend just created, which must be of
    /// `kind`. Only for the control FD of a file whose creating call returns no FD: if a
    /// host process swapped something else in, the type check refuses what is not of the
    /// kind created (the owner was set by the create itself, so nothing is applied to the
    /// file found).
    pub(super) fn lookup_created(
        &self,
        dir: &HostFile,
        name: &[u8],
        kind: FileKind,
    ) -> BResult<(HostFile, Statx)> {
        let (file, stat) = self.resolver.lookup_file(dir, name)?;
        match file.kind() == kind {
            true => Ok((file, stat)),
            false => Err(Errno::EIO),
        }
    }
}

/// OpenCreateAt: `openat(O_CREAT | O_EXCL | O_NOFOLLOW)` with the requested access.
pub(super) fn create(
    b: &HostBackend,
    dir: &HostFile,
    name: Name<'_>,
    attrs: Create,
    flags: OpenFlags,
) -> BResult<(Node<HostFile>, Opened<HostOpen>)> {
    b.resolver.ensure_beneath(dir)?;
    let name = name.as_bytes();
    let mode = b.policy_mode(attrs.mode, false);
    let (access, readable, writable) = flags.access();
    let open_fd = creds::create_as(attrs.uid, attrs.gid, || {
        b.resolver.create_file(dir, name, access, mode)
    })?;
    let undo = Undo::new(dir, name, false);
    let (file, stat) = HostFile::from_opath(b.resolver.opath_of(open_fd.as_fd())?)?;
    let open = HostOpen::new(open_fd, FileKind::Regular, readable, writable);
    let donated = Some(open.share());
    undo.keep();
    Ok((Node { file, stat }, Opened { open, donated }))
}

/// MkdirAt.
pub(super) fn mkdir(
    b: &HostBackend,
    dir: &HostFile,
    name: Name<'_>,
    attrs: Create,
) -> BResult<Node<HostFile>> {
    b.resolver.ensure_beneath(dir)?;
    let name = name.as_bytes();
    let mode = b.policy_mode(attrs.mode, true);
    creds::create_as(attrs.uid, attrs.gid, || {
        Ok(rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(mode))?)
    })?;
    let undo = Undo::new(dir, name, true);
    let (file, stat) = b.lookup_created(dir, name, FileKind::Directory)?;
    undo.keep();
    Ok(Node { file, stat })
}

/// MknodAt: regular files and the 0:0 character device (an overlay whiteout) always;
/// FIFOs, sockets, character and block devices only of the kinds the operator's `--mknod`
/// allows (`EPERM` otherwise). What is created stays inert for the gofer: OpenAt's
/// special-file policy still decides whether it can be opened (devices never are, and the
/// share is mounted `nodev`).
pub(super) fn mknod(
    b: &HostBackend,
    dir: &HostFile,
    name: Name<'_>,
    attrs: Create,
    major: u32,
    minor: u32,
) -> BResult<Node<HostFile>> {
    let file_type = u16::try_from(attrs.mode & u32::from(S_IFMT)).map_err(|_| Errno::EPERM)?;
    let kinds = b.options.mknod;
    let whiteout = major == 0 && minor == 0;
    let special = match file_type {
        S_IFREG => None,
        S_IFCHR if whiteout || kinds.char => {
            Some((FileType::CharacterDevice, FileKind::CharDevice))
        }
        S_IFBLK if kinds.block => Some((FileType::BlockDevice, FileKind::BlockDevice)),
        S_IFIFO if kinds.fifo => Some((FileType::Fifo, FileKind::Fifo)),
        S_IFSOCK if kinds.socket => Some((FileType::Socket, FileKind::Socket)),
        _ => {
            refused!(
                Refusal::SpecialFile,
                mode = format_args!("{:o}", attrs.mode),
                "refused a MknodAt outside --mknod"
            );
            return Err(Errno::EPERM);
        }
    };
    b.resolver.ensure_beneath(dir)?;
    let name = name.as_bytes();
    let mode = b.policy_mode(attrs.mode, false);
    let (file, stat, undo) = match special {
        Some((node_type, kind)) => {
            let dev = match kind {
                FileKind::CharDevice | FileKind::BlockDevice => rustix::fs::makedev(major, minor),
                _ => 0,
            };
            creds::create_as(attrs.uid, attrs.gid, || {
                Ok(rustix::fs::mknodat(
                    dir,
                    name,
                    node_type,
                    Mode::from_raw_mode(mode),
                    dev,
                )?)
            })?;
            let undo = Undo::new(dir, name, false);
            let (file, stat) = b.lookup_created(dir, name, kind)?;
            (file, stat, undo)
        }
        None => {
            // An exclusive open creates the same file as mknod(S_IFREG) and hands back the
            // very inode created, so the control FD cannot be a swapped-in file.
            let open_fd = creds::create_as(attrs.uid, attrs.gid, || {
                b.resolver.create_file(dir, name, OFlags::RDONLY, mode)
            })?;
            let undo = Undo::new(dir, name, false);
            let (file, stat) = HostFile::from_opath(b.resolver.opath_of(open_fd.as_fd())?)?;
            (file, stat, undo)
        }
    };
    undo.keep();
    Ok(Node { file, stat })
}

/// SymlinkAt: the target is stored, never resolved.
pub(super) fn symlink(
    b: &HostBackend,
    dir: &HostFile,
    name: Name<'_>,
    target: &[u8],
    uid: Uid,
    gid: Gid,
) -> BResult<Node<HostFile>> {
    if target.contains(&0) {
        return Err(Errno::EINVAL);
    }
    b.resolver.ensure_beneath(dir)?;
    let name = name.as_bytes();
    creds::create_as(uid, gid, || Ok(rustix::fs::symlinkat(target, dir, name)?))?;
    let undo = Undo::new(dir, name, false);
    let (file, stat) = b.lookup_created(dir, name, FileKind::Symlink)?;
    undo.keep();
    Ok(Node { file, stat })
}

/// LinkAt: links the inode `target` pins, named through its `/proc/self/fd` entry with
/// `AT_SYMLINK_FOLLOW` (which follows only the magic link: a symlink target is linked
/// itself). Unlike `AT_EMPTY_PATH` this needs no `CAP_DAC_READ_SEARCH` (gVisor #8688), and
/// unlike linking by the target's parent and name it cannot be redirected by a rename.
pub(super) fn link(
    b: &HostBackend,
    dir: &HostFile,
    name: Name<'_>,
    target: &HostFile,
) -> BResult<Node<HostFile>> {
    if target.kind() == FileKind::Directory {
        return Err(Errno::EPERM);
    }
    b.resolver.ensure_beneath(dir)?;
    b.resolver.ensure_beneath(target)?;
    let name = name.as_bytes();
    let source = Resolver::proc_name(target.as_fd());
    rustix::fs::linkat(
        b.resolver.proc_self_fd(),
        source,
        dir,
        name,
        AtFlags::SYMLINK_FOLLOW,
    )?;
    let undo = Undo::new(dir, name, false);
    // The new name is the same inode: a duplicate of the target's FD is its control FD.
    let file = target.try_clone()?;
    let stat = stat_fd(file.as_fd())?;
    undo.keep();
    Ok(Node { file, stat })
}

/// UnlinkAt; `flags` (0 or `AT_REMOVEDIR`) are passed through.
pub(super) fn unlink(b: &HostBackend, dir: &HostFile, name: Name<'_>, flags: u32) -> BResult<()> {
    b.resolver.ensure_beneath(dir)?;
    let flags = AtFlags::from_bits(flags).ok_or(Errno::EINVAL)?;
    Ok(rustix::fs::unlinkat(dir, name.as_bytes(), flags)?)
}

/// RenameAt and RenameAt2; `renameat2(2)` flags are passed through unchanged.
pub(super) fn rename(
    b: &HostBackend,
    old_dir: &HostFile,
    old_name: Name<'_>,
    new_dir: &HostFile,
    new_name: Name<'_>,
    flags: u32,
) -> BResult<()> {
    b.resolver.ensure_beneath(old_dir)?;
    b.resolver.ensure_beneath(new_dir)?;
    let flags = RenameFlags::from_bits_retain(flags);
    Ok(rustix::fs::renameat_with(
        old_dir,
        old_name.as_bytes(),
        new_dir,
        new_name.as_bytes(),
        flags,
    )?)
}
