//! Per-file operation locks, shared by every control FD of the same host file.
//!
//! lisafs serialises operations per node: readers of a file (stat, read, list) share its
//! lock, mutators (setstat, write, create in a directory) take it alone. Our nodes are
//! keyed by the file's identity (device, inode) rather than by path, so two walks to one
//! file, or two hard links, share one lock, and host-side renames cannot split it.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use lisafs_protocol::wire::Statx;
use parking_lot::{Mutex, RwLock};

/// The key of a node: which host file it is.
type NodeKey = (u32, u32, u64);

/// The lock of one node. It removes itself from the registry when the last control FD
/// of its file goes away.
pub(crate) struct NodeLock {
    key: NodeKey,
    registry: Arc<NodeLocks>,
    pub(crate) lock: RwLock<()>,
}

impl Drop for NodeLock {
    fn drop(&mut self) {
        let mut map = self.registry.map.lock();
        // A new lock for the same file may have replaced ours since our count hit zero.
        if map
            .get(&self.key)
            .is_some_and(|weak| weak.strong_count() == 0)
        {
            map.remove(&self.key);
        }
    }
}

/// The registry of live node locks of one server.
#[derive(Default)]
pub(crate) struct NodeLocks {
    map: Mutex<HashMap<NodeKey, Weak<NodeLock>>>,
}

impl NodeLocks {
    /// The lock of the file `stat` describes, shared with every other holder.
    pub(crate) fn get(self: &Arc<Self>, stat: &Statx) -> Arc<NodeLock> {
        let key = (stat.dev_major, stat.dev_minor, stat.ino);
        let mut map = self.map.lock();
        if let Some(lock) = map.get(&key).and_then(Weak::upgrade) {
            return lock;
        }
        let lock = Arc::new(NodeLock {
            key,
            registry: Arc::clone(self),
            lock: RwLock::new(()),
        });
        map.insert(key, Arc::downgrade(&lock));
        lock
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(ino: u64) -> Statx {
        Statx {
            ino,
            dev_major: 8,
            dev_minor: 1,
            ..Default::default()
        }
    }

    #[test]
    fn one_file_shares_one_lock_and_the_entry_goes_with_it() {
        let locks = Arc::new(NodeLocks::default());
        let a = locks.get(&stat(5));
        let b = locks.get(&stat(5));
        let other = locks.get(&stat(6));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &other));
        assert_eq!(locks.len(), 2);
        drop((a, b));
        assert_eq!(locks.len(), 1);
        drop(other);
        assert_eq!(locks.len(), 0);
    }
}
