//! Where connections come from: a socket file the gofer listens on (`--socket`), or a
//! socket it inherited (`--fd`, systemd's `LISTEN_FDS`), connected or listening.

use std::ffi::OsStr;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, StatxFlags, CWD};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

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

/// A listening socket at `path`, replacing a stale socket file but nothing else, and the
/// [`SocketFile`] that removes it again. The socket file is mode 0600: whoever can connect
/// can use the whole share.
pub(crate) fn listen_at(path: &Path) -> io::Result<(OwnedFd, SocketFile)> {
    match rustix::fs::statx(CWD, path, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::TYPE) {
        Ok(st) if FileType::from_raw_mode(st.stx_mode.into()) == FileType::Socket => {
            if is_live(path)? {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another process is listening on it",
                ));
            }
            rustix::fs::unlink(path)?;
        }
        Ok(_) => return Err(rustix::io::Errno::EXIST.into()),
        Err(rustix::io::Errno::NOENT) => {}
        Err(err) => return Err(err.into()),
    }
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::from(rustix::io::Errno::INVAL))?;
    let parent = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let dir = rustix::fs::open(
        parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::fs::fchmod(&socket, Mode::from_raw_mode(0o600))?;
    rustix::net::bind(&socket, &SocketAddrUnix::new(path)?)?;
    let identity = Identity::of(dir.as_fd(), name)?;
    rustix::net::listen(&socket, 128)?;
    tracing::info!(socket = %path.display(), "listening");
    let file = SocketFile {
        dir,
        name: name.to_os_string(),
        identity,
    };
    Ok((socket, file))
}

/// Whether something listens on the socket file at `path`: a stale file (its gofer is
/// gone) refuses the connection.
fn is_live(path: &Path) -> io::Result<bool> {
    let probe = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    match rustix::net::connect(&probe, &SocketAddrUnix::new(path)?) {
        // EAGAIN: a full backlog is a live listener too.
        Ok(()) | Err(rustix::io::Errno::AGAIN) => Ok(true),
        Err(rustix::io::Errno::CONNREFUSED) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// The socket file the gofer made, found again through an FD of its directory opened
/// before confinement: after `pivot_root` or `chroot` its path leads nowhere.
#[derive(Debug)]
pub(crate) struct SocketFile {
    dir: OwnedFd,
    name: OsString,
    identity: Identity,
}

impl SocketFile {
    /// Removes the socket file if it is still the one the gofer made (a later gofer may
    /// have replaced it, stale, with its own). Returns whether it did.
    pub(crate) fn remove(&self) -> io::Result<bool> {
        match Identity::of(self.dir.as_fd(), &self.name) {
            Ok(now) if now == self.identity => {
                rustix::fs::unlinkat(&self.dir, &self.name, AtFlags::empty())?;
                Ok(true)
            }
            Ok(_) | Err(_) => Ok(false),
        }
    }

    /// [`SocketFile::remove`], logging a failure (there is nothing else to do about it).
    pub(crate) fn remove_or_warn(&self) {
        if let Err(err) = self.remove() {
            tracing::warn!("cannot remove the socket file {:?}: {err}", self.name);
        }
    }
}

/// A file's device and inode numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: (u32, u32),
    ino: u64,
}

impl Identity {
    fn of(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Self> {
        let st = rustix::fs::statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::INO)?;
        Ok(Self {
            dev: (st.stx_dev_major, st.stx_dev_minor),
            ino: st.stx_ino,
        })
    }
}
