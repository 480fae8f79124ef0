//! The `gofer` program: process setup and the serving loops. [`main`] is the whole
//! binary, so other packages can build an identical gofer (the end-to-end tests do).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use lisafs_protocol::wire::Errno;
use lisafs_server::Server;
use rustix::fs::{Mode, OFlags};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat, LogLevel, SandboxMode};
use crate::host::{HostBackend, ShareMount};
use crate::limits;
use crate::sandbox::supervisor::{self, Ready, Supervisor};
use crate::sandbox::{landlock, namespace, privileges, seccomp, share};
use crate::service::serve::{self, Ended, StopSignals};
use crate::service::{listener, systemd, Notifier, SocketFile, Source};

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
    /// Serving stopped on an error of the listening socket.
    #[error("serving: {reason}")]
    Serve {
        /// What failed.
        reason: String,
    },
    /// systemd socket activation passed what the gofer cannot serve, or clashes with a
    /// flag.
    #[error("{0}")]
    Activation(String),
    /// The gofer could not confine itself as `--sandbox`/`--seccomp` ask.
    #[error("cannot confine the gofer: {reason}")]
    Sandbox {
        /// What failed.
        reason: String,
    },
    /// `--max-fds` and `--max-connections` do not fit in the open-file limit.
    #[error("{0}")]
    Limits(String),
    /// Neither `--socket` nor `--fd` was given, nor a socket by systemd.
    #[error("one of --socket and --fd is required (or systemd socket activation)")]
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

/// Runs the gofer as configured: confines the process around the share, then serves until
/// the connection source closes or a stop signal arrives.
///
/// The order matters: inherited FDs other than the connection are closed first; the
/// connection source (and systemd's notification socket) are opened while host paths and
/// the host's network namespace are reachable; namespaces are entered and the process forks
/// while it has one thread; the `/proc/self/fd` handle is opened before `/proc` goes away
/// with the old root; capabilities are dropped, Landlock and seccomp installed last, still
/// on one thread, so every connection thread inherits them.
pub fn run(config: &Config) -> Result<(), StartError> {
    init_logging(config.log_level, config.log_format);
    let inherited = inherited_fd(config)?;
    crate::sys::close_inherited_except(inherited);
    let notifier = Notifier::from_env().unwrap_or_else(|err| {
        tracing::warn!("NOTIFY_SOCKET: {err}; systemd will not hear that the gofer is ready");
        None
    });
    // A bad --root fails here, before a socket file exists.
    rustix::fs::open(
        &config.root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|err| StartError::Root {
        path: config.root.clone(),
        reason: os_reason(&err.into()),
    })?;
    let (source, socket_file) = connection_source(config, inherited)?;
    let metrics = match &config.metrics_socket {
        Some(path) => Some(listener::listen_at(path).map_err(|err| StartError::Socket {
            path: path.clone(),
            reason: os_reason(&err),
        })?),
        None => None,
    };
    let (metrics_listener, metrics_file) = metrics.unzip();
    let socket_files: Vec<_> = socket_file.into_iter().chain(metrics_file).collect();
    let connections = match source {
        Source::Connected(_) => 1,
        Source::Listening(_) => config.max_connections,
    };
    let ((source, metrics_listener), mut readiness) = match config.sandbox {
        SandboxMode::None => (
            (source, metrics_listener),
            Readiness::Direct(notifier, socket_files),
        ),
        mode => {
            if mode == SandboxMode::Namespace {
                namespace::unshare().map_err(|err| sandbox_error("--sandbox namespace", &err))?;
            }
            let supervisor = Supervisor {
                socket_files,
                notifier,
                seccomp: config.seccomp,
            };
            let (sockets, ready) = supervisor::fork(supervisor, (source, metrics_listener))
                .map_err(|err| sandbox_error("the supervising parent", &err))?;
            (sockets, Readiness::Supervised(ready))
        }
    };
    let signals = StopSignals::install().map_err(|err| sandbox_error("signal handlers", &err))?;
    let max_fds = limits::plan(config.max_fds, connections)
        .map_err(|err| StartError::Limits(err.to_string()))?;
    if config.sandbox == SandboxMode::Namespace {
        namespace::private_mounts().map_err(|err| sandbox_error("--sandbox namespace", &err))?;
    }
    let (root, mount) = open_share(config)?;
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
    if let (Some(listener), Some(metrics)) = (metrics_listener, server.metrics()) {
        crate::metrics_endpoint::spawn(listener, Arc::clone(metrics)).map_err(|err| {
            StartError::Serve {
                reason: format!("the metrics thread: {}", os_reason(&err)),
            }
        })?;
    }
    let ended = serve::serve(&server, source, connections, signals, || readiness.ready()).map_err(
        |err| StartError::Serve {
            reason: os_reason(&err),
        },
    )?;
    match ended {
        Ended::Closed => tracing::info!("the connection closed; exiting"),
        Ended::Stopped { signal, cut: 0 } => {
            tracing::info!(signal = serve::signal_name(signal), "stopped");
        }
        Ended::Stopped { signal, cut } => tracing::warn!(
            signal = serve::signal_name(signal),
            cut,
            "stopped; connections that did not finish in time were cut off"
        ),
    }
    readiness.stopped();
    Ok(())
}

