//! The audit log (`[audit]` in the `--config` file): one JSON object per line for every
//! operation in scope, written by a thread of its own.
//!
//! # A line
//!
//! ```text
//! {"time":"2026-12-04T19:50:05.123456Z","mount":"data","connection":{"id":3,"pid":0,"uid":1000,"gid":1000},"op":"RenameAt","class":"rename","path":"a/b","new_path":"c","result":"ok","bytes":null,"rule":null}
//! ```
//!
//! * `time`: when the operation ended, RFC 3339 in UTC with microseconds.
//! * `mount`: the mount's name, as given to [`Audit::hook`].
//! * `connection`: the connection's ID (unique in the process) and its peer's `pid`,
//!   `uid` and `gid` from `SO_PEERCRED`, each `null` if the server does not read them
//!   (`Server::read_peer_credentials`); the PID is 0 for a peer outside the gofer's PID
//!   namespace, which a confined gofer's clients are. `null` outside a served request.
//! * `op`, `class`: the lisafs message and its class (see `lisafs_server::hooks`).
//! * `path`, `new_path`: relative to the share's root ("" is the root), where the file was
//!   at the time of the request; `new_path` for RenameAt and LinkAt only, `null` elsewhere;
//!   `null` if the file's place could not be told (moved out of the share, unlinked).
//!   A path is bytes and JSON strings are Unicode: a path that is not UTF-8 is written with
//!   U+FFFD in place of each invalid sequence, and its exact bytes follow in hexadecimal
//!   as `path_bytes` (`new_path_bytes`), a field present only then.
//! * `result`: `ok`, or the errno's name (`EACCES`), `Errno(N)` for one without a name.
//!   A refusal by a policy hook is an errno like any other.
//! * `bytes`: bytes asked for (PRead), sent (PWrite) or allocated (FAllocate); else `null`.
//! * `rule`: the rule that decided, as a policy hook named it with
//!   `lisafs_server::context::set_rule`; `null` if none did.
//!
//! # Operations in scope
//!
//! [`AuditOps::Mutations`] (`ops = "mutations"`): the classes that change the share:
//! write (PWrite, FAllocate, a truncating SetStat, and an OpenAt for writing, since the
//! writes through its donated FD never reach the gofer), create, remove, rename and setattr.
//! Not connect: connecting to a socket file changes nothing (BindAt, which makes one, is a
//! create). [`AuditOps::All`] (`ops = "all"`) adds stat and read, every lookup included.
//!
//! # Drop or block
//!
//! The request's thread builds the line (paths are computed then, where the request
//! happens) and puts it on a bounded queue ([`AuditOptions::queue`] lines); the writer
//! thread takes them off in batches, pausing a millisecond when the stream is light
//! rather than being woken for every line (a line reaches the file at most that late; an
//! [`Audit`] dropped at the end writes every line queued before). When the queue is full, [`OnFull::Drop`] loses the
//! line and counts it ([`Audit::dropped`], exported by the gofer as the metric
//! `lisafs_audit_dropped_total`, and a warning at most every ten seconds),
//! so a slow disk never slows a request; [`OnFull::Block`] makes the request wait for
//! room, for operators who must not lose a line. A line the file refuses (`ENOSPC`, `EIO`)
//! is lost and counted in either mode.
//!
//! # Start-up, in two steps
//!
//! [`Audit::open`] opens the file (appending, created with mode 0600, close-on-exec) and
//! must run before the gofer confines itself: after the pivot, the file's path is not
//! reachable. [`Audit::start`] starts the writer thread and must run after it: Landlock
//! confines the thread that calls it and the threads created after, not those that
//! already exist, so a thread started before would escape it. The writer only writes to
//! the FD it was given. Hooks ([`Audit::hook`]) can be made before or after `start`, but
//! lines wait in the queue until it runs, so serve only after it.
//!
//! # Rotation
//!
//! On SIGHUP a gofer with a `--config` file opens the file again by its name (a confined
//! gofer cannot reach it, so its supervising parent opens it and passes it in) and gives
//! it to the writer through the queue ([`AuditSwitch::replace`]), so every line logged
//! before the SIGHUP is in the old file and every later one in the new: rotate by renaming
//! the file, then SIGHUP.
//! Copy-and-truncate rotation (logrotate's `copytruncate`) works too, without a signal:
//! appends go to the end of the file, whatever its size.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lisafs_server::context::{self, RequestContext};
use lisafs_server::hooks::{Hook, Op, OpClass};
use lisafs_server::wire::Errno;
use parking_lot::Mutex;

