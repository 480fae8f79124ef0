//! Bounded, adaptive spinning before a blocking wait, shared by the socket and the
//! channels.
//!
//! A blocking wake-up between two processes costs several microseconds (about 20 µs on an
//! idle VM), while catching the peer's answer by polling costs well under one. So a waiter
//! first polls for a while: twice the moving average of its recent waits, capped at
//! [`SpinPolicy::max_spin`], and not at all once the average exceeds the cap. A busy
//! connection then never blocks, a slow operation blocks at once, and an idle one polls
//! once, briefly, after its last message and then costs nothing. After a first short pure
//! spin the poll yields the CPU between checks: with more runnable threads than cores, a pure spin
//! would keep the very thread it waits for from running.
//!
//! A yield that comes back late ([`PREEMPTED`]) means other work wanted this CPU: the
//! machine is busy, and a spinner there only burns its share of the CPU and comes back to
//! its answer late, after the scheduler has run someone else. So the waiter blocks at once,
//! and goes on blocking without spinning for [`BUSY_BACKOFF`], as a plain blocking server
//! does; the scheduler wakes a sleeper that rarely runs ahead of CPU-bound work.

use std::time::{Duration, Instant};

/// A yield slower than this handed the CPU to other work.
pub(crate) const PREEMPTED: Duration = Duration::from_micros(100);

/// How long a waiter that met a busy machine blocks without spinning before it tries again.
pub(crate) const BUSY_BACKOFF: Duration = Duration::from_millis(100);

/// How long a waiter may spin (poll) before it blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpinPolicy {
    /// The longest a waiter ever spins; zero turns spinning off.
    pub max_spin: Duration,
}

impl Default for SpinPolicy {
    fn default() -> Self {
        Self {
            // Long enough to catch a 1 MiB read or a 1,000-entry listing without a
            // blocking wake-up; the yields in `pause` keep longer spins from starving peers.
            max_spin: Duration::from_micros(200),
        }
    }
}

/// The running state of one waiter's spin budget.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdaptiveSpin {
    policy: SpinPolicy,
    /// Moving average of recent wait times, in nanoseconds.
    avg_wait_ns: u64,
    /// Until when waits do not spin: a spin lately met a busy machine.
    busy_until: Option<Instant>,
}

impl AdaptiveSpin {
    pub(crate) fn new(policy: SpinPolicy) -> Self {
        Self {
            policy,
            avg_wait_ns: 0,
            busy_until: None,
        }
    }

    /// When the next wait, starting `now`, should stop spinning and block.
    pub(crate) fn deadline(&self, now: Instant) -> Instant {
        let avg = Duration::from_nanos(self.avg_wait_ns);
        let busy = self.busy_until.is_some_and(|until| now < until);
        let budget = if busy || avg > self.policy.max_spin {
            Duration::ZERO
        } else {
            avg.saturating_mul(2)
                .max(Duration::from_micros(2))
                .min(self.policy.max_spin)
        };
        now + budget
    }

    /// One step of a spin that started at `started`: a CPU pause for the first `pure`,
    /// then a yield, so that a spinner never keeps a runnable peer (often the very thread
    /// it waits for) off a CPU when there are more runnable threads than cores. `false`
    /// when the yield came back late: the machine is busy, stop spinning.
    pub(crate) fn pause(started: Instant, pure: Duration) -> bool {
        if started.elapsed() < pure {
            std::hint::spin_loop();
            return true;
        }
        let before = Instant::now();
        std::thread::yield_now();
        before.elapsed() < PREEMPTED
    }

    /// Records how long a wait took, and whether its spin met a busy machine.
    pub(crate) fn record(&mut self, took: Duration, busy: bool) {
        if busy {
            self.busy_until = Some(Instant::now() + BUSY_BACKOFF);
        }
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        // An average over roughly the last eight waits.
        self.avg_wait_ns = self.avg_wait_ns - self.avg_wait_ns / 8 + took / 8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_machine_turns_spinning_off_for_a_while() {
        let mut spin = AdaptiveSpin::new(SpinPolicy::default());
        spin.record(Duration::from_micros(5), false);
        let now = Instant::now();
        assert!(spin.deadline(now) > now, "a quick peer is spun for");
        spin.record(Duration::from_micros(5), true);
        let now = Instant::now();
        assert_eq!(spin.deadline(now), now, "no spin right after a busy wait");
        let later = now + BUSY_BACKOFF + Duration::from_millis(1);
        assert!(
            spin.deadline(later) > later,
            "spinning again after the backoff"
        );
    }

    #[test]
    fn slow_waits_are_not_spun_for() {
        let mut spin = AdaptiveSpin::new(SpinPolicy::default());
        for _ in 0..64 {
            spin.record(Duration::from_millis(5), false);
        }
        let now = Instant::now();
        assert_eq!(spin.deadline(now), now);
    }
}
