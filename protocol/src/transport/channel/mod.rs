//! Shared-memory channels (gVisor's flipcall), SPEC.md §9.
//!
//! A channel is a packet window in a sealed memfd, mapped by both sides, plus a
//! `SOCK_SEQPACKET` pair for donated FDs. The window starts with a 16-byte header (the
//! state word the sides take turns on, and the data length), then the data area: the
//! 4-byte [`ChannelHeader`] and the payload. One RPC is: the client writes the request and
//! hands the turn to the server; the server copies the request out (the client may still
//! be scribbling on it; only a PWrite's data stays, for the kernel to write to the file
//! from the window), handles it, sends any FDs on the side socket, writes the response
//! and hands the turn back.
//!
//! - `shm`: the mapping; the only `unsafe` in this crate.
//! - `endpoint`: turn-taking with spin-then-futex waits ([`SpinPolicy`]).
//! - `fds`: the FD side-channel.

mod endpoint;
mod fds;
mod shm;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use endpoint::{Endpoint, Side};
use shm::Window;
use zerocopy::IntoBytes;

use crate::transport::socket::Frame;
pub use crate::transport::spin::SpinPolicy;
use crate::wire::{ChannelHeader, ChannelResp};

/// The handshake both sides send first: a JSON object (gVisor sends exactly this).
const HANDSHAKE: &[u8] = b"{}\n";

const PAGE: usize = 4096;

/// Why a channel operation failed. Any error leaves the channel unusable: the client marks
/// it dead, the server ends its thread; the connection's socket is unaffected.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// This side or the peer shut the channel down.
    #[error("channel shut down")]
    Shutdown,
    /// The peer broke the protocol (bad state word, data length, handshake or FDs).
    #[error("channel protocol violation: {0}")]
    Protocol(&'static str),
    /// A payload does not fit the window or the caller's limit.
    #[error("payload of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A system call failed.
    #[error("channel I/O: {0}")]
    Io(rustix::io::Errno),
}

/// The window length a server allocates for payloads of up to `max_payload` bytes: the
/// 16-byte header, the 4-byte channel header and the payload, rounded up to a page.
pub fn window_size(max_payload: u32) -> usize {
    (16 + 4 + max_payload as usize).div_ceil(PAGE) * PAGE
}

/// One end of a channel.
#[derive(Debug)]
pub struct Channel {
    endpoint: Arc<Endpoint>,
    fd_socket: OwnedFd,
    /// Receive buffer; grows to the largest message seen and is never zero-filled again.
    buf: Vec<u8>,
    /// Client: a request went out whose response has not been taken yet.
    awaiting: bool,
}

/// Shuts a channel down from any thread, waking whoever waits on it (both sides).
#[derive(Debug, Clone)]
pub struct ChannelShutdown(Arc<Endpoint>);

impl ChannelShutdown {
    /// Ends the channel: current and future waits on either side fail.
    pub fn shutdown(&self) {
        self.0.shutdown();
    }
}

/// What a server creates for one Channel request.
#[derive(Debug)]
pub struct NewChannel {
    /// The server's end.
    pub channel: Channel,
    /// The Channel response describing the window.
    pub resp: ChannelResp,
    /// The FDs to donate, in order: the memfd, then the client's end of the FD socket.
    pub donate: [OwnedFd; 2],
}

/// Server: the answer to one request, sent on the channel it came from; and the part of
/// the request [`Channel::next_request_split`] left in the window, until the answer is
/// written over it.
#[derive(Debug)]
pub struct Reply<'a> {
    endpoint: &'a Endpoint,
    fd_socket: BorrowedFd<'a>,
    /// The request's payload bytes still in the window: where they start in the data
    /// area, and how many.
    rest: (usize, usize),
}

