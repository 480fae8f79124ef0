//! The `gofer` program: process setup and the serving loops. [`main`] is the whole
//! binary, so other packages can build an identical gofer (the end-to-end tests do).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use lisafs_protocol::transport::socket::FramedSocket;
use lisafs_protocol::wire::Errno;
use lisafs_server::{ServeError, Server};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, StatxFlags, CWD};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::config::{Config, LogLevel, SandboxMode};
use crate::host::{HostBackend, ShareMount};
use crate::sandbox::{landlock, namespace, privileges, seccomp, share};
use crate::{limits, sys};

/// Why the gofer could not start or stopped serving. Each message is one line naming the
/// flag at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `--fd N` is not an open socket.
    #[error("--fd {fd}: {reason}")]
    Fd {
        /// The FD number given.
        fd: i32,
        /// What is wrong with it.
        reason: String,
    },
    /// `--root` cannot be served.
    #[error("--root {}: {reason}", path.display())]
    Root {
        /// The directory given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Serving the `--fd` connection failed.
    #[error("--fd {fd}: {source}")]
    Serve {
        /// The FD number given.
        fd: i32,
        /// The transport failure.
        source: ServeError,
    },
    /// The gofer could not confine itself as `--sandbox`/`--seccomp` ask.
    #[error("cannot confine the gofer: {reason}")]
    Sandbox {
        /// What failed.
        reason: String,
    },
    /// `--max-fds` and `--max-connections` do not fit in the open-file limit.
    #[error("{0}")]
    Limits(String),
    /// Neither `--socket` nor `--fd` was given.
    #[error("one of --socket and --fd is required")]
    NoConnection,
    /// `--socket` cannot be listened on.
    #[error("--socket {}: {reason}", path.display())]
    Socket {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// The `gofer` binary: parses the command line (exiting 2 on a usage error), runs, and
/// exits 1 with a one-line message on standard error if the gofer cannot start.
pub fn main() -> ExitCode {
    let config = Config::parse();
    sys::close_inherited_except(config.fd);
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line, for the operator; details are in the log.
            eprintln!("gofer: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the gofer as configured: confines the process around the share, then serves.
///
/// The order matters: namespaces are entered (and the process forks) while it has one
/// thread; the listening socket is created while host paths are reachable; the
/// `/proc/self/fd` handle is opened before `/proc` goes away with the old root;
/// capabilities are dropped, Landlock and seccomp installed last, still on one thread, so
/// every connection thread inherits them.
pub fn run(config: &Config) -> Result<(), StartError> {
    init_logging(config.log_level);
    if config.sandbox == SandboxMode::Namespace {
        // Returns only in the child; the parent waits for it and exits as it did.
        namespace::enter(config.fd, config.seccomp)
            .map_err(|err| sandbox_error("--sandbox namespace", &err))?;
    }
    let inherited = config
        .fd
        .map(|fd| take_connection(fd).map_err(|reason| StartError::Fd { fd, reason }))
        .transpose()?;
    // An inherited connection is the only one the gofer will serve.
    let connections = match inherited {
        Some(_) => 1,
        None => config.max_connections,
    };
    let max_fds = limits::plan(config.max_fds, connections)
        .map_err(|err| StartError::Limits(err.to_string()))?;
    if config.sandbox == SandboxMode::Namespace {
        namespace::private_mounts().map_err(|err| sandbox_error("--sandbox namespace", &err))?;
    }
    let (root, mount) = open_share(config)?;
    let source = match (inherited, &config.socket) {
        (Some(socket), _) => Source::Inherited(socket),
        (None, Some(path)) => {
            Source::Listener(listen_at(path).map_err(|err| socket_error(path, &err))?)
        }
        (None, None) => return Err(StartError::NoConnection),
    };
    let mut layers = Vec::new();
    confine_root(config, root.as_fd(), &mut layers)?;
    let backend = HostBackend::with_root(root, mount, config.host_options()).map_err(|err| {
        StartError::Root {
            path: config.root.clone(),
            reason: os_reason(&err),
        }
    })?;
    backend
        .name_sockets_from_cwd()
        .map_err(|err| sandbox_error("the /proc/self/fd handle", &err))?;
    restrict_process(config, &backend, &mut layers)?;
    tracing::info!(confinement = layers.join("; "), "confined");
    tracing::info!(root = %config.root.display(), options = ?backend.options(), max_fds, "serving");
    let mut options = config.server_options();
    options.max_fds = max_fds;
    let server = Server::new(backend, options);
    match source {
        Source::Inherited(socket) => {
            server
                .serve(FramedSocket::new(socket))
                .map_err(|source| StartError::Serve {
                    fd: config.fd.unwrap_or(-1),
                    source,
                })
        }
        Source::Listener(listener) => accept_loop(&server, &listener, config.max_connections)
            .map_err(|err| socket_error(config.socket.as_deref().unwrap_or(Path::new("")), &err)),
    }
}

/// Opens the share as a detached `nosuid,nodev` (and with `--readonly`, `ro`) bind mount.
/// Only unconfined (`--sandbox none`) may a gofer without the privilege for that fall back
/// to a plain directory FD, with a warning.
fn open_share(config: &Config) -> Result<(OwnedFd, ShareMount), StartError> {
    let root_error = |err: &io::Error| StartError::Root {
        path: config.root.clone(),
        reason: os_reason(err),
    };
    match share::open_detached(&config.root, config.readonly) {
        Ok(tree) => Ok((tree, ShareMount::Detached)),
        Err(err)
            if config.sandbox == SandboxMode::None && err.raw_os_error() == Some(libc::EPERM) =>
        {
            tracing::warn!(
                "no privilege for a detached mount of the share: --readonly, nosuid and \
                 nodev are enforced by the gofer's checks only"
            );
            let fd = rustix::fs::open(
                &config.root,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|err| root_error(&err.into()))?;
            Ok((fd, ShareMount::Plain))
        }
        Err(err) => Err(root_error(&err)),
    }
}

/// Makes the share the process root as `--sandbox` says, after opening the
/// `/proc/self/fd` handle that outlives the old root.
fn confine_root(
    config: &Config,
    root: BorrowedFd<'_>,
    layers: &mut Vec<String>,
) -> Result<(), StartError> {
    let mode = config.sandbox;
    rustix_linux_procfs::proc_self_fd().map_err(|err| sandbox_error("procfs", &err.into()))?;
    match mode {
        SandboxMode::Namespace => {
            namespace::pivot_into(root, &config.root)
                .map_err(|err| sandbox_error("--sandbox namespace", &err))?;
            layers.push("namespaces mnt,pid,ipc,uts,net; pivot_root into the share".into());
        }
        SandboxMode::Chroot => {
            namespace::chroot_into(root).map_err(|err| sandbox_error("--sandbox chroot", &err))?;
            layers.push("chroot into the share".into());
        }
        SandboxMode::None => {
            tracing::warn!("--sandbox none: the gofer runs in the host's namespaces and root");
        }
    }
    Ok(())
}

/// Capabilities, Landlock and seccomp: the layers every thread inherits.
fn restrict_process(
    config: &Config,
    backend: &HostBackend,
    layers: &mut Vec<String>,
) -> Result<(), StartError> {
    let options = backend.options();
    let keep = privileges::needed(options.allow_setid, options.mknod.devices());
    privileges::restrict(keep).map_err(|err| sandbox_error("capabilities", &err))?;
    layers.push(format!("capabilities {keep:?}; no groups; not dumpable"));
    if config.sandbox != SandboxMode::None {
        match landlock::restrict_to(backend.root_fd(), config.readonly) {
            Ok(status) => layers.push(format!("landlock {status:?}")),
            Err(err) => {
                return Err(StartError::Sandbox {
                    reason: format!("landlock: {err}"),
                })
            }
        }
    }
    let features = seccomp::Features {
        uds_connect: options.uds_connect,
        uds_create: options.uds_create,
    };
    seccomp::install(config.seccomp, features).map_err(|err| sandbox_error("--seccomp", &err))?;
    layers.push(format!("seccomp {:?}", config.seccomp));
    Ok(())
}

fn sandbox_error(what: &str, err: &io::Error) -> StartError {
    let hint = match err.raw_os_error() {
        Some(libc::EPERM) => {
            " (needs root, or unprivileged user namespaces; --sandbox none runs unconfined)"
        }
        _ => "",
    };
    StartError::Sandbox {
        reason: format!("{what}: {}{hint}", os_reason(err)),
    }
}

/// Where connections come from.
enum Source {
    /// One connected socket (`--fd`).
    Inherited(OwnedFd),
    /// A listening socket (`--socket`).
    Listener(OwnedFd),
}

fn socket_error(path: &Path, err: &io::Error) -> StartError {
    StartError::Socket {
        path: path.to_path_buf(),
        reason: os_reason(err),
    }
}

/// An OS error as the C library describes it; other errors as they display.
fn os_reason(err: &io::Error) -> String {
    match err.raw_os_error().and_then(|raw| u32::try_from(raw).ok()) {
        Some(raw) => Errno(raw).to_string(),
        None => err.to_string(),
    }
}

/// Logs to standard error (never to a client) at `level`.
fn init_logging(level: LogLevel) {
    let _ = tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_max_level(level.level())
        .with_target(false)
        .try_init();
}

/// Takes ownership of the inherited FD `fd` after checking that it is a socket.
fn take_connection(fd: i32) -> Result<OwnedFd, String> {
    let owned = sys::take_inherited_fd(fd).map_err(|err| os_reason(&err))?;
    let stat = rustix::fs::fstat(&owned).map_err(|err| os_reason(&err.into()))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Socket {
        return Err(Errno::ENOTSOCK.to_string());
    }
    rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC)
        .map_err(|err| os_reason(&err.into()))?;
    Ok(owned)
}

/// Serves each connection to `listener` on its own thread, at most `max` at once (a
/// connection beyond that is closed at once); returns only if the listening socket fails
/// for good.
fn accept_loop(
    server: &Arc<Server<HostBackend>>,
    listener: &OwnedFd,
    max: usize,
) -> io::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        match rustix::net::accept_with(listener, SocketFlags::CLOEXEC) {
            Ok(conn) => {
                if active.fetch_add(1, Ordering::SeqCst) >= max {
                    active.fetch_sub(1, Ordering::SeqCst);
                    tracing::warn!(max, "refused a connection: --max-connections reached");
                    continue;
                }
                let slot = ConnectionSlot(Arc::clone(&active));
                if let Err(err) = server.spawn_holding(FramedSocket::new(conn), slot) {
                    tracing::warn!("cannot start a connection thread: {err}");
                }
            }
            Err(rustix::io::Errno::INTR | rustix::io::Errno::CONNABORTED) => {}
            Err(
                err @ (rustix::io::Errno::MFILE
                | rustix::io::Errno::NFILE
                | rustix::io::Errno::NOMEM
                | rustix::io::Errno::NOBUFS),
            ) => {
                // Out of resources: wait for connections to end instead of spinning.
                tracing::warn!("accept: {err}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// One of `--max-connections`, given back when the connection's thread ends.
struct ConnectionSlot(Arc<AtomicUsize>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
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

/// A listening socket at `path`, replacing a stale socket file but nothing else. The
/// socket file is mode 0600: whoever can connect can use the whole share.
fn listen_at(path: &Path) -> io::Result<OwnedFd> {
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
        Ok(_) => return Err(io::Error::from_raw_os_error(libc::EEXIST)),
        Err(rustix::io::Errno::NOENT) => {}
        Err(err) => return Err(err.into()),
    }
    let addr = SocketAddrUnix::new(path)?;
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::fs::fchmod(&socket, Mode::from_raw_mode(0o600))?;
    rustix::net::bind(&socket, &addr)?;
    rustix::net::listen(&socket, 128)?;
    tracing::info!(socket = %path.display(), "listening");
    Ok(socket)
}
