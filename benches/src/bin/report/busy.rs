//! Holding up on a busy machine (issue 10, section 2): FStat over a channel and over the
//! socket, with the machine quiet and with a CPU hog (a process spinning, one core's
//! worth), against a gofer with the default spin policy and against one with
//! `--spin-us 0` (and a client that does not spin either), with the CPU time client and
//! gofer spent per operation beside the rate: the price of spinning, made visible. Then
//! what an idle connection costs: the gofer's CPU over a second with a client connected
//! (channels open) and silent.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lisafs_benches::measure::{run, Budget, Summary};
use lisafs_benches::pingpong::BoxError;
use lisafs_client::{Client, ClientOptions, SpinPolicy};

use crate::cpu;
use crate::fixture::Gofer;
use crate::ops::{Op, Remote};
use crate::{latency, progress, rate};

/// One measurement.
#[derive(Debug)]
pub(crate) struct Row {
    load: &'static str,
    spin: &'static str,
    transport: &'static str,
    summary: Summary,
    /// CPU time of the client and the gofer together, per operation.
    cpu_per_op: Duration,
}

/// The section: its rows, and the gofer's CPU share with one idle client.
#[derive(Debug)]
pub(crate) struct Section {
    rows: Vec<Row>,
    idle_percent: f64,
}

/// The hog: this binary with `--peer hog`, which spins until it is killed.
struct Hog(Child);

impl Hog {
    fn start() -> Result<Self, BoxError> {
        let exe = std::env::current_exe()?;
        let child = Command::new(exe)
            .args(["--peer", "hog"])
            .stdin(Stdio::null())
            .spawn()?;
        Ok(Self(child))
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `--peer hog`: spins on one CPU's worth until killed.
pub(crate) fn hog_main() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// CPU time (user + system) the processes `pids` have used so far ("self" for this one).
fn cpu_time(pids: &[&str]) -> Duration {
    let ticks: u64 = pids.iter().map(|pid| cpu::process_ticks(pid, 2)).sum();
    let per_sec = rustix::param::clock_ticks_per_second().max(1);
    Duration::from_secs_f64(ticks as f64 / per_sec as f64)
}

/// Measures every row on `root`, with gofers started from `binary`.
pub(crate) fn measure(
    binary: &Path,
    root: &Path,
    scratch: &Path,
    options: ClientOptions,
    budget: &Budget,
) -> Result<Section, BoxError> {
    let spinning = Gofer::start(binary, root, scratch.join("busy-spin.sock"), None, &[])?;
    let blocking = Gofer::start(binary, root, scratch.join("busy-block.sock"), Some(0), &[])?;
    let no_spin = ClientOptions {
        spin: SpinPolicy {
            max_spin: Duration::ZERO,
        },
        ..options
    };
    let mut rows = Vec::new();
    for load in ["quiet", "hog on one core"] {
        let _hog = match load {
            "quiet" => None,
            _ => Some(Hog::start()?),
        };
        let gofers = [
            ("default", &spinning, options),
            ("--spin-us 0", &blocking, no_spin),
        ];
        for (spin, gofer, options) in gofers {
            for (transport, channels) in [("channel", options.channels), ("socket", 0)] {
                progress(&format!("busy: {load}, {spin}, {transport}"));
                let client = Client::connect_with(
                    gofer.socket(),
                    ClientOptions {
                        channels,
                        ..options
                    },
                )?;
                let remote = Remote::open(&client, &format!("busy-{}", rows.len()))?;
                let mut body = remote.body(Op::FStat);
                let pid = gofer.pid().to_string();
                let before = cpu_time(&["self", &pid]);
                let summary = run(budget, &mut *body);
                let spent = cpu_time(&["self", &pid]).saturating_sub(before);
                // The warm-up ran too: divide by what ran in the whole window.
                let ran = summary.ops as f64 * (budget.warmup + budget.time).as_secs_f64()
                    / budget.time.as_secs_f64();
                rows.push(Row {
                    load,
                    spin,
                    transport,
                    cpu_per_op: Duration::from_secs_f64(spent.as_secs_f64() / ran.max(1.0)),
                    summary,
                });
            }
        }
    }
    // Idle: a client with its channels open, and nothing asked for a second.
    let idle = Client::connect_with(spinning.socket(), options)?;
    idle.root().fstat()?;
    std::thread::sleep(Duration::from_millis(100));
    let gofer = spinning.pid().to_string();
    let before = cpu_time(&[&gofer]);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_time(&[&gofer]).saturating_sub(before);
    drop(idle);
    Ok(Section {
        rows,
        idle_percent: used.as_secs_f64() * 100.0,
    })
}

/// Appends the section to `out`.
pub(crate) fn render(out: &mut String, section: &Section) {
    let _ = writeln!(out, "\n### FStat on a busy machine\n");
    let _ = writeln!(
        out,
        "| load | spinning | transport | ops/s | median | p99 | CPU per op (client + gofer) |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|");
    for row in &section.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.load,
            row.spin,
            row.transport,
            rate(row.summary.ops_per_sec()),
            latency(row.summary.median),
            latency(row.summary.p99),
            latency(row.cpu_per_op),
        );
    }
    let _ = writeln!(
        out,
        "\nAn idle connection (channels open, nothing asked for 1 s): the gofer used {:.1} % \
         of a CPU.",
        section.idle_percent
    );
}
