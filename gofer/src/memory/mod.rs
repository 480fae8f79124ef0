//! The memory backend: a whole tree held in the gofer's memory, nothing on the host disk.
//!
//! Every file is an inode in memory (`inode`): directories map names to inodes, symlinks
//! hold their target, FIFOs, sockets and devices are inert nodes (attributes only), and
//! regular files hold their data in a memfd, so that OpenAt and OpenCreateAt donate a host
//! FD exactly as the host backend does: the client then reads, writes and maps without
//! RPCs. Each open is a fresh open of the memfd through the validated `/proc/self/fd`
//! handle with the access mode asked for, so an FD donated for reading cannot write, and
//! every open has its own file position (a `dup` would share both).
//!
//! Semantics are those of a local filesystem (tmpfs): owners and modes as the client sets
//! them (no permission checks: the client, a sentry, checks them), times, link counts,
//! RenameAt2 flags, xattrs in every namespace, unlinked-but-open files, and Getdents64
//! offsets that stay valid while a directory changes (`Entries`). Opening a socket file is
//! `ENXIO` (as on Linux); opening a FIFO or a device is `EPERM` (there is nothing behind
//! it); BindAt, Listen, Accept and Connect are `EOPNOTSUPP`.
//!
//! The size limit (`--memory-size`) counts file sizes rounded up to 4 KiB blocks (sparse
//! files count in full), symlink targets and xattrs; the inode limit counts files. RPC
//! writes, FAllocate and SetStat of the size are charged before they happen (`ENOSPC`
//! beyond the limit). A donated FD can grow its file without asking: that growth is
//! charged when the file is next stat'ed or written over RPC, so the limit is best-effort
//! for clients that write through donated FDs (sealing the memfds against growth would
//! stop files from growing at all).
//!
//! Concurrency: no lock is shared by the whole tree on any path but rename. A directory's
//! entries have their own `RwLock`, an inode's metadata its own `Mutex`; renames take the
//! backend's rename lock (the server serialises them already; the backend does not rely on
//! it).
//!
//! Cost: every regular file holds one FD (its memfd) in the gofer, so the number of
//! regular files is bounded by `RLIMIT_NOFILE` too; running out is `ENOSPC`.

mod attr;
mod inode;
mod io;
mod namespace;
mod populate;
mod usage;
mod xattr;

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use lisafs_protocol::wire::Errno;
use lisafs_protocol::wire::{
    DirentList, Gid, SetStatReq, SetStatResp, StatFS, Statx, Uid, S_IFDIR,
};
use lisafs_server::{BResult, Backend, Create, Mounted, Name, Node, OpenFlags, Opened, SharedFd};
use parking_lot::Mutex;

use inode::{Inode, Meta};
use usage::Usage;

/// Limits of a [`MemoryBackend`]. The default has none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryOptions {
    /// Bytes of file data, symlink targets and xattrs the tree may hold (`--memory-size`);
    /// `None` for no limit.
    pub max_bytes: Option<u64>,
    /// Files (inodes) the tree may hold; `None` for one per KiB of `max_bytes`, or no
    /// limit without one. Bounds the memory and FDs a client can make the gofer use with
    /// empty files.
    pub max_inodes: Option<u64>,
    /// The tree will be served read-only: regular files are created sealable, so that
    /// [`MemoryBackend::seal_read_only`] can make every write to them fail in the kernel,
    /// through donated FDs and reopens of them too (`--readonly`).
    pub read_only: bool,
}

/// A [`Backend`] holding the whole tree in memory. See the module documentation.
#[derive(Debug)]
pub struct MemoryBackend {
    root: Arc<Inode>,
    usage: Arc<Usage>,
    /// The next inode number; numbers are never reused.
    next_ino: AtomicU64,
    /// Serialises renames, so ancestry checks see parent links no rename is changing.
    rename_lock: Mutex<()>,
    /// The validated `/proc/self/fd` handle, through which memfds are reopened.
    proc_self_fd: BorrowedFd<'static>,
    /// Owner of files created without one (`Uid::NONE`, `Gid::NONE`): the process's.
    default_owner: (u32, u32),
    /// Whether memfds are created sealable (`MemoryOptions::read_only`).
    sealable: bool,
}

/// The state behind a control FD: the inode.
#[derive(Debug, Clone)]
pub struct MemoryFile {
    inode: Arc<Inode>,
}

impl MemoryFile {
    /// The inode number.
    pub fn ino(&self) -> u64 {
        self.inode.ino
    }
}

/// The state behind an open FD.
#[derive(Debug)]
pub struct MemoryOpen {
    inode: Arc<Inode>,
    state: OpenState,
}

/// What an open FD holds besides its inode.
#[derive(Debug)]
enum OpenState {
    /// A regular file: its own open of the memfd, with the access asked for, shared with
    /// the OpenAt response that donates it (see [`SharedFd`]).
    Regular {
        fd: SharedFd,
        readable: bool,
        writable: bool,
    },
    /// A directory: the cookie of the last entry Getdents64 returned (0: none yet).
    Directory { cursor: Mutex<u64> },
}

