//! The process that stays outside: with `--sandbox namespace` or `chroot` the gofer forks
//! once at start-up, and the parent only supervises the serving child.
//!
//! The parent exists because a PID-namespace init must have a parent outside, and because
//! what must happen after the child is gone needs someone who is not confined: removing
//! the socket file (unreachable from inside the share, and denied by Landlock), and telling
//! systemd. It passes stop signals on, enforces the stop deadline, and exits the way the
//! child did. With a `--config` file it also opens, on SIGHUP, the files a reload reads
//! (`service::reload`), which the confined child cannot reach. It holds no capability, no
//! connection and no share FD, and runs under its own small seccomp filter.

use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use rustix::process::{Pid, Signal, WaitOptions};
use rustix::thread::CapabilitySet;
use signal_hook::SigId;

use super::{privileges, seccomp};
use crate::config::SeccompAction;
use crate::service::reload::{ReloadPaths, Reopened};
use crate::service::{serve, Notifier, SocketFile};
use crate::sys::{self, Forked};

/// What the parent keeps and does for the child.
#[derive(Debug)]
pub(crate) struct Supervisor {
    /// The socket files to remove once the child is gone (the connection socket's and
    /// the metrics socket's).
    pub(crate) socket_files: Vec<SocketFile>,
    /// systemd's notification socket: the parent is the service's main process, so
    /// systemd accepts `READY=1` only from it.
    pub(crate) notifier: Option<Notifier>,
    /// The parent's own seccomp action.
    pub(crate) seccomp: SeccompAction,
    /// With a `--config` file: what a reload opens. SIGHUP then reloads instead of
    /// stopping.
    pub(crate) reload: Option<ReloadPaths>,
}

/// The child's end of the supervision, a `SOCK_SEQPACKET` socket to the parent: the child
/// says when serving has begun ([`READY`]) and asks for a reload ([`RELOAD`]); the parent
/// answers a reload with the files ([`FILES`], the config file and perhaps the audit file
/// as `SCM_RIGHTS`).
#[derive(Debug)]
pub(crate) struct Link(OwnedFd);

/// Child to parent: serving has begun.
const READY: u8 = b'R';
/// Child to parent: reload (the child got a SIGHUP).
const RELOAD: u8 = b'H';
/// Parent to child: a reload's files.
const FILES: u8 = b'F';

impl Link {
    /// Tells the parent that the gofer serves (which tells systemd).
    pub(crate) fn ready(&self) {
        let _ = rustix::io::write(&self.0, &[READY]);
    }

    /// Asks the parent for a reload's files.
    pub(crate) fn ask_reload(&self) {
        let _ = rustix::io::write(&self.0, &[RELOAD]);
    }

    /// Waits for the next reload's files; `None` once the parent is gone.
    pub(crate) fn next_reload(&self) -> Option<Reopened> {
        loop {
            let mut byte = [0u8; 1];
            let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let received = match rustix::net::recvmsg(
                &self.0,
                &mut [IoSliceMut::new(&mut byte)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Ok(received) => received,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return None,
            };
            if received.bytes == 0 {
                return None;
            }
            let mut fds: Vec<OwnedFd> = Vec::new();
            for message in control.drain() {
                if let RecvAncillaryMessage::ScmRights(received) = message {
                    fds.extend(received);
                }
            }
            let mut fds = fds.into_iter();
            if let (FILES, Some(config)) = (byte[0], fds.next()) {
                return Some(Reopened {
                    config: File::from(config),
                    audit: fds.next().map(File::from),
                });
            }
        }
    }

    /// Sends a reload's files to the child.
    fn send(child: BorrowedFd<'_>, reopened: &Reopened) {
        let mut fds = vec![reopened.config.as_fd()];
        fds.extend(reopened.audit.as_ref().map(AsFd::as_fd));
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        control.push(SendAncillaryMessage::ScmRights(&fds));
        if let Err(err) = rustix::net::sendmsg(
            child,
            &[IoSlice::new(&[FILES])],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            tracing::error!("reload: cannot pass the files to the gofer: {err}");
        }
    }
}

/// Forks. Returns in the child only, with `carried` (the child's sockets) and the [`Link`]
/// end; the parent closes its copy of `carried` and supervises the child until it ends,
/// then exits as it did. Must be called while the process has one thread.
pub(crate) fn fork<T>(supervisor: Supervisor, carried: T) -> io::Result<(T, Link)> {
    // Registered before the fork, so that a signal arriving at once is not lost (it would
    // kill the parent before it could pass it on).
    let signals = SignalPipes::register()?;
    let (parent_end, child_end) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    match sys::fork_single_threaded()? {
        Forked::Child => {
            signals.release();
            drop(parent_end);
            drop(supervisor);
            // The parent may be outside this PID namespace: if it dies, so must we.
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            Ok((carried, Link(child_end)))
        }
        Forked::Parent(child) => {
            drop(carried);
            drop(child_end);
            supervise(child, &signals, parent_end, supervisor)
        }
    }
}

/// One socket pair per [`FORWARDED`] signal, written to by its handler, so the parent can
/// poll for signals and knows which one came.
struct SignalPipes(Vec<(i32, UnixStream, SigId)>);

impl SignalPipes {
    fn register() -> io::Result<Self> {
        let mut pipes = Vec::new();
        for signal in FORWARDED {
            let (read, write) = UnixStream::pair()?;
            let id = signal_hook::low_level::pipe::register(signal, write)?;
            pipes.push((signal, read, id));
        }
        Ok(Self(pipes))
    }

