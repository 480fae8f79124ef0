//! `report`: every measurement of the channels issue in one run, as Markdown tables.
//!
//! ```text
//! cargo build --release -p lisafs-gofer
//! cargo run --release -p lisafs-benches --bin report [-- --secs S] [--gofer PATH]
//! ```
//!
//! It mounts a private tmpfs (or uses /dev/shm when not root), creates the tree, starts
//! `target/release/gofer` on it, connects one client with shared-memory channels and one
//! socket-only client, and measures each operation natively, over the socket and over a
//! channel for `--secs` seconds each (default 1.5, after a fifth of that of warm-up), then
//! the ping-pong floors between two processes and FStat throughput with 1, 2 and 4
//! threads sharing one client. Tables go to standard output, progress to standard error.
//! It never fails on a number: there are no thresholds here, only measurements.

mod busy;
mod confinement;
mod cpu;
mod fixture;
mod floors;
mod hooks;
mod memory;
mod metrics;
mod ops;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lisafs_benches::measure::{run, run_threads, Budget, Summary};
use lisafs_benches::pingpong::BoxError;
use lisafs_client::{Client, ClientOptions, SpinPolicy};

use crate::fixture::{locate_gofer, populate, Gofer, Scratch};
use crate::floors::Floor;
use crate::ops::{Native, Op, Remote};

/// Command-line arguments.
#[derive(Debug)]
struct Args {
    /// Measured seconds per cell.
    secs: f64,
    /// The gofer binary, if given.
    gofer: Option<PathBuf>,
    /// Hidden: run as the ping-pong peer of this kind.
    peer: Option<String>,
    /// Spin cap for both the channel client and the gofer (`--spin-us`); default theirs.
    spin_us: Option<u64>,
    /// Sections to run (`floors`, an operation's key, `threads`); empty runs everything.
    only: Vec<String>,
}

