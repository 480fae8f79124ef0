//! The only place that turns names into host FDs.
//!
//! * A lookup is always one component relative to a held directory FD, with
//!   `openat2(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC, RESOLVE_BENEATH |
//!   RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS [| RESOLVE_NO_XDEV])`. A symlink as the
//!   component yields an FD of the symlink itself; nothing is ever followed. Where
//!   submounts are allowed, a pseudo-filesystem (procfs, sysfs, ...) is still refused.
//! * Reopening an `O_PATH` FD with real access goes through the validated `/proc/self/fd`
//!   handle (`openat(proc_self_fd, "<n>", ...)`): the magic link names the pinned inode, so
//!   no attacker-controlled path is resolved. Symlinks are never reopened.
//! * Exclusive creation of regular files uses `openat(O_CREAT | O_EXCL | O_NOFOLLOW)`
//!   relative to the held directory, which never follows a symlink.
//! * The containment check ([`Resolver::ensure_beneath`]) asks the kernel whether a held
//!   file is still inside the share (see there).
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use lisafs_protocol::wire::{Errno, Statx};
use lisafs_server::{refused, BResult, Refusal};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, StatxAttributes, StatxFlags};
use rustix::path::DecInt;

use super::file::{stat_fd, wire_statx, FileId, FileKind, HostFile};

/// Whether Unix socket addresses name `/proc/self/fd` entries relative to the working
/// directory (which is then that directory) instead of by absolute path; see
/// [`Resolver::name_sockets_from_cwd`].
static SOCKETS_FROM_CWD: AtomicBool = AtomicBool::new(false);

/// `statfs` magic numbers of pseudo-filesystems the gofer never enters, even with
/// submounts allowed: they expose the kernel or other processes, not files.
const PSEUDO_FILESYSTEMS: [rustix::fs::FsWord; 15] = [
    0x9fa0,      // proc
    0x6265_6572, // sysfs
    0x6462_6720, // debugfs
    0x7472_6163, // tracefs
    0x7363_6673, // securityfs
    0xcafe_4a11, // bpf
    0x0027_e0eb, // cgroup
    0x6367_7270, // cgroup2
    0x6265_6570, // configfs
    0xf97c_ff8c, // selinuxfs
    0xde5e_81e4, // efivarfs
    0x4249_4e4d, // binfmt_misc
    0x6573_5546, // fusectl
    0x6165_676c, // pstore
    0x1cd1,      // devpts
];

/// `statfs` magic numbers of filesystems on which a live inode's number is its own: no
/// other file shares it while the inode lives (tmpfs, ext2/3/4, XFS, Btrfs, F2FS). Only
/// there may a held directory be recognised by number ([`Resolver::revalidate`]); FUSE,
/// network filesystems and overlayfs may report numbers that repeat.
const STABLE_INODE_NUMBERS: [rustix::fs::FsWord; 5] = [
    0x0102_1994, // tmpfs
    0xef53,      // ext2, ext3, ext4
    0x5846_5342, // xfs
    0x9123_683e, // btrfs
    0xf2f5_2010, // f2fs
];

/// How the served root was opened, which decides how containment is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareMount {
    /// The root of a bind mount of the share (`gofer`: a detached clone): the kernel
    /// refuses `..` from a directory moved outside the mount's root.
    Detached,
    /// A plain directory FD on the host's mount: containment is checked by climbing `..`.
    Plain,
}

/// Per-backend resolution state: the `/proc/self/fd` handle, the `openat2` flags and the
/// identity and path of the served root.
#[derive(Debug)]
pub(crate) struct Resolver {
    proc_self_fd: BorrowedFd<'static>,
    resolve: ResolveFlags,
    root: FileId,
    /// A second handle on the root, to resolve paths from it.
    root_fd: OwnedFd,
    /// What `/proc/self/fd` shows for the root: "/" for a detached mount, the host path
    /// otherwise. A file's path there is this plus its path inside the share.
    root_path: Vec<u8>,
    mount: ShareMount,
    allow_submounts: bool,
    /// Whether [`Resolver::revalidate`] may confirm anything.
    revalidates: bool,
}

