//! A connection's FD table: FDIDs from 1 upward, never reused, each naming a control FD,
//! an open FD or a bound-socket FD.
//!
//! References follow lisafs: the table holds one reference per FDID; an open FD and a
//! bound-socket FD each hold their control FD; the backend's host resources go when the
//! last reference does. Entries are `Arc`s so a handler can use one after releasing the
//! table lock: no lock is held across a host call.

use std::collections::HashMap;
use std::sync::Arc;

use lisafs_protocol::wire::{Errno, FdId, Inode, Statx, S_IFDIR, S_IFLNK, S_IFMT, S_IFSOCK};

use crate::backend::{Backend, Node};
use crate::metrics::{FdKind, Metrics};
use crate::node_lock::NodeLock;

/// A file the client can name: metadata, traversal and creation go through it.
pub(crate) struct ControlFd<B: Backend> {
    pub(crate) file: B::File,
    /// File type bits (`S_IFMT`) at creation; a file's type never changes.
    pub(crate) file_type: u16,
    /// The per-file lock shared by every control FD of the same host file.
    pub(crate) node: Arc<NodeLock>,
}

impl<B: Backend> ControlFd<B> {
    pub(crate) fn new(node: Node<B::File>, lock: Arc<NodeLock>) -> (Self, Statx) {
        let fd = Self {
            file: node.file,
            file_type: node.stat.mode & S_IFMT,
            node: lock,
        };
        (fd, node.stat)
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.file_type == S_IFDIR
    }

    pub(crate) fn is_symlink(&self) -> bool {
        self.file_type == S_IFLNK
    }

    pub(crate) fn is_socket(&self) -> bool {
        self.file_type == S_IFSOCK
    }
}

/// An open file description of a control FD's file: reads, writes and directory listing.
pub(crate) struct OpenFd<B: Backend> {
    pub(crate) control: Arc<ControlFd<B>>,
    pub(crate) open: B::Open,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
}

/// A bound, possibly listening, host Unix socket (from BindAt).
pub(crate) struct BoundSocketFd<B: Backend> {
    /// Keeps the socket file's control FD alive as long as the socket.
    pub(crate) _control: Arc<ControlFd<B>>,
    pub(crate) socket: B::Socket,
}

/// One FD table entry.
pub(crate) enum FdEntry<B: Backend> {
    Control(Arc<ControlFd<B>>),
    Open(Arc<OpenFd<B>>),
    BoundSocket(Arc<BoundSocketFd<B>>),
}

impl<B: Backend> FdEntry<B> {
    fn kind(&self) -> FdKind {
        match self {
            Self::Control(_) => FdKind::Control,
            Self::Open(_) => FdKind::Open,
            Self::BoundSocket(_) => FdKind::BoundSocket,
        }
    }
}

impl<B: Backend> Clone for FdEntry<B> {
    fn clone(&self) -> Self {
        match self {
            Self::Control(fd) => Self::Control(Arc::clone(fd)),
            Self::Open(fd) => Self::Open(Arc::clone(fd)),
            Self::BoundSocket(fd) => Self::BoundSocket(Arc::clone(fd)),
        }
    }
}

/// The table itself. Lives behind the connection's mutex.
pub(crate) struct FdTable<B: Backend> {
    entries: HashMap<u64, FdEntry<B>>,
    next: u64,
    max: usize,
    /// The server's metrics, whose `lisafs_fds` gauges follow the entries.
    metrics: Option<Arc<Metrics>>,
}

impl<B: Backend> FdTable<B> {
    pub(crate) fn new(max: usize, metrics: Option<Arc<Metrics>>) -> Self {
        Self {
            entries: HashMap::new(),
            next: 1,
            max,
            metrics,
        }
    }

    /// Fails with `EMFILE` unless `n` more entries fit.
    pub(crate) fn ensure_room(&self, n: usize) -> Result<(), Errno> {
        if self.entries.len().saturating_add(n) > self.max {
            return Err(Errno::EMFILE);
        }
        Ok(())
    }

    /// Adds an entry under a fresh FDID.
    pub(crate) fn insert(&mut self, entry: FdEntry<B>) -> Result<FdId, Errno> {
        self.ensure_room(1)?;
        let id = self.next;
        // 2^64 IDs cannot be used up at any real request rate; refuse rather than reuse.
        self.next = id.checked_add(1).ok_or(Errno::EMFILE)?;
        if let Some(metrics) = &self.metrics {
            metrics.fd_added(entry.kind());
        }
        self.entries.insert(id, entry);
        Ok(FdId(id))
    }

    /// Adds a control FD; returns its inode for the response and the FD itself.
    pub(crate) fn insert_control(
        &mut self,
        fd: ControlFd<B>,
        stat: Statx,
    ) -> Result<(Inode, Arc<ControlFd<B>>), Errno> {
        let fd = Arc::new(fd);
        let id = self.insert(FdEntry::Control(Arc::clone(&fd)))?;
        let inode = Inode {
            control_fd: id,
            stat,
        };
        Ok((inode, fd))
    }

    pub(crate) fn get(&self, id: FdId) -> Result<FdEntry<B>, Errno> {
        self.entries.get(&id.0).cloned().ok_or(Errno::EBADF)
    }

    /// Removes an entry; the caller drops it after releasing the table lock.
    pub(crate) fn remove(&mut self, id: FdId) -> Option<FdEntry<B>> {
        let entry = self.entries.remove(&id.0)?;
        if let Some(metrics) = &self.metrics {
            metrics.fd_removed(entry.kind());
        }
        Some(entry)
    }
}

impl<B: Backend> Drop for FdTable<B> {
    /// The connection's end releases what the client still held.
    fn drop(&mut self) {
        if let Some(metrics) = &self.metrics {
            for entry in self.entries.values() {
                metrics.fd_removed(entry.kind());
            }
        }
    }
}
