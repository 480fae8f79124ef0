//! What recording metrics costs: FStat against a gofer started with `--metrics-socket` and
//! one without, both with default flags otherwise and serving the same tree, over a
//! channel and over the socket. The two are measured in many short rounds that alternate
//! which goes first, so drift of the machine (other guests, frequency) falls on both
//! alike, and the ratio is the median of the rounds' ratios, so a round that other work
//! disturbed does not decide it.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use lisafs_benches::measure::{run, run_threads, Budget, Summary};
use lisafs_benches::pingpong::BoxError;
use lisafs_client::{Client, ClientOptions};

use crate::cpu;
use crate::fixture::Gofer;
use crate::ops::{Op, Remote};

/// Rounds per transport; each round measures both gofers for half the budget.
const ROUNDS: usize = 10;

/// One transport: every round's summary, both ways.
#[derive(Debug)]
pub(crate) struct Row {
    transport: &'static str,
    on: Vec<Summary>,
    off: Vec<Summary>,
    /// CPU share other work took during the row (see `cpu`), the worst round.
    others: f64,
    /// Whether the "on" gofer is the control, without metrics.
    control: bool,
}

/// The section: the rows, and what the gofer with metrics counted (`None` if its endpoint
/// did not answer).
#[derive(Debug)]
pub(crate) struct Section {
    rows: Vec<Row>,
    counted: Option<f64>,
}

/// Starts the two gofers on `root` and measures FStat against each, alternating.
pub(crate) fn measure(
    binary: &Path,
    root: &Path,
    scratch: &Path,
    spin_us: Option<u64>,
    options: ClientOptions,
    budget: &Budget,
) -> Result<Section, BoxError> {
    let endpoint = scratch.join("metrics.sock");
    let endpoint_arg = endpoint.to_str().ok_or("scratch path is not UTF-8")?;
    let on = Gofer::start(
        binary,
        root,
        scratch.join("metrics-on.sock"),
        spin_us,
        &["--metrics-socket", endpoint_arg],
    )?;
    let off = Gofer::start(binary, root, scratch.join("metrics-off.sock"), spin_us, &[])?;
    // A second gofer without metrics in the place of the first, as a control: how far two
    // identical gofers differ on this machine.
    let control = Gofer::start(binary, root, scratch.join("control.sock"), spin_us, &[])?;
    let socket_only = ClientOptions {
        channels: 0,
        ..options
    };
    let budget = &Budget {
        warmup: budget.warmup / 2,
        time: budget.time / 2,
        ..*budget
    };
    let mut rows = Vec::new();
    // Two threads on two channels: both server threads count into the same FStat
    // counters, from both cores.
    let cases = [
        ("channel", options, 1, &on),
        ("channel, 2 threads", options, 2, &on),
        ("socket", socket_only, 1, &on),
        (
            "channel, control: metrics off in both",
            options,
            1,
            &control,
        ),
    ];
    for (case, (transport, options, threads, on)) in cases.into_iter().enumerate() {
        let a = Client::connect_with(on.socket(), options)?;
        let b = Client::connect_with(off.socket(), options)?;
        let a = Remote::open(&a, &format!("metrics-on-{case}"))?;
        let b = Remote::open(&b, &format!("metrics-off-{case}"))?;
        let mut row = Row {
            transport,
            on: Vec::new(),
            off: Vec::new(),
            others: 0.0,
            control: std::ptr::eq(on, &control),
        };
        let mut timed = |remote: &Remote<'_>, gofer: &Gofer| {
            let before = cpu::sample(gofer.pid());
            let summary = match threads {
                1 => run(budget, remote.body(Op::FStat)),
                _ => run_threads(budget, threads, |_| {
                    let fd = remote.small();
                    move || {
                        fd.fstat().expect("FStat");
                    }
                }),
            };
            let others = cpu::others_percent(before, cpu::sample(gofer.pid()));
            row.others = row.others.max(others);
            summary
        };
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            crate::progress(&format!(
                "FStat over the {transport}, metrics on and off, round {} of {ROUNDS}",
                round + 1
            ));
            if round % 2 == 0 {
                with.push(timed(&a, on));
                without.push(timed(&b, &off));
            } else {
                without.push(timed(&b, &off));
                with.push(timed(&a, on));
            }
        }
        row.on = with;
        row.off = without;
        rows.push(row);
    }
    Ok(Section {
        rows,
        counted: scrape_fstat(&endpoint),
    })
}

/// `lisafs_requests_total{mid="FStat"}` from the endpoint at `path`, if it answers.
fn scrape_fstat(path: &Path) -> Option<f64> {
    let mut stream = UnixStream::connect(path).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: report\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("lisafs_requests_total{mid=\"FStat\"} "))
        .and_then(|value| value.parse().ok())
}

/// Throughput over all rounds: their operations over their time.
fn pooled(rounds: &[Summary]) -> f64 {
    let ops: u64 = rounds.iter().map(|s| s.ops).sum();
    let secs: f64 = rounds.iter().map(|s| s.elapsed.as_secs_f64()).sum();
    if secs == 0.0 {
        0.0
    } else {
        ops as f64 / secs
    }
}

/// The median of the rounds' medians.
fn median_latency(rounds: &[Summary]) -> Duration {
    let mut medians: Vec<Duration> = rounds.iter().map(|s| s.median).collect();
    medians.sort_unstable();
    medians.get(medians.len() / 2).copied().unwrap_or_default()
}

/// The median of `values` (the upper one of an even count), with the smallest and largest.
fn spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |i: usize| values.get(i).copied().unwrap_or(f64::NAN);
    (
        at(values.len() / 2),
        at(0),
        at(values.len().saturating_sub(1)),
    )
}

/// The table.
pub(crate) fn render(out: &mut String, section: &Section) {
    let _ = writeln!(
        out,
        "\n### Cost of metrics (`--metrics-socket PATH` vs none), FStat\n"
    );
    let _ = writeln!(
        out,
        "| transport | metrics on: ops/s (median latency) | metrics off: ops/s (median latency) | on / off ops/s: median of rounds (min–max) | on / off median latency | others |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for row in &section.rows {
        let ratios = row
            .on
            .iter()
            .zip(&row.off)
            .map(|(a, b)| a.ops_per_sec() / b.ops_per_sec())
            .collect();
        let (ratio, min, max) = spread(ratios);
        let (on_median, off_median) = (median_latency(&row.on), median_latency(&row.off));
        let _ = writeln!(
            out,
            "| {} | {} ({}) | {} ({}) | {ratio:.3} ({min:.3}–{max:.3}) | {:.3} | {:.0} % |",
            row.transport,
            crate::rate(pooled(&row.on)),
            crate::latency(on_median),
            crate::rate(pooled(&row.off)),
            crate::latency(off_median),
            on_median.as_secs_f64() / off_median.as_secs_f64(),
            row.others,
        );
    }
    let measured: u64 = section
        .rows
        .iter()
        .filter(|row| !row.control)
        .flat_map(|row| &row.on)
        .map(|s| s.ops)
        .sum();
    let _ = match section.counted {
        Some(counted) => writeln!(
            out,
            "\n{ROUNDS} rounds per transport of half the budget each, alternating which gofer \
             goes first; \"others\" is the worst round's. The gofer with metrics counted \
             {counted:.0} FStat requests (the measured {measured} plus warm-up)."
        ),
        None => writeln!(
            out,
            "\n{ROUNDS} rounds per transport of half the budget each, alternating which gofer \
             goes first; \"others\" is the worst round's. The gofer's metrics endpoint did not \
             answer, so the recording could not be confirmed."
        ),
    };
}
