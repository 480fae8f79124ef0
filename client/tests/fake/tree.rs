//! An in-memory tree behind the fake server, for path-level tests: enough of the lisafs
//! semantics (walk statuses, symlinks never followed, FDID kinds, Getdents64 rewinding)
//! to exercise the client, and a table of live FDIDs to catch leaks.

use std::collections::HashMap;
use std::sync::Arc;

use lisafs_client::wire::{
    AnyRequest, AnyResponse, Dirent64, Errno, FStatFSResp, FStatResp, FdId, Getdents64Resp, Inode,
    Mid, MkdirAtResp, OpenAtResp, OpenCreateAtResp, PReadResp, PWriteResp, ReadLinkAtResp, StatFS,
    Statx, SymlinkAtResp, WalkResp, WalkStatResp, WalkStatus,
};
use lisafs_client::Client;
use parking_lot::Mutex;

use super::{Fake, Mount, Reply, DIR, LNK, REG, ROOT};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(Vec<u8>),
}

#[derive(Debug)]
struct Node {
    name: Vec<u8>,
    /// `None` for the root and for removed nodes.
    parent: Option<usize>,
    kind: Kind,
}

/// The tree, its FD table, and how many entries one Getdents64 returns at most.
#[derive(Debug)]
pub struct Tree {
    nodes: Vec<Node>,
    control: HashMap<u64, usize>,
    /// OpenFd → (node, directory position).
    open: HashMap<u64, (usize, usize)>,
    next_id: u64,
    pub getdents_batch: usize,
}

type Result<T> = std::result::Result<T, Errno>;

impl Tree {
    pub fn new() -> Self {
        let root = Node {
            name: Vec::new(),
            parent: None,
            kind: Kind::Dir,
        };
        Self {
            nodes: vec![root],
            control: HashMap::from([(ROOT.0, 0)]),
            open: HashMap::new(),
            next_id: ROOT.0 + 1,
            getdents_batch: 2,
        }
    }

    /// Adds `kind` at `path` (parents must exist).
    pub fn add(&mut self, path: &str, kind: Kind) -> &mut Self {
        let mut cur = 0;
        let mut parts: Vec<&str> = path.split('/').collect();
        let name = parts.pop().unwrap();
        for part in parts {
            cur = self.child(cur, part.as_bytes()).unwrap();
        }
        self.insert(cur, name.as_bytes(), kind);
        self
    }

