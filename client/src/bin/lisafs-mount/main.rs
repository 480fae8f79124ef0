//! `lisafs-mount`: mounts a lisafs share on the host through FUSE.
//!
//! `lisafs-mount --root DIR MOUNTPOINT` starts a `gofer` child serving DIR over a
//! socketpair (`--memory`: a `gofer --memory` child serving a tree in its memory);
//! `lisafs-mount --socket PATH MOUNTPOINT` attaches to a running gofer. The
//! bridge (`fs.rs` and its neighbours) turns each FUSE request into the fewest lisafs RPCs
//! and does regular-file I/O on the host FDs the gofer donates.
//!
//! Lifecycle: the mount stays until SIGINT, SIGTERM or SIGHUP, an `umount` of the mount
//! point, or the loss of the gofer connection; in every case the mount point is unmounted
//! (lazily if it is busy) before the process exits, so no dead mount is left behind.
//! Without `--foreground` the command returns once the mount is up and a background copy
//! serves it.

mod attr;
mod cli;
mod create;
mod fs;
mod handles;
mod helper;
mod io;
mod log;
mod mount;
mod nodes;
mod ops;
mod passthrough;
mod spawn;

use std::env;
use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use clap::Parser;
use fuser::Session;
use lisafs_client::Client;
use rustix::event::{poll, PollFd, PollFlags};
use signal_hook::consts::{SIGHUP, SIGINT, SIGSYS, SIGTERM};
use signal_hook::iterator::Signals;

use crate::cli::Args;
use crate::fs::LisaFs;
use crate::helper::Helper;
use crate::mount::Unmounted;

/// Why the mount is ending.
enum Event {
    /// SIGINT, SIGTERM or SIGHUP.
    Signal(i32),
    /// The gofer connection failed or closed.
    GoferGone,
    /// The FUSE session ended on its own (someone unmounted).
    SessionEnded(std::io::Result<()>),
}

fn main() -> ExitCode {
    let argv: Vec<OsString> = env::args_os().collect();
    if argv.get(1).map(OsString::as_os_str) == Some(OsStr::new(mount::WATCHER_FLAG)) {
        return mount::watch(&argv[2..]);
    }
    let own_args = if argv
        .first()
        .is_some_and(|arg0| helper::invoked_as_helper(arg0))
    {
        match helper::translate(&argv[1..]) {
            Ok(Helper::Mount(args)) => args,
            Ok(Helper::Fake) => return ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("{}: {msg}", helper::NAME);
                return ExitCode::from(2);
            }
        }
    } else {
        argv.get(1..).unwrap_or_default().to_vec()
    };
    let args =
        Args::parse_from(std::iter::once(OsString::from("lisafs-mount")).chain(own_args.clone()));
    log::init(args.log_level);
    if !args.foreground {
        return spawn::background(&own_args);
    }
    let mut gofer = None;
    let result = run(&args, &mut gofer);
    if let Some(gofer) = &mut gofer {
        let status = spawn::stop_gofer(&mut gofer.child, Duration::from_secs(2));
        tracing::info!(%status, "gofer stopped");
        gofer.drain_stderr(Duration::from_secs(2));
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Reported) => ExitCode::FAILURE,
        Err(Failure::Message(msg)) => {
            log::fatal(&msg);
            ExitCode::FAILURE
        }
    }
}

/// Why `run` failed.
enum Failure {
    /// To be reported as `lisafs-mount: MESSAGE`.
    Message(String),
    /// Already reported by the gofer in its own words.
    Reported,
}

impl From<String> for Failure {
    fn from(msg: String) -> Self {
        Self::Message(msg)
    }
}

