//! The `gofer` program: process setup and the serving loops. [`main`] is the whole
//! binary, so other packages can build an identical gofer (the end-to-end tests do).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use lisafs_protocol::wire::Errno;
use lisafs_server::hooks::Hook;
use lisafs_server::{Backend, Hooked, Metrics, Server};
use rustix::fs::{Mode, OFlags};
use rustix::thread::CapabilitySet;
use tracing_subscriber::EnvFilter;

use crate::audit::{Audit, AuditOptions, AuditTarget};
use crate::config::{Config, LogFormat, LogLevel, SandboxMode};
use crate::host::{HostBackend, ShareMount};
use crate::limits;
use crate::plan::{AuditPlan, ConfigError, Connection, MountPlan, Plan};
use crate::rules::Rules;
use crate::sandbox::supervisor::{self, Link, Supervisor};
use crate::sandbox::{landlock, namespace, privileges, seccomp, share};
use crate::service::reload::{Reload, ReloadPaths};
use crate::service::serve::{self, Ended, Served, StopSignals};
use crate::service::{listener, systemd, Notifier, SocketFile, Source};

mod memory;

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
    /// A root cannot be served.
    #[error("{subject} {}: {reason}", path.display())]
    Root {
        /// `--root`, or the mount in the config file.
        subject: String,
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
    /// The audit log cannot be opened.
    #[error("audit file {}: {reason}", path.display())]
    Audit {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The `--config` file is not valid.
    #[error("{0}")]
    Config(#[from] ConfigError),
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

/// Runs the gofer as configured: the one mount of the flags, or every mount of
/// `--config`; with `--check`, only validates and prints the effective configuration.
pub fn run(config: &Config) -> Result<(), StartError> {
    let plan = match &config.config {
        Some(path) => Plan::load(path).map_err(StartError::Config)?,
        None => Plan::from_flags(config),
    };
    if config.check {
        for mount in &plan.mounts {
            check_root(mount)?;
        }
        print!("{plan}");
        return Ok(());
    }
    serve_plan(plan)
}

/// Confines the process around the shares (or, with `--memory`, around an empty root),
/// then serves until every connection source has closed (connected sockets) or a stop
/// signal arrives.
///
/// The order matters: inherited FDs other than the connections are closed first; the
/// connection sources (and systemd's notification socket) are opened while host paths and
/// the host's network namespace are reachable; namespaces are entered and the process forks
/// while it has one thread; the `/proc/self/fd` handle is opened before `/proc` goes away
/// with the old root; capabilities are dropped, Landlock and seccomp installed last, still
/// on one thread, so every connection thread inherits them.
fn serve_plan(mut plan: Plan) -> Result<(), StartError> {
    init_logging(plan.log_level, plan.log_format);
    let started = start(&mut plan)?;
    match plan.mounts.as_slice() {
        [MountPlan {
            memory: Some(memory),
            ..
        }] => memory::serve(&plan, memory, started),
        _ => serve_host(&plan, started),
    }
}

/// What [`start`] leaves for serving: the process is in its namespaces (and, supervised,
/// the forked child), but not yet confined to a root.
struct Started {
    sources: Vec<Source>,
    metrics_listener: Option<OwnedFd>,
    audit: Option<Audit>,
    reload_paths: Option<ReloadPaths>,
    readiness: Readiness,
    signals: StopSignals,
    /// Per mount: most connections at once.
    limits: Vec<usize>,
    /// Per mount: the per-connection FD cap.
    max_fds: Vec<usize>,
    /// Per memory mount: the FDs set aside for its files (one memfd each).
    file_fds: Vec<Option<u64>>,
}

/// The start-up every backend shares: connection sources, the audit file, the namespaces
/// and the supervising fork, stop signals, FD limits, and private mounts.
fn start(plan: &mut Plan) -> Result<Started, StartError> {
    take_activation(plan)?;
    let inherited: Vec<_> = plan
        .mounts
        .iter()
        .filter_map(|mount| match mount.connection {
            Connection::Fd(fd) => Some(fd),
            _ => None,
        })
        .collect();
    crate::sys::close_inherited_except(&inherited);
    let notifier = Notifier::from_env().unwrap_or_else(|err| {
        tracing::warn!("NOTIFY_SOCKET: {err}; systemd will not hear that the gofer is ready");
        None
    });
    // A bad root fails here, before a socket file exists.
    for mount in &plan.mounts {
        check_root(mount)?;
    }
    let mut sources = Vec::new();
    let mut socket_files = Vec::new();
    for mount in &plan.mounts {
        let (source, file) = connection_source(mount)?;
        sources.push(source);
        socket_files.extend(file);
    }
    let metrics_listener = match &plan.metrics_socket {
        Some(path) => {
            let (listener, file) = listener::listen_at(path).map_err(|err| StartError::Socket {
                path: path.clone(),
                reason: os_reason(&err),
            })?;
            socket_files.push(file);
            Some(listener)
        }
        None => None,
    };
    // Opened while its path is reachable; written to by a thread started once confined.
    let audit = match &plan.audit {
        Some(audit) => Some(open_audit(audit)?),
        None => None,
    };
    // Where a SIGHUP finds the files again, held open while they are reachable.
    let mut reload_paths = match &plan.file {
        Some(file) => {
            let audit = plan.audit.as_ref().and_then(|audit| audit.file.as_deref());
            let paths = ReloadPaths::new(file, audit).map_err(|err| StartError::Serve {
                reason: format!("the directories to reload from: {}", os_reason(&err)),
            })?;
            Some(paths)
        }
        None => None,
    };
    let ((sources, metrics_listener, audit), readiness) = match plan.sandbox {
        SandboxMode::None => (
            (sources, metrics_listener, audit),
            Readiness::Direct(notifier, socket_files),
        ),
        mode => {
            if mode == SandboxMode::Namespace {
                namespace::unshare().map_err(|err| sandbox_error("--sandbox namespace", &err))?;
            }
            let supervisor = Supervisor {
                socket_files,
                notifier,
                seccomp: plan.seccomp,
                // The parent reloads; the confined child must not hold those directories.
                reload: reload_paths.take(),
            };
            let (sockets, ready) = supervisor::fork(supervisor, (sources, metrics_listener, audit))
                .map_err(|err| sandbox_error("the supervising parent", &err))?;
            (sockets, Readiness::Supervised(Arc::new(ready)))
        }
    };
    let signals = StopSignals::install(plan.file.is_some())
        .map_err(|err| sandbox_error("signal handlers", &err))?;
    let limits: Vec<_> = plan
        .mounts
        .iter()
        .zip(&sources)
        .map(|(mount, source)| match source {
            Source::Connected(_) => 1,
            Source::Listening(_) => mount.max_connections,
        })
        .collect();
    let total = limits.iter().sum();
    // Before seccomp, which refuses setrlimit. A memory mount's files hold FDs of their
    // own (memfds): half the limit is set aside for them.
    let budgets =
        plan.mounts
            .iter()
            .map(|mount| match mount.memory {
                Some(_) => limits::plan_with_files(mount.max_fds, total)
                    .map(|(cap, files)| (cap, Some(files))),
                None => limits::plan(mount.max_fds, total).map(|cap| (cap, None)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| StartError::Limits(err.to_string()))?;
    let (max_fds, file_fds) = budgets.into_iter().unzip();
    if plan.sandbox == SandboxMode::Namespace {
        namespace::private_mounts().map_err(|err| sandbox_error("--sandbox namespace", &err))?;
    }
    Ok(Started {
        sources,
        metrics_listener,
        audit,
        reload_paths,
        readiness,
        signals,
        limits,
        max_fds,
        file_fds,
    })
}

/// Serves host directories: each mount's share as a detached mount, the first as the
/// process root, then the config file's policy hooks if there is one.
fn serve_host(plan: &Plan, started: Started) -> Result<(), StartError> {
    let Started {
        sources,
        metrics_listener,
        audit,
        reload_paths,
        mut readiness,
        signals,
        limits,
        max_fds,
        file_fds: _,
    } = started;
    let mut shares = Vec::new();
    for mount in &plan.mounts {
        shares.push(open_share(mount, plan.sandbox)?);
    }
    let mut layers = Vec::new();
    let root = Some((shares[0].0.as_fd(), plan.mounts[0].root.as_path()));
    confine_root(plan.sandbox, root, "the share", &mut layers)?;
    let mut backends = Vec::new();
    for (mount, (root, share)) in plan.mounts.iter().zip(shares) {
        let backend =
            HostBackend::with_root(root, share, mount.host).map_err(|err| StartError::Root {
                subject: root_subject(mount),
                path: mount.root.clone(),
                reason: os_reason(&err),
            })?;
        backends.push(backend);
    }
    backends[0]
        .name_sockets_from_cwd()
        .map_err(|err| sandbox_error("the /proc/self/fd handle", &err))?;
    let any = |f: fn(&crate::host::HostOptions) -> bool| backends.iter().any(|b| f(b.options()));
    let restrictions = Restrictions {
        keep: privileges::needed(any(|o| o.allow_setid), any(|o| o.mknod.devices())),
        landlock_roots: backends
            .iter()
            .zip(&plan.mounts)
            .map(|(backend, mount)| (backend.root_fd(), mount.readonly))
            .collect(),
        features: seccomp::Features {
            uds_connect: any(|o| o.uds_connect),
            uds_create: any(|o| o.uds_create),
            peer_credentials: plan.audit.is_some(),
        },
    };
    restrict_process(plan, restrictions, &mut layers)?;
    tracing::info!(confinement = layers.join("; "), "confined");
    let metrics = start_metrics(plan, metrics_listener, audit.as_ref())?;
    let mounts = Mounts {
        plan,
        backends,
        sources,
        limits,
        max_fds,
        metrics,
    };
    let rules: Vec<_> = plan
        .mounts
        .iter()
        .zip(&mounts.backends)
        .map(|(mount, backend)| {
            let root = backend.root_fd().try_clone_to_owned().ok();
            Rules::new(mount.rules.clone(), root).donating(mount.donate)
        })
        .collect();
    let serving = match &plan.file {
        Some(file) => {
            // A config file: policy hooks, even without rules, so a reload can add some.
            if let Some(audit) = &audit {
                audit.start().map_err(|err| StartError::Serve {
                    reason: format!("the audit thread: {}", os_reason(&err)),
                })?;
            }
            let reload = Arc::new(Reload::new(
                plan,
                file.clone(),
                rules.clone(),
                audit.as_ref().map(Audit::switch),
            ));
            let on_hup = reload_trigger(&readiness, reload_paths, reload)?;
            let served = mounts.servers(|backend, index, name| {
                // Rules first, so the audit line of a refusal names the rule that decided.
                let hook: Box<dyn Hook> = match &audit {
                    Some(audit) => Box::new((rules[index].clone(), audit.hook(name))),
                    None => Box::new(rules[index].clone()),
                };
                Hooked::new(backend, hook)
            });
            if audit.is_some() {
                for mount in &served {
                    mount.server.read_peer_credentials(true);
                }
            }
            serve::serve(served, signals, on_hup, || readiness.ready())
        }
        // The command line: no policy, so the backend as it is, without the hook layer.
        None => serve::serve(
            mounts.servers(|backend, _, _| backend),
            signals,
            || {},
            || readiness.ready(),
        ),
    };
    finish(serving, &mut readiness)
}

/// Starts the metrics endpoint if `--metrics-socket` asked for one; the metrics the
/// servers record into.
fn start_metrics(
    plan: &Plan,
    listener: Option<OwnedFd>,
    audit: Option<&Audit>,
) -> Result<Option<Arc<Metrics>>, StartError> {
    let metrics = plan.metrics().then(|| Arc::new(Metrics::default()));
    if let (Some(metrics), Some(audit)) = (&metrics, audit) {
        metrics.add_counter(
            "lisafs_audit_dropped",
            "Audit log lines lost: dropped from a full queue, or refused by the file.",
            audit.dropped_counter(),
        );
    }
    if let (Some(listener), Some(metrics)) = (listener, &metrics) {
        crate::metrics_endpoint::spawn(listener, Arc::clone(metrics)).map_err(|err| {
            StartError::Serve {
                reason: format!("the metrics thread: {}", os_reason(&err)),
            }
        })?;
    }
    Ok(metrics)
}

/// Logs how serving ended, and lets the parent or systemd know.
fn finish(serving: io::Result<Ended>, readiness: &mut Readiness) -> Result<(), StartError> {
    let ended = serving.map_err(|err| StartError::Serve {
        reason: os_reason(&err),
    })?;
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

/// What the mounts are served with, once the process is confined.
struct Mounts<'a, B> {
    plan: &'a Plan,
    backends: Vec<B>,
    sources: Vec<Source>,
    limits: Vec<usize>,
    max_fds: Vec<usize>,
    metrics: Option<Arc<Metrics>>,
}

/// What the "serving" log line says about a mount's backend.
trait Describe {
    /// Its settings, in one line.
    fn describe(&self) -> String;
}

impl Describe for HostBackend {
    fn describe(&self) -> String {
        format!("{:?}", self.options())
    }
}

impl<B: Describe> Mounts<'_, B> {
    /// A server per mount, over its backend as `wrap` makes it (adding hooks, say).
    fn servers<W: Backend>(self, wrap: impl Fn(B, usize, &str) -> W) -> Vec<Served<W>> {
        let each = self
            .backends
            .into_iter()
            .zip(self.sources)
            .zip(self.limits)
            .zip(self.max_fds);
        let mut served = Vec::new();
        for (index, (mount, (((backend, source), max), max_fds))) in
            self.plan.mounts.iter().zip(each).enumerate()
        {
            tracing::info!(
                mount = mount.name,
                root = %mount.root.display(),
                options = %backend.describe(),
                max_fds,
                "serving"
            );
            let options = mount.server_options(max_fds, self.metrics.is_some());
            let backend = wrap(backend, index, &mount.name);
            let server = match &self.metrics {
                Some(metrics) => Server::with_metrics(backend, options, Arc::clone(metrics)),
                None => Server::new(backend, options),
            };
            served.push(Served {
                server,
                source,
                max,
            });
        }
        served
    }
}

/// Opens the audit log `[audit]` describes (its writer starts later).
fn open_audit(audit: &AuditPlan) -> Result<Audit, StartError> {
    let target = match &audit.file {
        Some(path) => AuditTarget::Path(path.clone()),
        None => AuditTarget::Stderr,
    };
    let mut options = AuditOptions::new(target);
    options.ops = audit.ops;
    options.on_full = audit.on_full;
    Audit::open(options).map_err(|err| StartError::Audit {
        path: audit.file.clone().unwrap_or_default(),
        reason: os_reason(&err),
    })
}

/// Gives the socket systemd passed, if any, to the one mount of the command line, which
/// must not name a socket of its own.
fn take_activation(plan: &mut Plan) -> Result<(), StartError> {
    let Some(fd) = systemd::activation_fd().map_err(StartError::Activation)? else {
        return Ok(());
    };
    match plan.mounts.as_mut_slice() {
        [mount] if mount.connection == Connection::Unset => {
            mount.connection = Connection::Fd(fd);
            Ok(())
        }
        [_] => Err(StartError::Activation(
            "systemd passed a socket (LISTEN_FDS): drop --socket and --fd".into(),
        )),
        _ => Err(StartError::Activation(
            "systemd passed a socket (LISTEN_FDS): with --config, name each mount's fd".into(),
        )),
    }
}

/// How errors name a mount's root: the flag, or the mount in the config file.
fn root_subject(mount: &MountPlan) -> String {
    match mount.name.as_str() {
        "root" => "--root".into(),
        name => format!("mount {name:?}: root"),
    }
}

/// Fails as serving would if `mount`'s root (or the directory `--memory-from` copies) is
/// not a directory that can be opened.
fn check_root(mount: &MountPlan) -> Result<(), StartError> {
    let (subject, path) = match &mount.memory {
        Some(memory) => match &memory.from {
            Some(from) => ("--memory-from".to_string(), from),
            None => return Ok(()),
        },
        None => (root_subject(mount), &mount.root),
    };
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map(drop)
    .map_err(|err| StartError::Root {
        subject,
        path: path.clone(),
        reason: os_reason(&err.into()),
    })
}

/// A mount's connection source: the inherited socket, or a new listening one with the
/// socket file to remove at the end.
fn connection_source(mount: &MountPlan) -> Result<(Source, Option<SocketFile>), StartError> {
    match &mount.connection {
        Connection::Fd(fd) => {
            let source = listener::inherited(*fd).map_err(|err| StartError::Fd {
                fd: *fd,
                reason: os_reason(&err),
            })?;
            Ok((source, None))
        }
        Connection::Socket(path) => {
            let (socket, file) = listener::listen_at(path).map_err(|err| StartError::Socket {
                path: path.clone(),
                reason: os_reason(&err),
            })?;
            Ok((Source::Listening(socket), Some(file)))
        }
        Connection::Unset => Err(StartError::NoConnection),
    }
}

/// What SIGHUP does with a config file: supervised, ask the parent for the files (and
/// apply them on a thread that waits for them); unconfined, open and apply them at once.
fn reload_trigger(
    readiness: &Readiness,
    paths: Option<ReloadPaths>,
    reload: Arc<Reload>,
) -> Result<Box<dyn FnMut() + Send>, StartError> {
    match readiness {
        Readiness::Supervised(link) => {
            let link = Arc::clone(link);
            let asker = Arc::clone(&link);
            std::thread::Builder::new()
                .name("lisafs-reload".into())
                .spawn(move || {
                    while let Some(reopened) = link.next_reload() {
                        reload.apply(reopened);
                    }
                })
                .map_err(|err| StartError::Serve {
                    reason: format!("the reload thread: {}", os_reason(&err)),
                })?;
            Ok(Box::new(move || asker.ask_reload()))
        }
        Readiness::Direct(..) => Ok(Box::new(move || {
            if let Some(reopened) = paths.as_ref().and_then(ReloadPaths::open) {
                reload.apply(reopened);
            }
        })),
    }
}

/// Who hears that the gofer serves, and who removes the socket file when it stops.
enum Readiness {
    /// The supervising parent (which tells systemd, and removes the file).
    Supervised(Arc<Link>),
    /// Unconfined, the process itself.
    Direct(Option<Notifier>, Vec<SocketFile>),
}

impl Readiness {
    fn ready(&mut self) {
        match self {
            Self::Supervised(link) => link.ready(),
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

/// Opens a mount's share as a detached `nosuid,nodev` (and with `readonly`, `ro`) bind
/// mount. Only unconfined (`--sandbox none`) may a gofer without the privilege for that fall
/// back to a plain directory FD, with a warning.
fn open_share(
    mount: &MountPlan,
    sandbox: SandboxMode,
) -> Result<(OwnedFd, ShareMount), StartError> {
    let root_error = |err: &io::Error| StartError::Root {
        subject: root_subject(mount),
        path: mount.root.clone(),
        reason: os_reason(err),
    };
    match share::open_detached(&mount.root, mount.readonly) {
        Ok(tree) => Ok((tree, ShareMount::Detached)),
        Err(err) if sandbox == SandboxMode::None && err.raw_os_error() == Some(libc::EPERM) => {
            tracing::warn!(
                mount = mount.name,
                "no privilege for a detached mount of the share: readonly, nosuid and nodev \
                 are enforced by the gofer's checks only"
            );
            let fd = rustix::fs::open(
                &mount.root,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|err| root_error(&err.into()))?;
            Ok((fd, ShareMount::Plain))
        }
        Err(err) => Err(root_error(&err)),
    }
}

/// Makes `root` the process root as `--sandbox` says (attached at its mount point for the
/// pivot), after opening the `/proc/self/fd` handle that outlives the old root. `what`
/// names the root in the log. Other shares stay detached, reachable only through the FDs
/// their backends hold. `root` is `None` only with `--sandbox none`.
fn confine_root(
    sandbox: SandboxMode,
    root: Option<(BorrowedFd<'_>, &Path)>,
    what: &str,
    layers: &mut Vec<String>,
) -> Result<(), StartError> {
    rustix_linux_procfs::proc_self_fd().map_err(|err| sandbox_error("procfs", &err.into()))?;
    match (sandbox, root) {
        (SandboxMode::Namespace, Some((root, mountpoint))) => {
            namespace::pivot_into(root, mountpoint)
                .map_err(|err| sandbox_error("--sandbox namespace", &err))?;
            layers.push(format!(
                "namespaces mnt,pid,ipc,uts,net; pivot_root into {what}"
            ));
        }
        (SandboxMode::Chroot, Some((root, _))) => {
            namespace::chroot_into(root).map_err(|err| sandbox_error("--sandbox chroot", &err))?;
            layers.push(format!("chroot into {what}"));
        }
        (SandboxMode::None, _) => {
            tracing::warn!("--sandbox none: the gofer runs in the host's namespaces and root");
        }
        (_, None) => {
            return Err(StartError::Sandbox {
                reason: "no root to confine the gofer to".into(),
            })
        }
    }
    Ok(())
}

/// What [`restrict_process`] leaves the process: enough for every mount's features.
struct Restrictions<'a> {
    /// The capabilities kept.
    keep: CapabilitySet,
    /// The trees Landlock allows (read-only where marked), unless `--sandbox none`.
    landlock_roots: Vec<(BorrowedFd<'a>, bool)>,
    /// The optional system-call sets seccomp allows.
    features: seccomp::Features,
}

/// Capabilities, Landlock and seccomp: the layers every thread inherits.
fn restrict_process(
    plan: &Plan,
    restrictions: Restrictions<'_>,
    layers: &mut Vec<String>,
) -> Result<(), StartError> {
    let keep = restrictions.keep;
    privileges::restrict(keep).map_err(|err| sandbox_error("capabilities", &err))?;
    layers.push(format!("capabilities {keep:?}; no groups; not dumpable"));
    if plan.sandbox != SandboxMode::None {
        match landlock::restrict_to(&restrictions.landlock_roots) {
            Ok(status) => layers.push(format!("landlock {status:?}")),
            Err(err) => {
                return Err(StartError::Sandbox {
                    reason: format!("landlock: {err}"),
                })
            }
        }
    }
    seccomp::install(plan.seccomp, restrictions.features)
        .map_err(|err| sandbox_error("--seccomp", &err))?;
    layers.push(format!("seccomp {:?}", plan.seccomp));
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
