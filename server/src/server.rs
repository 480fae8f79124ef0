//! `Server`: shared state of all connections, and the entry points that serve them.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lisafs_protocol::transport::channel::SpinPolicy;
use lisafs_protocol::transport::socket::{FramedSocket, SocketError};
use lisafs_protocol::wire::{Errno, Mid, MountHints, MAX_MESSAGE_SIZE};
use parking_lot::RwLock;

use crate::backend::Backend;
use crate::connection::Connection;
use crate::idmap::IdMap;
use crate::metrics::Metrics;
use crate::node_lock::NodeLocks;

/// An oversized request up to this size is read and dropped so the client gets `EIO` and
/// the connection lives on; a larger claim (up to 4 GiB) closes the connection instead of
/// reading gigabytes.
const MAX_DISCARD: u64 = 16 * 1024 * 1024;

/// Policy shared by every connection of a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Refuse every mutating request with `EROFS`.
    pub readonly: bool,
    /// Most FDIDs one connection may hold at once; beyond it requests fail with `EMFILE`.
    pub max_fds: usize,
    /// Most shared-memory channels one connection may create; beyond it `ENOMEM`.
    pub max_channels: usize,
    /// How channel threads wait for requests (see [`SpinPolicy`]).
    pub spin: SpinPolicy,
    /// Record [`Metrics`] (request counts, errors, latencies, bytes, FDs, connections and
    /// channels), read with [`Server::metrics`]. Off, a request pays one branch for them.
    pub metrics: bool,
    /// Translate user and group IDs between the client's view and the host's
    /// ([`IdMap`]); `None` passes them unchanged.
    pub ids: Option<Arc<IdMap>>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            readonly: false,
            max_fds: 100_000,
            max_channels: 4,
            spin: SpinPolicy::default(),
            metrics: false,
            ids: None,
        }
    }
}

/// Why serving a connection stopped other than by the client closing it cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The socket failed or the peer broke the framing.
    #[error("transport: {0}")]
    Transport(#[from] SocketError),
    /// The client declared a payload too large to skip; the connection was closed.
    #[error("request of {len} bytes exceeds the limit; connection closed")]
    Oversized {
        /// The declared payload length.
        len: u64,
    },
}

/// A lisafs server: a backend plus the state every connection shares.
pub struct Server<B: Backend> {
    backend: B,
    options: ServerOptions,
    /// Taken for writing by renames and for reading by every request that resolves or
    /// creates names, so a multi-component walk never sees half a rename.
    pub(crate) rename_lock: RwLock<()>,
    pub(crate) node_locks: Arc<NodeLocks>,
    /// Present when [`ServerOptions::metrics`] is set or built by [`Server::with_metrics`].
    pub(crate) metrics: Option<Arc<Metrics>>,
    /// Whether connections read their peer's credentials ([`Server::read_peer_credentials`]).
    read_peers: AtomicBool,
}

impl<B: Backend> std::fmt::Debug for Server<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Server<B> {
    /// A server for `backend`; with [`ServerOptions::metrics`], it records into metrics
    /// of its own, which [`Server::metrics`] returns.
    pub fn new(backend: B, options: ServerOptions) -> Arc<Self> {
        let metrics = options.metrics.then(Arc::default);
        Self::build(backend, options, metrics)
    }

    /// A server for `backend` that records what every connection does in `metrics`
    /// (shared with other servers, or created before the server), whatever
    /// [`ServerOptions::metrics`] says.
    pub fn with_metrics(backend: B, options: ServerOptions, metrics: Arc<Metrics>) -> Arc<Self> {
        Self::build(backend, options, Some(metrics))
    }

    fn build(backend: B, options: ServerOptions, metrics: Option<Arc<Metrics>>) -> Arc<Self> {
        Arc::new(Self {
            backend,
            options,
            rename_lock: RwLock::new(()),
            node_locks: Arc::default(),
            metrics,
            read_peers: AtomicBool::new(false),
        })
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The options.
    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    /// The metrics of every connection ([`crate::metrics`] lists them), if
    /// [`ServerOptions::metrics`] is set or the server was built
    /// [`with_metrics`](Server::with_metrics). Render them with [`Metrics::render`] from
    /// any thread.
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
    }

    /// Makes connections served from now on read their peer's credentials
    /// (`SO_PEERCRED`, one `getsockopt` when a connection starts) into their
    /// [`RequestContext`](crate::RequestContext); off, its `peer` is `None`. Off by
    /// default because a seccomp policy must allow that call first.
    pub fn read_peer_credentials(&self, on: bool) {
        self.read_peers.store(on, Ordering::Relaxed);
    }

