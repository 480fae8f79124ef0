//! Request handlers, grouped by op family. Each is a method on `Connection`: it checks
//! the request against the protocol's rules, takes the locks of SPEC.md §7 / lisafs's
//! concurrency model, and calls the backend. No lock is held across a call that can block
//! on a peer (reads and writes take only their file's node lock, never the rename lock).

pub(crate) mod attr;
pub(crate) mod create;
pub(crate) mod dir;
pub(crate) mod io;
pub(crate) mod open;
pub(crate) mod socket;
pub(crate) mod walk;
pub(crate) mod xattr;

use std::sync::Arc;

use lisafs_protocol::wire::{CreateCommon, Errno, FdId, Inode, SizedString};

use crate::backend::{Backend, Create, Node};
use crate::connection::Connection;
use crate::fd_table::ControlFd;
use crate::name::Name;

impl<B: Backend> Connection<B> {
    /// Registers a new control FD for `node`; returns its inode and the FD.
    pub(crate) fn new_control(
        &self,
        node: Node<B::File>,
    ) -> Result<(Inode, Arc<ControlFd<B>>), Errno> {
        let lock = self.server.node_locks.get(&node.stat);
        let (fd, stat) = ControlFd::new(node, lock);
        self.fds.lock().insert_control(fd, stat)
    }

    /// Drops FDIDs a failed request created.
    pub(crate) fn forget(&self, ids: impl IntoIterator<Item = FdId>) {
        let removed: Vec<_> = {
            let mut table = self.fds.lock();
            ids.into_iter().filter_map(|id| table.remove(id)).collect()
        };
        // Host resources are released here, outside the table lock.
        drop(removed);
    }
}

/// Owner and mode from a create request's common prefix.
pub(crate) fn create_attrs(common: &CreateCommon) -> Create {
    Create {
        mode: common.mode.into(),
        uid: common.uid,
        gid: common.gid,
    }
}

/// Validates one name sent by the client.
pub(crate) fn name(s: &SizedString) -> Result<Name<'_>, Errno> {
    Name::new(s.as_bytes())
}

/// Rejects symlink targets and xattr names with a NUL byte (they cannot reach the host).
pub(crate) fn no_nul(bytes: &[u8]) -> Result<&[u8], Errno> {
    if bytes.contains(&0) {
        return Err(Errno::EINVAL);
    }
    Ok(bytes)
}