impl Reply<'_> {
    /// Largest payload the window holds.
    pub fn max_payload(&self) -> usize {
        self.endpoint.window.data_capacity() - ChannelHeader::SIZE
    }

    /// Sends `payload` under `mid`; FDs go first, on the side socket.
    pub fn send(
        self,
        mid: u16,
        payload: &[u8],
        donate: &[BorrowedFd<'_>],
    ) -> Result<(), ChannelError> {
        let sent = fds::send(self.fd_socket, donate);
        self.put_message(mid, payload, sent)
    }

    /// Bytes of the request's payload that [`Channel::next_request_split`] left in the
    /// window (0 for a request copied out whole, or once the answer is being written).
    pub fn request_rest(&self) -> usize {
        self.rest.1
    }

    /// Writes the first `len` bytes of the request's payload left in the window to `fd` at
    /// `offset` (`pwrite(2)`); returns the bytes written. The kernel copies them straight
    /// from the window, so they cross no buffer of ours; the peer may change them until
    /// then, and the file gets what it left there (they are never looked at). `EINVAL`
    /// for more than was left.
    pub fn pwrite_from_request(
        &self,
        len: usize,
        fd: BorrowedFd<'_>,
        offset: u64,
    ) -> Result<usize, ChannelError> {
        let at = self.rest_start(len)?;
        self.endpoint
            .window
            .pwrite_from(at, len, fd, offset)
            .map_err(ChannelError::Io)
    }

    /// Copies the first `dst.len()` bytes of the request's payload left in the window into
    /// `dst`; `EINVAL` for more than was left.
    pub fn copy_request_rest(&self, dst: &mut [u8]) -> Result<(), ChannelError> {
        let at = self.rest_start(dst.len())?;
        self.endpoint
            .window
            .read_data(at, dst)
            .map_err(ChannelError::Io)
    }

    /// Where the request's rest starts in the data area, if `len` bytes of it are left.
    fn rest_start(&self, len: usize) -> Result<usize, ChannelError> {
        match len <= self.rest.1 {
            true => Ok(self.rest.0),
            false => Err(ChannelError::Io(rustix::io::Errno::INVAL)),
        }
    }

    /// Reads up to `len` bytes of `fd` from `offset` straight into the payload area,
    /// `at` bytes into the payload, for [`Reply::send_in_place`]; returns the bytes read.
    /// File data then crosses no buffer of ours. Nothing is sent yet.
    pub fn pread_into_payload(
        &mut self,
        at: usize,
        len: usize,
        fd: BorrowedFd<'_>,
        offset: u64,
    ) -> Result<usize, ChannelError> {
        self.rest = (0, 0);
        self.endpoint
            .window
            .pread_into(ChannelHeader::SIZE + at, len, fd, offset)
            .map_err(ChannelError::Io)
    }

    /// Copies `bytes` into the payload area, `at` bytes into the payload.
    pub fn write_payload(&mut self, at: usize, bytes: &[u8]) -> Result<(), ChannelError> {
        self.rest = (0, 0);
        self.endpoint
            .window
            .write_data(ChannelHeader::SIZE + at, bytes)
            .map_err(ChannelError::Io)
    }

    /// Sends under `mid` the first `len` bytes of the payload area, as written by
    /// [`Reply::write_payload`] and [`Reply::pread_into_payload`]. No FDs.
    pub fn send_in_place(self, mid: u16, len: usize) -> Result<(), ChannelError> {
        self.hand_over(mid, len, 0)
    }

    fn put_message(&self, mid: u16, payload: &[u8], num_fds: u8) -> Result<(), ChannelError> {
        self.put_parts(mid, &[payload], num_fds)
    }

    /// Sends `parts` back to back as one payload under `mid`.
    fn put_parts(&self, mid: u16, parts: &[&[u8]], num_fds: u8) -> Result<(), ChannelError> {
        let len = parts.iter().map(|part| part.len()).sum();
        if len <= self.max_payload() {
            let mut at = ChannelHeader::SIZE;
            for part in parts {
                self.endpoint
                    .window
                    .write_data(at, part)
                    .map_err(ChannelError::Io)?;
                at += part.len();
            }
        }
        self.hand_over(mid, len, num_fds)
    }

    /// Writes the header of a `len`-byte payload already in place and hands over the turn.
    fn hand_over(&self, mid: u16, len: usize, num_fds: u8) -> Result<(), ChannelError> {
        if len > self.max_payload() {
            return Err(ChannelError::TooLarge {
                len,
                max: self.max_payload(),
            });
        }
        self.put_header(mid, num_fds)?;
        self.endpoint.send(ChannelHeader::SIZE + len)
    }

    fn put_header(&self, mid: u16, num_fds: u8) -> Result<(), ChannelError> {
        let header = ChannelHeader {
            mid,
            num_fds,
            _pad: 0,
        };
        self.endpoint
            .window
            .write_data(0, header.as_bytes())
            .map_err(ChannelError::Io)
    }
}

