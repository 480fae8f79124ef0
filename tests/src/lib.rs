//! End-to-end tests of lisafs-rs: real gofer processes, real sockets, temp directories.
//!
//! [`Gofer`] starts a gofer process on a fresh temp directory (with a canary directory
//! beside the served root) and connects clients to it. [`conformance`] holds gVisor's
//! lisafs test cases, written against our client, runnable against any server. The test
//! files in `tests/` drive both. Wire-level and framing tests live with the protocol
//! crate.

pub mod attacks;
pub mod conformance;
mod gofer;

pub use gofer::{serving_pid, Gofer};

/// The errno of a call that must fail; panics (failing the test) if it succeeded.
pub fn errno<T: std::fmt::Debug>(
    result: Result<T, lisafs_client::Error>,
) -> lisafs_protocol::wire::Errno {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(err) => err.errno(),
    }
}

/// The value of `field` in `/proc/<pid>/status` (`"NoNewPrivs"` → `"1"`), trimmed; panics
/// (failing the test) if the process or the field is missing.
pub fn proc_status(pid: u32, field: &str) -> String {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in {path}"))
        .trim()
        .to_owned()
}

/// The resident set size of process `pid`, in KiB.
pub fn vm_rss_kib(pid: u32) -> u64 {
    let rss = proc_status(pid, "VmRSS");
    rss.split_whitespace()
        .next()
        .and_then(|kib| kib.parse().ok())
        .unwrap_or_else(|| panic!("VmRSS of {pid}: {rss:?}"))
}
