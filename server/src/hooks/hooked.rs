//! [`Hooked`]: the backend that runs a [`Hook`] around every call of another.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lisafs_protocol::wire::{
    DirentList, Errno, Gid, SetStatReq, SetStatResp, StatFS, Statx, Uid, S_IFMT, S_IFREG,
};

use super::{Hook, Op, OpClass};
use crate::backend::{BResult, Backend, Create, Created, Mounted, Node, OpenFlags, Opened};
use crate::name::Name;

/// A [`Backend`] that asks `H` about every call before passing it to `B`, and tells it
/// the outcome after. See the [module documentation](super) for what each call becomes.
#[derive(Debug)]
pub struct Hooked<B, H> {
    inner: B,
    hook: H,
}

impl<B: Backend, H: Hook> Hooked<B, H> {
    /// Serves `inner` with `hook` around it.
    pub fn new(inner: B, hook: H) -> Self {
        Self { inner, hook }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The hook.
    pub fn hook(&self) -> &H {
        &self.hook
    }

    /// Runs `call` if the hook allows `op`, and reports the outcome to the hook.
    fn run<T>(&self, op: &Op<'_>, call: impl FnOnce() -> BResult<T>) -> BResult<T> {
        let result = self.hook.before(op).and_then(|()| call());
        self.hook
            .after(op, result.as_ref().map(|_| ()).map_err(|errno| *errno));
        result
    }

    /// A walk's step to `name` in `dir` (Walk, WalkStat): refused as absent if the hook
    /// hides the entry, else `look` if the hook allows it.
    fn look_up<T>(
        &self,
        dir: &HFile<B>,
        name: Name<'_>,
        look: impl FnOnce() -> BResult<T>,
    ) -> BResult<T> {
        let dir_path = self.path_of(&dir.file);
        let dir_op = Op::lazy("Walk", OpClass::Stat, &dir_path);
        // The entry's path reuses the directory's, so hides and before share one lookup.
        let entry = || join(dir_op.path(), name);
        let op = Op::lazy("Walk", OpClass::Stat, &entry);
        if self.hook.hides(&dir_op, name.as_bytes()) {
            self.hook.after(&op, Err(Errno::ENOENT));
            return Err(Errno::ENOENT);
        }
        self.run(&op, look)
    }

    /// A lazy source of `file`'s current path.
    fn path_of<'a>(&'a self, file: &'a B::File) -> impl Fn() -> Option<PathBuf> + 'a {
        move || self.inner.path(file)
    }

    /// A lazy source of the path of `name` in the directory `dir`.
    fn entry_of<'a>(
        &'a self,
        dir: &'a B::File,
        name: Name<'a>,
    ) -> impl Fn() -> Option<PathBuf> + 'a {
        move || join(self.inner.path(dir).as_deref(), name)
    }

    /// Wraps what the inner backend opened, keeping the donated FD of a regular file only
    /// if the hook agrees.
    fn opened(
        &self,
        op: &Op<'_>,
        file: &HookedFile<B::File>,
        opened: Opened<B::Open>,
    ) -> Opened<HookedOpen<B::Open, B::File>> {
        let donated = match opened.donated {
            Some(_) if file.regular && !self.hook.donate(op) => None,
            donated => donated,
        };
        Opened {
            open: HookedOpen {
                open: opened.open,
                file: Arc::clone(&file.file),
            },
            donated,
        }
    }
}

/// `dir/name`, if the directory's path is known.
fn join(dir: Option<&Path>, name: Name<'_>) -> Option<PathBuf> {
    // A Name is one component without "/", so join never replaces the directory.
    Some(dir?.join(OsStr::from_bytes(name.as_bytes())))
}

fn wrap<F>(node: Node<F>) -> Node<HookedFile<F>> {
    let regular = node.stat.mode & S_IFMT == S_IFREG;
    Node {
        file: HookedFile {
            file: Arc::new(node.file),
            regular,
        },
        stat: node.stat,
    }
}

