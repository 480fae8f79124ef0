//! The connection: Mount, the one request/response path every RPC takes (on an idle
//! shared-memory channel when there is one, else on the socket), and the batched Close
//! queue.

use std::mem;
use std::ops::ControlFlow;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use lisafs_protocol::transport::channel::{Channel, Incoming};
use lisafs_protocol::transport::socket::{Frame, FramedSocket, SocketError};
use lisafs_protocol::wire::{
    decode, encode_into, ChannelReq, CloseReq, EncodeError, Errno, ErrorResp, FSyncReq, FdId,
    Message, Mid, MountHints, PReadReq, PReadResp, PWriteData, PWriteReq, Request, Statx,
    DEFAULT_CLIENT_MAX_MESSAGE_SIZE,
};
use parking_lot::Mutex;

use crate::channels::{ClientOptions, Pool, Pooled};
use crate::error::{Error, Result};
use crate::fd::{ControlFd, Handle, OpenFd};
use crate::open::{chunk_read, read_into};

/// Released FDIDs are sent to the server in one Close once this many are queued, as
/// gVisor's client does: one RPC per hundred closes instead of one per close.
pub const CLOSE_BATCH: usize = 100;

/// A mounted lisafs connection.
///
/// `Client` is `Send + Sync`. Each RPC takes an idle shared-memory channel if there is one
/// (several threads run RPCs in parallel, one per channel); otherwise it is serialised on
/// the socket (one request, then its response, under a mutex), as SPEC.md §4 requires. FD handles
/// ([`ControlFd`], [`OpenFd`], ...) share the connection; it stays open until the
/// `Client` and every handle are dropped. Dropping the `Client` sends the queued Closes
/// (including the root's).
#[derive(Debug)]
pub struct Client {
    inner: Arc<Inner>,
    root: ControlFd,
    root_stat: Statx,
    mount_fd: Option<OwnedFd>,
}

/// State shared by the `Client` and every FD handle.
#[derive(Debug)]
pub(crate) struct Inner {
    conn: Mutex<Conn>,
    /// The server's limit from Mount, adopted verbatim; bounds payloads both ways.
    max_message_size: u32,
    supported: Supported,
    /// FDIDs whose handles were dropped and that the server has not been told about yet.
    closes: Mutex<Vec<FdId>>,
    channels: Pool,
    /// Calls in progress, on a channel or the socket ([`Inner::enter`]).
    calls: AtomicUsize,
}

/// A call in progress, counted in [`Inner::calls`] until it is dropped.
struct InCall<'a>(&'a AtomicUsize);

impl Drop for InCall<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The socket and its send buffer; only touched under `Inner::conn`'s lock.
#[derive(Debug)]
struct Conn {
    sock: FramedSocket,
    buf: Vec<u8>,
    /// Set by a transport failure: the stream may be out of sync, so nothing more is sent.
    broken: bool,
}

/// The MIDs the server listed in its Mount response.
#[derive(Debug)]
struct Supported {
    /// The list exactly as received (a newer server may list MIDs we do not know).
    raw: Vec<u16>,
    /// Bit `m` set when MID `m` (< 64) is listed: the per-RPC check is one AND.
    low: u64,
}

impl Supported {
    fn new(raw: Vec<u16>) -> Self {
        let low = raw
            .iter()
            .filter(|&&mid| mid < 64)
            .fold(0u64, |bits, &mid| bits | 1 << mid);
        Self { raw, low }
    }

    fn contains(&self, mid: u16) -> bool {
        if mid < 64 {
            self.low & (1 << mid) != 0
        } else {
            self.raw.contains(&mid)
        }
    }
}

impl Client {
    /// Connects to the Unix socket at `path` and mounts.
    pub fn connect(path: impl AsRef<Path>) -> Result<Self> {
        let stream = UnixStream::connect(path)?;
        Self::from_fd(OwnedFd::from(stream))
    }

    /// Connects to the Unix socket at `path` and mounts, with `options`.
    pub fn connect_with(path: impl AsRef<Path>, options: ClientOptions) -> Result<Self> {
        let stream = UnixStream::connect(path)?;
        Self::from_fd_with(OwnedFd::from(stream), options)
    }