impl Args {
    fn wants(&self, key: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|k| k == key)
    }
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        secs: 1.5,
        gofer: None,
        peer: None,
        only: Vec::new(),
        spin_us: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--secs" => {
                args.secs = value()?.parse().map_err(|err| format!("--secs: {err}"))?;
                if !(0.01..=60.0).contains(&args.secs) {
                    return Err("--secs must be between 0.01 and 60".into());
                }
            }
            "--gofer" => args.gofer = Some(PathBuf::from(value()?)),
            "--peer" => args.peer = Some(value()?),
            "--spin-us" => {
                let us = value()?
                    .parse()
                    .map_err(|err| format!("--spin-us: {err}"))?;
                args.spin_us = Some(us);
            }
            "--only" => {
                args.only = value()?.split(',').map(str::to_owned).collect();
            }
            "-h" | "--help" => {
                return Err(
                    "usage: report [--secs S] [--gofer PATH] [--only KEY,...] [--spin-us N]\n\
                     KEY: floors fstat walkstat open pwrite getdents mkdir pread pwrite1m\n\
                     \x20    threads sandbox metrics hooks busy memory\n\
                     Measures lisafs against native syscalls; see benches/README.md."
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let result = match args.peer.as_deref() {
        Some("hog") => busy::hog_main(),
        Some(kind) => floors::peer_main(kind),
        None => report(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("report: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The three columns of one operation.
#[derive(Debug)]
struct Row {
    op: Op,
    native: Summary,
    socket: Summary,
    channel: Summary,
    /// CPU share other work took during the row (see `cpu`).
    others: f64,
}

/// One line of the throughput table.
#[derive(Debug)]
struct ThroughputRow {
    threads: usize,
    native: Summary,
    socket: Summary,
    channels2: Summary,
    channels4: Summary,
    others: f64,
}

fn report(args: &Args) -> Result<(), BoxError> {
    let started = Instant::now();
    let load_before = loadavg();
    let budget = Budget::new(Duration::from_secs_f64(args.secs));
    let gofer_bin = locate_gofer(args.gofer.clone())?;
    let scratch = Scratch::new()?;
    let root = scratch.path().join("root");
    std::fs::create_dir(&root)?;
    populate(&root)?;
    let gofer = Gofer::start(
        &gofer_bin,
        &root,
        scratch.path().join("gofer.sock"),
        args.spin_us,
        &[],
    )?;
    let spin = args
        .spin_us
        .map_or_else(SpinPolicy::default, |us| SpinPolicy {
            max_spin: Duration::from_micros(us),
        });
    let defaults = ClientOptions {
        spin,
        ..ClientOptions::default()
    };

    let channel_client = Client::connect_with(gofer.socket(), defaults)?;
    let channels = channel_client.idle_channels();
    if channels == 0 {
        return Err("the gofer granted no channels".into());
    }
    let socket_client = Client::connect_with(
        gofer.socket(),
        ClientOptions {
            channels: 0,
            ..defaults
        },
    )?;
    let native = Native::open(&root)?;
    let over_channel = Remote::open(&channel_client, "channel")?;
    let over_socket = Remote::open(&socket_client, "socket")?;

    let pid = gofer.pid();
    let first = cpu::sample(pid);
    let mut floors = Vec::new();
    for floor in Floor::ALL.into_iter().filter(|_| args.wants("floors")) {
        progress(floor.name());
        let before = cpu::sample(pid);
        let summary = floors::measure(floor, &budget)?;
        floors.push((
            floor,
            summary,
            cpu::others_percent(before, cpu::sample(pid)),
        ));
    }

    let mut rows = Vec::new();
    for op in Op::ALL.into_iter().filter(|op| args.wants(op.key())) {
        progress(op.name());
        let before = cpu::sample(pid);
        let native = run(&budget, native.body(op));
        let socket = run(&budget, over_socket.body(op));
        let channel = run(&budget, over_channel.body(op));
        rows.push(Row {
            op,
            native,
            socket,
            channel,
            others: cpu::others_percent(before, cpu::sample(pid)),
        });
    }

    // A third client that asks for four channels, so that four threads can each have one.
    let four = Client::connect_with(
        gofer.socket(),
        ClientOptions {
            channels: 4,
            ..defaults
        },
    )?;
    let over_four = Remote::open(&four, "four")?;
    let four_channels = four.idle_channels();
    let mut throughput = Vec::new();
    for threads in [1, 2, 4].into_iter().filter(|_| args.wants("threads")) {
        progress(&format!("FStat with {threads} threads"));
        let fstat = |remote: &Remote<'_>| {
            run_threads(&budget, threads, |_| {
                let fd = remote.small();
                move || {
                    fd.fstat().expect("FStat");
                }
            })
        };
        let before = cpu::sample(pid);
        let native = run_threads(&budget, threads, |_| native.body(Op::FStat));
        let socket = fstat(&over_socket);
        let channels2 = fstat(&over_channel);
        let channels4 = fstat(&over_four);
        throughput.push(ThroughputRow {
            threads,
            native,
            socket,
            channels2,
            channels4,
            others: cpu::others_percent(before, cpu::sample(pid)),
        });
    }
    drop(over_four);
    drop(four);

    let confinement = match args.wants("sandbox") {
        true => confinement::measure(
            &gofer_bin,
            &root,
            scratch.path(),
            args.spin_us,
            defaults,
            &budget,
        )?,
        false => Vec::new(),
    };
    let metrics = match args.wants("metrics") {
        true => Some(metrics::measure(
            &gofer_bin,
            &root,
            scratch.path(),
            args.spin_us,
            defaults,
            &budget,
        )?),
        false => None,
    };

    let busy = match args.wants("busy") {
        true => Some(busy::measure(
            &gofer_bin,
            &root,
            scratch.path(),
            defaults,
            &budget,
        )?),
        false => None,
    };
    let memory = match args.wants("memory") {
        true => Some(memory::measure(
            &gofer_bin,
            &root,
            scratch.path(),
            defaults,
            &budget,
        )?),
        false => None,
    };
    let hooks = match args.wants("hooks") {
        true => hooks::measure(&root, scratch.path(), defaults, &budget)?,
        false => Vec::new(),
    };

    let context = Context {
        scratch: scratch.describe(),
        secs: args.secs,
        channels,
        four_channels,
        spin_us: args.spin_us,
        took: started.elapsed(),
        load: (load_before, loadavg()),
        others: cpu::others_percent(first, cpu::sample(pid)),
    };
    let mut out = render(&context, &floors, &rows, &throughput);
    if !confinement.is_empty() {
        confinement::render(&mut out, &confinement);
    }
    if let Some(metrics) = &metrics {
        metrics::render(&mut out, metrics);
    }
    if let Some(busy) = &busy {
        busy::render(&mut out, busy);
    }
    if let Some(memory) = &memory {
        memory::render(&mut out, memory);
    }
    if !hooks.is_empty() {
        hooks::render(&mut out, &hooks);
    }
    print!("{out}");
    Ok(())
}

pub(crate) fn progress(what: &str) {
    eprintln!("measuring: {what}");
}

/// What the header says about the run.
#[derive(Debug)]
struct Context {
    scratch: &'static str,
    secs: f64,
    channels: usize,
    four_channels: usize,
    spin_us: Option<u64>,
    took: Duration,
    /// 1-minute load average before and after the run: other work on the machine skews
    /// every number, the spinning ones most.
    load: (String, String),
    /// CPU share other work took during all measurements.
    others: f64,
}

fn render(
    context: &Context,
    floors: &[(Floor, Summary, f64)],
    rows: &[Row],
    throughput: &[ThroughputRow],
) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored with `let _`.
    let _ = writeln!(out, "### Machine\n");
    let _ = writeln!(out, "- {}", machine());
    let _ = writeln!(
        out,
        "- root: {}; {} s measured per cell after {} s of warm-up; the whole run took {:.0} s",
        context.scratch,
        context.secs,
        context.secs / 5.0,
        context.took.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "- 1-minute load average before / after: {} / {}; CPU taken by other processes \
         and other guests (steal) while measuring: {:.0} % of the machine (\"others\" \
         columns below: the same per section; above a few % the round trips suffer)",
        context.load.0, context.load.1, context.others
    );
    let spin = match context.spin_us {
        Some(us) => format!("spin cap {us} µs on both sides (`--spin-us {us}`)"),
        None => "default spin policy on both sides (200 µs cap)".into(),
    };
    let _ = writeln!(
        out,
        "- channel client: `ClientOptions::default()` ({} channels granted); socket client: \
         `channels: 0`; gofer: up to 4 channels per connection; {spin}\n",
        context.channels
    );

    let _ = writeln!(out, "### Floors: 64-byte ping-pong between two processes\n");
    let _ = writeln!(out, "| transport | round trips/s | median | p99 | others |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    for (floor, s, others) in floors {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {others:.0} % |",
            floor.name(),
            rate(s.ops_per_sec()),
            latency(s.median),
            latency(s.p99)
        );
    }

    let _ = writeln!(out, "\n### Operations, one thread (ops/s)\n");
    let _ = writeln!(
        out,
        "| operation | native | socket | channel | channel/native | channel vs gVisor-channel |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for row in rows {
        let cell = |s: &Summary| {
            let mut cell = rate(s.ops_per_sec());
            if let Some(bytes) = row.op.bytes() {
                let _ = write!(cell, " ({:.2} GB/s)", gbps(s, bytes));
            }
            cell
        };
        let vs_gvisor = match row.op.gvisor_channel() {
            Some(gvisor) => format!(
                "{:.1}× ({})",
                row.channel.ops_per_sec() / gvisor,
                rate(gvisor)
            ),
            None => "—".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} | {} |",
            row.op.name(),
            cell(&row.native),
            cell(&row.socket),
            cell(&row.channel),
            row.channel.ops_per_sec() / row.native.ops_per_sec(),
            vs_gvisor
        );
    }

    let _ = writeln!(out, "\n### Latency per operation (median / p99)\n");
    let _ = writeln!(
        out,
        "| operation | native | socket | channel | channel − native (median) | others |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for row in rows {
        let pair = |s: &Summary| format!("{} / {}", latency(s.median), latency(s.p99));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.0} % |",
            row.op.name(),
            pair(&row.native),
            pair(&row.socket),
            pair(&row.channel),
            latency(row.channel.median.saturating_sub(row.native.median)),
            row.others
        );
    }

    let _ = writeln!(out, "\n### Native equivalents\n");
    for op in Op::ALL {
        let _ = writeln!(out, "- {}: {}", op.name(), op.native_equivalent());
    }

    let _ = writeln!(
        out,
        "\n### FStat throughput, threads sharing one client (ops/s, all threads)\n"
    );
    let _ = writeln!(
        out,
        "| threads | native | socket only | {} channels (default) | {} channels | others |",
        context.channels, context.four_channels
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|");
    for row in throughput {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.0} % |",
            row.threads,
            rate(row.native.ops_per_sec()),
            rate(row.socket.ops_per_sec()),
            rate(row.channels2.ops_per_sec()),
            rate(row.channels4.ops_per_sec()),
            row.others
        );
    }

    let _ = writeln!(out, "\n### Targets\n");
    let _ = writeln!(out, "| target | measured | met? |");
    let _ = writeln!(out, "|---|---:|:---:|");
    for target in targets(rows) {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            target.what,
            target.measured,
            if target.met { "yes" } else { "**no**" }
        );
    }
    out
}

