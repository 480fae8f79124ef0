//! Bounded, adaptive spinning before a blocking wait, shared by the socket and the
//! channels.
//!
//! A blocking wake-up between two processes costs several microseconds (about 20 µs on an
//! idle VM), while catching the peer's answer by polling costs well under one. So a waiter
//! first polls for a while: twice the moving average of its recent waits, but at least a
//! floor, capped at [`SpinPolicy::max_spin`], and not at all once the average exceeds the
//! cap. A busy connection then never blocks, a slow operation blocks at once, and an idle
//! one polls once, briefly, after its last message and then costs nothing. The floor is
//! [`SHORT_FLOOR`] on a socket and [`CHANNEL_FLOOR`] on a channel whose peer polls too:
//! there the waits of one connection differ by kind (a create takes several times a stat)
//! and by what the peer does between messages, and a wait just past twice the average
//! would cost a blocking wake-up many times its length. After a first short pure
//! spin (none on a socket, which cannot see where its peer runs) the poll yields the CPU
//! between checks: with more runnable threads than cores, a pure spin would keep the very
//! thread it waits for from running.

use std::time::{Duration, Instant};

/// The least a socket waiter, or a server waiting on a silent client, spins (below the
/// cap): about two quick round trips. (The socket measured no better with the channel's.)
pub(crate) const SHORT_FLOOR: Duration = Duration::from_micros(2);

/// The least a channel waiter spins (below the cap) when its peer polls as well: longer
/// than the slower single operations (a create, an open), and than the gap the FUSE bridge
/// leaves between requests while the kernel walks to the next path component, both a
/// small fraction of the ~20–40 µs a blocking wake-up costs on the VMs we measure. The
/// waiter yields between looks, so a co-located peer is not held up (benches/README.md,
/// "A floor under the channel spin").
pub(crate) const CHANNEL_FLOOR: Duration = Duration::from_micros(50);

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
}

impl AdaptiveSpin {
    pub(crate) fn new(policy: SpinPolicy) -> Self {
        Self {
            policy,
            avg_wait_ns: 0,
        }
    }

    /// The policy this spin follows.
    pub(crate) fn policy(&self) -> SpinPolicy {
        self.policy
    }

    /// When the next wait, starting `now`, should stop spinning and block: twice the
    /// average wait, at least `floor`, at most `cap` or the policy's cap, whichever is
    /// lower, and no spin at all once the average exceeds that cap.
    pub(crate) fn deadline(&self, now: Instant, floor: Duration, cap: Duration) -> Instant {
        let cap = cap.min(self.policy.max_spin);
        let avg = Duration::from_nanos(self.avg_wait_ns);
        let budget = if avg > cap {
            Duration::ZERO
        } else {
            avg.saturating_mul(2).max(floor).min(cap)
        };
        now + budget
    }

    /// One step of a spin that started at `started`: a CPU pause for the first `pure`,
    /// then a yield, so that a spinner never keeps a runnable peer (often the very thread
    /// it waits for) off a CPU when there are more runnable threads than cores.
    pub(crate) fn pause(started: Instant, pure: Duration) {
        if started.elapsed() < pure {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }

    /// Records how long a wait took.
    pub(crate) fn record(&mut self, took: Duration) {
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        // An average over roughly the last eight waits.
        self.avg_wait_ns = self.avg_wait_ns - self.avg_wait_ns / 8 + took / 8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records enough waits of `took` for the average to settle on it.
    fn settle(spin: &mut AdaptiveSpin, took: Duration) {
        for _ in 0..64 {
            spin.record(took);
        }
    }

    #[test]
    fn quick_waits_are_spun_for_and_slow_ones_are_not() {
        let mut spin = AdaptiveSpin::new(SpinPolicy::default());
        spin.record(Duration::from_micros(5));
        let now = Instant::now();
        assert!(spin.deadline(now, SHORT_FLOOR, Duration::MAX) > now);
        settle(&mut spin, Duration::from_millis(5));
        assert_eq!(spin.deadline(now, CHANNEL_FLOOR, Duration::MAX), now);
    }

    #[test]
    fn quick_waits_are_spun_for_at_least_the_floor() {
        let mut spin = AdaptiveSpin::new(SpinPolicy::default());
        settle(&mut spin, Duration::from_micros(1));
        let now = Instant::now();
        let max = Duration::MAX;
        assert_eq!(spin.deadline(now, SHORT_FLOOR, max), now + SHORT_FLOOR);
        assert_eq!(spin.deadline(now, CHANNEL_FLOOR, max), now + CHANNEL_FLOOR);
        let cap = Duration::from_micros(20);
        assert_eq!(
            spin.deadline(now, CHANNEL_FLOOR, cap),
            now + cap,
            "never above the cap"
        );
        settle(&mut spin, Duration::from_micros(40));
        let twice = spin.deadline(now, CHANNEL_FLOOR, max) - now;
        assert!(
            twice > CHANNEL_FLOOR,
            "twice the average above the floor: {twice:?}"
        );
    }

    #[test]
    fn a_lower_cap_stops_spinning_sooner() {
        let mut spin = AdaptiveSpin::new(SpinPolicy::default());
        settle(&mut spin, Duration::from_micros(30));
        let now = Instant::now();
        let cap = Duration::from_micros(20);
        let (floor, max) = (SHORT_FLOOR, Duration::MAX);
        assert!(
            spin.deadline(now, floor, max) > now + cap,
            "within the policy's 200 µs"
        );
        assert_eq!(spin.deadline(now, floor, cap), now, "waits beyond the cap");
        settle(&mut spin, Duration::from_micros(5));
        let quick = spin.deadline(now, floor, cap);
        assert!(
            now < quick && quick <= now + cap,
            "quick waits are spun for"
        );
        let short = AdaptiveSpin::new(SpinPolicy {
            max_spin: Duration::ZERO,
        });
        assert_eq!(
            short.deadline(now, CHANNEL_FLOOR, cap),
            now,
            "never above the policy"
        );
    }
}