    /// Mounts over an already connected `AF_UNIX` `SOCK_STREAM` socket (e.g. one end of
    /// the socketpair a sandbox runner handed over).
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        Self::from_fd_with(fd, ClientOptions::default())
    }

    /// [`Client::from_fd`] with `options`.
    pub fn from_fd_with(fd: OwnedFd, options: ClientOptions) -> Result<Self> {
        let mut conn = Conn {
            sock: FramedSocket::new(fd),
            buf: Vec::new(),
            broken: false,
        };
        // Until the server tells us its limit, assume gVisor's client default. The hints
        // say we poll for responses (our server then polls for requests); other servers
        // ignore them.
        let (resp, mut fds) = exchange(
            &mut conn,
            DEFAULT_CLIENT_MAX_MESSAGE_SIZE,
            &MountHints::OURS,
            typed::<MountHints>,
        )?;
        let inner = Arc::new(Inner {
            conn: Mutex::new(conn),
            max_message_size: resp.max_message_size,
            supported: Supported::new(resp.supported),
            closes: Mutex::new(Vec::new()),
            channels: Pool::default(),
            calls: AtomicUsize::new(0),
        });
        inner.open_channels(&options);
        Ok(Self {
            root: ControlFd::new(Handle::new(&inner, resp.root.control_fd)),
            root_stat: resp.root.stat,
            mount_fd: fds.pop(),
            inner,
        })
    }

    /// The ControlFd of the mount point.
    pub fn root(&self) -> &ControlFd {
        &self.root
    }

    /// The mount point's attributes as reported by Mount.
    pub fn root_stat(&self) -> &Statx {
        &self.root_stat
    }

    /// The host FD of the mount point, if the server donated one with Mount.
    pub fn mount_fd(&self) -> Option<BorrowedFd<'_>> {
        self.mount_fd.as_ref().map(AsFd::as_fd)
    }

    /// Takes ownership of the mount point's donated host FD, if any.
    pub fn take_mount_fd(&mut self) -> Option<OwnedFd> {
        self.mount_fd.take()
    }

    /// The server's payload limit, adopted from Mount.
    pub fn max_message_size(&self) -> u32 {
        self.inner.max_message_size
    }

    /// Whether the server listed `mid` in its Mount response. Requests for an unlisted MID
    /// fail with `EOPNOTSUPP` without being sent (Flush silently succeeds).
    pub fn supported(&self, mid: Mid) -> bool {
        self.inner.supports(mid)
    }

    /// The supported-MID list exactly as the server sent it, unknown MIDs included.
    pub fn supported_mids(&self) -> &[u16] {
        &self.inner.supported.raw
    }

    /// Whether the server listed `mid` as supported at Mount.
    pub fn supports(&self, mid: Mid) -> bool {
        self.inner.supports(mid)
    }

    /// How many shared-memory channels are idle (all of them, when no RPC is running).
    pub fn idle_channels(&self) -> usize {
        self.inner.channels.idle()
    }

    /// Whether a transport failure has broken the connection (every call now fails with
    /// `EIO`).
    pub fn is_broken(&self) -> bool {
        self.inner.conn.lock().broken
    }

    /// Sends the queued Closes now instead of waiting for [`CLOSE_BATCH`] of them.
    pub fn flush_closes(&self) -> Result<()> {
        self.inner.flush_closes()
    }

    /// How many released FDIDs are waiting for the next batched Close.
    pub fn pending_closes(&self) -> usize {
        self.inner.closes.lock().len()
    }

    /// Syncs several open files with one FSync RPC. The server syncs all of them and
    /// reports the first error.
    pub fn fsync(&self, fds: &[&OpenFd]) -> Result<()> {
        self.inner.fsync(fds.iter().map(|fd| fd.id()).collect())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // The root handle is a field, dropped only after this body: queue its ID by hand
        // so that it goes out in the same final Close as everything else.
        let root = self.root.disarm();
        self.inner.closes.lock().push(root);
        if let Err(err) = self.inner.flush_closes() {
            tracing::debug!(%err, "final Close failed");
        }
    }
}

