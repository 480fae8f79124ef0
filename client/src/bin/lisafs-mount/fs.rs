//! The FUSE filesystem: each FUSE operation becomes the fewest lisafs RPCs.
//!
//! The `Filesystem` impl below only unpacks arguments and sends replies; the work is in
//! methods returning `Result` (here for metadata, in `create.rs` for name-changing
//! operations, in `io.rs` for open files and directories).
//!
//! | FUSE | lisafs |
//! |---|---|
//! | lookup | WalkStat (one component), and a Walk if the file has no node yet |
//! | getattr | FStat |
//! | setattr | SetStat + FStat (the reply needs the new attributes) |
//! | readlink, statfs | ReadLinkAt, FStatFS |
//! | mknod, mkdir, symlink, link | MknodAt, MkdirAt, SymlinkAt, LinkAt |
//! | create | OpenCreateAt |
//! | unlink, rmdir | UnlinkAt |
//! | rename (flags) | RenameAt (RenameAt2) |
//! | open, opendir | OpenAt |
//! | read, write, fsync, fallocate | the donated host FD, else PRead, PWrite, FSync, FAllocate |
//! | flush | Flush; not even asked for (`FOPEN_NOFLUSH`) when the gofer does not list it, as ours and gVisor's do not |
//! | readdir | Getdents64, only for entries not read yet; a long listing's next batch read ahead (see `handles.rs`) |
//! | get/set/list/removexattr | FGetXattr, FSetXattr, FListXattr, FRemoveXattr |
//! | forget, release, releasedir | none: dropped FDIDs join the client's batched Close |

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::Duration;

use fuser::{FileAttr, FopenFlags, Generation, INodeNo, Request};
use lisafs_client::{Client, Errno, ErrorKind, Inode, Mid, Owner, SetStat, Statx};

use crate::attr::{errno, file_attr};
use crate::handles::Handles;
use crate::nodes::{Control, Nodes, ROOT_ID};
use crate::passthrough::IoModes;

/// Results of the bridge's operations: the errno to reply with.
pub(crate) type Res<T> = Result<T, fuser::Errno>;

/// Set-group-ID bit of a directory: new entries take the directory's group.
const S_ISGID: u16 = 0o2000;

/// The xattr holding a file's capabilities.
const SECURITY_CAPABILITY: &[u8] = b"security.capability";

/// Cache timeouts the kernel is given with every entry and attribute reply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) entry: Duration,
    pub(crate) attr: Duration,
}

/// How file data moves between the kernel and the host (from the command line).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DataPath {
    /// Ask for FUSE passthrough (used where the kernel and the file allow it).
    pub(crate) passthrough: bool,
    /// Ask for the kernel's writeback cache (which rules out passthrough).
    pub(crate) writeback_cache: bool,
}

/// The bridge's state.
pub(crate) struct LisaFs {
    pub(crate) client: Arc<Client>,
    pub(crate) nodes: Nodes,
    pub(crate) handles: Handles,
    pub(crate) ttl: Timeouts,
    pub(crate) data_path: DataPath,
    /// Flags for every regular file's open reply: `FOPEN_NOFLUSH` when the gofer has no
    /// Flush (ours and gVisor's), so that close(2) makes no round trip here.
    pub(crate) open_flags: FopenFlags,
    /// Open files' I/O modes, once `init` has agreed passthrough with the kernel.
    pub(crate) io_modes: Option<Arc<IoModes>>,
    /// Called once the connection to the gofer has failed, so that `main` unmounts.
    on_broken: Box<dyn Fn() + Send + Sync>,
}

impl LisaFs {
    pub(crate) fn new(
        client: Client,
        ttl: Timeouts,
        data_path: DataPath,
        on_broken: Box<dyn Fn() + Send + Sync>,
    ) -> Self {
        let client = Arc::new(client);
        let open_flags = match client.supports(Mid::Flush) {
            true => FopenFlags::empty(),
            false => FopenFlags::FOPEN_NOFLUSH,
        };
        Self {
            open_flags,
            nodes: Nodes::new(Arc::clone(&client)),
            client,
            handles: Handles::default(),
            ttl,
            data_path,
            io_modes: None,
            on_broken,
        }
    }

    /// The errno for a client error; a transport failure also starts the unmount.
    pub(crate) fn fail(&self, err: lisafs_client::Error) -> fuser::Errno {
        if err.kind() == ErrorKind::Transport {
            (self.on_broken)();
        }
        errno(&err)
    }

    /// The ControlFd of node `ino`.
    pub(crate) fn control(&self, ino: INodeNo) -> Res<Control> {
        self.nodes.get(ino.0).ok_or(fuser::Errno::ESTALE)
    }

    /// Registers a new entry (one kernel reference) and returns its attributes.
    pub(crate) fn entry(&self, inode: Inode) -> FileAttr {
        let stat = inode.stat;
        let id = self.nodes.insert(inode);
        file_attr(&stat, id)
    }

    /// The attributes to report for node `ino` given a fresh stat of it.
    pub(crate) fn attr(&self, ino: INodeNo, stat: &Statx) -> FileAttr {
        self.nodes.update(ino.0, stat);
        // The root is node 1 to the kernel but shows its host inode number.
        let id = if ino.0 == ROOT_ID { stat.ino } else { ino.0 };
        file_attr(stat, id)
    }