    /// Serves one connection on the calling thread until the client closes it. Every host
    /// resource of the connection is released before this returns.
    pub fn serve(self: &Arc<Self>, mut socket: FramedSocket) -> Result<(), ServeError> {
        let _live = self.metrics.as_deref().map(Metrics::connection);
        let peer = match self.read_peers.load(Ordering::Relaxed) {
            true => crate::context::Peer::of(&socket),
            false => None,
        };
        let conn = Connection::new(Arc::clone(self), peer);
        let result = serve_socket(&conn, &mut socket);
        conn.stop_channels();
        result
    }

    /// Serves one connection on a new thread; errors are logged.
    pub fn spawn(self: &Arc<Self>, socket: FramedSocket) -> std::io::Result<JoinHandle<()>> {
        self.spawn_holding(socket, ())
    }

    /// [`Server::spawn`], keeping `held` until the connection ends (a slot of a connection
    /// cap, say, given back when it is dropped).
    pub fn spawn_holding<T: Send + 'static>(
        self: &Arc<Self>,
        socket: FramedSocket,
        held: T,
    ) -> std::io::Result<JoinHandle<()>> {
        let server = Arc::clone(self);
        std::thread::Builder::new()
            .name("lisafs-conn".into())
            .spawn(move || {
                let _held = held;
                if let Err(err) = server.serve(socket) {
                    tracing::warn!("connection ended: {err}");
                }
            })
    }
}

/// The socket communicator: one request at a time until the client goes away.
fn serve_socket<B: Backend>(
    conn: &Connection<B>,
    socket: &mut FramedSocket,
) -> Result<(), ServeError> {
    let polling = socket.spin();
    let mut out = Vec::new();
    loop {
        let answer = match socket.recv(MAX_MESSAGE_SIZE, 0) {
            Ok(frame) if frame.mid == Mid::Mount.as_u16() => {
                let polls = MountHints::of(frame.payload).is_some_and(|hints| hints.polls());
                let answer = conn.handle(frame.mid, frame.payload, &mut out, None);
                // A client that blocks at once for every response (gVisor's) is woken
                // from sleep each time; polling for its next request would keep this CPU
                // busy and make the kernel wake it on another, idle, one, which costs far
                // more than the wake-up polling saves here (benches/README.md).
                socket.set_spin(match polls {
                    true => polling,
                    false => SpinPolicy {
                        max_spin: Duration::ZERO,
                    },
                });
                answer
            }
            Ok(frame) => conn.handle(frame.mid, frame.payload, &mut out, None),
            Err(SocketError::Oversized { mid, len, .. }) if len <= MAX_DISCARD => {
                let start = Instant::now();
                socket.discard(len)?;
                tracing::debug!("MID {mid}: {len}-byte request exceeds the limit");
                conn.error(mid, Errno::EIO, start, &mut out)
            }
            Err(SocketError::Oversized { len, .. }) => return Err(ServeError::Oversized { len }),
            Err(SocketError::Closed) => return Ok(()),
            Err(err) => return Err(err.into()),
        };
        let borrowed: Vec<_> = answer.fds.iter().map(AsFd::as_fd).collect();
        let sent = socket.send(answer.mid, &out, &borrowed);
        conn.sent(answer.pending);
        sent?;
        // Our copies of donated FDs close here; the client holds its own.
    }
}

#[cfg(test)]
mod tests {
    use lisafs_protocol::wire::encode;

    use super::*;

    /// Every request fails with ENOSYS: enough for a Mount to be answered.
    struct Nothing;

    impl Backend for Nothing {
        type File = ();
        type Open = ();
        type Socket = ();
    }

    /// How long the server polls its socket for requests after a Mount with `payload`.
    fn spin_after_mount(payload: &[u8]) -> Duration {
        let (mut client, mut end) = FramedSocket::pair().expect("socketpair");
        let conn = Connection::new(Server::new(Nothing, ServerOptions::default()), None);
        std::thread::scope(|scope| {
            let serving = scope.spawn(|| serve_socket(&conn, &mut end));
            client
                .send(Mid::Mount.as_u16(), payload, &[])
                .expect("send");
            let answer = client.recv(MAX_MESSAGE_SIZE, 1).expect("answer");
            assert_eq!(answer.mid, Mid::Error.as_u16(), "the backend cannot mount");
            drop(client);
            serving.join().expect("no panic").expect("clean end");
        });
        end.spin().max_spin
    }

    #[test]
    fn only_a_client_that_says_it_polls_is_polled_for() {
        let polling = SpinPolicy::default().max_spin;
        assert!(polling > Duration::ZERO);
        let ours = encode(&MountHints::OURS).expect("encode");
        assert_eq!(spin_after_mount(&ours), polling);
        // gVisor's client sends an empty Mount.
        assert_eq!(spin_after_mount(&[]), Duration::ZERO);
        let quiet = MountHints {
            flags: 0,
            ..MountHints::OURS
        };
        assert_eq!(
            spin_after_mount(&encode(&quiet).expect("encode")),
            Duration::ZERO
        );
    }
}
