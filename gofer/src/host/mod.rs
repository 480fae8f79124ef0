//! The host backend: serves one directory of the host filesystem.
//!
//! Every name is resolved one component at a time relative to a held directory FD (the
//! private `resolve` module is the only one that turns names into FDs); nothing on the host
//! is followed; operations act on the inode a control FD pins, never on a path string from
//! the root. Policy (file types, special files, set-ID bits, ownership, donation) is
//! SPEC.md §7.11. The methods are split by op family: `attr` (stat, set_stat, statfs,
//! readlink), `create` (create, mkdir, mknod, symlink, link, unlink, rename), `io` (open,
//! read, write, allocate, sync), `dir` (getdents), `xattr`, `socket` (connect, bind,
//! listen, accept).

mod attr;
mod create;
mod creds;
mod dir;
mod file;
mod io;
mod resolve;
mod socket;
mod xattr;

use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use lisafs_protocol::wire::{DirentList, Gid, SetStatReq, SetStatResp, StatFS, Statx, Uid};
use lisafs_server::{BResult, Backend, Create, Mounted, Name, Node, OpenFlags, Opened};
use rustix::fs::{Mode, OFlags};

pub use file::{FileKind, HostFile, HostOpen, HostSocket};
use resolve::Resolver;
pub use resolve::ShareMount;

/// Operator policy for a [`HostBackend`] (SPEC.md §7.11). The default is the strictest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostOptions {
    /// Walk onto other mounts below the root (otherwise `EXDEV`).
    pub allow_submounts: bool,
    /// Connect to host Unix sockets (Connect, ConnectWithCreds; otherwise `EPERM`).
    pub uds_connect: bool,
    /// Create host Unix sockets (BindAt, Listen, Accept; otherwise `EPERM`).
    pub uds_create: bool,
    /// Open FIFOs (otherwise `EPERM`).
    pub fifo_open: bool,
    /// Keep set-user-ID, set-group-ID and (on non-directories) sticky bits that clients
    /// request; otherwise they are removed.
    pub allow_setid: bool,
    /// Donate a fresh `O_RDONLY | O_DIRECTORY` FD of the root with Mount, and with
    /// OpenAt of the control FD Mount returned (SPEC.md §7.11 item 6).
    pub donate_mount_fd: bool,
    /// Which extended-attribute namespaces clients may use.
    pub xattr: XattrPolicy,
    /// Which special files MknodAt may create.
    pub mknod: MknodKinds,
}

/// Extended-attribute namespaces clients may use (`gofer --xattr`); the others are
/// `EOPNOTSUPP`, and FListXattr leaves them out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum XattrPolicy {
    /// None at all.
    None,
    /// Only `user.*`.
    #[default]
    User,
    /// Every namespace, `security.*`, `trusted.*` and `system.*` included.
    All,
}

/// One kind of special file MknodAt may create (`gofer --mknod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum MknodKind {
    /// FIFOs.
    Fifo,
    /// Unix socket files.
    Socket,
    /// Character devices.
    Char,
    /// Block devices.
    Block,
}

/// The special files MknodAt may create besides regular files and the 0:0 whiteout
/// (which are always allowed). The default allows none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MknodKinds {
    /// FIFOs.
    pub fifo: bool,
    /// Unix socket files.
    pub socket: bool,
    /// Character devices other than 0:0.
    pub char: bool,
    /// Block devices.
    pub block: bool,
}

impl MknodKinds {
    /// The kinds named in `list`.
    pub fn from_list(list: &[MknodKind]) -> Self {
        let has = |kind| list.contains(&kind);
        Self {
            fifo: has(MknodKind::Fifo),
            socket: has(MknodKind::Socket),
            char: has(MknodKind::Char),
            block: has(MknodKind::Block),
        }
    }

    /// Whether device nodes (char or block) may be created: the process then needs
    /// `CAP_MKNOD`.
    pub fn devices(&self) -> bool {
        self.char || self.block
    }
}

/// A [`Backend`] serving a host directory.
#[derive(Debug)]
pub struct HostBackend {
    root: HostFile,
    resolver: Resolver,
    options: HostOptions,
    /// Whether the process holds `CAP_CHOWN` (checked once): client UID/GID are applied
    /// only then.
    can_chown: bool,
}

impl HostBackend {
    /// Opens `root` (which must be a directory) and prepares to serve it.
    ///
    /// Sets the process umask to 0, so that files get exactly the mode a client asks for
    /// (as gVisor's gofer does). Fails if `root` is unusable, if procfs is not available, or
    /// if the kernel lacks `openat2` (Linux ≥ 5.6).
    pub fn new(root: &Path, options: HostOptions) -> std::io::Result<Self> {
        // The operator's path is trusted and may contain symlinks; it is resolved once.
        let fd = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Self::with_root(fd, ShareMount::Plain, options)
    }