    /// The owner of a file the caller of `req` creates in `parent`: the caller's user,
    /// and the caller's group unless `parent` is set-group-ID (then the host gives the
    /// directory's group, as a local filesystem does).
    pub(crate) fn owner(&self, req: &Request, parent: INodeNo) -> Owner {
        let mut owner = Owner::new(req.uid(), req.gid());
        if self
            .nodes
            .mode(parent.0)
            .is_some_and(|mode| mode & S_ISGID != 0)
        {
            owner.gid = Owner::UNSET.gid;
        }
        owner
    }

    /// A name's entry. With the default entry timeout of 0 most lookups revalidate a name
    /// the kernel already holds, so the first RPC is a WalkStat, which opens nothing on
    /// the gofer: a file the bridge has a node for needs no new ControlFd. Only a file
    /// new to the bridge takes a Walk as well.
    pub(crate) fn lookup(&self, parent: INodeNo, name: &OsStr) -> Res<FileAttr> {
        let dir = self.control(parent)?;
        let stats = dir
            .walk_stat(&[name.as_bytes()])
            .map_err(|err| self.fail(err))?;
        let stat = stats.first().ok_or(fuser::Errno::ENOENT)?;
        if let Some(id) = self.nodes.find(stat) {
            return Ok(file_attr(stat, id));
        }
        let (_, mut inodes) = dir.walk(&[name.as_bytes()]).map_err(|err| self.fail(err))?;
        // One component: anything but exactly one inode means it does not exist (a
        // symlink as the final component is `Success`).
        match (inodes.pop(), inodes.is_empty()) {
            (Some(inode), true) => Ok(self.entry(inode)),
            _ => Err(fuser::Errno::ENOENT),
        }
    }

    pub(crate) fn getattr(&self, ino: INodeNo) -> Res<FileAttr> {
        let stat = self.control(ino)?.fstat().map_err(|err| self.fail(err))?;
        Ok(self.attr(ino, &stat))
    }

    pub(crate) fn setattr(&self, ino: INodeNo, attrs: SetStat) -> Res<FileAttr> {
        let fd = self.control(ino)?;
        if attrs != SetStat::default() {
            let outcome = fd.set_stat(&attrs).map_err(|err| self.fail(err))?;
            if let Some(failed) = outcome.failure_errno {
                return Err(errno(&failed.into()));
            }
        }
        let stat = fd.fstat().map_err(|err| self.fail(err))?;
        Ok(self.attr(ino, &stat))
    }

    pub(crate) fn readlink(&self, ino: INodeNo) -> Res<Vec<u8>> {
        let fd = self.control(ino)?;
        fd.readlink_at().map_err(|err| self.fail(err))
    }

    pub(crate) fn setxattr(&self, ino: INodeNo, name: &OsStr, value: &[u8], flags: i32) -> Res<()> {
        let fd = self.control(ino)?;
        let flags = u32::try_from(flags).map_err(|_| fuser::Errno::EINVAL)?;
        fd.set_xattr(name.as_bytes(), value, flags)
            .map_err(|err| self.fail(err))
    }

    /// The value of `name`; `size` 0 asks for the whole value (the caller replies with
    /// its length).
    ///
    /// The kernel asks for `security.capability` before every write (to clear it), and a
    /// gofer that refuses the `security` namespace (ours by default) answers EOPNOTSUPP:
    /// that answer is kept per node, so writes do not each cost an RPC.
    pub(crate) fn getxattr(&self, ino: INodeNo, name: &OsStr, size: u32) -> Res<Vec<u8>> {
        let capability = name.as_bytes() == SECURITY_CAPABILITY;
        if capability && self.nodes.no_capability_xattr(ino.0) {
            return Err(fuser::Errno::EOPNOTSUPP);
        }
        let fd = self.control(ino)?;
        let result = fd.get_xattr(name.as_bytes(), size);
        if capability && matches!(&result, Err(err) if err.errno() == Errno::EOPNOTSUPP) {
            self.nodes.set_no_capability_xattr(ino.0);
        }
        result.map_err(|err| self.fail(err))
    }

    /// The attribute names as `listxattr(2)` returns them: each followed by a NUL.
    pub(crate) fn listxattr(&self, ino: INodeNo, size: u32) -> Res<Vec<u8>> {
        let fd = self.control(ino)?;
        let names = fd
            .list_xattr(u64::from(size))
            .map_err(|err| self.fail(err))?;
        let mut out = Vec::new();
        for name in names {
            out.extend_from_slice(&name);
            out.push(0);
        }
        Ok(out)
    }

    pub(crate) fn removexattr(&self, ino: INodeNo, name: &OsStr) -> Res<()> {
        let fd = self.control(ino)?;
        fd.remove_xattr(name.as_bytes())
            .map_err(|err| self.fail(err))
    }
}

/// The generation number of every entry: FDIDs are never reused and node IDs are host
/// inode numbers, which the host does not reuse while the bridge holds the file open.
pub(crate) const GENERATION: Generation = Generation(0);
