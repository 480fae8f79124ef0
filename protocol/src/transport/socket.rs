//! Framing over an AF_UNIX `SOCK_STREAM` socket: `[SocketHeader][payload]`, with donated
//! FDs as one `SCM_RIGHTS` message on the first `sendmsg` of a frame.
//!
//! The receiver sizes its control buffer from the number of FDs the MID may carry (the
//! header has no FD count), accepts FDs only with the first bytes of the header, marks them
//! close-on-exec as they arrive, and closes any beyond what it asked for. A frame that may
//! carry no FD is read with whatever follows it, up to a 16 KiB read-ahead, so a small one
//! costs one system call. A payload longer than the caller's limit is reported before more
//! of it than that read-ahead is read, and is never buffered. Before it blocks for a
//! frame, the receiver polls for a short adaptive time ([`SpinPolicy`]): a blocking
//! wake-up costs far more than a round trip to a busy peer.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{
    recv, recvmsg, sendmsg, socketpair, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage,
    RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use zerocopy::IntoBytes;

use crate::transport::retry_intr;
use crate::transport::spin::{AdaptiveSpin, SpinPolicy, SHORT_FLOOR};
use crate::wire::{SocketHeader, MAX_MESSAGE_SIZE};

/// The most FDs one frame may carry. No lisafs message donates more than two.
pub const MAX_FDS: usize = 4;

/// Scratch size used to skip an oversized payload without buffering it.
const DISCARD_CHUNK: usize = 64 * 1024;

/// The receive buffer's smallest size, and so the most a frame without FDs may be read
/// ahead of its header: a whole small frame (nearly every request and response, a 4 KiB
/// write included) then arrives in one system call instead of two.
const READ_AHEAD: usize = 16 * 1024;

/// Why a frame could not be sent or received.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The peer closed the connection between frames.
    #[error("connection closed by peer")]
    Closed,
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed mid-message ({received} of {expected} bytes)")]
    UnexpectedEof {
        /// Bytes of the header or payload received.
        received: usize,
        /// Bytes that were due.
        expected: usize,
    },
    /// The payload is longer than allowed. On receive, the payload is still unread: the
    /// caller may [`FramedSocket::discard`] it to stay in sync, or close the connection.
    #[error("payload of {len} bytes for MID {mid} exceeds the limit of {max}")]
    Oversized {
        /// The frame's raw MID.
        mid: u16,
        /// Its declared payload length.
        len: u64,
        /// The limit it broke.
        max: u64,
    },
    /// More FDs than [`MAX_FDS`] were given to send.
    #[error("cannot send {0} FDs in one frame (at most {MAX_FDS})")]
    TooManyFds(usize),
    /// The socket call failed.
    #[error("socket I/O failed: {0}")]
    Io(#[from] Errno),
}

/// A received frame. The payload borrows the socket's receive buffer.
#[derive(Debug)]
pub struct Frame<'a> {
    /// The raw MID from the header (unknown values included, so they can be answered).
    pub mid: u16,
    /// The payload.
    pub payload: &'a [u8],
    /// Donated FDs, close-on-exec, at most the number asked for; fewer if the peer sent
    /// fewer.
    pub fds: Vec<OwnedFd>,
}

/// One end of a lisafs socket connection.
#[derive(Debug)]
pub struct FramedSocket {
    fd: OwnedFd,
    /// Receive buffer; `buf[start..end]` was received and not yet consumed. Its length
    /// only grows (to the largest payload accepted so far, at least [`READ_AHEAD`]), so it
    /// is zero-filled once rather than per frame.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    spin: AdaptiveSpin,
}

impl FramedSocket {
    /// Wraps a connected `SOCK_STREAM` Unix socket and asks for a send buffer of
    /// [`SEND_BUFFER`] bytes.
    pub fn new(fd: OwnedFd) -> Self {
        Self::with_spin(fd, SpinPolicy::default())
    }

    /// [`FramedSocket::new`] for a socket whose receiver polls as `policy` allows before
    /// blocking.
    pub fn with_spin(fd: OwnedFd, policy: SpinPolicy) -> Self {
        // Best effort: a smaller buffer only costs speed (and `fd` may not be a socket).
        let _ = rustix::net::sockopt::set_socket_send_buffer_size(&fd, SEND_BUFFER);
        Self {
            fd,
            buf: Vec::new(),
            start: 0,
            end: 0,
            spin: AdaptiveSpin::new(policy),
        }
    }

    /// How long this end polls for a frame before it blocks.
    pub fn spin(&self) -> SpinPolicy {
        self.spin.policy()
    }