/// Default [`AuditOptions::queue`]: lines waiting for the writer.
pub const DEFAULT_QUEUE: usize = 4096;

/// At most this many lines go to the file in one write.
const BATCH: u64 = 256;

/// How long the writer lets lines gather after a batch that did not fill the queue a
/// quarter of the way. Woken for every line, the writer would cost every logged request a
/// futex wake (and, with the cores busy, a context switch): at 80 k requests/s that was
/// 10 µs a request. Sleeping instead, it wakes about a thousand times a second under a
/// steady stream, and a line reaches the file at most this much later.
const GATHER: Duration = Duration::from_millis(1);

/// The least time between two warnings about dropped lines.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Where the lines go.
#[derive(Debug)]
pub enum AuditTarget {
    /// A file, opened for appending (`file = "/var/log/..."`).
    Path(PathBuf),
    /// Standard error (`file = "-"`), shared with the gofer's own log.
    Stderr,
    /// An FD already open for writing (a pipe to a log collector, a test).
    Fd(OwnedFd),
}

/// Which operations are logged (`ops`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditOps {
    /// Every operation.
    All,
    /// Those that change the share: the classes write, create, remove, rename, setattr.
    #[default]
    Mutations,
}

impl AuditOps {
    /// Whether operations of `class` are logged.
    pub fn includes(self, class: OpClass) -> bool {
        match self {
            Self::All => true,
            Self::Mutations => matches!(
                class,
                OpClass::Write
                    | OpClass::Create
                    | OpClass::Remove
                    | OpClass::Rename
                    | OpClass::SetAttr
            ),
        }
    }
}

/// What a request does when the queue is full (`on_full`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFull {
    /// Loses the line, counted by [`Audit::dropped`]; the request never waits.
    #[default]
    Drop,
    /// Waits for room: no line is lost to a slow writer, and requests are as slow as it.
    Block,
}

/// The audit log's configuration.
#[derive(Debug)]
pub struct AuditOptions {
    /// Where the lines go.
    pub file: AuditTarget,
    /// Which operations are logged.
    pub ops: AuditOps,
    /// What a request does when the queue is full.
    pub on_full: OnFull,
    /// Lines that may wait for the writer (at least one).
    pub queue: usize,
}

impl AuditOptions {
    /// Mutations, dropping when full, a queue of [`DEFAULT_QUEUE`] lines.
    pub fn new(file: AuditTarget) -> Self {
        Self {
            file,
            ops: AuditOps::default(),
            on_full: OnFull::default(),
            queue: DEFAULT_QUEUE,
        }
    }
}

/// What the hooks and the writer share.
#[derive(Debug)]
struct Shared {
    ops: AuditOps,
    on_full: OnFull,
    dropped: AtomicU64,
    /// When dropping was last warned about.
    warned: Mutex<Option<Instant>>,
}

impl Shared {
    /// Counts `lines` lost, and warns if it has not lately.
    fn lost(&self, lines: u64, why: &dyn std::fmt::Display) {
        let total = self.dropped.fetch_add(lines, Ordering::Relaxed) + lines;
        // try_lock: a request that drops a line must never wait, not even for this.
        if let Some(mut warned) = self.warned.try_lock() {
            if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                *warned = Some(Instant::now());
                tracing::warn!(dropped = total, "audit log: dropping lines: {why}");
            }
        }
    }
}

