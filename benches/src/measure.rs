//! Timing loops: run an operation for a fixed time (or count), record the latency of each
//! call, and summarise as throughput, median and 99th percentile.
//!
//! Every call is timed on its own with one `Instant::now()` between calls (the end of one
//! call is the start of the next), so the loop adds about 20 ns per operation: small next
//! to the microsecond round trips measured here, and charged equally to every column.

use std::sync::Barrier;
use std::time::{Duration, Instant};

/// How long to measure.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Untimed run before measuring: fills caches, lets the adaptive spin settle, and
    /// lets tmpfs and the gofer allocate whatever they keep.
    pub warmup: Duration,
    /// Measured run length (it stops earlier at `max_ops`).
    pub time: Duration,
    /// Cap on measured operations; also the size of the latency buffer.
    pub max_ops: usize,
}

impl Budget {
    /// A budget of `time` measured after `time / 5` of warm-up, capped at 5 M operations.
    pub fn new(time: Duration) -> Self {
        Self {
            warmup: time / 5,
            time,
            max_ops: 5_000_000,
        }
    }
}

/// The result of one measurement.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Operations completed.
    pub ops: u64,
    /// Wall time they took.
    pub elapsed: Duration,
    /// Median latency of one operation.
    pub median: Duration,
    /// 99th-percentile latency of one operation.
    pub p99: Duration,
}

impl Summary {
    /// Operations per second (all threads together for a multi-threaded run).
    pub fn ops_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs == 0.0 {
            return 0.0;
        }
        self.ops as f64 / secs
    }

    fn from_samples(mut samples: Vec<u64>, elapsed: Duration) -> Self {
        samples.sort_unstable();
        Self {
            ops: samples.len() as u64,
            elapsed,
            median: Duration::from_nanos(percentile(&samples, 50)),
            p99: Duration::from_nanos(percentile(&samples, 99)),
        }
    }
}

/// The `pct`th percentile of sorted `samples` (nearest rank), 0 when empty.
fn percentile(sorted: &[u64], pct: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() * pct).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// Runs `op` for `budget` after its warm-up and summarises it.
pub fn run(budget: &Budget, mut op: impl FnMut()) -> Summary {
    let (samples, elapsed) = timed_loop(budget, &mut op, None);
    Summary::from_samples(samples, elapsed)
}

/// Runs `threads` copies of an operation in parallel, each made by `make_op(index)` on its
/// own thread, all starting together after their warm-up. Throughput is the sum over
/// threads divided by the longest thread's time; latencies are pooled.
pub fn run_threads<F, O>(budget: &Budget, threads: usize, make_op: F) -> Summary
where
    F: Fn(usize) -> O + Sync,
    O: FnMut(),
{
    let start = Barrier::new(threads);
    let per_thread = Budget {
        max_ops: budget.max_ops / threads.max(1),
        ..*budget
    };
    let results: Vec<(Vec<u64>, Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|index| {
                let (start, make_op) = (&start, &make_op);
                scope.spawn(move || {
                    let mut op = make_op(index);
                    timed_loop(&per_thread, &mut op, Some(start))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("a benchmark thread panicked"))
            .collect()
    });
    let elapsed = results
        .iter()
        .map(|(_, took)| *took)
        .max()
        .unwrap_or_default();
    let samples = results
        .into_iter()
        .flat_map(|(samples, _)| samples)
        .collect();
    Summary::from_samples(samples, elapsed)
}

/// Warms up, waits at `start` (so parallel threads measure the same interval), then runs
/// `op` until the budget is spent; returns each call's latency in nanoseconds and the
/// total measured time.
fn timed_loop(
    budget: &Budget,
    op: &mut dyn FnMut(),
    start: Option<&Barrier>,
) -> (Vec<u64>, Duration) {
    let warm_until = Instant::now() + budget.warmup;
    while Instant::now() < warm_until {
        op();
    }
    if let Some(barrier) = start {
        barrier.wait();
    }
    let mut samples = Vec::with_capacity(budget.max_ops);
    let began = Instant::now();
    let deadline = began + budget.time;
    let mut before = began;
    while samples.len() < budget.max_ops {
        op();
        let after = Instant::now();
        samples.push(u64::try_from((after - before).as_nanos()).unwrap_or(u64::MAX));
        before = after;
        if after >= deadline {
            break;
        }
    }
    (samples, before - began)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&samples, 50), 50);
        assert_eq!(percentile(&samples, 99), 99);
        assert_eq!(percentile(&[7], 99), 7);
        assert_eq!(percentile(&[], 50), 0);
    }

    #[test]
    fn run_counts_every_call() {
        let mut calls = 0u64;
        let budget = Budget {
            warmup: Duration::ZERO,
            time: Duration::from_secs(10),
            max_ops: 1000,
        };
        let summary = run(&budget, || calls += 1);
        assert_eq!(summary.ops, 1000);
        assert_eq!(calls, 1000);
    }
}