    /// Polls as `policy` allows from the next receive on (a server learns at Mount
    /// whether polling pays with this client).
    pub fn set_spin(&mut self, policy: SpinPolicy) {
        self.spin = AdaptiveSpin::new(policy);
    }

    /// A connected pair, both ends close-on-exec.
    pub fn pair() -> Result<(Self, Self), SocketError> {
        let (a, b) = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        Ok((Self::new(a), Self::new(b)))
    }

    /// Bytes held by the receive buffer: the largest payload accepted so far, the
    /// read-ahead (16 KiB) or one discard chunk (64 KiB), whichever is largest; an
    /// oversized payload is never buffered.
    pub fn recv_buffer_len(&self) -> usize {
        self.buf.len()
    }

    /// Shuts the connection down in both directions: the peer sees end of file, and a
    /// thread blocked in [`wait_for_hangup`] on this socket wakes.
    pub fn shutdown(&self) {
        let _ = rustix::net::shutdown(&self.fd, rustix::net::Shutdown::Both);
    }

    /// Gives the socket back.
    pub fn into_inner(self) -> OwnedFd {
        self.fd
    }

    /// Sends one frame. `fds` travel with the first bytes; they remain the caller's (the
    /// kernel duplicates them into the peer).
    pub fn send(
        &self,
        mid: u16,
        payload: &[u8],
        fds: &[BorrowedFd<'_>],
    ) -> Result<(), SocketError> {
        self.send_parts(mid, [payload, &[]], fds)
    }

    /// [`FramedSocket::send`] with the payload in two parts, written back to back (a
    /// request's fixed part, then data from the caller's buffer, with no copy of their
    /// own in between).
    pub fn send_parts(
        &self,
        mid: u16,
        parts: [&[u8]; 2],
        fds: &[BorrowedFd<'_>],
    ) -> Result<(), SocketError> {
        let len = parts[0].len() + parts[1].len();
        let payload_len = u32::try_from(len).map_err(|_| SocketError::Oversized {
            mid,
            len: len as u64,
            max: u32::MAX.into(),
        })?;
        if fds.len() > MAX_FDS {
            return Err(SocketError::TooManyFds(fds.len()));
        }
        let header = SocketHeader {
            payload_len,
            mid,
            _pad: 0,
        };
        let mut iov = [
            IoSlice::new(header.as_bytes()),
            IoSlice::new(parts[0]),
            IoSlice::new(parts[1]),
        ];
        let mut pending = &mut iov[..];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() {
            // Cannot fail: the buffer has room for MAX_FDS and we checked the count.
            control.push(SendAncillaryMessage::ScmRights(fds));
        }
        while !pending.is_empty() {
            let sent =
                retry_intr(|| sendmsg(&self.fd, pending, &mut control, SendFlags::NOSIGNAL))?;
            if sent == 0 {
                return Err(SocketError::Closed);
            }
            // The FDs went with the first bytes; continuation writes carry none.
            control.clear();
            IoSlice::advance_slices(&mut pending, sent);
        }
        Ok(())
    }

    /// Receives one frame whose payload may be at most `max_payload` bytes, accepting up to
    /// `want_fds` donated FDs (more than [`MAX_FDS`] is treated as [`MAX_FDS`]).
    pub fn recv(&mut self, max_payload: u32, want_fds: usize) -> Result<Frame<'_>, SocketError> {
        let (mid, len, fds) = self.next_header(max_payload, want_fds)?;
        self.whole_payload(mid, len, fds)
    }

    /// Receives one frame as [`recv`](Self::recv) does, except that the payload of a frame
    /// of MID `split_mid` is split after its first `head` bytes when the rest fits `dest`:
    /// the head is the frame's payload and the rest is read straight into the front of
    /// `dest` (most of it without passing through the receive buffer), its length returned
    /// beside the frame. Any other frame is received whole, with `None`. This spares a
    /// copy of a long PRead response's data.
    pub fn recv_split(
        &mut self,
        max_payload: u32,
        want_fds: usize,
        (split_mid, head): (u16, usize),
        dest: &mut [u8],
    ) -> Result<(Frame<'_>, Option<usize>), SocketError> {
        let (mid, len, fds) = self.next_header(max_payload, want_fds)?;
        let rest = len.checked_sub(head).filter(|&rest| rest <= dest.len());
        let (Some(rest), true) = (rest, mid == split_mid) else {
            return Ok((self.whole_payload(mid, len, fds)?, None));
        };
        self.fill(head)?;
        let payload = self.start..self.start + head;
        self.start += head;
        // Whatever of the rest the read-ahead already holds, then the remainder directly.
        let buffered = (self.end - self.start).min(rest);
        dest[..buffered].copy_from_slice(&self.buf[self.start..self.start + buffered]);
        self.start += buffered;
        read_payload_end(&self.fd, &mut dest[buffered..rest], len)?;
        let frame = Frame {
            mid,
            payload: &self.buf[payload],
            fds,
        };
        Ok((frame, Some(rest)))
    }

    /// Reads the next header (with the FDs that came with it) and checks its length
    /// against `max_payload`: the MID and the payload's length.
    fn next_header(
        &mut self,
        max_payload: u32,
        want_fds: usize,
    ) -> Result<(u16, usize, Vec<OwnedFd>), SocketError> {
        let fds = self.fill_header(want_fds.min(MAX_FDS))?;
        let mut raw = [0u8; SocketHeader::SIZE];
        raw.copy_from_slice(&self.buf[self.start..self.start + SocketHeader::SIZE]);
        let header: SocketHeader = zerocopy::transmute!(raw);
        self.start += SocketHeader::SIZE;
        if header.payload_len > max_payload {
            return Err(SocketError::Oversized {
                mid: header.mid,
                len: header.payload_len.into(),
                max: max_payload.into(),
            });
        }
        let len = usize::try_from(header.payload_len).unwrap_or(usize::MAX);
        Ok((header.mid, len, fds))
    }

    /// The frame whose header [`next_header`](Self::next_header) read, its payload of
    /// `len` bytes in the receive buffer.
    fn whole_payload(
        &mut self,
        mid: u16,
        len: usize,
        fds: Vec<OwnedFd>,
    ) -> Result<Frame<'_>, SocketError> {
        self.fill(len)?;
        let payload = self.start..self.start + len;
        self.start += len;
        Ok(Frame {
            mid,
            payload: &self.buf[payload],
            fds,
        })
    }