/// The audit log: its file, its queue and its writer thread. See the module documentation.
#[derive(Debug)]
pub struct Audit {
    shared: Arc<Shared>,
    /// The queue's sending end, shared with every hook; the writer ends when the last
    /// holder is gone.
    queue: Option<Arc<SyncSender<Entry>>>,
    /// The writer until [`Audit::start`] runs it.
    writer: Mutex<Option<Writer>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Audit {
    /// Opens the file and the queue; lines are written once [`Audit::start`] runs. Call it
    /// before confinement: the path cannot be reached after the pivot.
    pub fn open(options: AuditOptions) -> io::Result<Self> {
        let out = match options.file {
            AuditTarget::Path(path) => Output::File(open_log(&path)?),
            AuditTarget::Stderr => Output::Stderr,
            AuditTarget::Fd(fd) => Output::File(File::from(fd)),
        };
        let shared = Arc::new(Shared {
            ops: options.ops,
            on_full: options.on_full,
            dropped: AtomicU64::new(0),
            warned: Mutex::new(None),
        });
        let capacity = options.queue.max(1);
        let (queue, entries) = sync_channel(capacity);
        let writer = Writer {
            out,
            entries,
            capacity,
            shared: Arc::clone(&shared),
        };
        Ok(Self {
            shared,
            queue: Some(Arc::new(queue)),
            writer: Mutex::new(Some(writer)),
            thread: Mutex::new(None),
        })
    }

    /// Starts the writer thread. Call it after confinement, so that Landlock confines the
    /// thread too; fails if it already started, or if the thread cannot be created.
    pub fn start(&self) -> io::Result<()> {
        let writer = self
            .writer
            .lock()
            .take()
            .ok_or_else(|| io::Error::other("the audit writer already started"))?;
        let thread = std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || writer.run())?;
        *self.thread.lock() = Some(thread);
        Ok(())
    }

    /// The hook that logs the operations of the mount named `mount`, into this log.
    pub fn hook(&self, mount: &str) -> AuditHook {
        AuditHook {
            mount: mount.into(),
            queue: self.queue.clone(),
            shared: Arc::clone(&self.shared),
        }
    }

    /// Lines lost so far: dropped from a full queue ([`OnFull::Drop`]) or refused by the
    /// file.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// A reader of [`Audit::dropped`] that outlives this value (for the metrics
    /// endpoint's `lisafs_audit_dropped_total`).
    pub fn dropped_counter(&self) -> impl Fn() -> u64 + Send + Sync + 'static {
        let shared = Arc::clone(&self.shared);
        move || shared.dropped.load(Ordering::Relaxed)
    }

    /// A handle that moves the log to another file. It does not keep the log open.
    pub fn switch(&self) -> AuditSwitch {
        AuditSwitch(self.queue.as_ref().map_or_else(Weak::new, Arc::downgrade))
    }
}

/// Moves an [`Audit`] log to another file (the same path, opened again after a rotation).
#[derive(Debug, Clone)]
pub struct AuditSwitch(Weak<SyncSender<Entry>>);

impl AuditSwitch {
    /// Every line logged after this call goes to `file`, every line before it to the old
    /// file, which is closed then. Waits for room in the queue; does nothing once the log
    /// is gone.
    pub fn replace(&self, file: File) {
        if let Some(queue) = self.0.upgrade() {
            // Only a writer gone for good refuses it; then nothing is written anywhere.
            let _ = queue.send(Entry::Reopened(file));
        }
    }
}

/// What goes through the queue to the writer, in the order it is to be written.
#[derive(Debug)]
enum Entry {
    /// One line, with its newline.
    Line(String),
    /// The file every later line goes to ([`AuditSwitch::replace`]).
    Reopened(File),
    /// Told once every earlier line is written (`Drop for Audit`).
    Flushed(SyncSender<()>),
}

impl Drop for Audit {
    /// Waits for the writer to write every line queued so far. If no hook is left, the
    /// writer then ends; otherwise (connections still ending) it goes on until the last
    /// hook is dropped.
    fn drop(&mut self) {
        let (Some(queue), Some(thread)) = (self.queue.take(), self.thread.lock().take()) else {
            // Never started: there is no one to write.
            return;
        };
        match Arc::try_unwrap(queue) {
            Ok(last) => {
                drop(last);
                if thread.join().is_err() {
                    tracing::error!("the audit writer panicked");
                }
            }
            Err(shared) => {
                let (ack, written) = sync_channel(1);
                if shared.send(Entry::Flushed(ack)).is_ok() {
                    let _ = written.recv();
                }
            }
        }
    }
}

/// The [`Hook`] that logs one mount's operations into an [`Audit`] (see the module
/// documentation). It must run on the request's thread (not under
/// `lisafs_server::hooks::Deferred`), where the connection's context is; it has its own
/// queue. Paired with a policy hook, put either first: it reads the deciding rule in
/// [`Hook::after`], which runs after every [`Hook::before`].
#[derive(Debug, Clone)]
pub struct AuditHook {
    mount: Arc<str>,
    queue: Option<Arc<SyncSender<Entry>>>,
    shared: Arc<Shared>,
}

