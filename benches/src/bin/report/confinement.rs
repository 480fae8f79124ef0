//! What the gofer's self-confinement costs: the same operations against a gofer with the
//! default sandbox (namespaces, pivot_root, capabilities, Landlock, seccomp) and one with
//! `--sandbox none --seccomp none`, both serving the same tree, measured alternately in one
//! run so that both see the same machine.

use std::fmt::Write as _;
use std::path::Path;

use lisafs_benches::measure::{run, Budget, Summary};
use lisafs_benches::pingpong::BoxError;
use lisafs_client::{Client, ClientOptions};

use crate::fixture::Gofer;
use crate::ops::{Op, Remote};

/// The operations that show what confinement adds: a metadata call, a walk, and an open
/// (the reopen through `/proc/self/fd` is where Landlock checks).
const OPS: [Op; 3] = [Op::FStat, Op::WalkStat3, Op::OpenReadClose];

/// The unconfined gofer's flags.
const UNCONFINED: [&str; 4] = ["--sandbox", "none", "--seccomp", "none"];

/// One operation over one transport, both ways.
#[derive(Debug)]
pub(crate) struct Row {
    op: Op,
    transport: &'static str,
    confined: Summary,
    unconfined: Summary,
}

/// Starts the two gofers on `root` and measures [`OPS`] over a channel and over the socket
/// against each, alternating.
pub(crate) fn measure(
    binary: &Path,
    root: &Path,
    scratch: &Path,
    spin_us: Option<u64>,
    options: ClientOptions,
    budget: &Budget,
) -> Result<Vec<Row>, BoxError> {
    let confined = Gofer::start(binary, root, scratch.join("confined.sock"), spin_us, &[])?;
    let unconfined = Gofer::start(
        binary,
        root,
        scratch.join("unconfined.sock"),
        spin_us,
        &UNCONFINED,
    )?;
    let socket_only = ClientOptions {
        channels: 0,
        ..options
    };
    let mut rows = Vec::new();
    for (transport, options) in [("channel", options), ("socket", socket_only)] {
        let a = Client::connect_with(confined.socket(), options)?;
        let b = Client::connect_with(unconfined.socket(), options)?;
        let a = Remote::open(&a, &format!("confined-{transport}"))?;
        let b = Remote::open(&b, &format!("unconfined-{transport}"))?;
        for op in OPS {
            crate::progress(&format!(
                "{} over the {transport}, confined or not",
                op.name()
            ));
            rows.push(Row {
                op,
                transport,
                confined: run(budget, a.body(op)),
                unconfined: run(budget, b.body(op)),
            });
        }
    }
    Ok(rows)
}

/// The table.
pub(crate) fn render(out: &mut String, rows: &[Row]) {
    let _ = writeln!(
        out,
        "\n### Cost of the sandbox (default flags vs `{}`)\n",
        UNCONFINED.join(" ")
    );
    let _ = writeln!(
        out,
        "| operation | transport | confined ops/s (median) | unconfined ops/s (median) | confined / unconfined |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|");
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} ({}) | {} ({}) | {:.2} |",
            row.op.name(),
            row.transport,
            crate::rate(row.confined.ops_per_sec()),
            crate::latency(row.confined.median),
            crate::rate(row.unconfined.ops_per_sec()),
            crate::latency(row.unconfined.median),
            row.confined.ops_per_sec() / row.unconfined.ops_per_sec()
        );
    }
}