    /// Reads and drops `len` payload bytes (after [`SocketError::Oversized`]): first what
    /// was already read ahead, then the rest through a fixed-size scratch buffer, so the
    /// stream stays in sync without buffering them.
    pub fn discard(&mut self, len: u64) -> Result<(), SocketError> {
        let buffered = (self.end - self.start).min(usize::try_from(len).unwrap_or(usize::MAX));
        self.start += buffered;
        let mut left = len - buffered as u64;
        if left == 0 {
            return Ok(());
        }
        // Everything read ahead is consumed: the scratch reads may reuse the whole buffer.
        (self.start, self.end) = (0, 0);
        let chunk = DISCARD_CHUNK.min(usize::try_from(left).unwrap_or(usize::MAX));
        if self.buf.len() < chunk {
            self.buf.resize(chunk, 0);
        }
        while left > 0 {
            let n = chunk.min(usize::try_from(left).unwrap_or(usize::MAX));
            read_exact(&self.fd, &mut self.buf[..n])?;
            left -= n as u64;
        }
        Ok(())
    }

    /// Makes the next frame's header the first [`SocketHeader::SIZE`] unconsumed bytes
    /// and returns the FDs that came with it.
    ///
    /// FDs are accepted only from the read that returns the header's first byte: that is
    /// where the sender attached them. A frame that carries none (`want_fds` 0: every
    /// request, most responses) is read together with its payload, and with whatever
    /// follows it, up to the buffer's size, in one call: the kernel closes any FD sent
    /// with bytes read this way, as no control buffer is offered. A frame that may carry
    /// FDs is read to the end of its header only, so no later frame's FDs can come with
    /// it.
    fn fill_header(&mut self, want_fds: usize) -> Result<Vec<OwnedFd>, SocketError> {
        if self.end - self.start >= SocketHeader::SIZE {
            return Ok(Vec::new());
        }
        self.compact(READ_AHEAD);
        let fresh = self.start == self.end;
        let limit = match want_fds {
            0 => self.buf.len(),
            _ => SocketHeader::SIZE,
        };
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let control_len = if want_fds == 0 {
            0
        } else {
            rustix::cmsg_space!(ScmRights(want_fds))
        };
        let mut control = RecvAncillaryBuffer::new(&mut space[..control_len]);
        let started = Instant::now();
        let spin_until = self.spin.deadline(started, SHORT_FLOOR, Duration::MAX);
        let got = loop {
            let polling = Instant::now() < spin_until;
            let flags = if polling {
                RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT
            } else {
                RecvFlags::CMSG_CLOEXEC
            };
            let mut iov = [IoSliceMut::new(&mut self.buf[self.end..limit])];
            match recvmsg(&self.fd, &mut iov, &mut control, flags) {
                Ok(received) => break received.bytes,
                // Yield between looks from the first: a socket cannot tell whether its peer
                // shares this CPU (a packing kernel puts both ends on one), and then every
                // microsecond of pure spinning delays the answer; elsewhere a look costs
                // a system call more.
                Err(Errno::AGAIN) if polling => std::thread::yield_now(),
                Err(Errno::INTR) => {}
                Err(err) => return Err(err.into()),
            }
        };
        self.spin.record(started.elapsed());
        let mut fds = Vec::new();
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = msg {
                // Anything past what we asked for is dropped here, which closes it, and
                // so is all of it if the header began in an earlier read.
                if fresh {
                    fds.extend(received.take(want_fds - fds.len()));
                }
            }
        }
        if got == 0 && fresh {
            return Err(SocketError::Closed);
        }
        self.end += got;
        while got != 0 && self.end - self.start < SocketHeader::SIZE {
            let n =
                retry_intr(|| recv(&self.fd, &mut self.buf[self.end..limit], RecvFlags::empty()))?
                    .0;
            if n == 0 {
                break;
            }
            self.end += n;
        }
        let received = self.end - self.start;
        if received < SocketHeader::SIZE {
            return Err(SocketError::UnexpectedEof {
                received,
                expected: SocketHeader::SIZE,
            });
        }
        Ok(fds)
    }

    /// Makes the first `len` unconsumed bytes the payload, reading what is missing of it
    /// (and nothing beyond it).
    fn fill(&mut self, len: usize) -> Result<(), SocketError> {
        let have = self.end - self.start;
        if have >= len {
            return Ok(());
        }
        self.compact(len);
        let end = self.start + len;
        read_payload_end(&self.fd, &mut self.buf[self.end..end], len)?;
        self.end = end;
        Ok(())
    }

    /// Moves the unconsumed bytes to the front of the buffer and makes it at least
    /// `len` bytes long.
    fn compact(&mut self, len: usize) {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
    }
}