impl Hook for AuditHook {
    fn after(&self, op: &Op<'_>, outcome: Result<(), Errno>) {
        // Taken whether or not the operation is logged, so it cannot pass to the next one.
        let rule = context::take_rule();
        if !self.shared.ops.includes(op.class()) {
            return;
        }
        let Some(queue) = &self.queue else { return };
        let line = Entry::Line(line(
            SystemTime::now(),
            &self.mount,
            context::current(),
            op,
            outcome,
            rule.as_deref(),
        ));
        match self.shared.on_full {
            OnFull::Drop => match queue.try_send(line) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => self.shared.lost(1, &"the queue is full"),
                Err(TrySendError::Disconnected(_)) => self.shared.lost(1, &"no writer"),
            },
            OnFull::Block => {
                if queue.send(line).is_err() {
                    self.shared.lost(1, &"no writer");
                }
            }
        }
    }
}

/// Where the writer writes.
#[derive(Debug)]
enum Output {
    File(File),
    Stderr,
}

impl Output {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Self::File(file) => file.write_all(bytes),
            Self::Stderr => io::stderr().lock().write_all(bytes),
        }
    }
}

/// The writer thread's state.
#[derive(Debug)]
struct Writer {
    out: Output,
    entries: Receiver<Entry>,
    /// The queue's size.
    capacity: usize,
    shared: Arc<Shared>,
}

impl Writer {
    /// Writes lines until every sender is gone and the queue is empty.
    fn run(mut self) {
        let mut batch = String::new();
        let mut count = 0;
        // Lines written since the writer last paused.
        let mut written = 0;
        while let Ok(first) = self.entries.recv() {
            let mut next = Some(first);
            while let Some(entry) = next.take() {
                match entry {
                    Entry::Line(line) => {
                        batch.push_str(&line);
                        count += 1;
                    }
                    Entry::Reopened(file) => {
                        written += self.flush(&mut batch, &mut count);
                        self.out = Output::File(file);
                        tracing::info!("audit log: writing to the reopened file");
                    }
                    Entry::Flushed(ack) => {
                        written += self.flush(&mut batch, &mut count);
                        let _ = ack.send(());
                    }
                }
                if count >= BATCH {
                    written += self.flush(&mut batch, &mut count);
                }
                next = self.entries.try_recv().ok();
            }
            // The queue is drained.
            written += self.flush(&mut batch, &mut count);
            if written < (self.capacity / 4) as u64 {
                std::thread::sleep(GATHER);
            }
            written = 0;
        }
    }

    /// Writes the `count` lines of `batch` and empties it; returns how many there were.
    fn flush(&mut self, batch: &mut String, count: &mut u64) -> u64 {
        let lines = std::mem::take(count);
        if lines > 0 {
            if let Err(err) = self.out.write_all(batch.as_bytes()) {
                self.shared.lost(lines, &err);
            }
            batch.clear();
        }
        lines
    }
}

/// The mode a new log file gets: readable by its owner only.
pub(crate) const LOG_MODE: rustix::fs::Mode = rustix::fs::Mode::RUSR.union(rustix::fs::Mode::WUSR);

/// Opens the log for appending, creating it with [`LOG_MODE`] (an existing file keeps its
/// mode).
fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(LOG_MODE.bits())
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// One line of the log, with its newline (see the module documentation).
fn line(
    time: SystemTime,
    mount: &str,
    context: Option<RequestContext>,
    op: &Op<'_>,
    outcome: Result<(), Errno>,
    rule: Option<&str>,
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"time\":\"");
    rfc3339(&mut out, time);
    out.push_str("\",\"mount\":");
    string(&mut out, mount);
    out.push_str(",\"connection\":");
    match context {
        None => out.push_str("null"),
        Some(context) => {
            let _ = write!(out, "{{\"id\":{}", context.connection);
            match context.peer {
                Some(peer) => {
                    let _ = write!(
                        out,
                        ",\"pid\":{},\"uid\":{},\"gid\":{}}}",
                        peer.pid, peer.uid, peer.gid
                    );
                }
                None => out.push_str(",\"pid\":null,\"uid\":null,\"gid\":null}"),
            }
        }
    }
    out.push_str(",\"op\":");
    string(&mut out, op.name());
    out.push_str(",\"class\":");
    string(&mut out, op.class().name());
    path_field(&mut out, "path", op.path());
    path_field(&mut out, "new_path", op.new_path());
    out.push_str(",\"result\":");
    match outcome {
        Ok(()) => out.push_str("\"ok\""),
        Err(errno) => string(&mut out, &format!("{errno:?}")),
    }
    out.push_str(",\"bytes\":");
    match op.count() {
        Some(count) => {
            let _ = write!(out, "{count}");
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"rule\":");
    match rule {
        Some(rule) => string(&mut out, rule),
        None => out.push_str("null"),
    }
    out.push_str("}\n");
    out
}