impl Inner {
    /// Counts a call in progress until the guard is dropped.
    fn enter(&self) -> InCall<'_> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        InCall(&self.calls)
    }

    /// Sends `req` and returns the decoded response and any donated FDs.
    pub(crate) fn call<R: Request>(&self, req: &R) -> Result<(R::Response, Vec<OwnedFd>)> {
        self.call_with(req, typed::<R>)
    }

    /// [`Inner::call`], with the response's payload handed to `decode` where it arrived
    /// instead of decoded into `R::Response`: for data that goes straight to the caller.
    pub(crate) fn call_with<E: Encode, T>(
        &self,
        req: &E,
        decode: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<(T, Vec<OwnedFd>)> {
        if !self.supports(E::As::MID) {
            return Err(Error::local(Errno::EOPNOTSUPP));
        }
        let _call = self.enter();
        if let Some(mut pooled) = self.channels.take() {
            let (result, alive) = exchange_channel(&mut pooled, self.max_message_size, req, decode);
            self.channels.put_back(pooled, alive);
            return result;
        }
        let mut conn = self.conn.lock();
        exchange(&mut conn, self.max_message_size, req, decode)
    }

    /// PRead into `dest`: over a channel the data goes from the window straight into
    /// `dest`; over the socket, from the kernel's socket buffer (`recv_split`). The outer
    /// result is the call's (as [`Inner::call_with`]'s), the inner one the bytes read or a
    /// bad response.
    pub(crate) fn pread_into(&self, req: &PReadReq, dest: &mut [u8]) -> Result<Result<usize>> {
        if !self.supports(Mid::PRead) {
            return Err(Error::local(Errno::EOPNOTSUPP));
        }
        let _call = self.enter();
        if let Some(mut pooled) = self.channels.take() {
            let (result, alive) = pread_on_channel(&mut pooled, self.max_message_size, req, dest);
            self.channels.put_back(pooled, alive);
            return result;
        }
        pread_on_socket(&mut self.conn.lock(), self.max_message_size, req, dest)
    }

    /// PRead of `dest.len()` bytes of `fd` from `offset` in pieces of at most `chunk`
    /// bytes, served on two channels at once: the server reads the next piece into one
    /// window while we copy the last one out of the other, on the other core. `None`, with
    /// nothing sent, for a read below [`SPLIT_READ_MIN`], or unless no other call is in
    /// progress and two channels are idle (then [`OpenFd::pread`](crate::OpenFd::pread)
    /// goes on one chunk at a time, with the same result rules, `chunk_read`). Calls made
    /// meanwhile use the socket.
    pub(crate) fn pread_split(
        &self,
        fd: FdId,
        offset: u64,
        dest: &mut [u8],
        chunk: usize,
    ) -> Option<Result<usize>> {
        if dest.len() < SPLIT_READ_MIN || !self.supports(Mid::PRead) {
            return None;
        }
        // An end beyond u64 is the one-chunk path's error to report.
        offset.checked_add(u64::try_from(dest.len()).ok()?)?;
        // Taking both channels sends every other call to the socket meanwhile, so only a
        // caller alone does: with two callers each on its own channel both go faster.
        if self.calls.load(Ordering::Relaxed) != 0 {
            return None;
        }
        let _call = self.enter();
        let mut pair = self.channels.take_two()?;
        let piece = dest
            .len()
            .div_ceil(SPLIT_READ_PIECES)
            .next_multiple_of(4096)
            .min(chunk);
        let pieces: Vec<&mut [u8]> = dest.chunks_mut(piece).collect();
        let lens: Vec<usize> = pieces.iter().map(|piece| piece.len()).collect();
        let max = self.max_message_size;
        let mut alive = [true; 2];
        // Piece i travels on channel i % 2, which holds one piece at a time.
        let launch = |i: usize, pair: &mut [Pooled; 2], alive: &mut [bool; 2]| {
            let req = PReadReq {
                // Below offset + dest.len(), checked above.
                offset: offset + (i * piece) as u64,
                fd,
                // A piece is at most `chunk`, which came from a u32.
                count: u32::try_from(lens[i]).unwrap_or(u32::MAX),
                _pad: 0,
            };
            let (started, live) = start_pread(&mut pair[i % 2], max, &req);
            alive[i % 2] &= live;
            started
        };
        let mut started: [Option<Result<()>>; 2] = [None, None];
        for (i, slot) in started.iter_mut().enumerate().take(lens.len()) {
            *slot = Some(launch(i, &mut pair, &mut alive));
        }
        let mut done = 0;
        let mut read = None;
        for (i, dest) in pieces.into_iter().enumerate() {
            let c = i % 2;
            let Some(start) = started[c].take() else {
                break;
            };
            let outcome = match start {
                Ok(()) => {
                    // Once the read has its result, a response still outstanding is only
                    // drained: none of it reaches the caller's buffer.
                    let into: &mut [u8] = if read.is_none() { dest } else { &mut [] };
                    let (outcome, live) = finish_pread(&mut pair[c], max, into);
                    alive[c] &= live;
                    outcome
                }
                Err(err) => Err(err),
            };
            if read.is_some() {
                continue;
            }
            match chunk_read(done, lens[i], outcome) {
                ControlFlow::Continue(n) => {
                    done += n;
                    if i + 2 < lens.len() {
                        started[c] = Some(launch(i + 2, &mut pair, &mut alive));
                    }
                }
                ControlFlow::Break(result) => read = Some(result),
            }
        }
        for (pooled, live) in pair.into_iter().zip(alive) {
            self.channels.put_back(pooled, live);
        }
        Some(read.unwrap_or(Ok(done)))
    }

    /// Opens up to `options.channels` channels over the socket. `ENOMEM` means the server's
    /// limit was reached; any failure just leaves fewer channels (the socket always works).
    fn open_channels(&self, options: &ClientOptions) {
        if options.channels == 0 || !self.supports(Mid::Channel) {
            return;
        }
        // Watching from before the first handshake: a server that dies during one must not
        // leave the caller waiting on the channel forever.
        let watched = self.conn.lock().sock.as_fd().try_clone_to_owned();
        if let Err(err) = watched.and_then(|fd| self.channels.watch(fd)) {
            tracing::warn!(%err, "no watchdog: channels may hang if the server dies");
        }
        for _ in 0..options.channels {
            match self.open_channel(options) {
                Ok(channel) => self.channels.add(channel),
                Err(err) => {
                    if err.errno() != Errno::ENOMEM {
                        tracing::debug!(%err, "channel creation failed; using the socket");
                    }
                    break;
                }
            }
        }
    }

    fn open_channel(&self, options: &ClientOptions) -> Result<Channel> {
        let (resp, fds) = exchange(
            &mut self.conn.lock(),
            self.max_message_size,
            &ChannelReq {},
            typed::<ChannelReq>,
        )?;
        let [memfd, sock]: [OwnedFd; 2] = fds
            .try_into()
            .map_err(|_| Error::protocol(Errno::EBADF, "Channel response without its two FDs"))?;
        let mut channel = Channel::open(&resp, &memfd, sock, options.spin)
            .map_err(|err| Error::protocol(Errno::EIO, format!("channel: {err}")))?;
        self.channels.guard(&channel);
        channel
            .connect()
            .map_err(|err| Error::protocol(Errno::EIO, format!("channel handshake: {err}")))?;
        Ok(channel)
    }

    pub(crate) fn supports(&self, mid: Mid) -> bool {
        self.supported.contains(mid.as_u16())
    }

    pub(crate) fn max_message_size(&self) -> u32 {
        self.max_message_size
    }

    /// Queues `id` for Close; sends the batch once it holds [`CLOSE_BATCH`] IDs. Called
    /// from `Drop`, so failures are only logged (the server drops every FDID with the
    /// connection anyway).
    pub(crate) fn release(&self, id: FdId) {
        if id == FdId::INVALID {
            return;
        }
        let batch = {
            let mut queue = self.closes.lock();
            queue.push(id);
            if queue.len() < CLOSE_BATCH {
                return;
            }
            mem::take(&mut *queue)
        };
        if let Err(err) = self.send_closes(&batch) {
            tracing::debug!(%err, count = batch.len(), "batched Close failed");
        }
    }

    fn flush_closes(&self) -> Result<()> {
        let batch = mem::take(&mut *self.closes.lock());
        self.send_closes(&batch)
    }

    /// Sends `ids` in as few Close RPCs as the u16 count and the message limit allow.
    fn send_closes(&self, ids: &[FdId]) -> Result<()> {
        let fit = usize::try_from(self.max_message_size.saturating_sub(2) / 8).unwrap_or(0);
        let per_rpc = fit.clamp(1, usize::from(u16::MAX));
        for chunk in ids.chunks(per_rpc) {
            self.call(&CloseReq {
                fds: chunk.to_vec(),
            })?;
        }
        Ok(())
    }

    pub(crate) fn fsync(&self, fds: Vec<FdId>) -> Result<()> {
        self.call(&FSyncReq { fds }).map(drop)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Handles that outlived the Client queued their IDs after its final flush.
        if let Err(err) = self.flush_closes() {
            tracing::debug!(%err, "Close on connection teardown failed");
        }
        // Ends the connection for the server (which tears down its channels) and wakes the
        // watchdog.
        self.conn.lock().sock.shutdown();
    }
}

