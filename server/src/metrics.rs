//! Server metrics: what every connection of a [`Server`](crate::Server) did, as relaxed
//! atomic counters, rendered in the Prometheus text format or OpenMetrics.
//!
//! A server with [`ServerOptions::metrics`](crate::ServerOptions::metrics) set (or built
//! by [`Server::with_metrics`](crate::Server::with_metrics)) records into one [`Metrics`]
//! shared by all its connections and channels, and by whoever renders it
//! ([`Server::metrics`](crate::Server::metrics); the gofer's `--metrics-socket` endpoint).
//! Without, a request pays one branch on an `Option`.
//!
//! The metric families (all names prefixed `lisafs_`):
//!
//! | family | type | labels | what |
//! |---|---|---|---|
//! | `lisafs_requests_total` | counter | `mid` | requests answered, by message name (`mid="FStat"`; `mid="unknown"` for a MID this crate does not know) |
//! | `lisafs_errors_total` | counter | `mid`, `errno` | requests answered with `ErrorResp`, by message and errno name (`errno="ENOENT"`; the number for one without a name, `other` above 133) |
//! | `lisafs_request_duration_seconds` | histogram | `mid` | time in the server from the request frame received to the response sent; buckets 1 µs to 2^20 µs (≈1.05 s), doubling |
//! | `lisafs_read_bytes_total` | counter | | bytes returned by PRead |
//! | `lisafs_written_bytes_total` | counter | | bytes written by PWrite |
//! | `lisafs_fds` | gauge | `kind` | FDIDs held by clients, summed over connections: `control`, `open`, `bound_socket` |
//! | `lisafs_connections` | gauge | | connections being served |
//! | `lisafs_connections_opened_total` | counter | | connections served since start |
//! | `lisafs_channels` | gauge | | shared-memory channels being served |
//! | `lisafs_channels_opened_total` | counter | | channels started since start |
//!
//! The embedder may add counters of its own ([`Metrics::add_counter`]); the gofer adds
//! `lisafs_audit_dropped_total`, the audit log lines it lost.
//!
//! `lisafs_requests_total` is the histogram's count, so the two always agree. A MID shows
//! up once it has been seen; errors once they happened. A request is counted just after
//! its response is sent, so a client may see a response a moment before a scrape sees its
//! request.
//!
//! Why no `prometheus-client` or `metrics` crate: the whole set is fixed arrays of
//! `AtomicU64` indexed by MID, bucket and errno, so recording is two relaxed `fetch_add`s
//! and two clock reads per request with no registry, lock, hashing or allocation, and the
//! text format is a hundred lines. Only the first clock read is on the client's critical
//! path: the second, and the counting, happen once the response has been sent
//! (`Pending`), while the client reads it.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use lisafs_protocol::wire::{Errno, Mid};

/// Request slots: one per MID, plus one for MIDs this crate does not know.
const MID_SLOTS: usize = Mid::ALL.len() + 1;
/// The slot of unknown MIDs.
const UNKNOWN_MID: usize = Mid::ALL.len();
/// Finite histogram buckets: upper bounds 2^0 .. 2^20 µs; one more slot counts the rest.
const FINITE_BUCKETS: usize = 21;
/// Histogram slots, the `+Inf` overflow last.
const BUCKETS: usize = FINITE_BUCKETS + 1;
/// Errno slots: 0..=133 by value (the Linux errnos), then one for anything larger.
const ERRNO_SLOTS: usize = ERRNO_NAMES.len() + 1;
/// The slot of errnos above the table.
const OTHER_ERRNO: usize = ERRNO_NAMES.len();

/// Which text format [`Metrics::render`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text exposition format 0.0.4: counters are typed under their
    /// `_total` sample name, and there is no `# EOF`.
    Prometheus,
    /// OpenMetrics 1.0 text: counter families are named without `_total`, and the
    /// exposition ends with `# EOF`.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of a response carrying this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// One MID's latency histogram. Aligned so two MIDs never share a cache line.
#[repr(align(64))]
#[derive(Debug, Default)]
struct MidStats {
    /// Non-cumulative counts; rendering sums them.
    buckets: [AtomicU64; BUCKETS],
    /// Total time, in nanoseconds.
    sum_ns: AtomicU64,
}

/// The kinds of FD table entry, as `lisafs_fds` labels them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FdKind {
    Control = 0,
    Open = 1,
    BoundSocket = 2,
}

const FD_KINDS: [&str; 3] = ["control", "open", "bound_socket"];

