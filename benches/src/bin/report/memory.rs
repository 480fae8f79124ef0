//! The memory backend beside the host backend (issue 11): FStat, WalkStat, OpenAt, PRead
//! and Close, Getdents64, and MkdirAt with UnlinkAt, over a channel, against `gofer --memory`
//! serving a copy of the benchmark tree (`--memory-from`) and against the host gofer on
//! the tree itself, both with default flags otherwise, next to the channel ping-pong floor
//! measured in the same section: the memory backend's FStat shows what the protocol and
//! the server cost, plus one `statx` (the file is a memfd, whose size and times clients
//! change through donated FDs, so its FStat asks the kernel for them).

use std::fmt::Write as _;
use std::path::Path;

use lisafs_benches::measure::{run, Budget, Summary};
use lisafs_benches::pingpong::BoxError;
use lisafs_client::{Client, ClientOptions};

use crate::fixture::Gofer;
use crate::floors::{self, Floor};
use crate::ops::{Op, Remote};
use crate::{latency, progress, rate};

/// The operations compared, in the table's order.
const OPS: [Op; 5] = [
    Op::FStat,
    Op::WalkStat3,
    Op::OpenReadClose,
    Op::Getdents1000,
    Op::MkdirUnlink,
];

/// The section: each operation against both gofers, and the floor.
#[derive(Debug)]
pub(crate) struct Section {
    rows: Vec<(Op, Summary, Summary)>,
    floor: Summary,
}

/// Measures both gofers on `root` (the host's tree, copied into the memory gofer).
pub(crate) fn measure(
    binary: &Path,
    root: &Path,
    scratch: &Path,
    options: ClientOptions,
    budget: &Budget,
) -> Result<Section, BoxError> {
    progress("memory: the floor");
    let floor = floors::measure(Floor::Spin, budget)?;
    let host = Gofer::start(binary, root, scratch.join("host-backend.sock"), None, &[])?;
    let memory = Gofer::start_memory(binary, root, scratch.join("memory-backend.sock"))?;
    let host_client = Client::connect_with(host.socket(), options)?;
    let memory_client = Client::connect_with(memory.socket(), options)?;
    let on_host = Remote::open(&host_client, "host-backend")?;
    let in_memory = Remote::open(&memory_client, "memory-backend")?;
    let mut rows = Vec::new();
    for op in OPS {
        progress(&format!("memory: {}", op.name()));
        let mut body = on_host.body(op);
        let host_summary = run(budget, &mut *body);
        let mut body = in_memory.body(op);
        let memory_summary = run(budget, &mut *body);
        rows.push((op, host_summary, memory_summary));
    }
    Ok(Section { rows, floor })
}

/// Appends the section to `out`.
pub(crate) fn render(out: &mut String, section: &Section) {
    let _ = writeln!(
        out,
        "\n### The memory backend beside the host backend (channel)\n"
    );
    let _ = writeln!(
        out,
        "| operation | host ops/s | median | memory ops/s | median | memory ÷ host |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for (op, host, memory) in &section.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.2} |",
            op.name(),
            rate(host.ops_per_sec()),
            latency(host.median),
            rate(memory.ops_per_sec()),
            latency(memory.median),
            memory.ops_per_sec() / host.ops_per_sec(),
        );
    }
    if let Some((_, _, fstat)) = section.rows.first() {
        let _ = writeln!(
            out,
            "\nChannel ping-pong floor (64 bytes, default spin): {} ({} median). Memory FStat \
             median ÷ floor median: {:.2} (target ≤ 1.5).",
            rate(section.floor.ops_per_sec()),
            latency(section.floor.median),
            fstat.median.as_secs_f64() / section.floor.median.as_secs_f64(),
        );
    }
}
