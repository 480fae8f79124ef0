//! The client's shared-memory channels: created after Mount, kept in a LIFO pool of idle
//! channels (the most recently used one is the warmest), and abandoned after any failure.
//! A watchdog thread notices when the server goes away and shuts every channel down, so a
//! caller waiting on a channel gets `EIO` instead of waiting forever.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::thread;

use lisafs_protocol::transport::channel::{Channel, ChannelShutdown, SpinPolicy};
use lisafs_protocol::transport::socket::wait_for_hangup;
use parking_lot::Mutex;

/// How many channels a client opens, and how they wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// Channels to create after Mount. The default, like gVisor's, is the number of CPUs
    /// clamped to 2..=4; 0 keeps every RPC on the socket. A server may grant fewer (it
    /// answers `ENOMEM` at its limit), and a client with none uses the socket.
    pub channels: usize,
    /// How a caller waits for a response on a channel.
    pub spin: SpinPolicy,
}

impl Default for ClientOptions {
    fn default() -> Self {
        let cpus = thread::available_parallelism().map_or(2, usize::from);
        Self {
            channels: cpus.clamp(2, 4),
            spin: SpinPolicy::default(),
        }
    }
}

/// An idle channel and its send buffer.
#[derive(Debug)]
pub(crate) struct Pooled {
    pub(crate) channel: Channel,
    pub(crate) buf: Vec<u8>,
}

/// The channels of one connection.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    idle: Mutex<Vec<Pooled>>,
    stops: Arc<Mutex<Stops>>,
}

/// Every channel ever opened, to shut them all down when the server goes away, and
/// whether it has (a channel guarded after that is shut down at once).
#[derive(Debug, Default)]
struct Stops {
    handles: Vec<ChannelShutdown>,
    server_gone: bool,
}

impl Pool {
    /// Puts `channel` under the watchdog before its handshake, so that a server dying
    /// during the handshake wakes it too.
    pub(crate) fn guard(&self, channel: &Channel) {
        let handle = channel.shutdown_handle();
        let mut stops = self.stops.lock();
        if stops.server_gone {
            handle.shutdown();
        }
        stops.handles.push(handle);
    }

    /// Adds a guarded, connected channel to the idle pool.
    pub(crate) fn add(&self, channel: Channel) {
        self.idle.lock().push(Pooled {
            channel,
            buf: Vec::new(),
        });
    }

    /// The most recently returned idle channel, if any.
    pub(crate) fn take(&self) -> Option<Pooled> {
        self.idle.lock().pop()
    }

    /// Two idle channels, if there are two.
    pub(crate) fn take_two(&self) -> Option<[Pooled; 2]> {
        let mut idle = self.idle.lock();
        if idle.len() < 2 {
            return None;
        }
        Some([idle.pop()?, idle.pop()?])
    }

    /// Ends a call on a channel taken from the pool: the channel goes back if it still
    /// works, and is dropped (closing it) if the call left it dead.
    pub(crate) fn put_back(&self, pooled: Pooled, alive: bool) {
        if alive {
            self.idle.lock().push(pooled);
        }
    }

    /// How many channels are idle now.
    pub(crate) fn idle(&self) -> usize {
        self.idle.lock().len()
    }

    /// Starts the watchdog on a duplicate of the socket: when the server hangs up (or the
    /// client shuts the socket down on drop), every channel is shut down.
    pub(crate) fn watch(&self, socket: OwnedFd) -> std::io::Result<()> {
        let stops = Arc::clone(&self.stops);
        thread::Builder::new()
            .name("lisafs-watchdog".into())
            .spawn(move || {
                if let Err(err) = wait_for_hangup(socket.as_fd()) {
                    tracing::debug!(%err, "watchdog poll failed");
                }
                let mut stops = stops.lock();
                stops.server_gone = true;
                for stop in &stops.handles {
                    stop.shutdown();
                }
            })
            .map(drop)
    }
}