/// One line of the targets table.
#[derive(Debug)]
struct Target {
    what: String,
    measured: String,
    met: bool,
}

fn targets(rows: &[Row]) -> Vec<Target> {
    let find = |op: Op| rows.iter().find(|row| row.op == op);
    let mut out = Vec::new();
    let mut at_least = |what: &str, op: Op, pick: fn(&Row) -> &Summary, goal: f64| {
        if let Some(row) = find(op) {
            let got = pick(row).ops_per_sec();
            out.push(Target {
                what: format!("{what} ≥ {}", rate(goal)),
                measured: rate(got),
                met: got >= goal,
            });
        }
    };
    let channel: fn(&Row) -> &Summary = |row| &row.channel;
    let socket: fn(&Row) -> &Summary = |row| &row.socket;
    at_least("FStat, channel", Op::FStat, channel, 400_000.0);
    at_least(
        "WalkStat 3 components, channel",
        Op::WalkStat3,
        channel,
        250_000.0,
    );
    at_least(
        "OpenAt + PRead + Close, channel",
        Op::OpenReadClose,
        channel,
        100_000.0,
    );
    at_least(
        "Getdents64 of 1,000 entries, channel (listings)",
        Op::Getdents1000,
        channel,
        3_000.0,
    );
    at_least(
        "FStat, socket: 2 × gVisor's socket 65 k/s",
        Op::FStat,
        socket,
        130_000.0,
    );
    for op in [
        Op::WalkStat3,
        Op::OpenReadClose,
        Op::PWrite4k,
        Op::Getdents1000,
        Op::MkdirUnlink,
    ] {
        if let Some(gvisor) = op.gvisor_channel() {
            at_least(
                &format!("{}, socket: 2 × gVisor's (channel) figure", op.name()),
                op,
                socket,
                2.0 * gvisor,
            );
        }
    }
    if let Some(row) = find(Op::FStat) {
        let goal = Duration::from_nanos(2_500);
        out.push(Target {
            what: "FStat median round trip, channel ≤ 2.50 µs".into(),
            measured: latency(row.channel.median),
            met: row.channel.median <= goal,
        });
    }
    if let Some(row) = find(Op::PRead1M) {
        let got = gbps(&row.channel, Op::PRead1M.bytes().unwrap_or(0));
        out.push(Target {
            what: "PRead 1 MiB, channel ≥ 5 GB/s".into(),
            measured: format!("{got:.2} GB/s"),
            met: got >= 5.0,
        });
    }
    out
}

/// `"2 cores, Linux 6.18.44, <CPU model>"`.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} cores ({model}), Linux {}", kernel.trim())
}

/// The 1-minute load average.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Decimal gigabytes per second.
fn gbps(s: &Summary, bytes: usize) -> f64 {
    s.ops_per_sec() * bytes as f64 / 1e9
}

pub(crate) fn rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.2} M/s", per_sec / 1e6)
    } else if per_sec >= 1e4 {
        format!("{:.0} k/s", per_sec / 1e3)
    } else if per_sec >= 1e3 {
        format!("{:.2} k/s", per_sec / 1e3)
    } else {
        format!("{per_sec:.0} /s")
    }
}

pub(crate) fn latency(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.2} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}