/// Client: a response still in the window ([`Channel::call_in_place`]). The peer may
/// change the window at any time, so nothing is read from it but by copying out.
#[derive(Debug)]
pub struct Incoming<'a> {
    mid: u16,
    len: usize,
    window: &'a Window,
    buf: &'a mut Vec<u8>,
}

impl<'a> Incoming<'a> {
    /// The response's MID.
    pub fn mid(&self) -> u16 {
        self.mid
    }

    /// The payload's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `dst.len()` payload bytes from `at` into `dst`; `EINVAL` past the payload.
    pub fn copy_to(&self, at: usize, dst: &mut [u8]) -> Result<(), ChannelError> {
        match at.checked_add(dst.len()) {
            Some(end) if end <= self.len => self
                .window
                .read_data(ChannelHeader::SIZE + at, dst)
                .map_err(ChannelError::Io),
            _ => Err(ChannelError::Io(rustix::io::Errno::INVAL)),
        }
    }

    /// The whole payload, copied out into the channel's receive buffer.
    pub fn payload(self) -> Result<&'a [u8], ChannelError> {
        if self.buf.len() < self.len {
            self.buf.resize(self.len, 0);
        }
        let buf = &mut self.buf[..self.len];
        self.window
            .read_data(ChannelHeader::SIZE, buf)
            .map_err(ChannelError::Io)?;
        Ok(buf)
    }
}

impl Channel {
    /// Server: a new channel whose window holds payloads of up to `max_payload` bytes.
    pub fn create(max_payload: u32, policy: SpinPolicy) -> Result<NewChannel, ChannelError> {
        let len = window_size(max_payload);
        let memfd = Window::create_memfd(len).map_err(ChannelError::Io)?;
        let window = Window::map(&memfd, 0, len).map_err(ChannelError::Io)?;
        let (server_sock, client_sock) = fds::pair().map_err(ChannelError::Io)?;
        let resp = ChannelResp {
            data_offset: 0,
            data_length: len as u64,
        };
        Ok(NewChannel {
            channel: Self::new(window, Side::Server, policy, server_sock),
            resp,
            donate: [memfd, client_sock],
        })
    }

    /// Client: the channel a Channel response describes, from its two donated FDs. The
    /// memfd can be closed afterwards; the mapping keeps the memory.
    pub fn open(
        resp: &ChannelResp,
        memfd: impl AsFd,
        fd_socket: OwnedFd,
        policy: SpinPolicy,
    ) -> Result<Self, ChannelError> {
        let offset = u64::try_from(resp.data_offset)
            .map_err(|_| ChannelError::Protocol("negative window offset"))?;
        let len = usize::try_from(resp.data_length).unwrap_or(usize::MAX);
        if len < PAGE || len > u32::MAX as usize {
            return Err(ChannelError::Protocol("window size out of range"));
        }
        let window = Window::map(memfd, offset, len).map_err(ChannelError::Io)?;
        Ok(Self::new(window, Side::Client, policy, fd_socket))
    }

    fn new(window: Window, side: Side, policy: SpinPolicy, fd_socket: OwnedFd) -> Self {
        Self {
            endpoint: Arc::new(Endpoint::new(window, side, policy)),
            fd_socket,
            buf: Vec::new(),
            awaiting: false,
        }
    }

    /// A handle that shuts this channel down from another thread.
    pub fn shutdown_handle(&self) -> ChannelShutdown {
        ChannelShutdown(Arc::clone(&self.endpoint))
    }

