//! Flipcall turn-taking on the window's state word (SPEC.md §9.3), wire-compatible with
//! gVisor: the active side stores the data length, moves the state word from its value to
//! the peer's with a compare-and-swap, and always `FUTEX_WAKE`s it (shared, not private),
//! so a peer that only ever sleeps in `FUTEX_WAIT` is woken.
//!
//! Our waiter first spins on the state word for a short, adaptive time, because a
//! spin-then-wait round trip between two processes costs well under a microsecond where a
//! futex sleep and wake costs several. See [`SpinPolicy`].
//!
//! While it spins it says so in bit 0 of its polling word (a reserved header word gVisor
//! leaves zero), and our sender skips the `FUTEX_WAKE` for a peer that says so: a system
//! call less per message when both ends are ours. The waiter clears the bit before its
//! last look at the state word and its `FUTEX_WAIT`; the sender swaps the state word
//! before it reads the polling word; both sequentially consistent, so one of them sees the
//! other (the waiter the new turn, or the sender the cleared bit). A peer that never
//! writes its word (gVisor) is always woken; a peer that lies about it only goes unwoken
//! itself. The word's other bits say which CPU its side runs on, so that a waiter whose
//! peer shares its CPU yields it at once instead of spinning first (`pure_spin`). A
//! server whose client has never written its word spins for at most
//! [`SILENT_CLIENT_SPIN`] (`spin_cap`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use rustix::io::Errno;
use rustix::thread::futex;

use super::shm::Window;
use super::ChannelError;
use crate::transport::spin::{AdaptiveSpin, SpinPolicy, CHANNEL_FLOOR, SHORT_FLOOR};

/// State word: the client's turn (the initial value of a zeroed window).
const CLIENT_TURN: u32 = 0;
/// State word: the server's turn.
const SERVER_TURN: u32 = 1;
/// State word: shut down; every wait fails from now on.
const SHUTDOWN: u32 = 2;
/// Polling word, bit 0: this side polls the state word (or is busy with its turn) and
/// needs no wake-up.
const POLLING: u32 = 1;

/// The polling word's CPU bits: the CPU this side runs on plus one, above bit 0 (zero:
/// unknown, which is all a gVisor peer or an older lisafs-rs peer ever says).
fn this_cpu() -> u32 {
    let cpu = u32::try_from(rustix::thread::sched_getcpu()).unwrap_or(u32::MAX);
    (cpu.min(u32::MAX >> 2) + 1) << 1
}

/// The longest a server waits polling for the next request of a client whose polling word
/// is zero, as gVisor's always is: that client sleeps in `FUTEX_WAIT` after every request
/// and has to be woken before it can send the next one, which takes longer than this on
/// the VMs we measured. Spinning through that wake-up only holds a CPU the client, or the
/// sandbox around it, could run on (benches/README.md, "Under gVisor's client").
pub(crate) const SILENT_CLIENT_SPIN: Duration = Duration::from_micros(20);

/// The floor of this wait's spin and its cap below the policy's, given the peer's polling
/// word: a silent client gets the short floor too, since every spin past its wake-up only
/// holds the CPU it could be woken on.
fn spin_bounds(side: Side, peer: u32) -> (Duration, Duration) {
    if side.is_server() && peer == 0 {
        (SHORT_FLOOR, SILENT_CLIENT_SPIN)
    } else {
        (CHANNEL_FLOOR, Duration::MAX)
    }
}

/// How long a wait spins before it starts yielding the CPU between looks, given the
/// peer's polling word: about a channel round trip (a microsecond), unless the peer last
/// said it runs on this very CPU (`here`). Then it cannot answer until we give the CPU up,
/// and every pure spin only delays it: a co-located pair (two threads of ours on one
/// core, or both ends squeezed onto the core a CPU hog leaves free) hands the CPU back and
/// forth at once instead.
fn pure_spin(peer: u32, here: u32) -> Duration {
    if peer & !POLLING == here {
        Duration::ZERO
    } else {
        Duration::from_micros(2)
    }
}

/// Which end of the channel this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

impl Side {
    fn own(self) -> u32 {
        match self {
            Side::Client => CLIENT_TURN,
            Side::Server => SERVER_TURN,
        }
    }

    fn peer(self) -> u32 {
        match self {
            Side::Client => SERVER_TURN,
            Side::Server => CLIENT_TURN,
        }
    }

    fn is_server(self) -> bool {
        self == Side::Server
    }
}

/// One side's view of a window: turn-taking, waiting and shutdown.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) window: Window,
    side: Side,
    /// Only the thread that owns the turn waits, so this lock is never contended.
    spin: Mutex<AdaptiveSpin>,
    shut_down: AtomicBool,
}

impl Endpoint {
    pub(crate) fn new(window: Window, side: Side, policy: SpinPolicy) -> Self {
        Self {
            window,
            side,
            spin: Mutex::new(AdaptiveSpin::new(policy)),
            shut_down: AtomicBool::new(false),
        }
    }

