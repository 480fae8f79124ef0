//! Helpers shared by the `attacks_*` tests (security.md §2): liveness watchdogs, host
//! racer threads and a snapshot of a directory tree for canary checks.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Runs `f` on its own thread and returns its result; panics (naming `what`) unless it
/// finishes within `limit`. The thread is left behind on failure: the test fails anyway.
pub fn within<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let handle = thread::spawn(f);
    let deadline = Instant::now() + limit;
    while !handle.is_finished() {
        assert!(
            Instant::now() < deadline,
            "{what} did not answer within {limit:?}"
        );
        thread::sleep(Duration::from_millis(2));
    }
    match handle.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// A counter worker threads bump after every RPC that answered; [`Progress::watch`]
/// fails the test when it stops moving for too long while a worker is still running.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    /// A new counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// One more RPC answered.
    pub fn tick(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The number of ticks so far.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Waits for every worker to finish, panicking if the count does not move for
    /// `stall` while one is still running (a deadlock or a blocked gofer thread), and
    /// re-raising any worker's panic. Returns the workers' results.
    pub fn watch<T>(&self, workers: Vec<JoinHandle<T>>, stall: Duration) -> Vec<T> {
        let (mut last, mut moved) = (self.count(), Instant::now());
        while workers.iter().any(|w| !w.is_finished()) {
            let now = self.count();
            if now != last {
                (last, moved) = (now, Instant::now());
            }
            assert!(
                moved.elapsed() < stall,
                "no RPC answered for {stall:?} ({now} answered before): deadlock or a blocked gofer"
            );
            thread::sleep(Duration::from_millis(5));
        }
        workers
            .into_iter()
            .map(|w| match w.join() {
                Ok(value) => value,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    }
}

/// A host thread repeating one action until stopped (security.md attacker H).
#[derive(Debug)]
pub struct Racer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<u64>>,
}

impl Racer {
    /// Starts a thread calling `step` in a loop until [`Racer::stop`].
    pub fn spawn(mut step: impl FnMut() + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let mut rounds = 0u64;
            while !flag.load(Ordering::Relaxed) {
                step();
                rounds += 1;
            }
            rounds
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops the thread and returns how many rounds it ran (re-raising its panic).
    pub fn stop(mut self) -> u64 {
        self.finish()
    }

    fn finish(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(rounds)) => rounds,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => 0,
        }
    }
}

impl Drop for Racer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// What a tree looked like: for each path (relative, symlinks not followed) its type and
/// mode, owner, size, mtime and ctime (not atime: the snapshot itself
/// reads), content (files) or target (symlinks) and xattrs.
pub type Snapshot = BTreeMap<String, String>;

/// A [`Snapshot`] of `dir` and everything beneath it.
pub fn snapshot(dir: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    walk(dir, "", &mut out);
    out
}

fn walk(dir: &Path, prefix: &str, out: &mut Snapshot) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("read a snapshot directory")
        .map(|e| e.expect("directory entry"))
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = format!("{prefix}/{}", entry.file_name().to_string_lossy());
        let meta = fs::symlink_metadata(&path).expect("lstat");
        let mut xattrs = vec![0u8; 65_536];
        let names = match rustix::fs::llistxattr(&path, &mut xattrs) {
            Ok(n) => xattrs[..n].to_vec(),
            Err(err) => format!("{err}").into_bytes(),
        };
        let body = if meta.file_type().is_symlink() {
            fs::read_link(&path)
                .expect("readlink")
                .to_string_lossy()
                .into_owned()
        } else if meta.is_file() {
            String::from_utf8_lossy(&fs::read(&path).expect("read")).into_owned()
        } else {
            String::new()
        };
        let value = format!(
            "mode {:o} owner {}:{} size {} mtime {}.{} ctime {}.{} xattrs {:?} body {body:?}",
            meta.mode(),
            meta.uid(),
            meta.gid(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
            String::from_utf8_lossy(&names),
        );
        out.insert(name.clone(), value);
        if meta.is_dir() {
            walk(&path, &name, out);
        }
    }
}