/// The send buffer each end asks for: one largest frame. With the kernel's default
/// (208 KiB) a 1 MiB PRead response left the sender asleep five times in the middle of the
/// frame, each time until the reader had drained the buffer and woken it (the median
/// socket PRead of 1 MiB took 450–485 µs, its p99 3.1–3.5 ms; with this buffer 335–370 µs
/// and 0.6 ms, benches/README.md). The kernel caps it at `net.core.wmem_max` and doubles
/// it for its own bookkeeping; it bounds what a frame may queue, nothing is allocated up
/// front.
pub const SEND_BUFFER: usize = SocketHeader::SIZE + MAX_MESSAGE_SIZE as usize;

impl AsFd for FramedSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Blocks until the peer of the connected socket `fd` hangs up or the socket is shut
/// down (`POLLHUP`/`POLLRDHUP`). Incoming data does not wake it, so it can watch a socket
/// other threads are using.
pub fn wait_for_hangup(fd: BorrowedFd<'_>) -> Result<(), SocketError> {
    use rustix::event::{poll, PollFd, PollFlags};
    loop {
        let mut fds = [PollFd::new(&fd, PollFlags::RDHUP)];
        retry_intr(|| poll(&mut fds, None))?;
        let seen = fds[0].revents();
        if seen.intersects(PollFlags::HUP | PollFlags::RDHUP | PollFlags::ERR | PollFlags::NVAL) {
            return Ok(());
        }
    }
}

/// Fills `buf` completely. Any FDs attached to these bytes are discarded by the kernel,
/// which closes them, because no control buffer is offered.
fn read_exact(fd: &OwnedFd, buf: &mut [u8]) -> Result<(), SocketError> {
    let mut got = 0;
    while got < buf.len() {
        let (n, _) = retry_intr(|| recv(fd, &mut buf[got..], RecvFlags::empty()))?;
        if n == 0 {
            return Err(SocketError::UnexpectedEof {
                received: got,
                expected: buf.len(),
            });
        }
        got += n;
    }
    Ok(())
}

/// [`read_exact`] for the last `buf.len()` bytes of a `len`-byte payload whose start is
/// in hand: an early end says how much of the whole payload came.
fn read_payload_end(fd: &OwnedFd, buf: &mut [u8], len: usize) -> Result<(), SocketError> {
    let had = len - buf.len();
    read_exact(fd, buf).map_err(|err| match err {
        SocketError::UnexpectedEof { received, .. } => SocketError::UnexpectedEof {
            received: had + received,
            expected: len,
        },
        err => err,
    })
}
