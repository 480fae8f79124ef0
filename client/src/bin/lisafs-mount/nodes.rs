//! The node table: FUSE node IDs → lisafs ControlFds, with the kernel's lookup counts.
//!
//! lisafs has no lookup count; the kernel does. Every entry the bridge hands to the kernel
//! (lookup, the create calls, link) adds one to its node's count and `forget` takes them
//! away; at zero the node's ControlFd is dropped (its FDID joins the client's batched
//! Close). A host file has one node however many names lead to it: nodes are keyed by the
//! file's (device, inode), so hard links share a FUSE inode as on a local filesystem, and
//! a second Walk to a known file just closes its new ControlFd.
//!
//! fuser reports an entry's node ID as its `st_ino` too, so the node ID is the host inode
//! number. Only if two devices (a share with submounts) hand out the same inode number does
//! the later file get a synthetic ID from the top half of the ID space. The root is always
//! node 1 (`FUSE_ROOT_ID`), whatever its host inode number.

use std::collections::HashMap;
use std::sync::Arc;

use lisafs_client::{Client, ControlFd, Inode, Statx};
use parking_lot::Mutex;

/// The kernel's name for the root node.
pub(crate) const ROOT_ID: u64 = 1;

/// Synthetic node IDs (inode-number collisions across devices) start here.
const SYNTHETIC_BASE: u64 = 1 << 63;

/// A file's identity on the host.
type Key = (u64, u64);

fn key(stat: &Statx) -> Key {
    let dev = (u64::from(stat.dev_major) << 32) | u64::from(stat.dev_minor);
    (dev, stat.ino)
}

/// The ControlFd of a node: the client's root, or a node's own.
pub(crate) enum Control {
    Root(Arc<Client>),
    Node(Arc<ControlFd>),
}

impl std::ops::Deref for Control {
    type Target = ControlFd;

    fn deref(&self) -> &ControlFd {
        match self {
            Self::Root(client) => client.root(),
            Self::Node(fd) => fd,
        }
    }
}

struct Node {
    /// `None` for the root (its ControlFd belongs to the `Client`).
    fd: Option<Arc<ControlFd>>,
    key: Key,
    lookups: u64,
    /// The mode from the latest stat seen (lookup, getattr, create): only used to decide
    /// whether a new child inherits this directory's group (set-group-ID directories).
    mode: u16,
    /// The gofer answered EOPNOTSUPP for this file's `security.capability`.
    no_capability_xattr: bool,
}

struct Table {
    by_id: HashMap<u64, Node>,
    by_key: HashMap<Key, u64>,
    next_synthetic: u64,
}

/// The node table; see the module doc.
pub(crate) struct Nodes {
    client: Arc<Client>,
    table: Mutex<Table>,
}

impl Nodes {
    /// A table holding only the root.
    pub(crate) fn new(client: Arc<Client>) -> Self {
        let stat = *client.root_stat();
        let root = Node {
            fd: None,
            key: key(&stat),
            lookups: 1,
            mode: stat.mode,
            no_capability_xattr: false,
        };
        let table = Table {
            by_key: HashMap::from([(root.key, ROOT_ID)]),
            by_id: HashMap::from([(ROOT_ID, root)]),
            next_synthetic: SYNTHETIC_BASE,
        };
        Self {
            client,
            table: Mutex::new(table),
        }
    }

    /// The ControlFd of node `id`, or `None` for an ID the kernel should not have.
    pub(crate) fn get(&self, id: u64) -> Option<Control> {
        if id == ROOT_ID {
            return Some(Control::Root(Arc::clone(&self.client)));
        }
        let table = self.table.lock();
        let fd = table.by_id.get(&id)?.fd.as_ref()?;
        Some(Control::Node(Arc::clone(fd)))
    }

    /// The last mode seen for node `id`.
    pub(crate) fn mode(&self, id: u64) -> Option<u16> {
        self.table.lock().by_id.get(&id).map(|node| node.mode)
    }

    /// Whether the gofer refused node `id`'s `security.capability` as unsupported.
    pub(crate) fn no_capability_xattr(&self, id: u64) -> bool {
        let table = self.table.lock();
        table
            .by_id
            .get(&id)
            .is_some_and(|node| node.no_capability_xattr)
    }

    /// Remembers that the gofer refused node `id`'s `security.capability` as unsupported:
    /// its xattr policy and the host file's filesystem stay what they are.
    pub(crate) fn set_no_capability_xattr(&self, id: u64) {
        if let Some(node) = self.table.lock().by_id.get_mut(&id) {
            node.no_capability_xattr = true;
        }
    }

    /// Records a fresh stat of node `id`.
    pub(crate) fn update(&self, id: u64, stat: &Statx) {
        if let Some(node) = self.table.lock().by_id.get_mut(&id) {
            node.mode = stat.mode;
        }
    }

    /// Adds one kernel reference to the node of the host file `stat` describes, if there
    /// is one, and returns its ID.
    pub(crate) fn find(&self, stat: &Statx) -> Option<u64> {
        Self::add_reference(&mut self.table.lock(), stat)
    }

    fn add_reference(table: &mut Table, stat: &Statx) -> Option<u64> {
        let id = *table.by_key.get(&key(stat))?;
        let node = table.by_id.get_mut(&id)?;
        node.lookups += 1;
        node.mode = stat.mode;
        Some(id)
    }

    /// Adds one kernel reference to the file `inode` names (a new node, or the existing
    /// one for that host file) and returns its node ID.
    pub(crate) fn insert(&self, inode: Inode) -> u64 {
        let Inode { fd, stat } = inode;
        let key = key(&stat);
        let mut table = self.table.lock();
        if let Some(id) = Self::add_reference(&mut table, &stat) {
            // `fd` drops here: the node keeps the ControlFd it already has.
            return id;
        }
        let id = if stat.ino > ROOT_ID && !table.by_id.contains_key(&stat.ino) {
            stat.ino
        } else {
            table.next_synthetic += 1;
            table.next_synthetic
        };
        table.by_key.insert(key, id);
        let node = Node {
            fd: Some(Arc::new(fd)),
            key,
            lookups: 1,
            mode: stat.mode,
            no_capability_xattr: false,
        };
        table.by_id.insert(id, node);
        id
    }

    /// Takes `count` kernel references from node `id`; the last one drops the node.
    pub(crate) fn forget(&self, id: u64, count: u64) {
        if id == ROOT_ID {
            return;
        }
        let mut table = self.table.lock();
        let Some(node) = table.by_id.get_mut(&id) else {
            return;
        };
        node.lookups = node.lookups.saturating_sub(count);
        if node.lookups == 0 {
            let key = node.key;
            table.by_id.remove(&id);
            table.by_key.remove(&key);
        }
    }

    /// How many nodes the kernel holds (root included).
    pub(crate) fn len(&self) -> usize {
        self.table.lock().by_id.len()
    }
}
