//! `lisafs-mount`: mounts a lisafs share on the host through FUSE.
//!
//! `lisafs-mount --root DIR MOUNTPOINT` starts a `gofer` child serving DIR over a
//! socketpair; `lisafs-mount --socket PATH MOUNTPOINT` attaches to a running gofer. The
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
mod io;
mod nodes;
mod ops;
mod spawn;

use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, ExitCode};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use clap::Parser;
use fuser::Session;
use lisafs_client::Client;
use rustix::event::{poll, PollFd, PollFlags};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::cli::Args;
use crate::fs::LisaFs;

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
    let args = Args::parse();
    init_logging(&args.log_level);
    if !args.foreground {
        return spawn::background();
    }
    let mut gofer = None;
    let result = run(&args, &mut gofer);
    if let Some(child) = &mut gofer {
        let status = spawn::stop_gofer(child, Duration::from_secs(2));
        tracing::info!(%status, "gofer stopped");
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("lisafs-mount: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Mounts, serves until an [`Event`], unmounts. `gofer` receives the child started for
/// `--root`, so that `main` can reap it whatever happens here.
fn run(args: &Args, gofer: &mut Option<Child>) -> Result<(), String> {
    let timeouts = args.timeouts()?;
    let mountpoint = args
        .mountpoint
        .canonicalize()
        .map_err(|err| format!("mount point {}: {err}", args.mountpoint.display()))?;
    if !mountpoint.is_dir() {
        return Err(format!(
            "mount point {} is not a directory",
            mountpoint.display()
        ));
    }
    let (stream, source) = match (&args.root, &args.socket) {
        (Some(root), _) => {
            let (child, fd) = spawn::start_gofer(args, root)?;
            *gofer = Some(child);
            (UnixStream::from(fd), format!("lisafs:{}", root.display()))
        }
        (None, Some(socket)) => {
            let stream = UnixStream::connect(socket)
                .map_err(|err| format!("cannot connect to {}: {err}", socket.display()))?;
            (stream, format!("lisafs:{}", socket.display()))
        }
        (None, None) => return Err("give --root DIR or --socket PATH".into()),
    };
    let watch = stream.try_clone().map_err(|err| format!("socket: {err}"))?;
    let client = Client::from_fd(OwnedFd::from(stream))
        .map_err(|err| format!("the gofer did not answer Mount: {err}"))?;

    let (tx, rx) = mpsc::channel();
    let broken = tx.clone();
    let fs = LisaFs::new(
        client,
        timeouts,
        Box::new(move || {
            let _ = broken.send(Event::GoferGone);
        }),
    );
    let config = args.config(source)?;
    let mut session = Session::new(fs, &mountpoint, &config)
        .map_err(|err| format!("cannot mount on {}: {err}", mountpoint.display()))?;
    let mut unmounter = session.unmount_callable();

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
    }
    tracing::info!(mountpoint = %mountpoint.display(), "mounted");

    let event = match rx.recv().unwrap_or(Event::GoferGone) {
        // An unmount from outside also closes the connection (the session drops the
        // client, the gofer exits): the session's own end may arrive just after.
        Event::GoferGone => match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(ended @ Event::SessionEnded(_)) => ended,
            _ => Event::GoferGone,
        },
        event => event,
    };
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
    unmount(&mut unmounter, &mountpoint);
    // The session ends once the kernel lets go of the mount; a lazily detached one may
    // still be in use, and the process exit will end it.
    let deadline = Duration::from_secs(3);
    loop {
        match rx.recv_timeout(deadline) {
            Ok(Event::SessionEnded(_)) => {
                let _ = session_thread.join();
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    outcome
}

/// Unmounts `mountpoint`; if it is busy, detaches it (`umount -l`) so that nothing stale
/// stays visible.
fn unmount(unmounter: &mut fuser::SessionUnmounter, mountpoint: &Path) {
    match unmounter.unmount() {
        Ok(()) => {}
        // Not mounted (any more): nothing to clean up.
        Err(err) if err.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {}
        Err(err) => {
            tracing::warn!(%err, "unmount failed; detaching lazily");
            if let Err(err) =
                rustix::mount::unmount(mountpoint, rustix::mount::UnmountFlags::DETACH)
            {
                eprintln!(
                    "lisafs-mount: cannot unmount {}: {err}",
                    mountpoint.display()
                );
            }
        }
    }
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