impl Resolver {
    /// Validates procfs and probes `openat2` on `root` (which refuses to start on kernels
    /// without it: fail closed rather than fall back to a weaker walk).
    pub(crate) fn new(
        root: &HostFile,
        mount: ShareMount,
        allow_submounts: bool,
    ) -> std::io::Result<Self> {
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
        let root_path = proc_link(proc_self_fd, root.as_fd()).map_err(std::io::Error::from)?;
        // Without submounts every directory served is on the root's filesystem.
        let fs_type = rustix::fs::fstatfs(root)?.f_type;
        let revalidates = !allow_submounts && STABLE_INODE_NUMBERS.contains(&fs_type);
        Ok(Self {
            proc_self_fd,
            resolve,
            root: root.id(),
            root_fd: rustix::io::fcntl_dupfd_cloexec(root, 0)?,
            root_path,
            mount,
            allow_submounts,
            revalidates,
        })
    }

    /// Looks up one component of `dir` without following anything; returns an `O_PATH`
    /// FD. `name` is a validated single component.
    pub(crate) fn lookup(&self, dir: &HostFile, name: &[u8]) -> BResult<OwnedFd> {
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat2(dir, name, flags, Mode::empty(), self.resolve)?;
        // Without NO_XDEV the step may have entered another mount: never a pseudo-fs.
        if self.allow_submounts {
            let kind = rustix::fs::fstatfs(&fd)?.f_type;
            if PSEUDO_FILESYSTEMS.contains(&kind) {
                refused!(
                    Refusal::PseudoFs,
                    magic = kind,
                    "refused a walk into a pseudo-filesystem"
                );
                return Err(Errno::EXDEV);
            }
        }
        Ok(fd)
    }

    /// [`Resolver::lookup_file`]'s attributes without the handle: one `statx` of the
    /// component from `dir` ([`Resolver::stat_name`]) instead of `openat2` + `statx` +
    /// `close`, unless the component is or may be a mount root: then the walk decides.
    pub(crate) fn stat_child(&self, dir: &HostFile, name: &[u8]) -> BResult<Statx> {
        match self.stat_name(dir, name)? {
            Some(stat) => {
                FileKind::from_mode(stat.mode)?;
                Ok(stat)
            }
            None => self.lookup_file(dir, name).map(|(_, stat)| stat),
        }
    }

    /// Whether [`Resolver::revalidate`] may confirm anything: the share has no submounts
    /// and its filesystem numbers inodes stably ([`STABLE_INODE_NUMBERS`]).
    pub(crate) fn revalidates(&self) -> bool {
        self.revalidates
    }

    /// `name`'s attributes if it names `known` (a directory this resolver looked up) in
    /// `dir` now: one `statx` instead of `openat2` + `statx` + `close`.
    ///
    /// Why a matching (device, inode) proves it: `known` holds an FD of its inode, so the
    /// inode lives, and on these filesystems no other file has its number while it lives.
    /// The name therefore names that very inode; `known` was reached by a lookup from
    /// inside the share, and `dir` (held, inside the share) reaches it now, so going on
    /// from `known` is going on from what a fresh lookup would return. A mount on the
    /// name is left to the walk, which refuses it (`RESOLVE_NO_XDEV`).
    pub(crate) fn revalidate(
        &self,
        dir: &HostFile,
        name: &[u8],
        known: &HostFile,
    ) -> BResult<Option<Statx>> {
        if !self.revalidates {
            return Ok(None);
        }
        let stat = self.stat_name(dir, name)?;
        Ok(stat.filter(|stat| FileId::of(stat) == known.id()))
    }