/// `,"name":"path"`, plus `,"name_bytes":"hex"` if the path is not UTF-8.
fn path_field(out: &mut String, name: &str, path: Option<&Path>) {
    let _ = write!(out, ",\"{name}\":");
    let Some(path) = path else {
        out.push_str("null");
        return;
    };
    let bytes = path.as_os_str().as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(text) => string(out, text),
        Err(_) => {
            string(out, &String::from_utf8_lossy(bytes));
            let _ = write!(out, ",\"{name}_bytes\":\"");
            for byte in bytes {
                let _ = write!(out, "{byte:02x}");
            }
            out.push('"');
        }
    }
}

/// `text` as a JSON string.
fn string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `time` as RFC 3339 in UTC with microseconds (`2026-12-04T19:50:05.123456Z`); a time
/// before 1970 (a clock set wrong) as 1970.
fn rfc3339(out: &mut String, time: SystemTime) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_date(secs / 86_400);
    let of_day = secs % 86_400;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since.subsec_micros()
    );
}

/// The proleptic Gregorian (year, month, day) of `days` after 1970-01-01: counted in
/// 400-year eras of 146,097 days from 0000-03-01, so that the leap day ends a year.
fn civil_date(days: u64) -> (u64, u64, u64) {
    // Days from 0000-03-01 to 1970-01-01.
    let days = days + 719_468;
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months from March: 0 is March, 11 is February.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = match month_from_march {
        0..=9 => month_from_march + 3,
        _ => month_from_march - 9,
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, micros: u32) -> String {
        let mut out = String::new();
        let time = UNIX_EPOCH + Duration::new(secs, micros * 1000 + 999);
        rfc3339(&mut out, time);
        out
    }

    #[test]
    fn times_are_rfc3339_in_utc_with_microseconds() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_868_800, 1), "2000-03-01T00:00:00.000001Z");
        assert_eq!(at(946_684_799, 999_999), "1999-12-31T23:59:59.999999Z");
        assert_eq!(at(1_709_251_199, 123_456), "2024-02-29T23:59:59.123456Z");
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = String::new();
        string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn a_line_has_every_field() {
        let op = Op::new(
            "RenameAt",
            OpClass::Rename,
            Some("a/b".into()),
            Some(PathBuf::from(std::ffi::OsStr::from_bytes(b"c\xff"))),
            None,
        );
        let context = RequestContext {
            connection: 7,
            peer: None,
        };
        let line = line(
            UNIX_EPOCH,
            "m",
            Some(context),
            &op,
            Err(Errno::EXDEV),
            Some("r"),
        );
        assert_eq!(
            line,
            "{\"time\":\"1970-01-01T00:00:00.000000Z\",\"mount\":\"m\",\"connection\":\
             {\"id\":7,\"pid\":null,\"uid\":null,\"gid\":null},\"op\":\"RenameAt\",\
             \"class\":\"rename\",\"path\":\"a/b\",\"new_path\":\"c\u{fffd}\",\
             \"new_path_bytes\":\"63ff\",\"result\":\"EXDEV\",\"bytes\":null,\"rule\":\"r\"}\n"
        );
    }

    #[test]
    fn mutations_leave_out_stats_reads_and_connects() {
        let logged: Vec<_> = OpClass::ALL
            .into_iter()
            .filter(|class| AuditOps::Mutations.includes(*class))
            .collect();
        assert_eq!(
            logged,
            [
                OpClass::Write,
                OpClass::Create,
                OpClass::Remove,
                OpClass::Rename,
                OpClass::SetAttr
            ]
        );
    }
}
