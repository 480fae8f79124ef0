//! Open files and directories: FUSE file handles → lisafs OpenFds.
//!
//! A regular file's handle keeps the host FD the gofer donated with OpenAt/OpenCreateAt,
//! when it did: the kernel then reads and writes it itself (passthrough, see
//! `passthrough.rs`), or the bridge does, with no RPC. Without one (a gofer that does not
//! donate) reads and writes become PRead, PWrite, FSync and FAllocate RPCs on the OpenFd.
//!
//! A directory's handle keeps the entries read so far. Getdents64 is a stream (the server
//! keeps the position; a negative count rewinds), while FUSE readdir asks for an offset:
//! the bridge gives entry `i` of the listing the offset `i + 1`, serves seeks back from its
//! copy, reads on when asked past it, and rereads from the start when asked for offset 0
//! again (`rewinddir`), so that a rewound listing sees the directory as it is now.
//! While the kernel takes one batch of a long listing, the next is already being read
//! (`ReadAhead`): the gofer's `getdents64` on the host then overlaps the kernel's work
//! instead of following it.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, OnceLock};

use lisafs_client::{OpenFd, Result};
use lisafs_protocol::wire::{linux_reclen, DirentList};
use parking_lot::Mutex;

use crate::passthrough::Grant;

/// Getdents64 budget per RPC (gVisor's client uses the same).
const GETDENTS_BUDGET: i32 = 65_536;
/// The same, in bytes.
const BUDGET: usize = GETDENTS_BUDGET.unsigned_abs() as usize;

/// An open regular file (or anything that is not a directory).
pub(crate) struct FileHandle {
    pub(crate) fd: OpenFd,
    pub(crate) host: Option<OwnedFd>,
    /// Its I/O mode towards the kernel, held until the handle goes.
    pub(crate) _grant: Grant,
}

/// One directory entry, as FUSE readdir sends it.
pub(crate) struct Entry<'a> {
    pub(crate) ino: u64,
    pub(crate) d_type: u8,
    pub(crate) name: &'a [u8],
}

/// An open directory and the part of its listing read so far.
pub(crate) struct DirHandle {
    fd: Arc<OpenFd>,
    state: Mutex<Listing>,
}

struct Listing {
    /// Entries in listing order; entry `i` has FUSE offset `i + 1`.
    entries: Vec<Slot>,
    /// The entries' names back to back: one buffer for a listing, not one per name.
    names: Vec<u8>,
    /// Getdents64 returned nothing more.
    eof: bool,
    /// Whether the server's position is at the start (nothing read since open or rewind).
    fresh: bool,
    /// The next batch, being read by the [`ReadAhead`] thread.
    ahead: Option<Receiver<Result<DirentList>>>,
}

impl DirHandle {
    /// `self_ino` is the directory's own inode number, reported for "." and "..".
    pub(crate) fn new(fd: OpenFd, self_ino: u64) -> Self {
        // lisafs never lists "." and ".."; local filesystems do, and some programs count on
        // it. ".." gets the directory's own number: the bridge does not track parents.
        let mut listing = Listing {
            entries: Vec::new(),
            names: Vec::new(),
            eof: false,
            fresh: true,
            ahead: None,
        };
        for name in [&b"."[..], b".."] {
            listing.push(self_ino, DT_DIR, name);
        }
        Self {
            fd: Arc::new(fd),
            state: Mutex::new(listing),
        }
    }

