//! [`Deferred`]: after-hooks on a worker thread.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use lisafs_protocol::wire::Errno;

use super::{Hook, Op, OpClass};

/// An [`Op`] that owns its paths, so it can outlive the request (what [`Deferred`]
/// queues, and what a log record needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedOp {
    /// [`Op::name`].
    pub name: &'static str,
    /// [`Op::class`].
    pub class: OpClass,
    /// [`Op::path`], computed.
    pub path: Option<PathBuf>,
    /// [`Op::new_path`], computed.
    pub new_path: Option<PathBuf>,
    /// [`Op::count`].
    pub count: Option<u64>,
}

impl OwnedOp {
    /// Copies `op`, computing its paths now if no hook did yet.
    pub fn of(op: &Op<'_>) -> Self {
        Self {
            name: op.name(),
            class: op.class(),
            path: op.path().map(Into::into),
            new_path: op.new_path().map(Into::into),
            count: op.count(),
        }
    }

    /// The operation as a hook sees it.
    pub fn as_op(&self) -> Op<'static> {
        Op::new(
            self.name,
            self.class,
            self.path.clone(),
            self.new_path.clone(),
            self.count,
        )
    }
}

type Event = (OwnedOp, Result<(), Errno>);

/// Runs `H`'s [`Hook::after`] on a worker thread, so that a slow observer (an audit log
/// writing to disk) adds no latency to requests; everything else `H` does stays on the
/// request's thread.
///
/// The operation's paths are computed on the request's thread before it is queued: the
/// file may be renamed or closed by the time the worker runs, and the path that matters is
/// the one at the time of the request. So every deferred operation pays for its paths.
/// The queue is bounded: when it is full, requests wait for the worker rather than drop
/// events (an audit trail must not have holes). Dropping the `Deferred` (with the server
/// that owns it) lets the worker drain the queue and waits for it.
pub struct Deferred<H> {
    hook: Arc<H>,
    queue: Option<SyncSender<Event>>,
    worker: Option<JoinHandle<()>>,
}

impl<H: Hook> Deferred<H> {
    /// Starts the worker, with room for `capacity` operations waiting (at least one).
    pub fn new(hook: H, capacity: usize) -> std::io::Result<Self> {
        let hook = Arc::new(hook);
        let (queue, events) = sync_channel::<Event>(capacity.max(1));
        let worker_hook = Arc::clone(&hook);
        let worker = std::thread::Builder::new()
            .name("hook-after".into())
            .spawn(move || {
                for (op, outcome) in events {
                    worker_hook.after(&op.as_op(), outcome);
                }
            })?;
        Ok(Self {
            hook,
            queue: Some(queue),
            worker: Some(worker),
        })
    }

    /// The hook.
    pub fn hook(&self) -> &H {
        &self.hook
    }
}

impl<H: Hook> Hook for Deferred<H> {
    fn before(&self, op: &Op<'_>) -> Result<(), Errno> {
        self.hook.before(op)
    }

    fn after(&self, op: &Op<'_>, outcome: Result<(), Errno>) {
        if let Some(queue) = &self.queue {
            // Fails only if the worker is gone (its hook panicked): nothing to tell.
            let _ = queue.send((OwnedOp::of(op), outcome));
        }
    }

    fn write_data<'d>(&self, op: &Op<'_>, data: &'d [u8]) -> Result<Cow<'d, [u8]>, Errno> {
        self.hook.write_data(op, data)
    }

    fn hides(&self, dir: &Op<'_>, name: &[u8]) -> bool {
        self.hook.hides(dir, name)
    }

    fn donate(&self, op: &Op<'_>) -> bool {
        self.hook.donate(op)
    }
}

impl<H> Drop for Deferred<H> {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl<H: fmt::Debug> fmt::Debug for Deferred<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deferred")
            .field("hook", &self.hook)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::thread::ThreadId;

    use parking_lot::Mutex;

    use super::*;

    type Seen = (OwnedOp, Result<(), Errno>, ThreadId);

    #[derive(Default)]
    struct Record(Mutex<Vec<Seen>>);

    struct Recorder(Arc<Record>);

    impl Hook for Recorder {
        fn after(&self, op: &Op<'_>, outcome: Result<(), Errno>) {
            let thread = std::thread::current().id();
            self.0 .0.lock().push((OwnedOp::of(op), outcome, thread));
        }
    }

    #[test]
    fn after_runs_on_the_worker_in_order_and_drop_drains_the_queue() {
        let record = Arc::new(Record::default());
        let deferred = Deferred::new(Recorder(Arc::clone(&record)), 1).unwrap();
        let source = || Some(PathBuf::from("d/f"));
        for errno in [Errno::EACCES, Errno::ENOENT, Errno::EIO] {
            let op = Op::lazy("UnlinkAt", OpClass::Remove, &source);
            deferred.after(&op, Err(errno));
        }
        drop(deferred);
        let record = record.0.lock();
        let outcomes: Vec<_> = record.iter().map(|(_, outcome, _)| *outcome).collect();
        assert_eq!(
            outcomes,
            [Err(Errno::EACCES), Err(Errno::ENOENT), Err(Errno::EIO)]
        );
        let (op, _, thread) = &record[0];
        assert_eq!(op.path.as_deref(), Some(Path::new("d/f")));
        assert_eq!(op.class, OpClass::Remove);
        assert_ne!(*thread, std::thread::current().id());
    }
}