/// Mounts, serves until an [`Event`], unmounts. `gofer` receives the child started for
/// `--root` or `--memory`, so that `main` can reap it whatever happens here.
fn run(args: &Args, gofer: &mut Option<spawn::Gofer>) -> Result<(), Failure> {
    let timeouts = args.timeouts()?;
    let log_file = args.log_file.as_deref().map(log::open_file).transpose()?;
    let mountpoint = args
        .mountpoint
        .canonicalize()
        .map_err(|err| format!("mount point {}: {err}", args.mountpoint.display()))?;
    if !mountpoint.is_dir() {
        return Err(format!("mount point {} is not a directory", mountpoint.display()).into());
    }
    let (stream, source) = match (&args.root, &args.socket) {
        (Some(root), _) => {
            let (started, fd) = spawn::start_gofer(args, Some(root))?;
            *gofer = Some(started);
            (UnixStream::from(fd), format!("lisafs:{}", root.display()))
        }
        (None, None) if args.memory => {
            let (started, fd) = spawn::start_gofer(args, None)?;
            *gofer = Some(started);
            (UnixStream::from(fd), "lisafs:memory".to_string())
        }
        (None, Some(socket)) => {
            let stream = UnixStream::connect(socket)
                .map_err(|err| format!("cannot connect to {}: {err}", socket.display()))?;
            (stream, format!("lisafs:{}", socket.display()))
        }
        (None, None) => {
            return Err(Failure::Message(
                "give --root DIR, --memory or --socket PATH".into(),
            ))
        }
    };
    let spec = args.mount_spec(source)?;
    let watch = stream.try_clone().map_err(|err| format!("socket: {err}"))?;
    let client = match Client::from_fd(OwnedFd::from(stream)) {
        Ok(client) => client,
        Err(err) => return Err(gofer_failed(gofer, &err)),
    };

    let (tx, rx) = mpsc::channel();
    let broken = tx.clone();
    let fs = LisaFs::new(
        client,
        timeouts,
        args.data_path(),
        Box::new(move || {
            let _ = broken.send(Event::GoferGone);
        }),
    );
    let (fuse_fd, ours) = mount::mount(&spec, &mountpoint)?;
    let session = match Session::from_fd(fs, fuse_fd, spec.acl, args.session_config(spec.acl)) {
        Ok(session) => session,
        Err(err) => {
            let _ = ours.unmount();
            return Err(format!("FUSE handshake on {}: {err}", mountpoint.display()).into());
        }
    };

    spawn_watchers(watch, &tx)?;
    let ended = tx.clone();
    let session_thread = thread::Builder::new()
        .name("fuse".into())
        .spawn(move || {
            let _ = ended.send(Event::SessionEnded(session.run()));
        })
        .map_err(|err| format!("thread: {err}"))?;

    if args.daemon_child {
        spawn::detach();
        let mut stdout = std::io::stdout();
        // The parent waits for this line; if it is gone, nobody needs it.
        let _ = writeln!(stdout, "ok").and_then(|()| stdout.flush());
        if let Err(err) = log::detach(log_file) {
            tracing::warn!(%err, "cannot detach from standard input, output and error");
        }
    } else if let Some(file) = log_file {
        log::to_file(file);
    }
    tracing::info!(mountpoint = %mountpoint.display(), "mounted");

    let event = rx.recv().unwrap_or(Event::GoferGone);
    let outcome = match event {
        Event::SessionEnded(Ok(())) => return Ok(()),
        Event::SessionEnded(Err(err)) => Err(format!("FUSE session failed: {err}")),
        Event::Signal(signal) => {
            tracing::info!(signal, "unmounting");
            Ok(())
        }
        Event::GoferGone => Err(format!(
            "lost the connection to the gofer; unmounted {}",
            mountpoint.display()
        )),
    };
    let unmounted = ours.unmount();
    match &unmounted {
        // An unmount from outside also closes the gofer connection (the session drops
        // the client), maybe before the session's own end arrives: not a gofer failure.
        Ok(Unmounted::AlreadyGone) => return Ok(()),
        Ok(Unmounted::NotOnTop) => tracing::warn!(
            mountpoint = %mountpoint.display(),
            "our mount is covered by another (or detached): left it for its owner"
        ),
        Ok(Unmounted::Now) => {}
        Err(msg) => log::fatal(msg),
    }
    if unmounted == Ok(Unmounted::Now) {
        // The session ends once the kernel lets go of the mount; a lazily detached one
        // may still be in use, and the process exit will end it.
        while let Ok(event) = rx.recv_timeout(Duration::from_secs(3)) {
            if let Event::SessionEnded(_) = event {
                let _ = session_thread.join();
                break;
            }
        }
    }
    outcome.map_err(Failure::from)
}

/// The gofer did not answer Mount. If it exited and said why on its standard error
/// (copied to ours), that line is the whole report; if it said nothing (killed by a
/// signal, say by its own seccomp filter), how it ended is.
fn gofer_failed(gofer: &mut Option<spawn::Gofer>, err: &lisafs_client::Error) -> Failure {
    if let Some(started) = gofer {
        let exited = spawn::wait_exit(&mut started.child, Duration::from_secs(2));
        if let Some(status) = exited.filter(|status| !status.success()) {
            if started.drain_stderr(Duration::from_secs(2)) {
                return Failure::Reported;
            }
            let seccomp = match status.signal() {
                Some(SIGSYS) => ": a system call its seccomp filter does not allow",
                _ => "",
            };
            return Failure::Message(format!(
                "the gofer ended before answering Mount ({status}){seccomp}"
            ));
        }
    }
    Failure::Message(format!("the gofer did not answer Mount: {err}"))
}

/// Starts the threads that turn signals and the loss of the gofer into [`Event`]s.
fn spawn_watchers(watch: UnixStream, tx: &mpsc::Sender<Event>) -> Result<(), String> {
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(|err| format!("signal handlers: {err}"))?;
    let signal_tx = tx.clone();
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let _ = signal_tx.send(Event::Signal(signal));
            }
        })
        .map_err(|err| format!("thread: {err}"))?;
    let gone_tx = tx.clone();
    thread::Builder::new()
        .name("gofer-watch".into())
        .spawn(move || {
            // The peer closing (the gofer exited or dropped us) shows as RDHUP/HUP; data
            // arriving for the client is not asked for.
            let mut fds = [PollFd::new(&watch, PollFlags::RDHUP)];
            loop {
                match poll(&mut fds, None) {
                    Ok(_) if !fds[0].revents().is_empty() => break,
                    Ok(_) | Err(rustix::io::Errno::INTR) => continue,
                    Err(err) => {
                        tracing::warn!(%err, "poll on the gofer socket failed");
                        break;
                    }
                }
            }
            let _ = gone_tx.send(Event::GoferGone);
        })
        .map_err(|err| format!("thread: {err}"))?;
    Ok(())
}