    /// Calls `add(offset_of_next, entry)` for the entries from FUSE offset `offset` on,
    /// until it returns `true` (the reply buffer is full) or the listing ends; a long
    /// listing's next batch is read ahead by `read_ahead`.
    pub(crate) fn read(
        &self,
        offset: u64,
        read_ahead: &ReadAhead,
        mut add: impl FnMut(u64, &Entry<'_>) -> bool,
    ) -> Result<()> {
        let mut listing = self.state.lock();
        if offset == 0 && !listing.fresh {
            // The server's position is one stream: the rewind must come after the batch
            // still being read, which is dropped.
            if let Some(pending) = listing.ahead.take() {
                let _ = pending.recv();
            }
            listing.truncate(2);
            listing.eof = false;
            listing.fresh = true;
            // The rewind rides on the next Getdents64 (negative count).
        }
        let mut index = usize::try_from(offset).unwrap_or(usize::MAX);
        loop {
            while let Some(entry) = listing.get(index) {
                index += 1;
                if add(u64::try_from(index).unwrap_or(u64::MAX), &entry) {
                    return Ok(());
                }
            }
            if listing.eof {
                return Ok(());
            }
            let count = if listing.fresh {
                -GETDENTS_BUDGET
            } else {
                GETDENTS_BUDGET
            };
            let dirents = match listing.ahead.take().map(|pending| pending.recv()) {
                Some(Ok(batch)) => batch?,
                // Not read ahead, or the thread is gone before it read: read it here.
                None | Some(Err(_)) => self.fd.getdents64(count)?,
            };
            listing.fresh = false;
            listing.eof = dirents.is_empty();
            let mut charged = 0;
            for dirent in &dirents {
                charged += linux_reclen(dirent.name.len());
                listing.push(dirent.ino, dirent.d_type, dirent.name);
            }
            // A batch that took most of its budget was cut short by it: more follows.
            // (Reading ahead the empty last batch of a short listing costs it a hand-over
            // between threads and gains nothing.)
            if charged > BUDGET / 2 {
                listing.ahead = read_ahead.start(&self.fd);
            }
        }
    }

    /// The directory's OpenFd (for fsyncdir).
    pub(crate) fn fd(&self) -> &OpenFd {
        &self.fd
    }
}

/// `DT_DIR`.
const DT_DIR: u8 = 4;

/// An entry of a [`Listing`]: its name is `names[name_start..name_end]`.
struct Slot {
    ino: u64,
    d_type: u8,
    name_start: usize,
    name_end: usize,
}

impl Listing {
    fn push(&mut self, ino: u64, d_type: u8, name: &[u8]) {
        let name_start = self.names.len();
        self.names.extend_from_slice(name);
        self.entries.push(Slot {
            ino,
            d_type,
            name_start,
            name_end: self.names.len(),
        });
    }

    fn get(&self, index: usize) -> Option<Entry<'_>> {
        let slot = self.entries.get(index)?;
        Some(Entry {
            ino: slot.ino,
            d_type: slot.d_type,
            name: self.names.get(slot.name_start..slot.name_end)?,
        })
    }

    /// Keeps the first `len` entries.
    fn truncate(&mut self, len: usize) {
        self.entries.truncate(len);
        let names_end = self.entries.last().map_or(0, |slot| slot.name_end);
        self.names.truncate(names_end);
    }
}

/// What a FUSE file handle stands for.
pub(crate) enum Handle {
    File(FileHandle),
    Dir(DirHandle),
}

/// FUSE file handles; numbers are never reused within a mount.
#[derive(Default)]
pub(crate) struct Handles {
    next: AtomicU64,
    map: Mutex<HashMap<u64, Arc<Handle>>>,
    /// Reads directory listings' next batches.
    pub(crate) read_ahead: ReadAhead,
}

/// A request for the next batch of a listing, and where its result goes.
type Job = (Arc<OpenFd>, SyncSender<Result<DirentList>>);

/// One thread for the mount that reads the next Getdents64 batch of a listing while the
/// FUSE thread hands the last one to the kernel. Started at the first long listing (after
/// any daemonizing fork); a listing whose request it cannot take reads on the FUSE
/// thread as before.
#[derive(Default)]
pub(crate) struct ReadAhead {
    jobs: OnceLock<Sender<Job>>,
}

impl ReadAhead {
    /// Starts reading `fd`'s next batch; `None` if the thread cannot take it.
    fn start(&self, fd: &Arc<OpenFd>) -> Option<Receiver<Result<DirentList>>> {
        let jobs = self.jobs.get_or_init(|| {
            let (jobs, queue) = mpsc::channel::<Job>();
            let spawned = std::thread::Builder::new()
                .name("lisafs-readahead".into())
                .spawn(move || {
                    for (fd, result) in queue {
                        // The listing may be gone (closed, rewound): nobody to tell.
                        let _ = result.send(fd.getdents64(GETDENTS_BUDGET));
                    }
                });
            if let Err(err) = spawned {
                tracing::warn!(%err, "no read-ahead thread: listings read in turn");
            }
            jobs
        });
        let (result, pending) = mpsc::sync_channel(1);
        jobs.send((Arc::clone(fd), result)).ok()?;
        Some(pending)
    }
}

impl Handles {
    pub(crate) fn insert(&self, handle: Handle) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.map.lock().insert(id, Arc::new(handle));
        id
    }

    pub(crate) fn get(&self, id: u64) -> Option<Arc<Handle>> {
        self.map.lock().get(&id).cloned()
    }

    pub(crate) fn remove(&self, id: u64) -> Option<Arc<Handle>> {
        self.map.lock().remove(&id)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.lock().len()
    }
}