    /// The kind at `path`, if it exists (symlinks not followed).
    pub fn get(&self, path: &str) -> Option<&Kind> {
        let mut cur = 0;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            cur = self.child(cur, part.as_bytes())?;
        }
        Some(&self.nodes[cur].kind)
    }

    /// FDIDs the client has not closed (the root included).
    pub fn live_fds(&self) -> usize {
        self.control.len() + self.open.len()
    }

    /// Starts a fake serving `self`.
    pub fn serve(self, mount: Mount) -> (Client, Fake, Arc<Mutex<Tree>>) {
        let tree = Arc::new(Mutex::new(self));
        let shared = Arc::clone(&tree);
        let (client, fake) = Fake::start(mount, move |req| shared.lock().handle(req));
        (client, fake, tree)
    }

    fn child(&self, dir: usize, name: &[u8]) -> Option<usize> {
        (0..self.nodes.len())
            .find(|&i| self.nodes[i].parent == Some(dir) && self.nodes[i].name == name)
    }

    fn children(&self, dir: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].parent == Some(dir))
            .collect()
    }

    fn insert(&mut self, dir: usize, name: &[u8], kind: Kind) -> usize {
        self.nodes.push(Node {
            name: name.to_vec(),
            parent: Some(dir),
            kind,
        });
        self.nodes.len() - 1
    }

    fn stat(&self, node: usize) -> Statx {
        let (mode, size) = match &self.nodes[node].kind {
            Kind::Dir => (DIR, 4096),
            Kind::File(data) => (REG, data.len()),
            Kind::Symlink(target) => (LNK, target.len()),
        };
        Statx {
            mask: 0x7ff,
            mode,
            nlink: 1,
            ino: node as u64 + 1,
            size: size as u64,
            ..Statx::default()
        }
    }

    fn new_control(&mut self, node: usize) -> Inode {
        let id = self.next_id;
        self.next_id += 1;
        self.control.insert(id, node);
        Inode {
            control_fd: FdId(id),
            stat: self.stat(node),
        }
    }

    fn control(&self, fd: FdId) -> Result<usize> {
        if fd == ROOT {
            // Every connection's Mount (answered by the fake itself) hands out ROOT anew.
            return Ok(0);
        }
        self.control.get(&fd.0).copied().ok_or(Errno::EBADF)
    }

    fn dir(&self, fd: FdId) -> Result<usize> {
        let node = self.control(fd)?;
        match self.nodes[node].kind {
            Kind::Dir => Ok(node),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn absent(&self, dir: usize, name: &[u8]) -> Result<()> {
        match self.child(dir, name) {
            Some(_) => Err(Errno::EEXIST),
            None => Ok(()),
        }
    }

    pub fn handle(&mut self, req: &AnyRequest) -> Reply {
        match self.answer(req) {
            Ok(reply) => reply,
            Err(errno) => Reply::err(errno),
        }
    }

    fn answer(&mut self, req: &AnyRequest) -> Result<Reply> {
        let resp = match req {
            AnyRequest::Walk(walk) => {
                let mut cur = self.dir(walk.dir_fd)?;
                let (mut inodes, mut status) = (Vec::new(), WalkStatus::Success);
                for (i, name) in walk.path.iter().enumerate() {
                    if self.nodes[cur].kind != Kind::Dir {
                        return Err(Errno::ENOTDIR);
                    }
                    let Some(child) = self.child(cur, name.as_bytes()) else {
                        status = WalkStatus::ComponentDoesNotExist;
                        break;
                    };
                    inodes.push(self.new_control(child));
                    if matches!(self.nodes[child].kind, Kind::Symlink(_)) && i + 1 < walk.path.len()
                    {
                        status = WalkStatus::ComponentSymlink;
                        break;
                    }
                    cur = child;
                }
                AnyResponse::Walk(WalkResp { status, inodes })
            }
            AnyRequest::WalkStat(walk) => {
                let mut cur = self.control(walk.dir_fd)?;
                let mut stats = Vec::new();
                for (i, name) in walk.path.iter().enumerate() {
                    if i == 0 && name.is_empty() {
                        stats.push(self.stat(cur));
                        continue;
                    }
                    if matches!(self.nodes[cur].kind, Kind::Symlink(_)) {
                        break;
                    }
                    let Some(child) = self.child(cur, name.as_bytes()) else {
                        break;
                    };
                    stats.push(self.stat(child));
                    cur = child;
                }
                AnyResponse::WalkStat(WalkStatResp { stats })
            }
            AnyRequest::FStat(req) => {
                let node = match self.open.get(&req.fd.0) {
                    Some(&(node, _)) => node,
                    None => self.control(req.fd)?,
                };
                AnyResponse::FStat(FStatResp {
                    stat: self.stat(node),
                })
            }
            AnyRequest::OpenAt(req) => {
                let node = self.control(req.fd)?;
                AnyResponse::OpenAt(OpenAtResp {
                    open_fd: self.new_open(node),
                })
            }
            AnyRequest::OpenCreateAt(req) => {
                let dir = self.dir(req.common.dir_fd)?;
                self.absent(dir, req.name.as_bytes())?;
                let node = self.insert(dir, req.name.as_bytes(), Kind::File(Vec::new()));
                AnyResponse::OpenCreateAt(OpenCreateAtResp {
                    child: self.new_control(node),
                    new_fd: self.new_open(node),
                })
            }
            AnyRequest::MkdirAt(req) => {
                let dir = self.dir(req.common.dir_fd)?;
                self.absent(dir, req.name.as_bytes())?;
                let node = self.insert(dir, req.name.as_bytes(), Kind::Dir);
                AnyResponse::MkdirAt(MkdirAtResp {
                    child: self.new_control(node),
                })
            }
            AnyRequest::SymlinkAt(req) => {
                let dir = self.dir(req.dir_fd)?;
                self.absent(dir, req.name.as_bytes())?;
                let kind = Kind::Symlink(req.target.as_bytes().to_vec());
                let node = self.insert(dir, req.name.as_bytes(), kind);
                AnyResponse::SymlinkAt(SymlinkAtResp {
                    symlink: self.new_control(node),
                })
            }
            AnyRequest::ReadLinkAt(req) => match &self.nodes[self.control(req.fd)?].kind {
                Kind::Symlink(target) => AnyResponse::ReadLinkAt(ReadLinkAtResp {
                    target: target.clone().into(),
                }),
                _ => return Err(Errno::EINVAL),
            },
            AnyRequest::UnlinkAt(req) => {
                let dir = self.dir(req.dir_fd)?;
                let child = self.child(dir, req.name.as_bytes()).ok_or(Errno::ENOENT)?;
                let is_dir = self.nodes[child].kind == Kind::Dir;
                match (req.flags, is_dir) {
                    (0, true) => return Err(Errno::EISDIR),
                    (0x200, false) => return Err(Errno::ENOTDIR),
                    (0x200, true) if !self.children(child).is_empty() => {
                        return Err(Errno::ENOTEMPTY)
                    }
                    _ => {}
                }
                self.nodes[child].parent = None;
                return Ok(Reply::Raw(Mid::UnlinkAt.as_u16(), Vec::new()));
            }
            AnyRequest::RenameAt(req) => {
                let (old_dir, new_dir) = (self.dir(req.old_dir)?, self.dir(req.new_dir)?);
                let node = self
                    .child(old_dir, req.old_name.as_bytes())
                    .ok_or(Errno::ENOENT)?;
                if let Some(replaced) = self.child(new_dir, req.new_name.as_bytes()) {
                    self.nodes[replaced].parent = None;
                }
                self.nodes[node].parent = Some(new_dir);
                self.nodes[node].name = req.new_name.as_bytes().to_vec();
                return Ok(Reply::Raw(Mid::RenameAt.as_u16(), Vec::new()));
            }
            AnyRequest::Getdents64(req) => {
                let &(node, pos) = self.open.get(&req.dir_fd.0).ok_or(Errno::EBADF)?;
                let pos = if req.count < 0 { 0 } else { pos };
                // "." and ".." first, to check that the client filters them.
                let mut names: Vec<(Vec<u8>, u64, u8)> =
                    vec![(b".".to_vec(), 1, 4), (b"..".to_vec(), 1, 4)];
                for child in self.children(node) {
                    let d_type = match self.nodes[child].kind {
                        Kind::Dir => 4,
                        Kind::File(_) => 8,
                        Kind::Symlink(_) => 10,
                    };
                    names.push((self.nodes[child].name.clone(), child as u64 + 1, d_type));
                }
                let end = (pos + self.getdents_batch).min(names.len());
                let dirents = names[pos.min(end)..end]
                    .iter()
                    .map(|(name, ino, d_type)| Dirent64 {
                        ino: *ino,
                        d_type: *d_type,
                        name,
                        ..Dirent64::default()
                    })
                    .collect();
                self.open.insert(req.dir_fd.0, (node, end));
                AnyResponse::Getdents64(Getdents64Resp { dirents })
            }
            AnyRequest::PRead(req) => {
                let &(node, _) = self.open.get(&req.fd.0).ok_or(Errno::EBADF)?;
                let Kind::File(data) = &self.nodes[node].kind else {
                    return Err(Errno::EISDIR);
                };
                let start = (req.offset as usize).min(data.len());
                let end = (start + req.count as usize).min(data.len());
                AnyResponse::PRead(PReadResp {
                    data: data[start..end].to_vec(),
                })
            }
            AnyRequest::PWrite(req) => {
                let &(node, _) = self.open.get(&req.fd.0).ok_or(Errno::EBADF)?;
                let Kind::File(data) = &mut self.nodes[node].kind else {
                    return Err(Errno::EISDIR);
                };
                let start = req.offset as usize;
                if data.len() < start + req.data.len() {
                    data.resize(start + req.data.len(), 0);
                }
                data[start..start + req.data.len()].copy_from_slice(&req.data);
                AnyResponse::PWrite(PWriteResp {
                    count: req.data.len() as u64,
                })
            }
            AnyRequest::Close(req) => {
                for fd in &req.fds {
                    self.control.remove(&fd.0);
                    self.open.remove(&fd.0);
                }
                return Ok(Reply::Raw(Mid::Close.as_u16(), Vec::new()));
            }
            AnyRequest::FStatFS(req) => {
                self.control(req.fd)?;
                AnyResponse::FStatFS(FStatFSResp {
                    stat: StatFS {
                        fs_type: 0x0102_1994,
                        block_size: 4096,
                        blocks: 1000,
                        blocks_free: 750,
                        blocks_available: 700,
                        files: 100,
                        files_free: 90,
                        name_length: 255,
                    },
                })
            }
            _ => return Err(Errno::EOPNOTSUPP),
        };
        Ok(Reply::Resp(resp))
    }

    fn new_open(&mut self, node: usize) -> FdId {
        let id = self.next_id;
        self.next_id += 1;
        self.open.insert(id, (node, 0));
        FdId(id)
    }
}
