//! Serving until the source closes or the operator says stop.
//!
//! On SIGTERM, SIGINT or SIGHUP the gofer stops accepting, shuts down the reading side of
//! every connection (a request already read is still answered; the client then sees the
//! connection end, and its channels are shut down after their current request), waits up
//! to [`STOP_DEADLINE`] for the connections to finish, and returns. A stop is never
//! abrupt unless a connection outlives the deadline.
//!
//! With a `--config` file, SIGHUP reloads instead (`super::reload`).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lisafs_protocol::transport::socket::FramedSocket;
use lisafs_server::{Backend, Server};
use parking_lot::{Condvar, Mutex};
use rustix::fs::OFlags;
use rustix::net::{Shutdown, SocketFlags};
use rustix::pipe::PipeFlags;

use super::listener::Source;

/// How long connections may take to finish after a stop signal.
pub(crate) const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// The signals that stop the gofer gracefully.
pub(crate) const STOP_SIGNALS: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// How serving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The one inherited connection closed.
    Closed,
    /// A stop signal arrived; `cut` connections were still open at the deadline.
    Stopped {
        /// The signal.
        signal: i32,
        /// Connections that did not finish in time.
        cut: usize,
    },
}

/// Handlers for [`STOP_SIGNALS`] that record which arrived and wake a reader. Install
/// them before the process can be told to stop, and before any thread starts (threads
/// inherit nothing of them, but a signal must find a handler).
#[derive(Debug)]
pub(crate) struct StopSignals {
    /// Each signal, and whether it arrived since it was last looked at.
    arrived: Vec<(i32, Arc<AtomicBool>)>,
    /// Whether SIGHUP reloads rather than stops.
    reloads: bool,
    wake: OwnedFd,
}

