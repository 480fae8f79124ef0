//! `--sandbox namespace` and `--sandbox chroot`: new namespaces, and the share as the
//! process root.
//!
//! [`enter`] moves the process into new mount, PID, IPC, UTS and network namespaces (and a
//! user namespace when started without privileges) and forks: the child, PID 1 of the new
//! PID namespace, goes on to serve; the parent only waits for it, forwards termination
//! signals, and exits as it did. [`pivot_into`] then makes the share the root of the
//! child's private mount namespace and detaches everything else, host `/proc` included.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use rustix::fs::CWD;
use rustix::mount::{MountFlags, MountPropagationFlags, MoveMountFlags, UnmountFlags};
use rustix::process::{Pid, Signal, WaitOptions};
use rustix::thread::{CapabilitySet, UnshareFlags};
use signal_hook::SigId;

use super::{privileges, seccomp};
use crate::config::SeccompAction;
use crate::sys::{self, Forked};

/// Unshares the namespaces and forks. Returns in the child only; the parent waits for the
/// child and exits with its status, itself without capabilities and under the small
/// seccomp filter for waiting (`seccomp`), after closing its copy of the `inherited`
/// connection. Must be called while the process has one thread.
pub(crate) fn enter(inherited: Option<RawFd>, seccomp: SeccompAction) -> io::Result<()> {
    let flags = UnshareFlags::NEWNS
        | UnshareFlags::NEWPID
        | UnshareFlags::NEWIPC
        | UnshareFlags::NEWUTS
        | UnshareFlags::NEWNET;
    let privileged = rustix::thread::capabilities(None)
        .is_ok_and(|caps| caps.effective.contains(CapabilitySet::SYS_ADMIN));
    if privileged {
        sys::unshare_single_threaded(flags)?;
    } else {
        // The IDs outside, read before the new user namespace hides them.
        let (uid, gid) = (rustix::process::geteuid(), rustix::process::getegid());
        sys::unshare_single_threaded(flags | UnshareFlags::NEWUSER)?;
        map_ids(uid.as_raw(), gid.as_raw())?;
    }
    // Registered before the fork, so that a signal arriving at once is not lost (it would
    // kill the parent before it could pass it on).
    let signals = SignalPipes::register()?;
    match sys::fork_single_threaded()? {
        Forked::Child => {
            signals.release();
            // The parent is outside this PID namespace: if it dies, so must we.
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            Ok(())
        }
        Forked::Parent(child) => wait_for(child, &signals, inherited, seccomp),
    }
}

/// One socket pair per [`FORWARDED`] signal, written to by its handler, so the waiting
/// parent can poll for signals and knows which one came.
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

/// Maps the caller's IDs to root in the new user namespace (a process may map its own
/// IDs once `setgroups` is denied).
fn map_ids(uid: u32, gid: u32) -> io::Result<()> {
    std::fs::write("/proc/self/setgroups", "deny")?;
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    Ok(())
}

/// The signals the waiting parent passes on (as SIGKILL: PID 1 of a namespace ignores
/// signals it has no handler for, even from outside, but SIGKILL always arrives).
const FORWARDED: [i32; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

/// The parent's whole life after the fork: holds nothing of the child's (the inherited
/// connection is closed; the process opened nothing else yet), kills the child when told
/// to stop, and exits the way the child did so that callers see the gofer's real status. It
/// cannot start threads (its PID namespace for children differs from its own), so it polls
/// the child's pidfd and the signal pipes.
fn wait_for(
    child: Pid,
    signals: &SignalPipes,
    inherited: Option<RawFd>,
    seccomp: SeccompAction,
) -> ! {
    if let Some(fd) = inherited {
        sys::close_inherited(fd);
    }
    let status = match watch(child, signals, seccomp) {
        Ok(status) => status,
        Err(err) => {
            tracing::error!("cannot wait for the gofer: {err}");
            let _ = rustix::process::kill_process(child, Signal::KILL);
            std::process::exit(1);
        }
    };
    if let Some(signal) = status {
        // Die of the same signal (SIGSYS from seccomp, SIGTERM from the operator).
        let _ = signal_hook::low_level::emulate_default_handler(signal);
        std::process::exit(128 + signal);
    }
    std::process::exit(0);
}

/// Waits for `child` to end, killing it on a [`FORWARDED`] signal. Returns the signal to
/// end with, if any (the one received, or the one that killed the child); exits with the
/// child's exit code otherwise.
fn watch(child: Pid, signals: &SignalPipes, seccomp: SeccompAction) -> io::Result<Option<i32>> {
    use rustix::event::{poll, PollFd, PollFlags};
    let pidfd = rustix::process::pidfd_open(child, rustix::process::PidfdFlags::empty())?;
    privileges::restrict(CapabilitySet::empty())?;
    seccomp::install_waiter(seccomp)?;
    let mut received = None;
    loop {
        let mut fds: Vec<_> = std::iter::once(pidfd.as_fd())
            .chain(signals.0.iter().map(|(_, read, _)| read.as_fd()))
            .map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN))
            .collect();
        match poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(err) => return Err(err.into()),
        }
        let arrived = signals
            .0
            .iter()
            .zip(&fds[1..])
            .find(|(_, fd)| !fd.revents().is_empty());
        if let Some(((signal, read, _), _)) = arrived {
            // Drain the byte the handler wrote, or poll would report it again at once.
            let _ = rustix::io::read(read, &mut [0u8; 16]);
            if received.is_none() {
                received = Some(*signal);
                let _ = rustix::process::kill_process(child, Signal::KILL);
            }
        }
        if fds[0].revents().is_empty() {
            continue;
        }
        let Some((_, status)) = rustix::process::waitpid(Some(child), WaitOptions::NOHANG)? else {
            continue;
        };
        if received.is_some() {
            return Ok(received);
        }
        if let Some(signal) = status.terminating_signal() {
            return Ok(Some(signal));
        }
        std::process::exit(status.exit_status().unwrap_or(1));
    }
}

/// Makes every mount in the new namespace a slave, so nothing done here propagates back
/// to the host, and mounts a procfs of the new PID namespace (where the gofer is the only
/// process) on `/proc`, for the `/proc/self/fd` handle. (`subset=pid` would hide more, but
/// the handle's validation rejects such an instance.)
pub(crate) fn private_mounts() -> io::Result<()> {
    rustix::mount::mount_change(
        c"/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )?;
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    rustix::mount::mount(c"proc", c"/proc", c"proc", flags, c"")?;
    Ok(())
}

/// Attaches the detached share `tree` at `mountpoint` (in this private namespace only),
/// makes it the root with `pivot_root`, and detaches the old root, `/proc` with it. FDs
/// opened before (the `/proc/self/fd` handle) keep working.
pub(crate) fn pivot_into(tree: BorrowedFd<'_>, mountpoint: &Path) -> io::Result<()> {
    rustix::mount::move_mount(
        tree,
        c"",
        CWD,
        mountpoint,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    rustix::process::fchdir(tree)?;
    // The old root is stacked on "." and then detached: the usual way to pivot without a
    // directory for it inside the new root (the share must not be changed).
    rustix::process::pivot_root(c".", c".")?;
    rustix::mount::unmount(c".", UnmountFlags::DETACH)?;
    rustix::process::chdir(c"/")?;
    Ok(())
}

/// `--sandbox chroot`: the share (still detached) as the process root.
pub(crate) fn chroot_into(tree: BorrowedFd<'_>) -> io::Result<()> {
    rustix::process::fchdir(tree.as_fd())?;
    rustix::process::chroot(c".")?;
    Ok(())
}