fn byte_count(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// A control FD's file for [`Hooked`]: the inner backend's, shared with the open FDs and
/// sockets made from it, so that operations on those can name the file too.
#[derive(Debug)]
pub struct HookedFile<F> {
    file: Arc<F>,
    /// Whether it is a regular file: only those are asked about donation.
    regular: bool,
}

impl<F> HookedFile<F> {
    /// The inner backend's file.
    pub fn inner(&self) -> &F {
        &self.file
    }
}

/// An open FD for [`Hooked`]: the inner backend's, and the file it was opened from.
#[derive(Debug)]
pub struct HookedOpen<O, F> {
    open: O,
    file: Arc<F>,
}

impl<O, F> HookedOpen<O, F> {
    /// The inner backend's open file.
    pub fn inner(&self) -> &O {
        &self.open
    }

    /// The inner backend's file it was opened from.
    pub fn file(&self) -> &F {
        &self.file
    }
}

/// A bound socket for [`Hooked`]: the inner backend's, and its socket file.
#[derive(Debug)]
pub struct HookedSocket<S, F> {
    socket: S,
    file: Arc<F>,
}

impl<S, F> HookedSocket<S, F> {
    /// The inner backend's socket.
    pub fn inner(&self) -> &S {
        &self.socket
    }
}

type HFile<B> = HookedFile<<B as Backend>::File>;
type HOpen<B> = HookedOpen<<B as Backend>::Open, <B as Backend>::File>;
type HSocket<B> = HookedSocket<<B as Backend>::Socket, <B as Backend>::File>;

impl<B: Backend, H: Hook> Backend for Hooked<B, H> {
    type File = HFile<B>;
    type Open = HOpen<B>;
    type Socket = HSocket<B>;

    fn path(&self, file: &HFile<B>) -> Option<PathBuf> {
        self.inner.path(&file.file)
    }

    fn mount(&self) -> BResult<Mounted<HFile<B>>> {
        let root = || Some(PathBuf::new());
        let op = Op::lazy("Mount", OpClass::Stat, &root);
        let mounted = self.run(&op, || self.inner.mount())?;
        Ok(Mounted {
            root: wrap(mounted.root),
            donated: mounted.donated,
        })
    }

    fn stat(&self, file: &HFile<B>) -> BResult<Statx> {
        let path = self.path_of(&file.file);
        let op = Op::lazy("FStat", OpClass::Stat, &path);
        self.run(&op, || self.inner.stat(&file.file))
    }

    fn set_stat(&self, file: &HFile<B>, req: &SetStatReq) -> BResult<SetStatResp> {
        let path = self.path_of(&file.file);
        let mut op = Op::lazy("SetStat", OpClass::Write, &path);
        let mut check = |class| {
            op.set_class(class);
            self.hook.before(&op)
        };
        let checked = match (
            req.mask & SetStatReq::SIZE != 0,
            req.mask & !SetStatReq::SIZE != 0,
        ) {
            (true, true) => check(OpClass::Write).and_then(|()| check(OpClass::SetAttr)),
            (true, false) => check(OpClass::Write),
            (false, _) => check(OpClass::SetAttr),
        };
        let result = checked.and_then(|()| self.inner.set_stat(&file.file, req));
        // A partial failure is a response, not an error, but it is what happened.
        let outcome = match &result {
            Ok(resp) if resp.failure_mask != 0 => Err(Errno(resp.failure_errno)),
            Ok(_) => Ok(()),
            Err(errno) => Err(*errno),
        };
        self.hook.after(&op, outcome);
        result
    }

    fn walk(&self, dir: &HFile<B>, name: Name<'_>) -> BResult<Node<HFile<B>>> {
        self.look_up(dir, name, || self.inner.walk(&dir.file, name))
            .map(wrap)
    }

    fn stat_at(&self, dir: &HFile<B>, name: Name<'_>) -> BResult<Statx> {
        self.look_up(dir, name, || self.inner.stat_at(&dir.file, name))
    }

    fn revalidates(&self) -> bool {
        self.inner.revalidates()
    }

    /// A confirmed (or failed) step is a Walk step to the hook like any other; a miss is
    /// not shown, as the walk the server then does is.
    fn revalidate(
        &self,
        dir: &HFile<B>,
        name: Name<'_>,
        known: &HFile<B>,
    ) -> BResult<Option<Statx>> {
        let found = self.inner.revalidate(&dir.file, name, &known.file);
        if let Ok(None) = found {
            return Ok(None);
        }
        self.look_up(dir, name, || found)
    }

    fn open(&self, file: &HFile<B>, flags: OpenFlags) -> BResult<Opened<HOpen<B>>> {
        let class = match flags.write || flags.truncate {
            true => OpClass::Write,
            false => OpClass::Read,
        };
        let path = self.path_of(&file.file);
        let op = Op::lazy("OpenAt", class, &path);
        let opened = self.run(&op, || self.inner.open(&file.file, flags))?;
        Ok(self.opened(&op, file, opened))
    }

    fn create(
        &self,
        dir: &HFile<B>,
        name: Name<'_>,
        attrs: Create,
        flags: OpenFlags,
    ) -> BResult<Created<HFile<B>, HOpen<B>>> {
        let path = self.entry_of(&dir.file, name);
        let op = Op::lazy("OpenCreateAt", OpClass::Create, &path);
        let (node, opened) = self.run(&op, || self.inner.create(&dir.file, name, attrs, flags))?;
        let node = wrap(node);
        let opened = self.opened(&op, &node.file, opened);
        Ok((node, opened))
    }

    fn mkdir(&self, dir: &HFile<B>, name: Name<'_>, attrs: Create) -> BResult<Node<HFile<B>>> {
        let path = self.entry_of(&dir.file, name);
        let op = Op::lazy("MkdirAt", OpClass::Create, &path);
        self.run(&op, || self.inner.mkdir(&dir.file, name, attrs))
            .map(wrap)
    }

    fn mknod(
        &self,
        dir: &HFile<B>,
        name: Name<'_>,
        attrs: Create,
        major: u32,
        minor: u32,
    ) -> BResult<Node<HFile<B>>> {
        let path = self.entry_of(&dir.file, name);
        let op = Op::lazy("MknodAt", OpClass::Create, &path);
        self.run(&op, || {
            self.inner.mknod(&dir.file, name, attrs, major, minor)
        })
        .map(wrap)
    }

    fn symlink(
        &self,
        dir: &HFile<B>,
        name: Name<'_>,
        target: &[u8],
        uid: Uid,
        gid: Gid,
    ) -> BResult<Node<HFile<B>>> {
        let path = self.entry_of(&dir.file, name);
        let op = Op::lazy("SymlinkAt", OpClass::Create, &path);
        self.run(&op, || {
            self.inner.symlink(&dir.file, name, target, uid, gid)
        })
        .map(wrap)
    }

    fn link(&self, dir: &HFile<B>, name: Name<'_>, target: &HFile<B>) -> BResult<Node<HFile<B>>> {
        let path = self.path_of(&target.file);
        let new_path = self.entry_of(&dir.file, name);
        let op = Op::lazy("LinkAt", OpClass::Create, &path).with_new_path(&new_path);
        self.run(&op, || self.inner.link(&dir.file, name, &target.file))
            .map(wrap)
    }

    fn statfs(&self, file: &HFile<B>) -> BResult<StatFS> {
        let path = self.path_of(&file.file);
        let op = Op::lazy("FStatFS", OpClass::Stat, &path);
        self.run(&op, || self.inner.statfs(&file.file))
    }

    fn readlink(&self, file: &HFile<B>) -> BResult<Vec<u8>> {
        let path = self.path_of(&file.file);
        let op = Op::lazy("ReadLinkAt", OpClass::Read, &path);
        self.run(&op, || self.inner.readlink(&file.file))
    }

    fn connect(
        &self,
        file: &HFile<B>,
        sock_type: u32,
        creds: Option<(Uid, Gid)>,
    ) -> BResult<OwnedFd> {
        let path = self.path_of(&file.file);
        let op = Op::lazy("Connect", OpClass::Connect, &path);
        self.run(&op, || self.inner.connect(&file.file, sock_type, creds))
    }

    fn unlink(&self, dir: &HFile<B>, name: Name<'_>, flags: u32) -> BResult<()> {
        let path = self.entry_of(&dir.file, name);
        let op = Op::lazy("UnlinkAt", OpClass::Remove, &path);
        self.run(&op, || self.inner.unlink(&dir.file, name, flags))
    }

    fn rename(
        &self,
        old_dir: &HFile<B>,
        old_name: Name<'_>,
        new_dir: &HFile<B>,
        new_name: Name<'_>,
        flags: u32,
    ) -> BResult<()> {
        let path = self.entry_of(&old_dir.file, old_name);
        let new_path = self.entry_of(&new_dir.file, new_name);
        let op = Op::lazy("RenameAt", OpClass::Rename, &path).with_new_path(&new_path);
        self.run(&op, || {
            self.inner
                .rename(&old_dir.file, old_name, &new_dir.file, new_name, flags)
        })
    }

    fn get_xattr(&self, file: &HFile<B>, name: &[u8], size: usize) -> BResult<Vec<u8>> {
        let path = self.path_of(&file.file);
        let op = Op::lazy("FGetXattr", OpClass::Read, &path);
        self.run(&op, || self.inner.get_xattr(&file.file, name, size))
    }

    fn set_xattr(&self, file: &HFile<B>, name: &[u8], value: &[u8], flags: u32) -> BResult<()> {
        let path = self.path_of(&file.file);
        let op = Op::lazy("FSetXattr", OpClass::SetAttr, &path);
        self.run(&op, || self.inner.set_xattr(&file.file, name, value, flags))
    }

    fn list_xattr(&self, file: &HFile<B>, size: usize) -> BResult<Vec<Vec<u8>>> {
        let path = self.path_of(&file.file);
        let op = Op::lazy("FListXattr", OpClass::Read, &path);
        self.run(&op, || self.inner.list_xattr(&file.file, size))
    }

    fn remove_xattr(&self, file: &HFile<B>, name: &[u8]) -> BResult<()> {
        let path = self.path_of(&file.file);
        let op = Op::lazy("FRemoveXattr", OpClass::SetAttr, &path);
        self.run(&op, || self.inner.remove_xattr(&file.file, name))
    }

    fn bind(
        &self,
        dir: &HFile<B>,
        name: Name<'_>,
        sock_type: u32,
        attrs: Create,
    ) -> BResult<(Node<HFile<B>>, HSocket<B>, OwnedFd)> {
        let path = self.entry_of(&dir.file, name);
        let op = Op::lazy("BindAt", OpClass::Create, &path);
        let (node, socket, fd) =
            self.run(&op, || self.inner.bind(&dir.file, name, sock_type, attrs))?;
        let node = wrap(node);
        let socket = HookedSocket {
            socket,
            file: Arc::clone(&node.file.file),
        };
        Ok((node, socket, fd))
    }

    fn listen(&self, socket: &HSocket<B>, backlog: i32) -> BResult<()> {
        let path = self.path_of(&socket.file);
        let op = Op::lazy("Listen", OpClass::Connect, &path);
        self.run(&op, || self.inner.listen(&socket.socket, backlog))
    }

    fn accept(&self, socket: &HSocket<B>) -> BResult<(OwnedFd, Vec<u8>)> {
        let path = self.path_of(&socket.file);
        let op = Op::lazy("Accept", OpClass::Connect, &path);
        self.run(&op, || self.inner.accept(&socket.socket))
    }

    fn read(&self, open: &HOpen<B>, offset: u64, buf: &mut [u8]) -> BResult<usize> {
        let path = self.path_of(&open.file);
        let op = Op::lazy("PRead", OpClass::Read, &path).with_count(byte_count(buf.len()));
        self.run(&op, || self.inner.read(&open.open, offset, buf))
    }

    fn write(&self, open: &HOpen<B>, offset: u64, data: &[u8]) -> BResult<usize> {
        let path = self.path_of(&open.file);
        let op = Op::lazy("PWrite", OpClass::Write, &path).with_count(byte_count(data.len()));
        self.run(&op, || {
            let bytes = self.hook.write_data(&op, data)?;
            let written = self.inner.write(&open.open, offset, &bytes)?;
            // The client counts its own bytes: whole if the replacement went out whole.
            Ok(match written == bytes.len() {
                true => data.len(),
                false => written.min(data.len()),
            })
        })
    }

    fn allocate(&self, open: &HOpen<B>, mode: u64, offset: u64, length: u64) -> BResult<()> {
        let path = self.path_of(&open.file);
        let op = Op::lazy("FAllocate", OpClass::Write, &path).with_count(length);
        self.run(&op, || {
            self.inner.allocate(&open.open, mode, offset, length)
        })
    }

    fn sync(&self, open: &HOpen<B>) -> BResult<()> {
        let path = self.path_of(&open.file);
        let op = Op::lazy("FSync", OpClass::Read, &path);
        self.run(&op, || self.inner.sync(&open.open))
    }

    fn getdents(&self, open: &HOpen<B>, rewind: bool, budget: usize) -> BResult<DirentList> {
        let path = self.path_of(&open.file);
        let op = Op::lazy("Getdents64", OpClass::Read, &path);
        self.run(&op, || {
            let mut rewind = rewind;
            loop {
                let mut dirents = self.inner.getdents(&open.open, rewind, budget)?;
                if dirents.is_empty() {
                    return Ok(dirents);
                }
                dirents.retain(|dirent| !self.hook.hides(&op, dirent.name));
                // An empty batch means the end to the client: a batch of hidden entries
                // only is skipped, not returned.
                if !dirents.is_empty() {
                    return Ok(dirents);
                }
                rewind = false;
            }
        })
    }
}
