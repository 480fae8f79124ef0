//! The only place that turns names into host FDs.
//!
//! * A lookup is always one component relative to a held directory FD, with
//!   `openat2(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC, RESOLVE_BENEATH |
//!   RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS [| RESOLVE_NO_XDEV])`. A symlink as the
//!   component yields an FD of the symlink itself; nothing is ever followed.
//! * Reopening an `O_PATH` FD with real access goes through the validated `/proc/self/fd`
//!   handle (`openat(proc_self_fd, "<n>", ...)`): the magic link names the pinned inode, so
//!   no attacker-controlled path is resolved. Symlinks are never reopened.
//! * Exclusive creation of regular files uses `openat(O_CREAT | O_EXCL | O_NOFOLLOW)`
//!   relative to the held directory, which never follows a symlink.
//! * The containment check walks `..` from a directory FD to the served root.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use lisafs_protocol::wire::{Errno, Statx};
use lisafs_server::BResult;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::path::DecInt;

use super::file::{stat_fd, FileId, FileKind, HostFile};

/// Longest `..` chain the containment check follows before giving up (a path of 4096
/// bytes has at most 2048 components).
const MAX_DEPTH: usize = 4096;

/// Per-backend resolution state: the `/proc/self/fd` handle, the `openat2` flags and the
/// identity of the served root.
#[derive(Debug)]
pub(crate) struct Resolver {
    proc_self_fd: BorrowedFd<'static>,
    resolve: ResolveFlags,
    root: FileId,
}