    /// In the child: the handlers do nothing any more, and the pipes are closed.
    fn release(self) {
        for (_, _, id) in self.0 {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// The signals the parent acts on: the stop signals are passed on to the child (which
/// stops gracefully), SIGQUIT ends it at once; with a config file, SIGHUP reloads.
const FORWARDED: [i32; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

/// How long past the child's own deadline the parent waits before it kills the child.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// The parent's whole life after the fork.
fn supervise(child: Pid, signals: &SignalPipes, link: OwnedFd, supervisor: Supervisor) -> ! {
    let outcome = watch(child, signals, &link, &supervisor);
    for file in &supervisor.socket_files {
        file.remove_or_warn();
    }
    match outcome {
        Ok(End::Exited(code)) => std::process::exit(code),
        Ok(End::Signal(signal)) => {
            // Die of the same signal (SIGSYS from seccomp, the operator's SIGQUIT).
            let _ = signal_hook::low_level::emulate_default_handler(signal);
            std::process::exit(128 + signal);
        }
        Err(err) => {
            tracing::error!("cannot wait for the gofer: {err}");
            let _ = rustix::process::kill_process(child, Signal::KILL);
            std::process::exit(1);
        }
    }
}

/// How the parent ends.
enum End {
    /// With this exit code (the child's).
    Exited(i32),
    /// Of this signal (the one that killed the child, or the one that made the parent
    /// kill it).
    Signal(i32),
}

/// Waits for `child` to end, passing stop signals on, notifying systemd and opening a
/// reload's files. It cannot start threads (with `--sandbox namespace` its PID namespace
/// for children differs from its own), so it polls the child's pidfd, the signal pipes and
/// the link to the child.
fn watch(
    child: Pid,
    signals: &SignalPipes,
    link: &OwnedFd,
    supervisor: &Supervisor,
) -> io::Result<End> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let pidfd = rustix::process::pidfd_open(child, rustix::process::PidfdFlags::empty())?;
    privileges::restrict(CapabilitySet::empty())?;
    seccomp::install_waiter(supervisor.seccomp, supervisor.reload.is_some())?;
    let notify = |state: &str| {
        if let Some(notifier) = &supervisor.notifier {
            notifier.notify(state);
        }
    };
    let reload = || {
        if let Some(reopened) = supervisor.reload.as_ref().and_then(ReloadPaths::open) {
            Link::send(link.as_fd(), &reopened);
        }
    };
    let mut link_open = true;
    // The signal passed on, and when the child must be gone.
    let mut stopping: Option<(i32, Instant)> = None;
    let mut killed_for = None;
    loop {
        let mut fds: Vec<_> = [pidfd.as_fd(), link.as_fd()]
            .into_iter()
            .chain(signals.0.iter().map(|(_, read, _)| read.as_fd()))
            .map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN))
            .collect();
        if !link_open {
            // A closed socket stays readable; stop polling it.
            fds[1] = PollFd::new(&pidfd, PollFlags::empty());
        }
        let timeout = stopping.map(|(_, deadline)| {
            let left = deadline.saturating_duration_since(Instant::now());
            Timespec::try_from(left).unwrap_or_default()
        });
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(err) => return Err(err.into()),
        }
        if link_open && !fds[1].revents().is_empty() {
            let mut byte = [0u8; 1];
            match rustix::io::read(link, &mut byte) {
                Ok(1) if byte[0] == READY => notify("READY=1"),
                Ok(1) if byte[0] == RELOAD && stopping.is_none() => reload(),
                Ok(1) => {}
                _ => link_open = false,
            }
        }
        for ((signal, read, _), fd) in signals.0.iter().zip(&fds[2..]) {
            if fd.revents().is_empty() {
                continue;
            }
            // Drain the byte the handler wrote, or poll would report it again at once.
            let _ = rustix::io::read(read, &mut [0u8; 16]);
            if *signal == libc::SIGHUP && supervisor.reload.is_some() {
                // A reload, not a stop: none while stopping.
                if stopping.is_none() {
                    reload();
                }
            } else if *signal == libc::SIGQUIT || stopping.is_some() {
                // SIGQUIT, or a second signal: the operator does not want to wait.
                killed_for.get_or_insert(*signal);
                let _ = rustix::process::kill_process(child, Signal::KILL);
            } else if let Some(pass) = Signal::from_named_raw(*signal) {
                notify("STOPPING=1");
                stopping = Some((*signal, Instant::now() + serve::STOP_DEADLINE + KILL_GRACE));
                let _ = rustix::process::kill_process(child, pass);
            }
        }
        if let Some((signal, deadline)) = stopping {
            if killed_for.is_none() && Instant::now() >= deadline {
                tracing::warn!("the gofer did not stop in time; killing it");
                killed_for = Some(signal);
                let _ = rustix::process::kill_process(child, Signal::KILL);
            }
        }
        if fds[0].revents().is_empty() {
            continue;
        }
        let Some((_, status)) = rustix::process::waitpid(Some(child), WaitOptions::NOHANG)? else {
            continue;
        };
        if let Some(signal) = killed_for {
            return Ok(End::Signal(signal));
        }
        if let Some(signal) = status.terminating_signal() {
            return Ok(End::Signal(signal));
        }
        return Ok(End::Exited(status.exit_status().unwrap_or(1)));
    }
}