    /// Serves the directory `root` is an FD of (an `O_PATH` FD will do), opened as `mount`
    /// says; otherwise as [`HostBackend::new`].
    pub fn with_root(
        root: OwnedFd,
        mount: ShareMount,
        options: HostOptions,
    ) -> std::io::Result<Self> {
        rustix::process::umask(Mode::empty());
        // Read now: the serving seccomp filter has no getuid family.
        creds::own_ids();
        let (root, _) = HostFile::from_opath(root).map_err(std::io::Error::from)?;
        if root.kind() != FileKind::Directory {
            return Err(std::io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        let resolver = Resolver::new(&root, mount, options.allow_submounts)?;
        let can_chown = rustix::thread::capabilities(None)
            .map(|caps| {
                caps.effective
                    .contains(rustix::thread::CapabilitySet::CHOWN)
            })
            .unwrap_or(false);
        Ok(Self {
            root,
            resolver,
            options,
            can_chown,
        })
    }

    /// Makes the process's working directory its `/proc/self/fd` handle, through which
    /// host Unix sockets are then named: for a gofer whose root is the share, where `/proc`
    /// cannot be reached by path. Process-wide; for the `gofer` program's start-up.
    pub fn name_sockets_from_cwd(&self) -> std::io::Result<()> {
        self.resolver.name_sockets_from_cwd()
    }

    /// The served root (an `O_PATH` FD).
    pub fn root_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// The policy in force.
    pub fn options(&self) -> &HostOptions {
        &self.options
    }

    /// Whether client-supplied owners are applied (the process has `CAP_CHOWN`).
    pub fn can_chown(&self) -> bool {
        self.can_chown
    }

    /// Permission bits `mode` less the privilege bits the policy does not allow.
    fn policy_mode(&self, mode: u32, is_dir: bool) -> u32 {
        policy_mode(mode, is_dir, self.options.allow_setid)
    }
}

/// The permission bits of `mode` (`07777`), without set-user-ID and set-group-ID, and
/// without sticky on a non-directory, unless `allow_setid` (SPEC.md §7.11 item 4).
fn policy_mode(mode: u32, is_dir: bool, allow_setid: bool) -> u32 {
    let mut mode = mode & 0o7777;
    if !allow_setid {
        mode &= !0o6000; // S_ISUID | S_ISGID
        if !is_dir {
            mode &= !0o1000; // S_ISVTX means nothing good on a non-directory.
        }
    }
    mode
}

impl Backend for HostBackend {
    type File = HostFile;
    type Open = HostOpen;
    type Socket = HostSocket;

    fn mount(&self) -> BResult<Mounted<HostFile>> {
        let file = self.root.mount_point()?;
        let stat = file::stat_fd(file.as_fd())?;
        let donated = io::donate_mount_point(self, &file)?;
        Ok(Mounted {
            root: Node { file, stat },
            donated,
        })
    }

    fn path(&self, file: &HostFile) -> Option<PathBuf> {
        let path = self.resolver.current_path(file)?;
        Some(PathBuf::from(OsString::from_vec(path)))
    }

    fn stat(&self, file: &HostFile) -> BResult<Statx> {
        file::stat_fd(file.as_fd())
    }

    fn set_stat(&self, file: &HostFile, req: &SetStatReq) -> BResult<SetStatResp> {
        attr::set_stat(self, file, req)
    }

    fn walk(&self, dir: &HostFile, name: Name<'_>) -> BResult<Node<HostFile>> {
        let (file, stat) = self.resolver.lookup_file(dir, name.as_bytes())?;
        Ok(Node { file, stat })
    }

    fn stat_at(&self, dir: &HostFile, name: Name<'_>) -> BResult<Statx> {
        self.resolver.stat_child(dir, name.as_bytes())
    }

    fn revalidates(&self) -> bool {
        self.resolver.revalidates()
    }

    fn revalidate(
        &self,
        dir: &HostFile,
        name: Name<'_>,
        known: &HostFile,
    ) -> BResult<Option<Statx>> {
        self.resolver.revalidate(dir, name.as_bytes(), known)
    }

    fn open(&self, file: &HostFile, flags: OpenFlags) -> BResult<Opened<HostOpen>> {
        io::open(self, file, flags)
    }

    fn create(
        &self,
        dir: &HostFile,
        name: Name<'_>,
        attrs: Create,
        flags: OpenFlags,
    ) -> BResult<(Node<HostFile>, Opened<HostOpen>)> {
        create::create(self, dir, name, attrs, flags)
    }

    fn mkdir(&self, dir: &HostFile, name: Name<'_>, attrs: Create) -> BResult<Node<HostFile>> {
        create::mkdir(self, dir, name, attrs)
    }

    fn mknod(
        &self,
        dir: &HostFile,
        name: Name<'_>,
        attrs: Create,
        major: u32,
        minor: u32,
    ) -> BResult<Node<HostFile>> {
        create::mknod(self, dir, name, attrs, major, minor)
    }

    fn symlink(
        &self,
        dir: &HostFile,
        name: Name<'_>,
        target: &[u8],
        uid: Uid,
        gid: Gid,
    ) -> BResult<Node<HostFile>> {
        create::symlink(self, dir, name, target, uid, gid)
    }

    fn link(&self, dir: &HostFile, name: Name<'_>, target: &HostFile) -> BResult<Node<HostFile>> {
        create::link(self, dir, name, target)
    }

    fn statfs(&self, file: &HostFile) -> BResult<StatFS> {
        attr::statfs(file)
    }

    fn readlink(&self, file: &HostFile) -> BResult<Vec<u8>> {
        attr::readlink(file)
    }

    fn connect(
        &self,
        file: &HostFile,
        sock_type: u32,
        creds: Option<(Uid, Gid)>,
    ) -> BResult<OwnedFd> {
        socket::connect(self, file, sock_type, creds)
    }

    fn unlink(&self, dir: &HostFile, name: Name<'_>, flags: u32) -> BResult<()> {
        create::unlink(self, dir, name, flags)
    }

    fn rename(
        &self,
        old_dir: &HostFile,
        old_name: Name<'_>,
        new_dir: &HostFile,
        new_name: Name<'_>,
        flags: u32,
    ) -> BResult<()> {
        create::rename(self, old_dir, old_name, new_dir, new_name, flags)
    }

    fn get_xattr(&self, file: &HostFile, name: &[u8], size: usize) -> BResult<Vec<u8>> {
        xattr::get(self, file, name, size)
    }

    fn set_xattr(&self, file: &HostFile, name: &[u8], value: &[u8], flags: u32) -> BResult<()> {
        xattr::set(self, file, name, value, flags)
    }

    fn list_xattr(&self, file: &HostFile, size: usize) -> BResult<Vec<Vec<u8>>> {
        xattr::list(self, file, size)
    }

    fn remove_xattr(&self, file: &HostFile, name: &[u8]) -> BResult<()> {
        xattr::remove(self, file, name)
    }

    fn bind(
        &self,
        dir: &HostFile,
        name: Name<'_>,
        sock_type: u32,
        attrs: Create,
    ) -> BResult<(Node<HostFile>, HostSocket, OwnedFd)> {
        socket::bind(self, dir, name, sock_type, attrs)
    }

    fn listen(&self, socket: &HostSocket, backlog: i32) -> BResult<()> {
        socket::listen(self, socket, backlog)
    }

    fn accept(&self, socket: &HostSocket) -> BResult<(OwnedFd, Vec<u8>)> {
        socket::accept(self, socket)
    }

    /// Regular files opened for reading: `read` is a plain `pread` of them.
    fn read_fd<'a>(&self, open: &'a HostOpen) -> Option<BorrowedFd<'a>> {
        (open.kind() == FileKind::Regular && open.readable()).then(|| open.as_fd())
    }