    /// `statx` of the component `name` of `dir`, not following a symlink: a single
    /// validated name cannot climb or follow anything. `None` if it is, or may be (the
    /// kernel cannot say), the root of a mount, the one thing `RESOLVE_NO_XDEV` would
    /// still catch (`STATX_ATTR_MOUNT_ROOT`).
    fn stat_name(&self, dir: &HostFile, name: &[u8]) -> BResult<Option<Statx>> {
        let flags = AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT;
        let mask = StatxFlags::BASIC_STATS | StatxFlags::BTIME;
        let st = rustix::fs::statx(dir, name, flags, mask)?;
        let root = StatxAttributes::MOUNT_ROOT;
        if !st.stx_attributes_mask.contains(root) || st.stx_attributes.contains(root) {
            return Ok(None);
        }
        Ok(Some(wire_statx(&st)))
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

    /// Makes the working directory the validated `/proc/self/fd` handle and names socket
    /// addresses relative to it from now on, for a process whose root is the share (so no
    /// `/proc` is reachable by path). Process-wide: the gofer calls it once at start-up
    /// and uses no other relative path.
    pub(crate) fn name_sockets_from_cwd(&self) -> std::io::Result<()> {
        rustix::process::fchdir(self.proc_self_fd)?;
        SOCKETS_FROM_CWD.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// `/proc/self/fd/<fd>` (or just `<fd>` after [`Resolver::name_sockets_from_cwd`])
    /// followed by `/name` if given: a socket address for the inode of `fd` (or for `name`
    /// in directory `fd`). Unix socket addresses are paths; Linux has no `connectat`, so
    /// the magic link is the only way to name a pinned inode. Longer than `sun_path` allows
    /// (108 bytes with the NUL) → `EINVAL`.
    pub(crate) fn socket_path(fd: BorrowedFd<'_>, name: Option<&[u8]>) -> BResult<Vec<u8>> {
        let mut path = match SOCKETS_FROM_CWD.load(Ordering::Relaxed) {
            true => Vec::new(),
            false => b"/proc/self/fd/".to_vec(),
        };
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

    /// Fails with `EXDEV` unless `file` is still the served root or inside it.
    ///
    /// A host process may move a file or directory the client holds out of the share; the
    /// held FD follows it. Mutating operations (and opens for writing) call this first.
    /// A file no name reaches any more (unlinked) passes: nothing outside can be harmed
    /// through it. The answer comes from the kernel in a fixed number of system calls,
    /// whatever the depth:
    ///
    /// * A directory of a detached share: `..` from it. The kernel refuses (`ENOENT`) to
    ///   step from a directory that is no longer below the bind mount's root.
    /// * Any other file: the path `/proc/self/fd` shows for it (which begins with the
    ///   root's own path while it is inside) is resolved again beneath the root, as a walk
    ///   would, and must reach the same inode. An inode also reachable inside the share
    ///   passes. Deeper than `PATH_MAX` the kernel cannot name it: `ENAMETOOLONG`.
    ///
    /// A rename racing with the check is not detected (SPEC.md §12).
    pub(crate) fn ensure_beneath(&self, file: &HostFile) -> BResult<()> {
        if file.id() == self.root {
            return Ok(());
        }
        let inside = match (file.kind(), self.mount) {
            (FileKind::Directory, ShareMount::Detached) => self.parent_connected(file)?,
            (FileKind::Directory, ShareMount::Plain) => self.climbs_to_root(file)?,
            _ => self.resolves_from_root(file)?,
        };
        if inside || stat_fd(file.as_fd())?.nlink == 0 {
            return Ok(());
        }
        refused!(
            Refusal::Escape,
            "refused a change to a file that is no longer beneath the served root"
        );
        Err(Errno::EXDEV)
    }

    /// Whether the kernel steps to `..` from the directory `dir` of a detached share.
    ///
    /// A `statx` asking for nothing walks `..` as an open would (the refusal comes from
    /// the walk, whatever ends it) without making and closing a file: one system call on
    /// every mutation instead of two.
    fn parent_connected(&self, dir: &HostFile) -> BResult<bool> {
        let flags = AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT;
        match rustix::fs::statx(dir, c"..", flags, StatxFlags::empty()) {
            Ok(_) => Ok(true),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// Whether climbing `..` from `dir` meets the root before the top of the namespace.
    fn climbs_to_root(&self, dir: &HostFile) -> BResult<bool> {
        let up = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut current = match rustix::fs::openat(dir, c"..", up, Mode::empty()) {
            Ok(parent) => parent,
            Err(rustix::io::Errno::NOENT) => return Ok(false),
            Err(err) => return Err(err.into()),
        };
        let mut current_id = FileId::of(&stat_fd(current.as_fd())?);
        loop {
            if current_id == self.root {
                return Ok(true);
            }
            let parent = rustix::fs::openat(&current, c"..", up, Mode::empty())?;
            let parent_id = FileId::of(&stat_fd(parent.as_fd())?);
            if parent_id == current_id {
                // The top of the mount namespace, and the root was not on the way.
                return Ok(false);
            }
            current = parent;
            current_id = parent_id;
        }
    }

    /// Whether the path the kernel shows for `file` leads from the root to the same inode.
    fn resolves_from_root(&self, file: &HostFile) -> BResult<bool> {
        let path = proc_link(self.proc_self_fd, file.as_fd())?;
        let Some(relative) = strip_dir_prefix(&path, &self.root_path) else {
            return Ok(false);
        };
        self.reaches(relative, file)
    }

    /// Whether `relative`, resolved beneath the root as a walk would, is `file`'s inode.
    fn reaches(&self, relative: &[u8], file: &HostFile) -> BResult<bool> {
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat2(&self.root_fd, relative, flags, Mode::empty(), self.resolve) {
            Ok(found) => Ok(FileId::of(&stat_fd(found.as_fd())?) == file.id()),
            Err(rustix::io::Errno::NAMETOOLONG) => Err(Errno::ENAMETOOLONG),
            Err(_) => Ok(false),
        }
    }

    /// `file`'s path relative to the root now (empty for the root), or `None` if it is
    /// outside the share, unlinked, or cannot be named (`Backend::path`).
    ///
    /// The path `/proc/self/fd` shows is a claim, not a proof: for a file a host process
    /// moved out of a detached share the kernel prints its path from the filesystem's own
    /// root, which may look like a path inside; for an unlinked one it appends
    /// " (deleted)". So the claimed path is resolved again beneath the root and must reach
    /// the same inode: three system calls (readlink, openat2, statx), whatever the depth.
    /// A rename between the readlink and the openat2 makes the two disagree; the check is
    /// then retried while the claimed path keeps changing, a few times at most.
    pub(crate) fn current_path(&self, file: &HostFile) -> Option<Vec<u8>> {
        if file.id() == self.root {
            return Some(Vec::new());
        }
        let mut previous: Option<Vec<u8>> = None;
        for _ in 0..3 {
            let path = proc_link(self.proc_self_fd, file.as_fd()).ok()?;
            if previous.as_ref() == Some(&path) {
                return None;
            }
            if let Some(relative) = strip_dir_prefix(&path, &self.root_path) {
                if relative != b"." && self.reaches(relative, file) == Ok(true) {
                    return Some(relative.to_vec());
                }
            }
            previous = Some(path);
        }
        None
    }
}

/// What `/proc/self/fd/<fd>` shows: the path of the file `fd` holds, as the kernel sees it
/// from this process's root.
fn proc_link(proc_self_fd: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> BResult<Vec<u8>> {
    let link = rustix::fs::readlinkat(proc_self_fd, Resolver::proc_name(fd), Vec::new())?;
    Ok(link.into_bytes())
}

/// `path` relative to the directory `dir` (both absolute), if it is inside it; "." for
/// `dir` itself.
fn strip_dir_prefix<'p>(path: &'p [u8], dir: &[u8]) -> Option<&'p [u8]> {
    let rest = path.strip_prefix(dir)?;
    let rest = match dir.ends_with(b"/") {
        true => rest,
        false if rest.is_empty() => return Some(b"."),
        false => rest.strip_prefix(b"/")?,
    };
    Some(if rest.is_empty() { b"." } else { rest })
}

#[cfg(test)]
mod tests {
    use super::strip_dir_prefix;

    #[test]
    fn strip_dir_prefix_takes_whole_components() {
        assert_eq!(strip_dir_prefix(b"/a/f", b"/"), Some(&b"a/f"[..]));
        assert_eq!(strip_dir_prefix(b"/srv/x/f", b"/srv/x"), Some(&b"f"[..]));
        assert_eq!(strip_dir_prefix(b"/srv/x", b"/srv/x"), Some(&b"."[..]));
        assert_eq!(strip_dir_prefix(b"/srv/xy/f", b"/srv/x"), None);
        assert_eq!(strip_dir_prefix(b"/out/f", b"/srv/x"), None);
    }
}
