//! Listening on a socket file, and removing it again: for the lisafs socket (`--socket`)
//! and the metrics socket alike.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, StatxFlags, CWD};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

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