/// The inherited FD to serve: `--fd`, or the socket systemd passed.
fn inherited_fd(config: &Config) -> Result<Option<i32>, StartError> {
    let activated = systemd::activation_fd().map_err(StartError::Activation)?;
    match (activated, &config.socket, config.fd) {
        (None, _, fd) => Ok(fd),
        (Some(fd), None, None) => Ok(Some(fd)),
        (Some(_), _, _) => Err(StartError::Activation(
            "systemd passed a socket (LISTEN_FDS): drop --socket and --fd".into(),
        )),
    }
}

/// The connection source: the inherited socket, or a new listening one at `--socket` with
/// the socket file to remove at the end.
fn connection_source(
    config: &Config,
    inherited: Option<i32>,
) -> Result<(Source, Option<SocketFile>), StartError> {
    match (inherited, &config.socket) {
        (Some(fd), _) => {
            let source = listener::inherited(fd).map_err(|err| StartError::Fd {
                fd,
                reason: os_reason(&err),
            })?;
            Ok((source, None))
        }
        (None, Some(path)) => {
            let (socket, file) = listener::listen_at(path).map_err(|err| StartError::Socket {
                path: path.clone(),
                reason: os_reason(&err),
            })?;
            Ok((Source::Listening(socket), Some(file)))
        }
        (None, None) => Err(StartError::NoConnection),
    }
}

/// Who hears that the gofer serves, and who removes the socket file when it stops.
enum Readiness {
    /// The supervising parent (which tells systemd, and removes the file).
    Supervised(Ready),
    /// Unconfined, the process itself.
    Direct(Option<Notifier>, Vec<SocketFile>),
}

impl Readiness {
    fn ready(&mut self) {
        match self {
            Self::Supervised(ready) => ready.signal(),
            Self::Direct(Some(notifier), _) => notifier.notify("READY=1"),
            Self::Direct(None, _) => {}
        }
    }

    /// Serving has ended: unconfined, remove the socket file (the supervising parent does
    /// that once the child is gone).
    fn stopped(&mut self) {
        if let Self::Direct(notifier, files) = self {
            if let Some(notifier) = notifier {
                notifier.notify("STOPPING=1");
            }
            for file in files.drain(..) {
                file.remove_or_warn();
            }
        }
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

/// An OS error as the C library describes it; other errors as they display.
fn os_reason(err: &io::Error) -> String {
    match err.raw_os_error().and_then(|raw| u32::try_from(raw).ok()) {
        Some(raw) => Errno(raw).to_string(),
        None => err.to_string(),
    }
}

/// Logs to standard error (never to a client): at `level`, or as `RUST_LOG` says if it is
/// set, in `format`.
fn init_logging(level: LogLevel, format: LogFormat) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::new(directives),
        _ => EnvFilter::new(level.level().as_str()),
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
