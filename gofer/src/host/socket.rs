//! Host Unix sockets: Connect, ConnectWithCreds, BindAt, Listen, Accept.
//!
//! Socket addresses are paths and Linux has no `connectat`/`bindat`, so the pinned inode
//! (or the held directory) is named through `/proc/self/fd/<n>`: the magic link cannot be
//! redirected by renames in the share, unlike the node's path from the root.

use std::os::fd::{AsFd, OwnedFd};

use lisafs_protocol::wire::{Errno, Gid, Uid};
use lisafs_server::{refused, BResult, Create, Name, Node, Refusal};
use rustix::fs::{Mode, OFlags};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use super::create::Undo;
use super::creds;
use super::file::{FileKind, HostFile, HostSocket};
use super::resolve::Resolver;
use super::HostBackend;

/// The socket types lisafs allows (`SOCK_STREAM`, `SOCK_DGRAM`, `SOCK_SEQPACKET`); any
/// other is `ENXIO`, as in gVisor.
fn socket_type(sock_type: u32) -> BResult<SocketType> {
    match sock_type {
        1 => Ok(SocketType::STREAM),
        2 => Ok(SocketType::DGRAM),
        5 => Ok(SocketType::SEQPACKET),
        _ => Err(Errno::ENXIO),
    }
}

/// The calling thread's effective UID and GID switched for one operation and restored on
/// drop. Linux credentials are per thread and rustix calls the raw syscalls, so no other
/// thread is affected. A failed restore aborts: a serving thread must not go on with a
/// client's identity.
struct EffectiveIds {
    uid: Option<rustix::process::Uid>,
    gid: Option<rustix::process::Gid>,
}

impl EffectiveIds {
    /// Switches the group first (while still privileged), then the user.
    fn switch(uid: Uid, gid: Gid) -> BResult<Self> {
        let mut saved = Self {
            uid: None,
            gid: None,
        };
        if gid != Gid::NONE {
            let old = rustix::process::getegid();
            rustix::thread::set_thread_res_gid(
                None,
                Some(rustix::process::Gid::from_raw(gid.0)),
                None,
            )?;
            saved.gid = Some(old);
        }
        if uid != Uid::NONE {
            let old = rustix::process::geteuid();
            // On failure `saved` drops here and restores the group.
            rustix::thread::set_thread_res_uid(
                None,
                Some(rustix::process::Uid::from_raw(uid.0)),
                None,
            )?;
            saved.uid = Some(old);
        }
        Ok(saved)
    }
}

impl Drop for EffectiveIds {
    fn drop(&mut self) {
        let uid = self.uid.map_or(Ok(()), |uid| {
            rustix::thread::set_thread_res_uid(None, Some(uid), None)
        });
        let gid = self.gid.map_or(Ok(()), |gid| {
            rustix::thread::set_thread_res_gid(None, Some(gid), None)
        });
        if let Err(err) = uid.and(gid) {
            tracing::error!("cannot restore the gofer's credentials after a connect: {err}");
            std::process::abort();
        }
    }
}

/// Connect and ConnectWithCreds: a new socket connected to the socket file `file`. The
/// connect is non-blocking (a full backlog is `EAGAIN`, never a wait); the donated socket
/// is then made blocking, as a freshly connected socket normally is.
pub(super) fn connect(
    b: &HostBackend,
    file: &HostFile,
    sock_type: u32,
    creds: Option<(Uid, Gid)>,
) -> BResult<OwnedFd> {
    if file.kind() != FileKind::Socket {
        return Err(Errno::ENOTSOCK);
    }
    if !b.options.uds_connect {
        refused!(
            Refusal::SpecialFile,
            "refused a connect to a host socket (--host-uds)"
        );
        return Err(Errno::EPERM);
    }
    // A socket moved out of the share is a host socket the client must not reach.
    b.resolver.ensure_beneath(file)?;
    let kind = socket_type(sock_type)?;
    let addr = SocketAddrUnix::new(Resolver::socket_path(file.as_fd(), None)?)?;
    let flags = SocketFlags::CLOEXEC | SocketFlags::NONBLOCK;
    let socket = rustix::net::socket_with(AddressFamily::UNIX, kind, flags, None)?;
    {
        let _ids = creds
            .map(|(uid, gid)| EffectiveIds::switch(uid, gid))
            .transpose()?;
        rustix::net::connect(&socket, &addr)?;
    }
    let status = rustix::fs::fcntl_getfl(&socket)?;
    rustix::fs::fcntl_setfl(&socket, status - OFlags::NONBLOCK)?;
    Ok(socket)
}

/// BindAt: creates the socket file `name` in `dir` bound to a new non-blocking socket.
/// Returns the file's node, the socket, and a duplicate of the socket to donate; the
/// control FD (`O_PATH` of the file) and the socket are separate host FDs.
pub(super) fn bind(
    b: &HostBackend,
    dir: &HostFile,
    name: Name<'_>,
    sock_type: u32,
    attrs: Create,
) -> BResult<(Node<HostFile>, HostSocket, OwnedFd)> {
    if !b.options.uds_create {
        refused!(
            Refusal::SpecialFile,
            "refused a bind of a host socket (--host-uds)"
        );
        return Err(Errno::EPERM);
    }
    let kind = socket_type(sock_type)?;
    b.resolver.ensure_beneath(dir)?;
    let name = name.as_bytes();
    let addr = SocketAddrUnix::new(Resolver::socket_path(dir.as_fd(), Some(name))?)?;
    let flags = SocketFlags::CLOEXEC | SocketFlags::NONBLOCK;
    let socket = rustix::net::socket_with(AddressFamily::UNIX, kind, flags, None)?;
    // bind(2) gives the socket file the socket inode's mode (less the umask, which is 0).
    let mode = b.policy_mode(attrs.mode, false);
    rustix::fs::fchmod(&socket, Mode::from_raw_mode(mode))?;
    // The socket file gets the thread's filesystem IDs: the client's owner, set as the
    // file is made.
    creds::create_as(attrs.uid, attrs.gid, || {
        match rustix::net::bind(&socket, &addr) {
            // The name exists: report it as every other create does.
            Err(rustix::io::Errno::ADDRINUSE) => Err(Errno::EEXIST),
            result => Ok(result?),
        }
    })?;
    let undo = Undo::new(dir, name, false);
    let (file, stat) = b.lookup_created(dir, name, FileKind::Socket)?;
    let donated = rustix::io::fcntl_dupfd_cloexec(&socket, 0)?;
    undo.keep();
    Ok((Node { file, stat }, HostSocket { fd: socket }, donated))
}

/// Listen.
pub(super) fn listen(b: &HostBackend, socket: &HostSocket, backlog: i32) -> BResult<()> {
    if !b.options.uds_create {
        return Err(Errno::EPERM);
    }
    Ok(rustix::net::listen(socket, backlog)?)
}

/// Accept: one pending connection, non-blocking and close-on-exec; `EAGAIN` if none is
/// pending (the listening socket is non-blocking). The peer address is always empty.
pub(super) fn accept(b: &HostBackend, socket: &HostSocket) -> BResult<(OwnedFd, Vec<u8>)> {
    if !b.options.uds_create {
        return Err(Errno::EPERM);
    }
    let flags = SocketFlags::CLOEXEC | SocketFlags::NONBLOCK;
    let fd = rustix::net::accept_with(socket, flags)?;
    Ok((fd, Vec::new()))
}