/// Every metric of one server. Shared by its connections through an `Arc`; every update
/// is a relaxed atomic, so a rendering taken under load may be a few requests apart
/// between families, never torn within one counter.
#[derive(Debug)]
pub struct Metrics {
    mids: [MidStats; MID_SLOTS],
    /// `MID_SLOTS × ERRNO_SLOTS`, row-major by MID.
    errors: Box<[AtomicU64]>,
    read_bytes: AtomicU64,
    written_bytes: AtomicU64,
    fds: [AtomicU64; 3],
    connections: AtomicU64,
    connections_opened: AtomicU64,
    channels: AtomicU64,
    channels_opened: AtomicU64,
    /// Counters kept elsewhere, read at each rendering ([`Metrics::add_counter`]).
    external: parking_lot::Mutex<Vec<ExternalCounter>>,
}

/// A counter another part of the process keeps, rendered after the server's own.
struct ExternalCounter {
    name: &'static str,
    help: &'static str,
    read: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl std::fmt::Debug for ExternalCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalCounter")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All zero.
    pub fn new() -> Self {
        Self {
            mids: std::array::from_fn(|_| MidStats::default()),
            errors: (0..MID_SLOTS * ERRNO_SLOTS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            read_bytes: AtomicU64::new(0),
            written_bytes: AtomicU64::new(0),
            fds: Default::default(),
            connections: AtomicU64::new(0),
            connections_opened: AtomicU64::new(0),
            channels: AtomicU64::new(0),
            channels_opened: AtomicU64::new(0),
            external: parking_lot::Mutex::new(Vec::new()),
        }
    }

    /// Records a request whose response has been sent.
    #[inline]
    pub(crate) fn finish(&self, pending: Pending) {
        self.record(pending.raw_mid, pending.error, pending.start.elapsed());
    }

    /// Records one answered request: its raw MID, its errno if it failed, and how long
    /// the server took.
    #[inline]
    pub(crate) fn record(&self, raw_mid: u16, error: Option<Errno>, elapsed: Duration) {
        let slot = usize::from(raw_mid).min(UNKNOWN_MID);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let stats = &self.mids[slot];
        stats.buckets[bucket(ns)].fetch_add(1, Relaxed);
        stats.sum_ns.fetch_add(ns, Relaxed);
        if let Some(errno) = error {
            let errno = usize::try_from(errno.raw()).map_or(OTHER_ERRNO, |e| e.min(OTHER_ERRNO));
            self.errors[slot * ERRNO_SLOTS + errno].fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn add_read(&self, bytes: usize) {
        self.read_bytes.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn add_written(&self, bytes: u64) {
        self.written_bytes.fetch_add(bytes, Relaxed);
    }

    pub(crate) fn fd_added(&self, kind: FdKind) {
        self.fds[kind as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn fd_removed(&self, kind: FdKind) {
        self.fds[kind as usize].fetch_sub(1, Relaxed);
    }

    /// Counts a connection as served until the guard drops.
    pub(crate) fn connection(&self) -> Live<'_> {
        self.connections_opened.fetch_add(1, Relaxed);
        self.connections.fetch_add(1, Relaxed);
        Live(&self.connections)
    }

    /// Counts a channel as served; the caller ends it with [`Metrics::channel_ended`].
    pub(crate) fn channel_started(&self) {
        self.channels_opened.fetch_add(1, Relaxed);
        self.channels.fetch_add(1, Relaxed);
    }

    pub(crate) fn channel_ended(&self) {
        self.channels.fetch_sub(1, Relaxed);
    }

    /// Renders the counter family `name` (named without `_total`, like the others
    /// `lisafs_`-prefixed by convention) after the server's own, with the value `read`
    /// returns at each rendering. Nothing on the request path changes.
    pub fn add_counter(
        &self,
        name: &'static str,
        help: &'static str,
        read: impl Fn() -> u64 + Send + Sync + 'static,
    ) {
        self.external.lock().push(ExternalCounter {
            name,
            help,
            read: Box::new(read),
        });
    }

    /// The exposition in `format`.
    pub fn render(&self, format: Format) -> String {
        let mut out = String::with_capacity(8192);
        self.render_into(format, &mut out);
        out
    }

    /// [`Metrics::render`], appending to `out`.
    pub fn render_into(&self, format: Format, out: &mut String) {
        let mut w = Writer { out, format };
        // Snapshots: each MID's buckets are read once, so within one rendering the
        // buckets are cumulative, `+Inf` equals `_count`, and `_count` equals the
        // request counter.
        let snapshots: Vec<(usize, [u64; BUCKETS], u64)> = self
            .mids
            .iter()
            .enumerate()
            .map(|(slot, stats)| {
                let buckets = std::array::from_fn(|i| stats.buckets[i].load(Relaxed));
                (slot, buckets, stats.sum_ns.load(Relaxed))
            })
            .filter(|(_, buckets, _)| buckets.iter().any(|&n| n != 0))
            .collect();

        w.family(
            "lisafs_requests",
            "counter",
            "Requests answered, by message.",
        );
        for (slot, buckets, _) in &snapshots {
            let count: u64 = buckets.iter().sum();
            w.sample("lisafs_requests_total", &[("mid", mid_name(*slot))], count);
        }

        w.family(
            "lisafs_errors",
            "counter",
            "Requests answered with an error, by message and errno.",
        );
        for (index, counter) in self.errors.iter().enumerate() {
            let n = counter.load(Relaxed);
            if n != 0 {
                let (slot, errno) = (index / ERRNO_SLOTS, index % ERRNO_SLOTS);
                let number;
                let errno = match ERRNO_NAMES.get(errno) {
                    Some(name) if !name.is_empty() => *name,
                    Some(_) => {
                        number = errno.to_string();
                        number.as_str()
                    }
                    None => "other",
                };
                let labels = [("mid", mid_name(slot)), ("errno", errno)];
                w.sample("lisafs_errors_total", &labels, n);
            }
        }

        w.family(
            "lisafs_request_duration_seconds",
            "histogram",
            "Time the server took to answer a request, by message.",
        );
        for (slot, buckets, sum_ns) in &snapshots {
            let mid = mid_name(*slot);
            let mut cumulative = 0;
            for (i, n) in buckets.iter().enumerate() {
                cumulative += n;
                let le = match i {
                    FINITE_BUCKETS => "+Inf".to_owned(),
                    _ => seconds_of_micros(1 << i),
                };
                w.sample(
                    "lisafs_request_duration_seconds_bucket",
                    &[("mid", mid), ("le", &le)],
                    cumulative,
                );
            }
            let name = "lisafs_request_duration_seconds_sum";
            w.line(
                name,
                &[("mid", mid)],
                &format_args!("{}", nanos_as_secs(*sum_ns)),
            );
            let name = "lisafs_request_duration_seconds_count";
            w.sample(name, &[("mid", mid)], cumulative);
        }

        w.counter(
            "lisafs_read_bytes",
            "Bytes returned by PRead.",
            self.read_bytes.load(Relaxed),
        );
        w.counter(
            "lisafs_written_bytes",
            "Bytes written by PWrite.",
            self.written_bytes.load(Relaxed),
        );
        w.family(
            "lisafs_fds",
            "gauge",
            "FDIDs held by clients over all connections, by kind.",
        );
        for (kind, gauge) in FD_KINDS.iter().zip(&self.fds) {
            w.sample("lisafs_fds", &[("kind", kind)], gauge.load(Relaxed));
        }
        w.gauge(
            "lisafs_connections",
            "Connections being served.",
            self.connections.load(Relaxed),
        );
        w.counter(
            "lisafs_connections_opened",
            "Connections served since start.",
            self.connections_opened.load(Relaxed),
        );
        w.gauge(
            "lisafs_channels",
            "Shared-memory channels being served.",
            self.channels.load(Relaxed),
        );
        w.counter(
            "lisafs_channels_opened",
            "Shared-memory channels started since start.",
            self.channels_opened.load(Relaxed),
        );
        for counter in self.external.lock().iter() {
            w.counter(counter.name, counter.help, (counter.read)());
        }
        if format == Format::OpenMetrics {
            w.out.push_str("# EOF\n");
        }
    }
}

/// A request answered but not yet recorded: the communicator hands it to
/// [`Metrics::finish`] after sending the response, so that the clock read and the counting
/// overlap the client's work instead of delaying its response.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) raw_mid: u16,
    pub(crate) error: Option<Errno>,
    pub(crate) start: Instant,
}

/// Decrements a gauge when dropped.
#[derive(Debug)]
pub(crate) struct Live<'a>(&'a AtomicU64);

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// The histogram slot of `ns` nanoseconds: the first bucket whose bound (2^i µs) is at
/// least the duration, or the overflow slot.
#[inline]
fn bucket(ns: u64) -> usize {
    let micros = ns.div_ceil(1000);
    if micros <= 1 {
        return 0;
    }
    // ceil(log2(micros)) for micros ≥ 2.
    let log = (u64::BITS - (micros - 1).leading_zeros()) as usize;
    log.min(FINITE_BUCKETS)
}

/// `micros` microseconds in seconds, exactly: `0.000004`, `1.048576`.
fn seconds_of_micros(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// Nanoseconds as seconds, for `_sum`.
fn nanos_as_secs(ns: u64) -> f64 {
    Duration::from_nanos(ns).as_secs_f64()
}

/// The `mid` label of a request slot.
fn mid_name(slot: usize) -> &'static str {
    MID_NAMES.get(slot).copied().unwrap_or("unknown")
}

/// The MIDs' names as SPEC.md spells them (`Mid`'s `Debug`), indexed by value.
const MID_NAMES: [&str; Mid::ALL.len()] = [
    "Error",
    "Mount",
    "Channel",
    "FStat",
    "SetStat",
    "Walk",
    "WalkStat",
    "OpenAt",
    "OpenCreateAt",
    "Close",
    "FSync",
    "PWrite",
    "PRead",
    "MkdirAt",
    "MknodAt",
    "SymlinkAt",
    "LinkAt",
    "FStatFS",
    "FAllocate",
    "ReadLinkAt",
    "Flush",
    "Connect",
    "UnlinkAt",
    "RenameAt",
    "Getdents64",
    "FGetXattr",
    "FSetXattr",
    "FListXattr",
    "FRemoveXattr",
    "BindAt",
    "Listen",
    "Accept",
    "ConnectWithCreds",
    "RenameAt2",
];

/// Linux errno names by value (the asm-generic numbering of x86_64, aarch64 and riscv64);
/// empty where no errno has the value.
#[rustfmt::skip]
const ERRNO_NAMES: [&str; 134] = [
    "", "EPERM", "ENOENT", "ESRCH", "EINTR", "EIO", "ENXIO", "E2BIG", "ENOEXEC", "EBADF",
    "ECHILD", "EAGAIN", "ENOMEM", "EACCES", "EFAULT", "ENOTBLK", "EBUSY", "EEXIST", "EXDEV",
    "ENODEV", "ENOTDIR", "EISDIR", "EINVAL", "ENFILE", "EMFILE", "ENOTTY", "ETXTBSY",
    "EFBIG", "ENOSPC", "ESPIPE", "EROFS", "EMLINK", "EPIPE", "EDOM", "ERANGE", "EDEADLK",
    "ENAMETOOLONG", "ENOLCK", "ENOSYS", "ENOTEMPTY", "ELOOP", "", "ENOMSG", "EIDRM",
    "ECHRNG", "EL2NSYNC", "EL3HLT", "EL3RST", "ELNRNG", "EUNATCH", "ENOCSI", "EL2HLT",
    "EBADE", "EBADR", "EXFULL", "ENOANO", "EBADRQC", "EBADSLT", "", "EBFONT", "ENOSTR",
    "ENODATA", "ETIME", "ENOSR", "ENONET", "ENOPKG", "EREMOTE", "ENOLINK", "EADV", "ESRMNT",
    "ECOMM", "EPROTO", "EMULTIHOP", "EDOTDOT", "EBADMSG", "EOVERFLOW", "ENOTUNIQ", "EBADFD",
    "EREMCHG", "ELIBACC", "ELIBBAD", "ELIBSCN", "ELIBMAX", "ELIBEXEC", "EILSEQ", "ERESTART",
    "ESTRPIPE", "EUSERS", "ENOTSOCK", "EDESTADDRREQ", "EMSGSIZE", "EPROTOTYPE",
    "ENOPROTOOPT", "EPROTONOSUPPORT", "ESOCKTNOSUPPORT", "EOPNOTSUPP", "EPFNOSUPPORT",
    "EAFNOSUPPORT", "EADDRINUSE", "EADDRNOTAVAIL", "ENETDOWN", "ENETUNREACH", "ENETRESET",
    "ECONNABORTED", "ECONNRESET", "ENOBUFS", "EISCONN", "ENOTCONN", "ESHUTDOWN",
    "ETOOMANYREFS", "ETIMEDOUT", "ECONNREFUSED", "EHOSTDOWN", "EHOSTUNREACH", "EALREADY",
    "EINPROGRESS", "ESTALE", "EUCLEAN", "ENOTNAM", "ENAVAIL", "EISNAM", "EREMOTEIO",
    "EDQUOT", "ENOMEDIUM", "EMEDIUMTYPE", "ECANCELED", "ENOKEY", "EKEYEXPIRED",
    "EKEYREVOKED", "EKEYREJECTED", "EOWNERDEAD", "ENOTRECOVERABLE", "ERFKILL", "EHWPOISON",
];

/// Writes families and samples in `format`.
struct Writer<'a> {
    out: &'a mut String,
    format: Format,
}

impl Writer<'_> {
    /// `# HELP` and `# TYPE` of a family. Prometheus 0.0.4 names a counter by its sample
    /// name (`_total`); OpenMetrics by the family name.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let suffix = match (self.format, kind) {
            (Format::Prometheus, "counter") => "_total",
            _ => "",
        };
        // Writing to a String cannot fail.
        let _ = writeln!(self.out, "# HELP {name}{suffix} {help}");
        let _ = writeln!(self.out, "# TYPE {name}{suffix} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.line(name, labels, &value);
    }

    fn line(&mut self, name: &str, labels: &[(&str, &str)], value: &dyn std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                // Label values are fixed names from this file: nothing to escape.
                let _ = write!(self.out, "{key}=\"{value}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(&format!("{name}_total"), &[], value);
    }

    fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }
}

#[cfg(test)]
mod tests;
