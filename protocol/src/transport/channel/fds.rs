//! The FD side-channel of a channel (SPEC.md §9.5): a `SOCK_SEQPACKET` pair on which the
//! server sends each donated FD as its own zero-length datagram, before it hands the turn
//! back, and the client receives exactly as many as the channel header announces.

use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    recvmsg, sendmsg, socketpair, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage,
    RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

use super::ChannelError;

/// A connected pair for a new channel: (server end, client end).
pub(crate) fn pair() -> Result<(OwnedFd, OwnedFd), Errno> {
    socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
}

/// Sends each FD in its own datagram; returns how many went out (a failure stops there,
/// and the header tells the client how many to expect).
pub(crate) fn send(sock: BorrowedFd<'_>, fds: &[BorrowedFd<'_>]) -> u8 {
    let mut sent = 0u8;
    for fd in fds.iter().take(usize::from(u8::MAX)) {
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let one = [*fd];
        control.push(SendAncillaryMessage::ScmRights(&one));
        if sendmsg(sock, &[], &mut control, SendFlags::NOSIGNAL).is_err() {
            break;
        }
        sent += 1;
    }
    sent
}

/// Receives `count` FDs, keeping the first `want` (the rest are closed). The server sent
/// them before handing over the turn, so they are already queued: never blocks.
pub(crate) fn recv(
    sock: BorrowedFd<'_>,
    count: u8,
    want: usize,
) -> Result<Vec<OwnedFd>, ChannelError> {
    let mut fds = Vec::new();
    for _ in 0..count {
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        recvmsg(
            sock,
            &mut [],
            &mut control,
            RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
        )
        .map_err(ChannelError::Io)?;
        let mut got = None;
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(mut received) = msg {
                got = got.or_else(|| received.next());
            }
        }
        let fd = got.ok_or(ChannelError::Protocol("announced FD missing"))?;
        if fds.len() < want {
            fds.push(fd);
        }
    }
    Ok(fds)
}