    /// Files opened for writing: `write` is a plain `pwrite` of them.
    fn write_fd<'a>(&self, open: &'a HostOpen) -> Option<BorrowedFd<'a>> {
        open.writable().then(|| open.as_fd())
    }

    fn read(&self, open: &HostOpen, offset: u64, buf: &mut [u8]) -> BResult<usize> {
        io::read(open, offset, buf)
    }

    fn write(&self, open: &HostOpen, offset: u64, data: &[u8]) -> BResult<usize> {
        io::write(open, offset, data)
    }

    fn allocate(&self, open: &HostOpen, mode: u64, offset: u64, length: u64) -> BResult<()> {
        io::allocate(open, mode, offset, length)
    }

    fn sync(&self, open: &HostOpen) -> BResult<()> {
        io::sync(open)
    }

    fn getdents(&self, open: &HostOpen, rewind: bool, budget: usize) -> BResult<DirentList> {
        dir::getdents(self, open, rewind, budget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_mode_keeps_only_permission_bits() {
        assert_eq!(policy_mode(0o170_644, false, true), 0o644);
    }

    #[test]
    fn policy_mode_strips_setid_and_file_sticky_by_default() {
        assert_eq!(policy_mode(0o7777, false, false), 0o777);
        assert_eq!(policy_mode(0o7777, true, false), 0o1777);
    }

    #[test]
    fn policy_mode_keeps_everything_when_allowed() {
        assert_eq!(policy_mode(0o7777, false, true), 0o7777);
    }
}