/// The bound-socket state of a [`MemoryBackend`], which binds no sockets: no value exists.
#[derive(Debug)]
pub enum NoSocket {}

impl MemoryBackend {
    /// An empty tree: a root directory with mode `01777` (as tmpfs), owned by the process.
    /// Fails if procfs is not available (memfds are reopened through it).
    pub fn new(options: MemoryOptions) -> std::io::Result<Self> {
        let proc_self_fd = rustix_linux_procfs::proc_self_fd()?;
        let max_bytes = options.max_bytes.unwrap_or(u64::MAX);
        let max_inodes = options
            .max_inodes
            .or(options.max_bytes.map(|bytes| (bytes / 1024).max(1)))
            .unwrap_or(u64::MAX);
        let usage = Arc::new(Usage::new(max_bytes, max_inodes));
        let owner = (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        );
        let meta = Meta::new(S_IFDIR | 0o1777, owner.0, owner.1, 2);
        let root = Inode::new_directory(1, meta, Weak::new(), &usage)
            .map_err(|errno| std::io::Error::from_raw_os_error(errno.raw() as i32))?;
        Ok(Self {
            root,
            usage,
            next_ino: AtomicU64::new(2),
            rename_lock: Mutex::new(()),
            proc_self_fd,
            default_owner: owner,
            sealable: options.read_only,
        })
    }

    /// A fresh inode number.
    fn alloc_ino(&self) -> u64 {
        self.next_ino.fetch_add(1, Ordering::Relaxed)
    }

    /// Bytes in use, as StatFS counts them (rounded up to blocks).
    pub fn used_bytes(&self) -> u64 {
        self.usage.bytes()
    }

    /// Files (inodes) alive, the root and unlinked-but-open files included.
    pub fn used_inodes(&self) -> u64 {
        self.usage.inodes()
    }