    /// Hands the turn to the peer with `data_len` bytes in the data area.
    pub(crate) fn send(&self, data_len: usize) -> Result<(), ChannelError> {
        let too_large = ChannelError::TooLarge {
            len: data_len,
            max: self.window.data_capacity(),
        };
        if data_len > self.window.data_capacity() {
            return Err(too_large);
        }
        let data_len = u32::try_from(data_len).map_err(|_| too_large)?;
        let state = self.window.state();
        self.window.data_len().store(data_len, Ordering::Relaxed);
        // The swap publishes the data and its length with the turn (release), and is
        // ordered before the read of the peer's polling word (see the module doc).
        match state.compare_exchange(
            self.side.own(),
            self.side.peer(),
            Ordering::SeqCst,
            Ordering::Acquire,
        ) {
            Ok(_) => {}
            Err(SHUTDOWN) => return Err(ChannelError::Shutdown),
            Err(_) => return Err(ChannelError::Protocol("sent out of turn")),
        }
        let peer_polling = self.window.polling(!self.side.is_server());
        if peer_polling.load(Ordering::SeqCst) & POLLING == 0 {
            futex::wake(state, futex::Flags::empty(), 1).map_err(ChannelError::Io)?;
        }
        Ok(())
    }

    /// Waits for the turn to come back; returns the data length the peer set, checked
    /// against the window's capacity.
    pub(crate) fn wait(&self) -> Result<usize, ChannelError> {
        let started = Instant::now();
        let state = self.window.state();
        let polling = self.window.polling(self.side.is_server());
        let here = this_cpu();
        polling.store(POLLING | here, Ordering::Relaxed);
        let peer = self
            .window
            .polling(!self.side.is_server())
            .load(Ordering::Relaxed);
        let pure = pure_spin(peer, here);
        let (floor, cap) = spin_bounds(self.side, peer);
        let mut spin_until = Some(self.spin.lock().deadline(started, floor, cap));
        let mut may_sleep = false;
        let mut slept = false;
        loop {
            if self.shut_down.load(Ordering::Acquire) {
                return Err(ChannelError::Shutdown);
            }
            match state.load(Ordering::SeqCst) {
                s if s == self.side.own() => break,
                SHUTDOWN => return Err(ChannelError::Shutdown),
                s if s == self.side.peer() => {}
                _ => return Err(ChannelError::Protocol("invalid state word")),
            }
            if let Some(deadline) = spin_until {
                if Instant::now() < deadline {
                    AdaptiveSpin::pause(started, pure);
                    continue;
                }
                spin_until = None;
            }
            if !may_sleep {
                // From now on the peer must wake us: say so, then look once more.
                polling.store(here, Ordering::SeqCst);
                may_sleep = true;
                continue;
            }
            slept = true;
            match futex::wait(state, futex::Flags::empty(), self.side.peer(), None) {
                Ok(()) | Err(Errno::AGAIN) | Err(Errno::INTR) => {}
                Err(err) => return Err(ChannelError::Io(err)),
            }
        }
        if slept {
            // Woken, perhaps on another CPU: busy with the turn now, and say where.
            polling.store(POLLING | this_cpu(), Ordering::Relaxed);
        }
        self.spin.lock().record(started.elapsed());
        let len = self.window.data_len().load(Ordering::Relaxed) as usize;
        if len > self.window.data_capacity() {
            return Err(ChannelError::Protocol("data length beyond the window"));
        }
        Ok(len)
    }

    /// Ends the channel for both sides: every current and future wait, here and in the
    /// peer, fails with [`ChannelError::Shutdown`].
    pub(crate) fn shutdown(&self) {
        self.shut_down.store(true, Ordering::Release);
        let state = self.window.state();
        state.swap(SHUTDOWN, Ordering::AcqRel);
        let _ = futex::wake(state, futex::Flags::empty(), i32::MAX as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_peer_on_this_cpu_cuts_the_pure_spin() {
        let here = this_cpu();
        assert_ne!(here, 0, "a CPU is never said as \"unknown\"");
        assert_eq!(here & POLLING, 0);
        let spin = Duration::from_micros(2);
        assert_eq!(pure_spin(POLLING | here, here), Duration::ZERO);
        assert_eq!(pure_spin(here, here), Duration::ZERO, "asleep there, too");
        // gVisor (0), an older lisafs-rs peer (1: polling, CPU unknown), another CPU.
        assert_eq!(pure_spin(0, here), spin);
        assert_eq!(pure_spin(POLLING, here), spin);
        assert_eq!(pure_spin(POLLING | (here + 2), here), spin);
    }

    #[test]
    fn only_a_server_spins_less_for_a_silent_peer() {
        let here = this_cpu();
        let silent = (SHORT_FLOOR, SILENT_CLIENT_SPIN);
        let polling = (CHANNEL_FLOOR, Duration::MAX);
        assert_eq!(spin_bounds(Side::Server, 0), silent);
        // Our clients say where they run, polling or asleep.
        assert_eq!(spin_bounds(Side::Server, POLLING | here), polling);
        assert_eq!(spin_bounds(Side::Server, here), polling);
        // A client waits for the server's work, whoever the server is.
        assert_eq!(spin_bounds(Side::Client, 0), polling);
    }
}