/// Reads of at least this many bytes go out in pieces on two channels at once
/// ([`Inner::pread_split`]).
const SPLIT_READ_MIN: usize = 256 * 1024;

/// How many pieces such a read is cut into (each at most the server's chunk, in whole
/// pages). While we copy a piece out of one window the server reads the next into the
/// other, so the read takes about one piece's time more than the copying alone.
const SPLIT_READ_PIECES: usize = 4;

/// A request as this client sends it: any request type, or a borrowed form of one.
pub(crate) trait Encode {
    /// The request type it travels as (its MID and its response).
    type As: Request;

    /// Appends its encoding to `buf`, all but [`Encode::tail`].
    fn encode_into(&self, buf: &mut Vec<u8>) -> std::result::Result<(), EncodeError>;

    /// The end of the encoding, sent from where it is after what `encode_into` wrote.
    fn tail(&self) -> &[u8] {
        &[]
    }
}

impl<R: Request> Encode for R {
    type As = R;

    fn encode_into(&self, buf: &mut Vec<u8>) -> std::result::Result<(), EncodeError> {
        encode_into(self, buf)
    }
}

/// A PWrite whose data goes from the caller's buffer straight into the window or the
/// socket.
pub(crate) struct PWriteFrom<'a>(pub(crate) PWriteData<'a>);