    /// Largest payload the window holds.
    pub fn max_payload(&self) -> usize {
        self.reply().max_payload()
    }

    /// Client: the handshake that must precede the first call.
    pub fn connect(&mut self) -> Result<(), ChannelError> {
        self.put(HANDSHAKE)?;
        self.endpoint.send(HANDSHAKE.len())?;
        let reply = self.take()?;
        check_json_object(reply)
    }

    /// Server: answers the client's handshake.
    pub fn accept(&mut self) -> Result<(), ChannelError> {
        let hello = self.take()?;
        check_json_object(hello)?;
        self.put(HANDSHAKE)?;
        self.endpoint.send(HANDSHAKE.len())
    }

    /// Client: one RPC. Sends `payload` under `mid`, waits for the response, and returns it
    /// with up to `want_fds` donated FDs (extras are closed).
    pub fn call(
        &mut self,
        mid: u16,
        payload: &[u8],
        want_fds: usize,
        max_payload: usize,
    ) -> Result<Frame<'_>, ChannelError> {
        self.call_parts(mid, [payload, &[]], want_fds, max_payload)
    }

    /// Client: [`Channel::call`] with the payload in `parts`, each copied into the window
    /// where the one before ends (a request's fixed part, then data from the caller's
    /// buffer, with no copy of their own in between).
    pub fn call_parts(
        &mut self,
        mid: u16,
        parts: [&[u8]; 2],
        want_fds: usize,
        max_payload: usize,
    ) -> Result<Frame<'_>, ChannelError> {
        self.start_parts(mid, &parts)?;
        let (copied, fds) = self.finish_in_place(want_fds, max_payload, |incoming| {
            let mid = incoming.mid();
            incoming.payload().map(|payload| (mid, payload))
        })?;
        let (mid, payload) = copied?;
        Ok(Frame { mid, payload, fds })
    }

    /// Client: [`Channel::call`], with the response left in the window: `read` gets it
    /// as an [`Incoming`] and copies out what it needs, so that bulk data crosses once,
    /// from the window straight to where it belongs.
    pub fn call_in_place<'a, T>(
        &'a mut self,
        mid: u16,
        payload: &[u8],
        want_fds: usize,
        max_payload: usize,
        read: impl FnOnce(Incoming<'a>) -> T,
    ) -> Result<(T, Vec<OwnedFd>), ChannelError> {
        self.start(mid, payload)?;
        self.finish_in_place(want_fds, max_payload, read)
    }

    /// Client: the first half of [`Channel::call_in_place`]: sends `payload` under `mid`
    /// and returns without waiting, so that a caller can have requests on several channels
    /// served at once. [`Channel::finish_in_place`] takes the response.
    pub fn start(&mut self, mid: u16, payload: &[u8]) -> Result<(), ChannelError> {
        self.start_parts(mid, &[payload])
    }

    fn start_parts(&mut self, mid: u16, parts: &[&[u8]]) -> Result<(), ChannelError> {
        if self.awaiting {
            return Err(ChannelError::Protocol("a response is still outstanding"));
        }
        self.reply().put_parts(mid, parts, 0)?;
        self.awaiting = true;
        Ok(())
    }

    /// Client: the second half of [`Channel::call_in_place`]: waits for the response to
    /// the request [`Channel::start`] sent.
    pub fn finish_in_place<'a, T>(
        &'a mut self,
        want_fds: usize,
        max_payload: usize,
        read: impl FnOnce(Incoming<'a>) -> T,
    ) -> Result<(T, Vec<OwnedFd>), ChannelError> {
        if !self.awaiting {
            return Err(ChannelError::Protocol("no request outstanding"));
        }
        let len = self.endpoint.wait()?;
        self.awaiting = false;
        let header = self.header(len)?;
        let len = len - ChannelHeader::SIZE;
        if len > max_payload {
            return Err(ChannelError::TooLarge {
                len,
                max: max_payload,
            });
        }
        let fds = fds::recv(self.fd_socket.as_fd(), header.num_fds, want_fds)?;
        let incoming = Incoming {
            mid: header.mid,
            len,
            window: &self.endpoint.window,
            buf: &mut self.buf,
        };
        Ok((read(incoming), fds))
    }

    /// Server: [`Channel::next_request`] without the [`Reply`] (answer with
    /// [`Channel::send_response`]).
    pub fn recv_request(&mut self) -> Result<Frame<'_>, ChannelError> {
        self.next_request().map(|(frame, _)| frame)
    }

    /// Server: sends the response to the last request; FDs go first, on the side socket.
    pub fn send_response(
        &mut self,
        mid: u16,
        payload: &[u8],
        donate: &[BorrowedFd<'_>],
    ) -> Result<(), ChannelError> {
        self.reply().send(mid, payload, donate)
    }

    /// Server: waits for the next request and returns it, copied out of the window so that
    /// the client can no longer change it while it is decoded, with the [`Reply`] that
    /// answers it.
    pub fn next_request(&mut self) -> Result<(Frame<'_>, Reply<'_>), ChannelError> {
        self.next_request_split(None)
    }

    /// Server: [`Channel::next_request`], except that of a request under `split`'s MID
    /// only the first `split.1` payload bytes are copied out: the rest stays in the window
    /// for [`Reply::pwrite_from_request`] or [`Reply::copy_request_rest`] (a PWrite's
    /// data, which is written, never looked at).
    pub fn next_request_split(
        &mut self,
        split: Option<(u16, usize)>,
    ) -> Result<(Frame<'_>, Reply<'_>), ChannelError> {
        let len = self.endpoint.wait()?;
        let header = self.header(len)?;
        let payload = len - ChannelHeader::SIZE;
        let copied = match split {
            Some((mid, head)) if mid == header.mid => payload.min(head),
            _ => payload,
        };
        self.copy_into_buf(ChannelHeader::SIZE, copied)?;
        let mut reply = self.reply();
        reply.rest = (ChannelHeader::SIZE + copied, payload - copied);
        let frame = Frame {
            mid: header.mid,
            payload: &self.buf[..copied],
            fds: Vec::new(),
        };
        Ok((frame, reply))
    }

    fn reply(&self) -> Reply<'_> {
        Reply {
            endpoint: &self.endpoint,
            fd_socket: self.fd_socket.as_fd(),
            rest: (0, 0),
        }
    }

    /// Writes `bytes` at the start of the data area (the handshake's JSON).
    fn put(&mut self, bytes: &[u8]) -> Result<(), ChannelError> {
        self.endpoint
            .window
            .write_data(0, bytes)
            .map_err(ChannelError::Io)
    }

    /// Waits for the turn and returns the data area's bytes, copied out.
    fn take(&mut self) -> Result<&[u8], ChannelError> {
        let len = self.endpoint.wait()?;
        self.copy_into_buf(0, len)?;
        Ok(&self.buf[..len])
    }

    /// The header of a message of `len` bytes, copied out.
    fn header(&self, len: usize) -> Result<ChannelHeader, ChannelError> {
        if len < ChannelHeader::SIZE {
            return Err(ChannelError::Protocol("message shorter than its header"));
        }
        let mut raw = [0u8; ChannelHeader::SIZE];
        self.endpoint
            .window
            .read_data(0, &mut raw)
            .map_err(ChannelError::Io)?;
        Ok(zerocopy::transmute!(raw))
    }

    /// Copies `len` bytes of the data area from `at` to the start of the receive buffer.
    fn copy_into_buf(&mut self, at: usize, len: usize) -> Result<(), ChannelError> {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        self.endpoint
            .window
            .read_data(at, &mut self.buf[..len])
            .map_err(ChannelError::Io)
    }
}

/// The handshake is a JSON object whose contents are ignored; we check its braces only.
fn check_json_object(bytes: &[u8]) -> Result<(), ChannelError> {
    let text = bytes.trim_ascii();
    if text.first() == Some(&b'{') && text.last() == Some(&b'}') {
        Ok(())
    } else {
        Err(ChannelError::Protocol("handshake is not a JSON object"))
    }
}
