//! The client's one error type: an errno plus where it came from.

use std::fmt;
use std::io;

use lisafs_protocol::wire::Errno;

/// Linux's `ETIMEDOUT`, which `lisafs-protocol` has no name for.
const ETIMEDOUT: Errno = Errno(110);

/// Where an [`Error`] arose. Callers that only care about the errno can ignore it; it
/// matters when deciding whether to retry (`Remote`) or reconnect (`Transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server answered the request with an `ErrorResp`.
    Remote,
    /// The client refused the request before sending it (unsupported MID, too large,
    /// invalid argument, a path with "." or "..").
    Local,
    /// The server's answer broke the protocol (wrong MID, undecodable, a mandatory
    /// donated FD missing). The connection stays usable.
    Protocol,
    /// The connection failed (peer gone, socket error, oversized frame, or no answer
    /// within a deadline set on the socket: see [`Error::is_timeout`]). The client is now
    /// broken: every later call fails with `EIO` without touching the socket.
    Transport,
}

/// A failed client operation. It always carries a Linux errno ([`Error::errno`]) and
/// displays as the C library's description of it, e.g. "No such file or directory".
#[derive(Debug, thiserror::Error)]
#[error("{errno}")]
pub struct Error {
    errno: Errno,
    kind: ErrorKind,
    detail: Option<String>,
}

impl Error {
    /// An error the server reported.
    pub(crate) fn remote(errno: Errno) -> Self {
        Self {
            errno,
            kind: ErrorKind::Remote,
            detail: None,
        }
    }

    /// A request the client refused to send.
    pub(crate) fn local(errno: Errno) -> Self {
        Self {
            errno,
            kind: ErrorKind::Local,
            detail: None,
        }
    }

    /// A response that broke the protocol; `detail` says how (kept for `Debug` and
    /// [`Error::detail`], not shown by `Display`).
    pub(crate) fn protocol(errno: Errno, detail: impl fmt::Display) -> Self {
        Self {
            errno,
            kind: ErrorKind::Protocol,
            detail: Some(detail.to_string()),
        }
    }

    /// A transport failure (`EIO`).
    pub(crate) fn transport(detail: impl fmt::Display) -> Self {
        Self {
            errno: Errno::EIO,
            kind: ErrorKind::Transport,
            detail: Some(detail.to_string()),
        }
    }

    /// A socket call that did not complete within the deadline set on the socket
    /// (`ETIMEDOUT`, kind [`ErrorKind::Transport`]).
    pub(crate) fn timeout(detail: impl fmt::Display) -> Self {
        Self {
            errno: ETIMEDOUT,
            kind: ErrorKind::Transport,
            detail: Some(detail.to_string()),
        }
    }

    /// Whether the server did not answer (or take a request) within the receive or send
    /// timeout set on the socket. The connection is broken like after any transport
    /// failure; the errno is `ETIMEDOUT`.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Transport && self.errno == ETIMEDOUT
    }

    /// The Linux errno.
    pub fn errno(&self) -> Errno {
        self.errno
    }

    /// Where the error arose.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What went wrong beyond the errno, for protocol and transport errors (e.g. "response
    /// MID 5 to request MID 3"). Meant for logs and `--verbose` output.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

/// Keeps the OS errno, so `raw_os_error()` and `kind()` behave as for a local syscall.
impl From<Error> for io::Error {
    fn from(err: Error) -> Self {
        err.errno.into()
    }
}

/// A client-side error with `errno` (kind [`ErrorKind::Local`]), for callers that build
/// on the client and want to report their own refusals the same way.
impl From<Errno> for Error {
    fn from(errno: Errno) -> Self {
        Self::local(errno)
    }
}

/// For local I/O mixed into client operations (connecting the socket, reading a local
/// file in a helper): the OS errno is kept, anything else becomes `EIO`.
impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        let errno = err
            .raw_os_error()
            .and_then(|raw| u32::try_from(raw).ok())
            .map_or(Errno::EIO, Errno);
        Self {
            errno,
            kind: ErrorKind::Local,
            detail: Some(err.to_string()),
        }
    }
}

/// Shorthand for the client's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
