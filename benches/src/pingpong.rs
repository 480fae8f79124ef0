//! The physical floors: a fixed-size message echoed between two peers, over a Unix
//! socket and over a shared-memory [`Channel`] (futex only, or spin-then-futex).
//!
//! The channel is the protocol crate's own `Channel`, used exactly as the client and the
//! gofer use it (`call` on one side, `recv_request` / `send_response` on the other), so
//! the floor includes the window copies and the turn-taking, but no encoding, dispatch or
//! host work. Between processes, the peer that owns the window (the "server") creates it
//! and hands `[memfd, fd socket]` over a control socket with `SCM_RIGHTS`, as the Channel
//! RPC does.

use std::error::Error;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use lisafs_protocol::transport::channel::{Channel, ChannelError, SpinPolicy};
use lisafs_protocol::transport::socket::FramedSocket;
use lisafs_protocol::wire::{decode, encode, ChannelResp};

/// Bytes in each ping and each pong.
pub const PING_SIZE: usize = 64;

/// The MID the pings carry. The channel does not interpret it; any value works.
pub const PING_MID: u16 = 7;

/// Largest payload the ping-pong windows are sized for (one page of window is plenty).
const WINDOW_PAYLOAD: u32 = 4096;

/// The error type of this module's set-up helpers.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// A channel's two ends in this process, handshake not yet done: `(client, server)`. The
/// server end must run [`serve_echo`] (on another thread) while the client connects.
pub fn channel_pair(
    client_spin: SpinPolicy,
    server_spin: SpinPolicy,
) -> Result<(Channel, Channel), ChannelError> {
    let new = Channel::create(WINDOW_PAYLOAD, server_spin)?;
    let [memfd, sock] = new.donate;
    let client = Channel::open(&new.resp, &memfd, sock, client_spin)?;
    Ok((client, new.channel))
}

/// Server side: answers the handshake, then echoes every request until the channel is
/// shut down. Returns how many requests it echoed.
pub fn serve_echo(mut server: Channel) -> Result<u64, ChannelError> {
    server.accept()?;
    let mut echo = Vec::with_capacity(PING_SIZE);
    let mut count = 0;
    loop {
        let mid = match server.recv_request() {
            Ok(frame) => {
                // The frame borrows the channel; copy it out to answer on the same channel.
                echo.clear();
                echo.extend_from_slice(frame.payload);
                frame.mid
            }
            Err(ChannelError::Shutdown) => return Ok(count),
            Err(err) => return Err(err),
        };
        server.send_response(mid, &echo, &[])?;
        count += 1;
    }
}

/// Client side: one ping-pong round trip on a connected channel.
pub fn channel_ping(client: &mut Channel, ping: &[u8; PING_SIZE]) -> Result<(), ChannelError> {
    let frame = client.call(PING_MID, ping, 0, PING_SIZE)?;
    if frame.payload.len() != PING_SIZE {
        return Err(ChannelError::Protocol("short pong"));
    }
    Ok(())
}

/// Server side, between processes: creates a channel and hands its window and FD socket
/// to the peer on `control` (the payload is the encoded `ChannelResp`, as in the Channel
/// RPC). The peer calls [`take_channel`].
pub fn offer_channel(control: &FramedSocket, spin: SpinPolicy) -> Result<Channel, BoxError> {
    let new = Channel::create(WINDOW_PAYLOAD, spin)?;
    let payload = encode(&new.resp)?;
    let [memfd, sock] = &new.donate;
    control.send(PING_MID, &payload, &[memfd.as_fd(), sock.as_fd()])?;
    Ok(new.channel)
}

/// Client side, between processes: receives what [`offer_channel`] sent and maps the
/// window. The handshake (`connect`) is still to do.
pub fn take_channel(control: &mut FramedSocket, spin: SpinPolicy) -> Result<Channel, BoxError> {
    let frame = control.recv(1024, 2)?;
    let resp: ChannelResp = decode(frame.payload)?;
    let [memfd, sock]: [_; 2] = frame
        .fds
        .try_into()
        .map_err(|_| "the channel offer came without its two FDs")?;
    Ok(Channel::open(&resp, &memfd, sock, spin)?)
}

/// Echoes fixed-size pings on a stream socket until the peer closes it.
pub fn serve_socket_echo(mut stream: UnixStream) -> std::io::Result<u64> {
    let mut buf = [0u8; PING_SIZE];
    let mut count = 0;
    loop {
        match stream.read_exact(&mut buf) {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::UnexpectedEof => return Ok(count),
            Err(err) => return Err(err),
        }
        stream.write_all(&buf)?;
        count += 1;
    }
}

/// One ping-pong round trip on a stream socket: write the ping, read the pong.
pub fn socket_ping(stream: &mut UnixStream, ping: &[u8; PING_SIZE]) -> std::io::Result<()> {
    stream.write_all(ping)?;
    let mut pong = [0u8; PING_SIZE];
    stream.read_exact(&mut pong)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_echo_round_trips_in_process() {
        let (mut client, server) =
            channel_pair(SpinPolicy::default(), SpinPolicy::default()).expect("channel pair");
        let stop = client.shutdown_handle();
        let peer = std::thread::spawn(move || serve_echo(server));
        client.connect().expect("handshake");
        let ping = [5u8; PING_SIZE];
        for _ in 0..100 {
            channel_ping(&mut client, &ping).expect("ping");
        }
        stop.shutdown();
        let echoed = peer.join().expect("peer thread").expect("echo loop");
        assert_eq!(echoed, 100);
    }

    #[test]
    fn channel_offer_crosses_a_socket() {
        let (server_ctl, mut client_ctl) = FramedSocket::pair().expect("socketpair");
        let server = offer_channel(&server_ctl, SpinPolicy::default()).expect("offer");
        let mut client = take_channel(&mut client_ctl, SpinPolicy::default()).expect("take");
        let stop = client.shutdown_handle();
        let peer = std::thread::spawn(move || serve_echo(server));
        client.connect().expect("handshake");
        channel_ping(&mut client, &[1u8; PING_SIZE]).expect("ping");
        stop.shutdown();
        assert_eq!(peer.join().expect("peer").expect("echo"), 1);
    }

    #[test]
    fn socket_echo_round_trips() {
        let (mut a, b) = UnixStream::pair().expect("socketpair");
        let peer = std::thread::spawn(move || serve_socket_echo(b));
        socket_ping(&mut a, &[3u8; PING_SIZE]).expect("ping");
        drop(a);
        assert_eq!(peer.join().expect("peer").expect("echo"), 1);
    }
}