    /// Seals every regular file's memfd against writes, growth and shrinking, for a tree
    /// served read-only: the server refuses mutating RPCs, but a donated read-only FD can be
    /// reopened for writing through the client's own `/proc/self/fd` (a memfd is mode
    /// 0777), and the seals make such writes fail with `EPERM`. Needs
    /// [`MemoryOptions::read_only`] (`EPERM` otherwise); call it once the tree is filled.
    pub fn seal_read_only(&self) -> std::io::Result<()> {
        use rustix::fs::SealFlags;

        let seals = SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL;
        let mut seen = std::collections::HashSet::new();
        let mut pending = vec![Arc::clone(&self.root)];
        while let Some(inode) = pending.pop() {
            if !seen.insert(inode.ino) {
                continue; // another name of a file already sealed
            }
            match &inode.kind {
                inode::Kind::Regular(regular) => rustix::fs::fcntl_add_seals(&regular.data, seals)?,
                inode::Kind::Directory(dir) => {
                    let entries = dir.entries.read();
                    pending.extend(entries.after(0).map(|(_, entry)| Arc::clone(&entry.inode)));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The size limit in force, in bytes (`u64::MAX` for none).
    pub fn max_bytes(&self) -> u64 {
        self.usage.max_bytes()
    }

    /// The file limit in force (`u64::MAX` for none).
    pub fn max_inodes(&self) -> u64 {
        self.usage.max_inodes()
    }
}

impl Backend for MemoryBackend {
    type File = MemoryFile;
    type Open = MemoryOpen;
    type Socket = NoSocket;

    fn mount(&self) -> BResult<Mounted<MemoryFile>> {
        let stat = self.root.stat()?;
        let file = MemoryFile {
            inode: Arc::clone(&self.root),
        };
        Ok(Mounted {
            root: Node { file, stat },
            donated: None,
        })
    }

    fn stat(&self, file: &MemoryFile) -> BResult<Statx> {
        file.inode.stat()
    }

    fn set_stat(&self, file: &MemoryFile, req: &SetStatReq) -> BResult<SetStatResp> {
        attr::set_stat(&file.inode, req)
    }

    fn walk(&self, dir: &MemoryFile, name: Name<'_>) -> BResult<Node<MemoryFile>> {
        namespace::check_name(name.as_bytes())?;
        let inode = {
            let entries = dir.inode.dir()?.entries.read();
            Arc::clone(entries.get(name.as_bytes()).ok_or(Errno::ENOENT)?)
        };
        node(inode)
    }

    fn open(&self, file: &MemoryFile, flags: OpenFlags) -> BResult<Opened<MemoryOpen>> {
        io::open(self, &file.inode, flags)
    }

    fn create(
        &self,
        dir: &MemoryFile,
        name: Name<'_>,
        attrs: Create,
        flags: OpenFlags,
    ) -> BResult<(Node<MemoryFile>, Opened<MemoryOpen>)> {
        namespace::create(self, &dir.inode, name.as_bytes(), attrs, flags)
    }

    fn mkdir(&self, dir: &MemoryFile, name: Name<'_>, attrs: Create) -> BResult<Node<MemoryFile>> {
        node(namespace::mkdir(self, &dir.inode, name.as_bytes(), attrs)?)
    }

    fn mknod(
        &self,
        dir: &MemoryFile,
        name: Name<'_>,
        attrs: Create,
        major: u32,
        minor: u32,
    ) -> BResult<Node<MemoryFile>> {
        let inode = namespace::mknod(self, &dir.inode, name.as_bytes(), attrs, (major, minor))?;
        node(inode)
    }

    fn symlink(
        &self,
        dir: &MemoryFile,
        name: Name<'_>,
        target: &[u8],
        uid: Uid,
        gid: Gid,
    ) -> BResult<Node<MemoryFile>> {
        node(namespace::symlink(
            self,
            &dir.inode,
            name.as_bytes(),
            target,
            (uid, gid),
        )?)
    }

    fn link(
        &self,
        dir: &MemoryFile,
        name: Name<'_>,
        target: &MemoryFile,
    ) -> BResult<Node<MemoryFile>> {
        node(namespace::link(
            self,
            &dir.inode,
            name.as_bytes(),
            &target.inode,
        )?)
    }

    fn statfs(&self, _file: &MemoryFile) -> BResult<StatFS> {
        Ok(attr::statfs(&self.usage))
    }

    fn readlink(&self, file: &MemoryFile) -> BResult<Vec<u8>> {
        match &file.inode.kind {
            inode::Kind::Symlink(target) => {
                file.inode.meta.lock().touch_accessed();
                Ok(target.to_vec())
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// Sockets in this tree are inert nodes: there is nothing to connect to.
    fn connect(
        &self,
        _file: &MemoryFile,
        _sock_type: u32,
        _creds: Option<(Uid, Gid)>,
    ) -> BResult<OwnedFd> {
        Err(Errno::EOPNOTSUPP)
    }

    fn unlink(&self, dir: &MemoryFile, name: Name<'_>, flags: u32) -> BResult<()> {
        namespace::unlink(&dir.inode, name.as_bytes(), flags)
    }

    fn rename(
        &self,
        old_dir: &MemoryFile,
        old_name: Name<'_>,
        new_dir: &MemoryFile,
        new_name: Name<'_>,
        flags: u32,
    ) -> BResult<()> {
        namespace::rename(
            self,
            (&old_dir.inode, old_name.as_bytes()),
            (&new_dir.inode, new_name.as_bytes()),
            flags,
        )
    }

    fn get_xattr(&self, file: &MemoryFile, name: &[u8], size: usize) -> BResult<Vec<u8>> {
        xattr::get(&file.inode, name, size)
    }

    fn set_xattr(&self, file: &MemoryFile, name: &[u8], value: &[u8], flags: u32) -> BResult<()> {
        xattr::set(&file.inode, name, value, flags)
    }

    fn list_xattr(&self, file: &MemoryFile, size: usize) -> BResult<Vec<Vec<u8>>> {
        xattr::list(&file.inode, size)
    }

    fn remove_xattr(&self, file: &MemoryFile, name: &[u8]) -> BResult<()> {
        xattr::remove(&file.inode, name)
    }

    /// Binding would need a host socket behind an inert node: not offered.
    fn bind(
        &self,
        _dir: &MemoryFile,
        _name: Name<'_>,
        _sock_type: u32,
        _attrs: Create,
    ) -> BResult<(Node<MemoryFile>, NoSocket, OwnedFd)> {
        Err(Errno::EOPNOTSUPP)
    }

    fn listen(&self, socket: &NoSocket, _backlog: i32) -> BResult<()> {
        match *socket {}
    }

    fn accept(&self, socket: &NoSocket) -> BResult<(OwnedFd, Vec<u8>)> {
        match *socket {}
    }

    fn read(&self, open: &MemoryOpen, offset: u64, buf: &mut [u8]) -> BResult<usize> {
        io::read(open, offset, buf)
    }

    fn write(&self, open: &MemoryOpen, offset: u64, data: &[u8]) -> BResult<usize> {
        io::write(open, offset, data)
    }

    fn allocate(&self, open: &MemoryOpen, mode: u64, offset: u64, length: u64) -> BResult<()> {
        io::allocate(open, mode, offset, length)
    }

    /// Nothing to write back: memory is the storage.
    fn sync(&self, _open: &MemoryOpen) -> BResult<()> {
        Ok(())
    }

    fn getdents(&self, open: &MemoryOpen, rewind: bool, budget: usize) -> BResult<DirentList> {
        io::getdents(open, rewind, budget)
    }
}

/// The node the server registers for `inode`.
fn node(inode: Arc<Inode>) -> BResult<Node<MemoryFile>> {
    let stat = inode.stat()?;
    Ok(Node {
        file: MemoryFile { inode },
        stat,
    })
}
