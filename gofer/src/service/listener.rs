//! Where connections come from: a socket file the gofer listens on (`--socket`, see
//! `socket_file`), or a socket it inherited (`--fd`, systemd's `LISTEN_FDS`), connected or
//! listening.

use std::io;
use std::os::fd::{OwnedFd, RawFd};

use rustix::fs::{FileType, OFlags};
use rustix::net::SocketType;

use crate::sys;

/// The socket connections arrive on.
#[derive(Debug)]
pub(crate) enum Source {
    /// One connected socket: the gofer serves it and stops when it closes.
    Connected(OwnedFd),
    /// A listening socket: the gofer serves each connection it accepts.
    Listening(OwnedFd),
}

/// Takes the inherited FD `fd` as a connection source, after checking that it is a
/// stream socket: a listening one (as systemd passes) or a connected one.
pub(crate) fn inherited(fd: RawFd) -> io::Result<Source> {
    let owned = sys::take_inherited_fd(fd)?;
    let stat = rustix::fs::fstat(&owned)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Socket {
        return Err(rustix::io::Errno::NOTSOCK.into());
    }
    if rustix::net::sockopt::socket_type(&owned)? != SocketType::STREAM {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a stream socket",
        ));
    }
    rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC)?;
    if rustix::net::sockopt::socket_acceptconn(&owned)? {
        // A launcher may have made it non-blocking; the accept loop blocks in accept.
        let flags = rustix::fs::fcntl_getfl(&owned)?;
        rustix::fs::fcntl_setfl(&owned, flags - OFlags::NONBLOCK)?;
        Ok(Source::Listening(owned))
    } else {
        Ok(Source::Connected(owned))
    }
}

pub(crate) use crate::socket_file::{listen_at, SocketFile};