impl Encode for PWriteFrom<'_> {
    type As = PWriteReq;

    fn encode_into(&self, buf: &mut Vec<u8>) -> std::result::Result<(), EncodeError> {
        self.0.encode_fixed_into(buf)
    }

    fn tail(&self) -> &[u8] {
        self.0.data
    }
}

/// Encodes a request into `buf` and checks it, with its tail, against the server's limit.
fn encode_request<E: Encode>(buf: &mut Vec<u8>, max: u32, req: &E) -> Result<()> {
    buf.clear();
    // The only encode failure is a string or list too long for its length prefix.
    req.encode_into(buf)
        .map_err(|_| Error::local(Errno::E2BIG))?;
    if buf.len() + req.tail().len() > usize::try_from(max).unwrap_or(usize::MAX) {
        return Err(Error::local(Errno::EIO));
    }
    Ok(())
}

/// One RPC on the socket: encode, size-check, send, receive, decode (SPEC.md §8.3).
fn exchange<E: Encode, T>(
    conn: &mut Conn,
    max: u32,
    req: &E,
    decode: impl FnOnce(&[u8]) -> Result<T>,
) -> Result<(T, Vec<OwnedFd>)> {
    send_request(conn, max, req)?;
    match conn.sock.recv(max, E::As::MID.response_fds()) {
        Ok(frame) => decode_response::<E::As, T>(frame, decode),
        // Includes an oversized response: its payload is still in the stream. After a
        // timeout the late response may still arrive, so the stream is out of sync too.
        Err(err) => Err(broken(conn, err)),
    }
}

