//! What a `gofer --memory` tree costs in memory: per 10,000 empty files, and per GiB of
//! file data. Not a timing: it counts bytes, so it runs in seconds and its numbers hold
//! on a busy machine as far as the system-wide counters allow (below).
//!
//! It starts the real `gofer --memory` (default confinement; `$LISAFS_GOFER`, else the
//! `gofer` beside this program), mounts it with the client, creates files, and reads three
//! counters before and after:
//!
//! * the server's `RssAnon` (`/proc/PID/status`): the backend's heap (inodes, directory
//!   entries, the server's node table);
//! * `Shmem` in `/proc/meminfo`: memfd pages (file data lives in the kernel's shmem, not
//!   in the server's RSS, since the server never maps it);
//! * `Slab` in `/proc/meminfo` (reclaimable and not): the kernel's per-file objects, one
//!   shmem inode, dentry and open file per memfd. System-wide, so other activity on the
//!   machine shows up in it; the `shmem_inode_cache` line of `/proc/slabinfo` (root only)
//!   is printed as a check that the count of memfds grew as expected.
//!
//! Usage: `cargo build --release -p lisafs-gofer -p lisafs-benches --bin gofer --bin
//! memory-rss && target/release/memory-rss [FILES] [MIB]` (defaults 10000 and 1024; as
//! root, for the sandbox and `/proc/slabinfo`).

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use lisafs_client::{Client, Owner};
use lisafs_protocol::wire::S_IFREG;

const O_WRONLY: u32 = 1;
const KIB: u64 = 1024;
const MIB: u64 = 1 << 20;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let files: u64 = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let mib: u64 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1024);
    let (gofer, pid, client) = start();
    let owner = Owner::new(
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    // Warm the allocators and the server's tables, so the baseline is not the first use.
    let warm = client.root().mkdir_at("warm", 0o755, owner).expect("mkdir");
    for i in 0..100 {
        let name = format!("w{i}");
        warm.fd
            .mknod_at(&name, S_IFREG | 0o644, 0, 0, owner)
            .expect("mknod");
        warm.fd.unlink_at(&name, 0).expect("unlink");
    }
    drop(warm);
    client.flush_closes().expect("close");
    // Memory freed just before (an earlier run's tree) is returned lazily; wait it out.
    std::thread::sleep(Duration::from_secs(2));

    let before = Sample::take(pid);
    let dir = client
        .root()
        .mkdir_at("files", 0o755, owner)
        .expect("mkdir");
    for i in 0..files {
        let node = dir
            .fd
            .mknod_at(format!("f{i:06}"), S_IFREG | 0o644, 0, 0, owner)
            .expect("mknod");
        drop(node);
    }
    client.flush_closes().expect("close");
    settle();
    let empty = Sample::take(pid);

    let (file, opened) = client
        .root()
        .open_create_at("data", O_WRONLY, 0o644, owner)
        .expect("create");
    let host = opened.host_fd.as_ref().expect("a donated memfd");
    let chunk = vec![0x5au8; usize::try_from(MIB).expect("1 MiB fits")];
    for i in 0..mib {
        let written = rustix::io::pwrite(host, &chunk, i * MIB).expect("write");
        assert_eq!(written, chunk.len());
    }
    // The size reaches the backend's accounting at the next RPC that reads it.
    assert_eq!(file.fd.fstat().expect("fstat").size, mib * MIB);
    settle();
    let data = Sample::take(pid);

    let per_files = empty.minus(&before);
    let per_data = data.minus(&empty);
    println!(
        "| what | server RssAnon | Shmem (memfd pages) | Slab (kernel objects) | shmem inodes |"
    );
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| {files} empty files | {} | {} | {} | {:+} |",
        kib(per_files.rss_anon),
        kib(per_files.shmem),
        kib(per_files.slab),
        per_files.shmem_inodes
    );
    println!(
        "| one file of {mib} MiB | {} | {} | {} | {:+} |",
        kib(per_data.rss_anon),
        kib(per_data.shmem),
        kib(per_data.slab),
        per_data.shmem_inodes
    );
    let per_file = |v: i64| v * 1024 / i64::try_from(files.max(1)).unwrap_or(1);
    println!();
    println!(
        "per empty file: {} bytes of server heap, {} bytes of kernel slab; per GiB of data: \
         {:.3} GiB of shmem",
        per_file(per_files.rss_anon),
        per_file(per_files.slab),
        per_data.shmem as f64 * 1024.0 / (mib as f64 * MIB as f64)
    );
    drop((file, opened, dir, client, gofer));
}

/// A `gofer --memory` with its default confinement, listening in a temp directory; the
/// gofer process (killed on drop) and the PID of the process that serves (the sandbox's
/// child).
struct Gofer {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Gofer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the gofer (`$LISAFS_GOFER`, else `gofer` beside this program) and mounts it.
fn start() -> (Gofer, u32, Client) {
    let binary = std::env::var_os("LISAFS_GOFER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::current_exe()
                .expect("this program")
                .with_file_name("gofer")
        });
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("s");
    let child = Command::new(&binary)
        .args(["--memory", "--log-level", "warn", "--socket"])
        .arg(&socket)
        .spawn()
        .unwrap_or_else(|err| {
            panic!(
                "{}: {err} (cargo build --release -p lisafs-gofer, or set LISAFS_GOFER)",
                binary.display()
            )
        });
    let gofer = Gofer { child, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    let client = loop {
        match Client::connect(&socket) {
            Ok(client) => break client,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(err) => panic!("the gofer did not serve: {err}"),
        }
    };
    let pid = gofer.child.id();
    // With the default sandbox the server is the started process's only child.
    let children =
        fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let server = children
        .split_whitespace()
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or(pid);
    (gofer, server, client)
}

/// Lets deferred frees (RCU, the server's closes) happen before a sample.
fn settle() {
    std::thread::sleep(Duration::from_millis(500));
}

fn kib(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "+" };
    let v = v.unsigned_abs();
    if v >= 10 * KIB {
        format!("{sign}{:.1} MiB", v as f64 / KIB as f64)
    } else {
        format!("{sign}{v} KiB")
    }
}

/// The counters, in KiB (shmem inodes: a count).
#[derive(Debug, Clone, Copy)]
struct Sample {
    rss_anon: i64,
    shmem: i64,
    slab: i64,
    shmem_inodes: i64,
}

impl Sample {
    fn take(pid: u32) -> Self {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let meminfo = fs::read_to_string("/proc/meminfo").expect("meminfo");
        let field = |text: &str, name: &str| -> i64 {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or_else(|| panic!("no {name}"))
        };
        let slabinfo = fs::read_to_string("/proc/slabinfo").unwrap_or_default();
        let shmem_inodes = slabinfo
            .lines()
            .find(|line| line.starts_with("shmem_inode_cache "))
            .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        Self {
            rss_anon: field(&status, "RssAnon"),
            shmem: field(&meminfo, "Shmem"),
            slab: field(&meminfo, "SReclaimable") + field(&meminfo, "SUnreclaim"),
            shmem_inodes,
        }
    }

    fn minus(&self, other: &Self) -> Self {
        Self {
            rss_anon: self.rss_anon - other.rss_anon,
            shmem: self.shmem - other.shmem,
            slab: self.slab - other.slab,
            shmem_inodes: self.shmem_inodes - other.shmem_inodes,
        }
    }
}