impl StopSignals {
    /// Installs the handlers; with `reloads`, SIGHUP asks for a reload instead of a stop.
    pub(crate) fn install(reloads: bool) -> io::Result<Self> {
        // A pipe, not a socket pair: the handler then wakes the reader with `write`, which
        // the serving seccomp filter allows (`sendto` it does not). The write end never
        // blocks a handler.
        let (wake, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
        rustix::fs::fcntl_setfl(&write, OFlags::NONBLOCK)?;
        let mut arrived = Vec::new();
        for signal in STOP_SIGNALS {
            let flag = Arc::new(AtomicBool::new(false));
            // Recorded first, then the reader woken: handlers of one signal run in order.
            signal_hook::flag::register(signal, Arc::clone(&flag))?;
            signal_hook::low_level::pipe::register_raw(signal, write.as_raw_fd())?;
            arrived.push((signal, flag));
        }
        // The handlers own the write end from here on, for the life of the process.
        std::mem::forget(write);
        Ok(Self {
            arrived,
            reloads,
            wake,
        })
    }

    /// Blocks until a stop signal arrives, and returns it; calls `reload` for each SIGHUP
    /// in between if SIGHUP reloads.
    fn wait(self, mut reload: impl FnMut()) -> i32 {
        loop {
            match rustix::io::read(&self.wake, &mut [0u8; 1]) {
                Ok(1) => {
                    let mut reloading = false;
                    for (signal, flag) in &self.arrived {
                        if !flag.swap(false, Ordering::SeqCst) {
                            continue;
                        }
                        if *signal == libc::SIGHUP && self.reloads {
                            reloading = true;
                        } else {
                            return *signal;
                        }
                    }
                    if reloading {
                        reload();
                    }
                }
                Err(rustix::io::Errno::INTR) => {}
                // The write end lives in the handlers for good, so this cannot end; if it
                // somehow does, never stop rather than spin.
                _ => std::thread::park(),
            }
        }
    }
}

/// One mount to serve: its server, where its connections come from, and how many it may
/// have at once.
pub(crate) struct Served<B: Backend> {
    /// The mount's server.
    pub(crate) server: Arc<Server<B>>,
    /// Its connection source.
    pub(crate) source: Source,
    /// Its `max_connections` (beyond it, a connection is closed at once).
    pub(crate) max: usize,
}

/// Serves every mount until its sources close (when all are connected sockets) or a stop
/// signal arrives. Calls `ready` once serving has begun, and `reload` on the signal
/// thread for each SIGHUP that `signals` reloads on.
pub(crate) fn serve<B: Backend>(
    served: Vec<Served<B>>,
    signals: StopSignals,
    reload: impl FnMut() + Send + 'static,
    ready: impl FnOnce(),
) -> io::Result<Ended> {
    let connections = Arc::new(Connections::default());
    let mut listeners = Vec::new();
    for (
        mount,
        Served {
            server,
            source,
            max,
        },
    ) in served.into_iter().enumerate()
    {
        match source {
            Source::Connected(socket) => {
                let slot = connections
                    .admit(mount, &socket, 1)?
                    .ok_or_else(|| io::Error::other("stopped before serving"))?;
                server.spawn_holding(FramedSocket::new(socket), slot)?;
            }
            Source::Listening(socket) => listeners.push((mount, server, Arc::new(socket), max)),
        }
    }
    let watcher = Arc::clone(&connections);
    let woken: Vec<_> = listeners.iter().map(|(_, _, l, _)| Arc::clone(l)).collect();
    std::thread::Builder::new()
        .name("lisafs-signals".into())
        .spawn(move || {
            let signal = signals.wait(reload);
            watcher.stop(signal);
            for listener in woken {
                // Wakes its accept loop with EINVAL.
                let _ = rustix::net::shutdown(&*listener, Shutdown::Read);
            }
        })?;
    let listening = !listeners.is_empty();
    for (mount, server, listener, max) in listeners {
        let connections = Arc::clone(&connections);
        std::thread::Builder::new()
            .name("lisafs-accept".into())
            .spawn(move || {
                if let Err(err) = accept_loop(&server, &listener, &connections, mount, max) {
                    tracing::error!("the listening socket failed; no more connections: {err}");
                }
            })?;
    }
    ready();
    Ok(connections.wait_for_end(listening))
}

/// Serves each connection to `listener` on its own thread until the listener is shut
/// down by a stop.
fn accept_loop<B: Backend>(
    server: &Arc<Server<B>>,
    listener: &OwnedFd,
    connections: &Arc<Connections>,
    mount: usize,
    max: usize,
) -> io::Result<()> {
    loop {
        match rustix::net::accept_with(listener, SocketFlags::CLOEXEC) {
            Ok(conn) => match connections.admit(mount, &conn, max) {
                Ok(Some(slot)) => {
                    if let Err(err) = server.spawn_holding(FramedSocket::new(conn), slot) {
                        tracing::warn!("cannot start a connection thread: {err}");
                    }
                }
                Ok(None) if connections.stopping() => return Ok(()),
                Ok(None) => tracing::warn!(max, "refused a connection: max_connections reached"),
                Err(err) => tracing::warn!("cannot track a connection: {err}"),
            },
            Err(rustix::io::Errno::INVAL) if connections.stopping() => return Ok(()),
            Err(rustix::io::Errno::INTR | rustix::io::Errno::CONNABORTED) => {}
            Err(
                err @ (rustix::io::Errno::MFILE
                | rustix::io::Errno::NFILE
                | rustix::io::Errno::NOMEM
                | rustix::io::Errno::NOBUFS),
            ) => {
                // Out of resources: wait for connections to end instead of spinning.
                tracing::warn!("accept: {err}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// The open connections, each by a duplicate of its socket (to shut it down on a stop),
/// and whether and when a stop began.
#[derive(Debug, Default)]
struct Connections {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// By connection ID: the mount's index, and the duplicate.
    open: HashMap<u64, (usize, OwnedFd)>,
    next_id: u64,
    stop: Option<(i32, Instant)>,
}

impl Connections {
    /// A slot for `socket` of `mount` if fewer than `max` of the mount's are open and no
    /// stop has begun.
    fn admit(
        self: &Arc<Self>,
        mount: usize,
        socket: &OwnedFd,
        max: usize,
    ) -> io::Result<Option<Slot>> {
        let mut state = self.state.lock();
        let of_mount = state.open.values().filter(|(m, _)| *m == mount).count();
        if state.stop.is_some() || of_mount >= max {
            return Ok(None);
        }
        let dup = rustix::io::fcntl_dupfd_cloexec(socket.as_fd(), 0)?;
        let id = state.next_id;
        state.next_id += 1;
        state.open.insert(id, (mount, dup));
        tracing::info!(
            connection = id,
            open = state.open.len(),
            "connection opened"
        );
        Ok(Some(Slot {
            id,
            connections: Arc::clone(self),
        }))
    }

    fn stopping(&self) -> bool {
        self.state.lock().stop.is_some()
    }

    /// Begins the stop (once): no new connections, and every open one reads end-of-file
    /// after the request it is serving.
    fn stop(&self, signal: i32) {
        let mut state = self.state.lock();
        if state.stop.is_some() {
            return;
        }
        state.stop = Some((signal, Instant::now()));
        tracing::info!(
            signal = signal_name(signal),
            open = state.open.len(),
            deadline_s = STOP_DEADLINE.as_secs(),
            "stopping: no new connections; open ones finish their requests"
        );
        for (_, socket) in state.open.values() {
            let _ = rustix::net::shutdown(socket, Shutdown::Read);
        }
        self.changed.notify_all();
    }

    /// Waits for a stop, then until every connection has ended or the deadline passed;
    /// unless `listening`, also returns when every (connected) source has closed.
    fn wait_for_end(&self, listening: bool) -> Ended {
        let mut state = self.state.lock();
        loop {
            match state.stop {
                None if !listening && state.open.is_empty() => return Ended::Closed,
                None => self.changed.wait(&mut state),
                Some((signal, _)) if state.open.is_empty() => {
                    return Ended::Stopped { signal, cut: 0 }
                }
                Some((signal, since)) => {
                    let deadline = since + STOP_DEADLINE;
                    if self.changed.wait_until(&mut state, deadline).timed_out() {
                        return Ended::Stopped {
                            signal,
                            cut: state.open.len(),
                        };
                    }
                }
            }
        }
    }
}

/// One open connection; dropped when its thread ends.
#[derive(Debug)]
struct Slot {
    id: u64,
    connections: Arc<Connections>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let open = {
            let mut state = self.connections.state.lock();
            state.open.remove(&self.id);
            state.open.len()
        };
        tracing::info!(connection = self.id, open, "connection closed");
        self.connections.changed.notify_all();
    }
}

/// A stop signal's name, for the log.
pub(crate) fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGQUIT => "SIGQUIT",
        _ => "a signal",
    }
}