/// Encodes `req` and sends it on the socket; a failed send breaks the connection.
fn send_request<E: Encode>(conn: &mut Conn, max: u32, req: &E) -> Result<()> {
    if conn.broken {
        return Err(Error::transport("connection broken by an earlier failure"));
    }
    encode_request(&mut conn.buf, max, req)?;
    let parts = [&conn.buf[..], req.tail()];
    conn.sock
        .send_parts(E::As::MID.as_u16(), parts, &[])
        .map_err(|err| broken(conn, err))
}

/// Marks the connection unusable after `err`, which left the stream out of step, and
/// says why.
fn broken(conn: &mut Conn, err: SocketError) -> Error {
    conn.broken = true;
    socket_failure(err)
}

/// [`exchange`] for a PRead, the data read from the socket straight into `dest` (results
/// as [`Inner::pread_into`]'s); an error response is received and decoded as usual.
fn pread_on_socket(
    conn: &mut Conn,
    max: u32,
    req: &PReadReq,
    dest: &mut [u8],
) -> Result<Result<usize>> {
    send_request(conn, max, req)?;
    let split = (Mid::PRead.as_u16(), PReadResp::HEADER_SIZE);
    match conn.sock.recv_split(max, 0, split, dest) {
        Ok((frame, Some(room))) => {
            let mut header = [0u8; PReadResp::HEADER_SIZE];
            header.copy_from_slice(frame.payload);
            Ok(pread_count(header, room))
        }
        Ok((frame, None)) => {
            decode_response::<PReadReq, _>(frame, |payload| Ok(read_into(dest, payload)))
                .map(|(read, _)| read)
        }
        Err(err) => Err(broken(conn, err)),
    }
}

/// The byte count a PRead response's `header` gives, checked against the `room` its data
/// has after it.
fn pread_count(header: [u8; PReadResp::HEADER_SIZE], room: usize) -> Result<usize> {
    let n = usize::try_from(u64::from_le_bytes(header)).unwrap_or(usize::MAX);
    if n > room {
        let what = format!("PRead response claims {n} bytes in {room}");
        return Err(Error::protocol(Errno::EIO, what));
    }
    Ok(n)
}

/// The transport error for a failed socket call. The socket blocks, so `EAGAIN` can only
/// come from a deadline the owner set on it (`SO_RCVTIMEO`/`SO_SNDTIMEO`, e.g. with
/// `UnixStream::set_read_timeout` before [`Client::from_fd`]): that becomes
/// [`Error::is_timeout`] rather than a plain `EIO`, so a caller can tell a silent server
/// from one that went away.
fn socket_failure(err: SocketError) -> Error {
    match err {
        SocketError::Io(errno) if Errno::from(errno) == Errno::EAGAIN => Error::timeout(err),
        err => Error::transport(err),
    }
}

/// One RPC on a channel. Also says whether the channel is still usable: after a transport
/// failure it is dead and must not go back to the pool.
fn exchange_channel<E: Encode, T>(
    pooled: &mut Pooled,
    max: u32,
    req: &E,
    decode: impl FnOnce(&[u8]) -> Result<T>,
) -> (Result<(T, Vec<OwnedFd>)>, bool) {
    if let Err(err) = encode_request(&mut pooled.buf, max, req) {
        return (Err(err), true);
    }
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let Pooled { channel, buf } = pooled;
    let mid = E::As::MID;
    match channel.call_parts(mid.as_u16(), [buf, req.tail()], mid.response_fds(), max) {
        Ok(frame) => (decode_response::<E::As, T>(frame, decode), true),
        Err(err) => (Err(Error::transport(err)), false),
    }
}

