//! How busy the machine was with work that is not ours while we measured.
//!
//! Round trips between processes need both peers on a CPU at once; on a 2-core machine
//! any other runnable process (or a hypervisor stealing time) makes them wait for a
//! time slice and spinning peers burn the CPU the other one needs. So each section of the
//! report says what share of the machine went elsewhere: busy time from `/proc/stat`
//! minus this process, its reaped children and the gofer, plus steal time.

use std::fs;

/// CPU time counters, in clock ticks.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sample {
    /// All CPU time that passed (busy, idle and stolen), all CPUs.
    total: u64,
    /// Busy time on all CPUs, ours included.
    busy: u64,
    /// Time the hypervisor gave to other guests.
    steal: u64,
    /// Busy time of this process, its reaped children and the gofer.
    ours: u64,
}

/// Samples the counters; `gofer` is the gofer's PID.
pub(crate) fn sample(gofer: u32) -> Sample {
    let mut out = Sample::default();
    if let Some(fields) = fs::read_to_string("/proc/stat").ok().and_then(|text| {
        text.lines().next().map(|line| {
            line.split_whitespace()
                .skip(1)
                .map(|v| v.parse::<u64>().unwrap_or(0))
                .collect::<Vec<_>>()
        })
    }) {
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let get = |i: usize| fields.get(i).copied().unwrap_or(0);
        out.busy = get(0) + get(1) + get(2) + get(5) + get(6);
        out.steal = get(7);
        out.total = out.busy + get(3) + get(4) + out.steal;
    }
    // utime + stime + cutime + cstime: the peers are reaped before the next sample.
    out.ours = process_ticks("self", 4) + process_ticks(&gofer.to_string(), 2);
    out
}

/// The sum of the first `fields` CPU-time fields (utime, stime, cutime, cstime) of
/// `/proc/PID/stat`.
pub(crate) fn process_ticks(pid: &str, fields: usize) -> u64 {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The command name is in parentheses and may contain anything; fields follow the
    // last ')'. After it come state (field 3) ... utime is field 14.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    rest.split_whitespace()
        .skip(11)
        .take(fields)
        .map(|v| v.parse::<u64>().unwrap_or(0))
        .sum()
}

/// The share of the machine (0–100 %) that went to other processes or other guests
/// between two samples.
pub(crate) fn others_percent(before: Sample, after: Sample) -> f64 {
    let total = after.total.saturating_sub(before.total);
    if total == 0 {
        return 0.0;
    }
    let busy = after.busy.saturating_sub(before.busy);
    let ours = after.ours.saturating_sub(before.ours);
    let steal = after.steal.saturating_sub(before.steal);
    (busy.saturating_sub(ours) + steal) as f64 * 100.0 / total as f64
}