impl Resolver {
    /// Validates procfs and probes `openat2` on `root` (which refuses to start on kernels
    /// without it: fail closed rather than fall back to a weaker walk).
    pub(crate) fn new(root: &HostFile, allow_submounts: bool) -> std::io::Result<Self> {
        let proc_self_fd = rustix_linux_procfs::proc_self_fd()?;
        let mut resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        if !allow_submounts {
            resolve |= ResolveFlags::NO_XDEV;
        }
        let probe = rustix::fs::openat2(
            root,
            c".",
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        );
        match probe {
            Ok(_) => {}
            Err(rustix::io::Errno::NOSYS) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "the kernel lacks openat2 (Linux 5.6 or later is required)",
                ))
            }
            Err(err) => return Err(err.into()),
        }
        Ok(Self {
            proc_self_fd,
            resolve,
            root: root.id(),
        })
    }

    /// Looks up one component of `dir` without following anything; returns an `O_PATH`
    /// FD. `name` is a validated single component.
    pub(crate) fn lookup(&self, dir: &HostFile, name: &[u8]) -> BResult<OwnedFd> {
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(rustix::fs::openat2(
            dir,
            name,
            flags,
            Mode::empty(),
            self.resolve,
        )?)
    }

    /// [`Resolver::lookup`] plus the type policy: the child's handle and attributes.
    pub(crate) fn lookup_file(&self, dir: &HostFile, name: &[u8]) -> BResult<(HostFile, Statx)> {
        HostFile::from_opath(self.lookup(dir, name)?)
    }

    /// Creates the regular file `name` in `dir` exclusively (never following a symlink)
    /// with exactly `mode` (the umask is 0) and returns it open with `access`.
    pub(crate) fn create_file(
        &self,
        dir: &HostFile,
        name: &[u8],
        access: OFlags,
        mode: u32,
    ) -> BResult<OwnedFd> {
        let flags = access
            | OFlags::CREATE
            | OFlags::EXCL
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | OFlags::NOCTTY;
        Ok(rustix::fs::openat(
            dir,
            name,
            flags,
            Mode::from_raw_mode(mode),
        )?)
    }

    /// Opens the inode of `fd` anew with `flags` through `/proc/self/fd/<fd>`.
    fn reopen_fd(&self, fd: BorrowedFd<'_>, flags: OFlags) -> BResult<OwnedFd> {
        let flags = flags | OFlags::CLOEXEC | OFlags::NOCTTY;
        Ok(rustix::fs::openat(
            self.proc_self_fd,
            Self::proc_name(fd),
            flags,
            Mode::empty(),
        )?)
    }

    /// Opens `file` for I/O with `flags` (an access mode, maybe `O_TRUNC`/`O_NONBLOCK`).
    /// Directories are always opened read-only; symlinks are never reopened (`EINVAL`).
    pub(crate) fn reopen(&self, file: &HostFile, flags: OFlags) -> BResult<OwnedFd> {
        match file.kind() {
            FileKind::Symlink => Err(Errno::EINVAL),
            FileKind::Directory => self.reopen_fd(file.as_fd(), OFlags::RDONLY | OFlags::DIRECTORY),
            _ => self.reopen_fd(file.as_fd(), flags),
        }
    }

    /// An `O_PATH` FD for the inode an open FD refers to (so the control FD of a created
    /// file is certainly the file we created, whatever happens to its name).
    pub(crate) fn opath_of(&self, fd: BorrowedFd<'_>) -> BResult<OwnedFd> {
        self.reopen_fd(fd, OFlags::PATH)
    }

    /// The validated `/proc/self/fd` directory handle.
    pub(crate) fn proc_self_fd(&self) -> BorrowedFd<'static> {
        self.proc_self_fd
    }

    /// The name of `fd` inside `/proc/self/fd`.
    pub(crate) fn proc_name(fd: BorrowedFd<'_>) -> DecInt {
        DecInt::from_fd(fd)
    }

    /// The same name as a C string, for the raw `*xattrat` calls.
    pub(crate) fn proc_cname(fd: BorrowedFd<'_>) -> CString {
        Self::proc_name(fd).as_c_str().to_owned()
    }

    /// `/proc/self/fd/<fd>` followed by `/name` if given: a socket address for the inode of
    /// `fd` (or for `name` in directory `fd`). Unix socket addresses are paths; Linux has no
    /// `connectat`, so the magic link is the only way to name a pinned inode. Longer than
    /// `sun_path` allows (108 bytes with the NUL) → `EINVAL`.
    pub(crate) fn socket_path(fd: BorrowedFd<'_>, name: Option<&[u8]>) -> BResult<Vec<u8>> {
        let mut path = b"/proc/self/fd/".to_vec();
        path.extend_from_slice(Self::proc_name(fd).as_bytes());
        if let Some(name) = name {
            path.push(b'/');
            path.extend_from_slice(name);
        }
        if path.len() >= 108 {
            return Err(Errno::EINVAL);
        }
        Ok(path)
    }

    /// Fails with `EXDEV` unless the directory `dir` is still the served root or below it.
    ///
    /// A host process may move a directory the client holds out of the share; the held FD
    /// would follow it. Mutating operations call this first: it climbs `..` from `dir`
    /// until it meets the root's inode (inside) or the top of the namespace (outside). A
    /// rename racing with the check is not detected (SPEC.md §12).
    pub(crate) fn ensure_beneath(&self, dir: &HostFile) -> BResult<()> {
        if dir.id() == self.root {
            return Ok(());
        }
        let up = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut current = match rustix::fs::openat(dir, c"..", up, Mode::empty()) {
            Ok(parent) => parent,
            // A removed directory has no "..": it is reachable by no one, and what may be
            // done to it (SetStat on a deleted node) cannot reach outside the share.
            Err(rustix::io::Errno::NOENT) if stat_fd(dir.as_fd())?.nlink == 0 => return Ok(()),
            Err(err) => return Err(err.into()),
        };
        let mut current_id = FileId::of(&stat_fd(current.as_fd())?);
        for _ in 0..MAX_DEPTH {
            if current_id == self.root {
                return Ok(());
            }
            let parent = rustix::fs::openat(&current, c"..", up, Mode::empty())?;
            let parent_id = FileId::of(&stat_fd(parent.as_fd())?);
            if parent_id == current_id {
                // The top of the mount namespace, and the root was not on the way.
                break;
            }
            current = parent;
            current_id = parent_id;
        }
        tracing::warn!("a directory held by a client is no longer beneath the served root");
        Err(Errno::EXDEV)
    }
}