/// [`exchange_channel`] for a PRead, the data copied from the window straight into
/// `dest`; any other response (an error) is copied out and decoded as usual.
fn pread_on_channel(
    pooled: &mut Pooled,
    max: u32,
    req: &PReadReq,
    dest: &mut [u8],
) -> (Result<Result<usize>>, bool) {
    match start_pread(pooled, max, req) {
        (Ok(()), _) => finish_pread(pooled, max, dest),
        (Err(err), alive) => (Err(err), alive),
    }
}

/// Sends a PRead on `pooled` without waiting for it; [`finish_pread`] takes the response.
/// After an error nothing is outstanding; the flag says whether the channel still works.
fn start_pread(pooled: &mut Pooled, max: u32, req: &PReadReq) -> (Result<()>, bool) {
    if let Err(err) = encode_request(&mut pooled.buf, max, req) {
        return (Err(err), true);
    }
    let Pooled { channel, buf } = pooled;
    match channel.start(Mid::PRead.as_u16(), buf) {
        Ok(()) => (Ok(()), true),
        Err(err) => (Err(Error::transport(err)), false),
    }
}

/// The response to the PRead [`start_pread`] sent, its data copied into `dest` (results
/// as [`Inner::pread_into`]'s); the flag says whether the channel still works.
fn finish_pread(pooled: &mut Pooled, max: u32, dest: &mut [u8]) -> (Result<Result<usize>>, bool) {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let mid = Mid::PRead.as_u16();
    let result = pooled.channel.finish_in_place(0, max, |incoming| {
        if incoming.mid() == mid {
            return Ok(read_in_place(dest, &incoming));
        }
        let mid = incoming.mid();
        let payload = incoming.payload().map_err(Error::transport)?;
        let frame = Frame {
            mid,
            payload,
            fds: Vec::new(),
        };
        decode_response::<PReadReq, _>(frame, |payload| Ok(read_into(dest, payload)))
            .map(|(read, _)| read)
    });
    match result {
        Ok((read, _)) => (read, true),
        Err(err) => (Err(Error::transport(err)), false),
    }
}

/// Copies the data of the PRead response still in the window into the start of `dest`,
/// after checking its count against the payload and `dest`; the number of bytes.
fn read_in_place(dest: &mut [u8], incoming: &Incoming<'_>) -> Result<usize> {
    let bad = |what: String| Error::protocol(Errno::EIO, what);
    let mut header = [0u8; PReadResp::HEADER_SIZE];
    incoming
        .copy_to(0, &mut header)
        .map_err(|_| bad(format!("PRead response of {} bytes", incoming.len())))?;
    let n = pread_count(header, incoming.len() - PReadResp::HEADER_SIZE)?;
    let Some(dest) = dest.get_mut(..n) else {
        return Err(bad(format!("PRead of {} bytes returned {n}", dest.len())));
    };
    incoming
        .copy_to(PReadResp::HEADER_SIZE, dest)
        .map_err(Error::transport)?;
    Ok(n)
}

/// Turns a response frame into what `decode` makes of its payload, or the error it
/// carries.
fn decode_response<R: Request, T>(
    frame: Frame<'_>,
    payload: impl FnOnce(&[u8]) -> Result<T>,
) -> Result<(T, Vec<OwnedFd>)> {
    let mid = R::MID.as_u16();
    if frame.mid == Mid::Error.as_u16() {
        // Any FDs that came with an error response are closed when `frame` drops.
        let resp: ErrorResp = decode(frame.payload)
            .map_err(|err| Error::protocol(Errno::EIO, format!("bad ErrorResp: {err}")))?;
        if resp.errno == Errno(0) {
            return Err(Error::protocol(Errno::EIO, "ErrorResp with errno 0"));
        }
        return Err(Error::remote(resp.errno));
    }
    if frame.mid != mid {
        return Err(Error::protocol(
            Errno::EINVAL,
            format!("response MID {} to request MID {mid}", frame.mid),
        ));
    }
    Ok((payload(frame.payload)?, frame.fds))
}

/// The payload decoded as `R`'s response type.
pub(crate) fn typed<R: Request>(payload: &[u8]) -> Result<R::Response> {
    decode::<R::Response>(payload)
        .map_err(|err| Error::protocol(Errno::EIO, format!("bad {:?} response: {err}", R::MID)))
}
