//! The `gofer` program: process setup and the serving loops. [`main`] is the whole
//! binary, so other packages can build an identical gofer (the end-to-end tests do).

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use lisafs_protocol::transport::socket::FramedSocket;
use lisafs_protocol::wire::Errno;
use lisafs_server::{ServeError, Server};
use rustix::fs::{AtFlags, FileType, Mode, StatxFlags, CWD};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::config::{Config, LogLevel};
use crate::host::HostBackend;
use crate::{sandbox, sys};

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
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line, for the operator; details are in the log.
            eprintln!("gofer: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the gofer as configured: sets up the process, opens the root, then serves.
pub fn run(config: &Config) -> Result<(), StartError> {
    init_logging(config.log_level);
    // Take the inherited connection first, before anything else could open FDs.
    let inherited = config
        .fd
        .map(|fd| take_connection(fd).map_err(|reason| StartError::Fd { fd, reason }))
        .transpose()?;
    raise_fd_limit();
    if !config.allow_setid {
        drop_fsetid();
    }
    let backend =
        HostBackend::new(&config.root, config.host_options()).map_err(|err| StartError::Root {
            path: config.root.clone(),
            reason: os_reason(&err),
        })?;
    let source = match (inherited, &config.socket) {
        (Some(socket), _) => Source::Inherited(socket),
        (None, Some(path)) => {
            Source::Listener(listen_at(path).map_err(|err| socket_error(path, &err))?)
        }
        (None, None) => return Err(StartError::NoConnection),
    };
    let features = sandbox::seccomp::Features {
        uds_connect: backend.options().uds_connect,
        uds_create: backend.options().uds_create,
    };
    sandbox::seccomp::install(config.seccomp, features).map_err(|err| StartError::Sandbox {
        reason: format!("seccomp: {}", os_reason(&err)),
    })?;
    tracing::info!(root = %config.root.display(), options = ?backend.options(), "serving");
    let server = Server::new(backend, config.server_options());
    match source {
        Source::Inherited(socket) => {
            server
                .serve(FramedSocket::new(socket))
                .map_err(|source| StartError::Serve {
                    fd: config.fd.unwrap_or(-1),
                    source,
                })
        }
        Source::Listener(listener) => accept_loop(&server, &listener)
            .map_err(|err| socket_error(config.socket.as_deref().unwrap_or(Path::new("")), &err)),
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

/// Raises the soft `RLIMIT_NOFILE` to the hard limit: every control FD holds a host FD.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(err) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!("cannot raise the open-file limit: {err}");
        }
    }
}

/// Drops `CAP_FSETID` from this thread (and so from every thread started later), so that
/// writes and truncations clear set-ID bits as the kernel does for unprivileged writers.
fn drop_fsetid() {
    use rustix::thread::{capabilities, set_capabilities, CapabilitySet};
    let Ok(mut caps) = capabilities(None) else {
        return;
    };
    if !(caps.effective | caps.permitted).contains(CapabilitySet::FSETID) {
        return;
    }
    caps.effective.remove(CapabilitySet::FSETID);
    caps.permitted.remove(CapabilitySet::FSETID);
    caps.inheritable.remove(CapabilitySet::FSETID);
    if let Err(err) = set_capabilities(None, caps) {
        tracing::warn!("cannot drop CAP_FSETID: {err}");
    }
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

/// Serves each connection to `listener` on its own thread; returns only if the listening
/// socket fails for good.
fn accept_loop(server: &Arc<Server<HostBackend>>, listener: &OwnedFd) -> io::Result<()> {
    loop {
        match rustix::net::accept_with(listener, SocketFlags::CLOEXEC) {
            Ok(conn) => {
                if let Err(err) = server.spawn(FramedSocket::new(conn)) {
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

/// A listening socket at `path`, replacing a stale socket file but nothing else. The
/// socket file is mode 0600: whoever can connect can use the whole share.
fn listen_at(path: &Path) -> io::Result<OwnedFd> {
    match rustix::fs::statx(CWD, path, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::TYPE) {
        Ok(st) if FileType::from_raw_mode(st.stx_mode.into()) == FileType::Socket => {
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
