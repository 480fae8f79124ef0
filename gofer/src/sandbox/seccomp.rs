//! The seccomp allowlist: the system calls the gofer makes once it serves, and nothing else.
//!
//! The policy is data: [`BASE`] is what serving needs with no optional feature, and each
//! [`Features`] flag adds its own set, as runsc's gofer filter does. Where an argument
//! check is cheap and narrows a call a lot it is part of the entry: `socket` only for
//! `AF_UNIX`, `clone` only for threads, `mmap`/`mprotect` never executable, `fcntl` and
//! `prctl` only the commands used. The list was measured, not guessed: every end-to-end
//! suite ran against the real gofer under `strace -f`, and with `--seccomp log` the
//! kernel's audit records named anything missing (ARCHITECTURE.md says how to redo it).
//!
//! Some calls are answered with an error instead of a kill, each set by a small filter of
//! its own ([`ERRNO_SETS`]; one filter has one answer), installed before the allowlist
//! because afterwards `seccomp(2)` itself is outside it. `clone3` fails with `ENOSYS`:
//! seccomp cannot read its flags (they are in memory, not registers), and glibc's
//! `pthread_create` falls back to `clone`, whose flags the allowlist does check. `openat`
//! relative to the working directory fails with `EACCES`: the gofer never does it, but
//! glibc does, lazily (malloc reads `/proc/sys/vm/overcommit_memory` the first time it
//! shrinks a thread's heap), and has a fallback for a failed open. The kernel runs every
//! filter and takes the strictest answer, so the allowlist allows both calls outright,
//! letting the error win.

use std::collections::BTreeMap;
use std::io;

use seccompiler::{
    BpfProgram, SeccompAction as BpfAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

use crate::config::SeccompAction;

/// The environment variable that makes [`install`] prove the filter works: set to `1`, the
/// gofer makes one system call outside the allowlist right after installing it.
pub(crate) const SELFTEST_ENV: &str = "LISAFS_GOFER_SECCOMP_SELFTEST";

/// The optional features whose system calls the filter must allow.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Features {
    /// `--host-uds open|all`: connecting to host Unix sockets.
    pub(crate) uds_connect: bool,
    /// `--host-uds create|all`: binding, listening and accepting on host Unix sockets.
    pub(crate) uds_create: bool,
    /// The audit log: reading each connection's peer credentials.
    pub(crate) peer_credentials: bool,
}

/// Installs the filter on every thread of the process (TSYNC), after setting
/// `no_new_privs`, and makes panics log one line without a backtrace (symbolizing one
/// needs calls the filter refuses). With [`SeccompAction::Kill`] a call outside the
/// allowlist kills the whole process with `SIGSYS`; with [`SeccompAction::Log`] the kernel
/// logs it (an audit record of type 1326, in `dmesg` or the audit log) and lets it run;
/// with [`SeccompAction::None`] nothing is installed.
///
/// Self-test: if the environment variable `LISAFS_GOFER_SECCOMP_SELFTEST` is `1`, the
/// gofer calls `chroot` on a path that does not exist right after installing the filter.
/// Under `kill` that ends the process with `SIGSYS`, which is how the end-to-end tests
/// prove the filter is in force; under `log` or `none` the call fails with `ENOENT` and
/// the gofer goes on.
pub(crate) fn install(action: SeccompAction, features: Features) -> io::Result<()> {
    let Some(mismatch) = bpf_action(action) else {
        tracing::warn!("--seccomp none: serving without a system call filter");
        return Ok(());
    };
    let sets = serving_sets(features);
    let names: Vec<&str> = sets
        .iter()
        .flat_map(|set| set.iter().map(Call::short_name))
        .collect();
    tracing::debug!(?features, allowed = ?names, "installing the seccomp filter");
    let mut programs = errno_filters()?;
    programs.push(compile(&rules(&sets), mismatch)?);
    apply(&programs)?;
    log_panics_without_backtrace();
    if std::env::var_os(SELFTEST_ENV).is_some_and(|value| value == "1") {
        self_test();
    }
    Ok(())
}

/// Installs the smaller filter for the supervising parent (`supervisor`): it only waits for
/// the serving child, passes stop signals on, tells systemd, removes the socket file, and
/// exits the way the child did. Call it once the parent has opened what it waits on (the
/// child's pidfd, the signal and ready pipes) and registered its handlers, right before its
/// wait loop. Assumed shape of that loop, and what [`WAITER`] therefore allows: `ppoll` on
/// the pidfd and on the read ends of `signal-hook`'s self-pipes (whose handlers `send` to
/// the write ends) and of the ready pipe, or plain `sigwait` (`rt_sigtimedwait`) on blocked
/// signals; `kill` or `pidfd_send_signal` to the child; `wait4`/`waitid` to reap it;
/// `write` to systemd's connected notification socket; `statx` and `unlinkat` of the
/// socket file by its directory FD; log lines to standard error; and dying of the child's
/// signal (`rt_sigaction` back to the default, unblock, raise) or exiting. With `reload`
/// (a `--config` file) also what a reload needs ([`RELOADER`]): opening the config and
/// audit files and passing them to the child. Starting a thread, opening a socket, and
/// everything else is refused.
pub(crate) fn install_waiter(action: SeccompAction, reload: bool) -> io::Result<()> {
    let Some(mismatch) = bpf_action(action) else {
        return Ok(());
    };
    let sets: &[&[Call]] = match reload {
        true => &[WAITER, RELOADER],
        false => &[WAITER],
    };
    apply(&[compile(&rules(sets), mismatch)?])
}

/// Replaces the default panic hook with one log line. With `RUST_BACKTRACE` set, the
/// default hook symbolizes a backtrace: it calls `getcwd` and opens `/proc/self/maps` and
/// the binary by path, which the filter refuses (killing the gofer on a handler panic that
/// should only have cost one request `EREMOTEIO`), and which after `pivot_root` are not
/// there anyway.
fn log_panics_without_backtrace() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        tracing::error!(thread = thread.name().unwrap_or("unnamed"), "{info}");
    }));
}

/// Calls `chroot`, which no allowlist here contains, on a path that cannot exist.
fn self_test() {
    tracing::warn!("{SELFTEST_ENV}=1: making a system call outside the seccomp allowlist");
    let result = rustix::process::chroot("/nonexistent/lisafs-seccomp-selftest");
    tracing::warn!("seccomp self-test: chroot returned {result:?}; the filter let it run");
}

/// The action for calls outside the allowlist, or `None` for no filter.
fn bpf_action(action: SeccompAction) -> Option<BpfAction> {
    match action {
        SeccompAction::Kill => Some(BpfAction::KillProcess),
        SeccompAction::Log => Some(BpfAction::Log),
        SeccompAction::None => None,
    }
}

/// Installs `programs` in order, on every thread.
fn apply(programs: &[BpfProgram]) -> io::Result<()> {
    for program in programs {
        seccompiler::apply_filter_all_threads(program).map_err(to_io)?;
    }
    Ok(())
}

/// The error of a failed compile or install; the OS error if there is one.
fn to_io(err: seccompiler::Error) -> io::Error {
    match err {
        seccompiler::Error::Prctl(err) | seccompiler::Error::Seccomp(err) => err,
        other => io::Error::other(other.to_string()),
    }
}

/// The architecture the filter is compiled for; the kernel checks it on every call, so a
/// 32-bit or x32 system call (other numbers) never reaches the allowlist.
fn target_arch() -> io::Result<TargetArch> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|err| io::Error::other(format!("no seccomp filter for this architecture: {err}")))
}

/// One filter per [`ERRNO_SETS`] entry: its calls fail with its errno, everything else is
/// left to the allowlist.
fn errno_filters() -> io::Result<Vec<BpfProgram>> {
    ERRNO_SETS
        .iter()
        .map(|&(errno, set)| {
            let filter = SeccompFilter::new(
                rules(&[set]),
                BpfAction::Allow,
                BpfAction::Errno(errno.unsigned_abs()),
                target_arch()?,
            )
            .map_err(|err| to_io(err.into()))?;
            filter
                .try_into()
                .map_err(|err: seccompiler::BackendError| to_io(err.into()))
        })
        .collect()
}

/// `rules` as a BPF program that allows what they match and takes `mismatch` otherwise.
fn compile(rules: &BTreeMap<i64, Vec<SeccompRule>>, mismatch: BpfAction) -> io::Result<BpfProgram> {
    let filter = SeccompFilter::new(rules.clone(), mismatch, BpfAction::Allow, target_arch()?)
        .map_err(|err| to_io(err.into()))?;
    filter
        .try_into()
        .map_err(|err: seccompiler::BackendError| to_io(err.into()))
}

/// The sets a serving gofer with `features` needs.
fn serving_sets(features: Features) -> Vec<&'static [Call]> {
    let mut sets = vec![BASE];
    if features.uds_connect {
        sets.push(UDS_CONNECT);
    }
    if features.uds_create {
        sets.push(UDS_CREATE);
    }
    if features.peer_credentials {
        sets.push(PEER_CREDENTIALS);
    }
    sets
}

/// The union of `sets` in seccompiler's form: per system call, the argument checks of which
/// one must hold, or none at all when some entry allows any arguments.
fn rules(sets: &[&[Call]]) -> BTreeMap<i64, Vec<SeccompRule>> {
    let mut unconditional = std::collections::BTreeSet::new();
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for allow in sets.iter().flat_map(|set| set.iter()) {
        let entry = rules.entry(allow.nr).or_default();
        match allow.args.rules() {
            None => {
                unconditional.insert(allow.nr);
            }
            Some(checks) => entry.extend(checks),
        }
    }
    for nr in unconditional {
        // seccompiler reads an empty chain as "any arguments".
        rules.insert(nr, Vec::new());
    }
    rules
}

/// How an allowed system call's arguments are checked. Values are compared as 32 bits:
/// every checked argument is a C `int` (an FD, a command, an option, flags).
#[derive(Debug, Clone, Copy)]
enum Args {
    /// Any arguments.
    Any,
    /// Argument `.0` is one of `.1`.
    OneOf(u8, &'static [u64]),
    /// Argument `.0` masked with `.1` equals `.2`.
    Masked(u8, u64, u64),
    /// Each listed argument is a real FD, never `AT_FDCWD` (negative): every name the
    /// gofer resolves is relative to an FD it holds, so a path relative to the working
    /// directory can only be a bug or an exploit.
    Fds(&'static [u8]),
}

impl Args {
    /// seccompiler rules (any one must match), or `None` for any arguments.
    fn rules(self) -> Option<Vec<SeccompRule>> {
        let condition = |arg, op, value| {
            SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
                .expect("argument index below 6")
        };
        let rule = |conditions| SeccompRule::new(conditions).expect("at least one condition");
        match self {
            Self::Any => None,
            Self::OneOf(arg, values) => Some(
                values
                    .iter()
                    .map(|&value| rule(vec![condition(arg, SeccompCmpOp::Eq, value)]))
                    .collect(),
            ),
            Self::Masked(arg, mask, value) => Some(vec![rule(vec![condition(
                arg,
                SeccompCmpOp::MaskedEq(mask),
                value,
            )])]),
            Self::Fds(args) => Some(vec![rule(
                args.iter()
                    .map(|&arg| condition(arg, SeccompCmpOp::MaskedEq(SIGN_BIT), 0))
                    .collect(),
            )]),
        }
    }
}

/// The sign bit of a 32-bit argument.
const SIGN_BIT: u64 = 0x8000_0000;

/// A system call and the check on its arguments: allowed when it is in an allowlist,
/// answered with an error when it is in [`ERRNO_SETS`].
#[derive(Debug, Clone, Copy)]
struct Call {
    /// The `libc` constant's name (`SYS_openat2`), for tests and messages.
    name: &'static str,
    /// The system call number.
    nr: i64,
    /// The argument check.
    args: Args,
}

impl Call {
    /// The call's name without the `SYS_` prefix.
    fn short_name(&self) -> &'static str {
        self.name.trim_start_matches("SYS_")
    }
}

/// `call!(SYS_x)` is `x` with any arguments; `call!(SYS_x, args)` with a check.
macro_rules! call {
    ($nr:ident) => {
        call!($nr, Args::Any)
    };
    ($nr:ident, $args:expr) => {
        Call {
            name: stringify!($nr),
            nr: nr::$nr,
            args: $args,
        }
    };
}

/// System call numbers: `libc`'s, plus the few it lacks.
#[allow(non_upper_case_globals)]
mod nr {
    pub(super) use libc::*;

    /// The `*xattrat` calls (Linux 6.13); the same numbers on every architecture whose
    /// filter seccompiler can build.
    pub(super) const SYS_setxattrat: i64 = 463;
    /// See [`SYS_setxattrat`].
    pub(super) const SYS_getxattrat: i64 = 464;
    /// See [`SYS_setxattrat`].
    pub(super) const SYS_listxattrat: i64 = 465;
    /// See [`SYS_setxattrat`].
    pub(super) const SYS_removexattrat: i64 = 466;
}

/// Argument checks as constants, so the tables below read as a policy.
mod check {
    use super::Args;

    /// A flag, command or option constant (a non-negative C `int`) as an argument value.
    const fn c(value: i32) -> u64 {
        value.unsigned_abs() as u64
    }

    /// `clone`: only a new thread (CLONE_THREAD set) and no namespace flag, so never a
    /// new process and never a way out of the gofer's namespaces.
    pub(super) const THREAD: Args = Args::Masked(
        0,
        c(libc::CLONE_THREAD
            | libc::CLONE_NEWNS
            | libc::CLONE_NEWCGROUP
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUSER
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWNET),
        c(libc::CLONE_THREAD),
    );
    /// `mmap`/`mprotect`: the protection (argument 2) never includes `PROT_EXEC`; the
    /// gofer loads no code after start-up.
    pub(super) const NO_EXEC: Args = Args::Masked(2, c(libc::PROT_EXEC), 0);
    /// `fcntl`: the commands used: status flags (host sockets and FIFOs are opened
    /// non-blocking and made blocking), close-on-exec duplicates for donation, the
    /// seals of a channel's memfd, and `F_GETFD` (debug builds of Rust's `OwnedFd` check
    /// that an FD is open before closing it).
    pub(super) const FCNTL: Args = Args::OneOf(
        1,
        &[
            c(libc::F_GETFL),
            c(libc::F_SETFL),
            c(libc::F_GETFD),
            c(libc::F_DUPFD_CLOEXEC),
            c(libc::F_ADD_SEALS),
        ],
    );
    /// `fcntl` in the waiter: only `F_GETFD`.
    pub(super) const GETFD: Args = Args::OneOf(1, &[c(libc::F_GETFD)]);
    /// The `*at` calls' directory FD (argument 0): never `AT_FDCWD`.
    pub(super) const DIRFD: Args = Args::Fds(&[0]);
    /// The directory FD (argument 0) is negative: `AT_FDCWD`.
    pub(super) const CWD: Args = Args::Masked(0, super::SIGN_BIT, super::SIGN_BIT);
    /// `prctl`: naming threads only.
    pub(super) const PRCTL: Args = Args::OneOf(0, &[c(libc::PR_SET_NAME)]);
    /// `socket`/`socketpair`: Unix domain only.
    pub(super) const UNIX: Args = Args::OneOf(0, &[c(libc::AF_UNIX)]);
    /// `setsockopt`: the option (argument 2) is a receive or send timeout, in the old or
    /// the new layout (`SO_RCVTIMEO_OLD` 20, `SO_SNDTIMEO_OLD` 21, `SO_RCVTIMEO_NEW` 66,
    /// `SO_SNDTIMEO_NEW` 67 on every architecture the filter is built for; rustix sets the
    /// new one, the old one on kernels before 5.1), or the send buffer's size
    /// (`SO_SNDBUF`, which the kernel caps at `net.core.wmem_max`; not `SO_SNDBUFFORCE`).
    /// The level is not checked: the sockets the gofer creates are all `AF_UNIX`, whose
    /// only option level is `SOL_SOCKET`.
    pub(super) const SOCKET_OPTIONS: Args = Args::OneOf(2, &[20, 21, 66, 67, c(libc::SO_SNDBUF)]);
    /// `getsockopt`: only `SO_PEERCRED` (the option, argument 2).
    pub(super) const PEERCRED: Args = Args::OneOf(2, &[c(libc::SO_PEERCRED)]);
}

/// Calls that fail with an errno (one filter each), whatever the action for calls outside
/// the allowlists: the allowlists allow them outright so that the errno wins.
const ERRNO_SETS: &[(i32, &[Call])] = &[
    // Threads are created with `clone`, whose flags the allowlist checks.
    (libc::ENOSYS, &[call!(SYS_clone3)]),
    // The C library's own lazy opens by absolute path; it copes with a failure.
    (libc::EACCES, &[call!(SYS_openat, check::CWD)]),
];

/// What serving needs: host file operations by FD, the socket and channels (memfd,
/// `mmap`, futex, `SCM_RIGHTS`), threads, memory, time, and per-thread credentials.
const BASE: &[Call] = &[
    // Files: every name is resolved relative to a held FD. `openat` relative to the
    // working directory is refused by its errno filter (`ERRNO_SETS`), so any here.
    call!(SYS_openat),
    // The lookups of every walk take any directory FD: an argument check would make the
    // kernel run the whole filter on each (its per-call cache only covers calls allowed
    // whatever their arguments), and the working directory is the `/proc/self/fd` handle
    // the gofer holds anyway, so refusing `AT_FDCWD` here would stop nothing.
    call!(SYS_openat2),
    call!(SYS_statx),
    call!(SYS_readlinkat),
    call!(SYS_mkdirat, check::DIRFD),
    call!(SYS_mknodat, check::DIRFD),
    call!(SYS_symlinkat, Args::Fds(&[1])),
    call!(SYS_linkat, Args::Fds(&[0, 2])),
    call!(SYS_unlinkat, check::DIRFD),
    call!(SYS_renameat2, Args::Fds(&[0, 2])),
    call!(SYS_fchmodat, check::DIRFD),
    call!(SYS_fchmodat2, check::DIRFD),
    call!(SYS_fchownat, check::DIRFD),
    call!(SYS_utimensat, check::DIRFD),
    call!(SYS_fchmod),
    call!(SYS_close),
    call!(SYS_read),
    call!(SYS_write),
    call!(SYS_pread64),
    call!(SYS_pwrite64),
    call!(SYS_lseek),
    call!(SYS_fstatfs),
    call!(SYS_getdents64),
    call!(SYS_ftruncate),
    call!(SYS_fsync),
    call!(SYS_fallocate),
    call!(SYS_fcntl, check::FCNTL),
    // Extended attributes: by `/proc/self/fd` entry with the `*xattrat` calls (Linux
    // 6.13), or by that entry's path where the kernel lacks them.
    call!(SYS_getxattrat, check::DIRFD),
    call!(SYS_setxattrat, check::DIRFD),
    call!(SYS_listxattrat, check::DIRFD),
    call!(SYS_removexattrat, check::DIRFD),
    call!(SYS_getxattr),
    call!(SYS_setxattr),
    call!(SYS_listxattr),
    call!(SYS_removexattr),
    // The client's socket, the listening socket, and channels.
    call!(SYS_accept4),
    call!(SYS_sendmsg),
    call!(SYS_recvmsg),
    call!(SYS_recvfrom),
    call!(SYS_shutdown),
    call!(SYS_socketpair, check::UNIX),
    // A client's connection gets a send buffer that holds a whole largest frame
    // (`transport::socket`). The metrics endpoint (`--metrics-socket`, `metrics_endpoint`)
    // bounds each read and write of its connection by the time left, so a slow client
    // cannot pin it; its other calls (`accept4`, `read`, `sendmsg`, `close`, the back-off
    // sleep) are listed here.
    call!(SYS_setsockopt, check::SOCKET_OPTIONS),
    call!(SYS_memfd_create),
    call!(SYS_futex),
    // A channel waiter says which CPU it runs on (SPEC.md §9.2); the vDSO answers without
    // a system call wherever the kernel maps one.
    call!(SYS_getcpu),
    // Memory.
    call!(SYS_mmap, check::NO_EXEC),
    call!(SYS_mprotect, check::NO_EXEC),
    call!(SYS_munmap),
    call!(SYS_madvise),
    call!(SYS_mremap),
    call!(SYS_brk),
    // Threads: one per connection and per channel; their names and exits, and `abort` (a
    // failed credential restore) raising SIGABRT on itself.
    call!(SYS_clone, check::THREAD),
    // Only so that its errno filter's ENOSYS is the answer (`ERRNO_SETS`).
    call!(SYS_clone3),
    call!(SYS_set_robust_list),
    call!(SYS_rseq),
    call!(SYS_prctl, check::PRCTL),
    call!(SYS_sched_yield),
    call!(SYS_sched_getaffinity),
    call!(SYS_getpid),
    call!(SYS_gettid),
    call!(SYS_tgkill),
    call!(SYS_rt_sigprocmask),
    call!(SYS_rt_sigaction),
    call!(SYS_rt_sigreturn),
    call!(SYS_sigaltstack),
    call!(SYS_exit),
    call!(SYS_exit_group),
    // Time (the accept loop's back-off sleep) and randomness (hash seeds).
    call!(SYS_clock_gettime),
    call!(SYS_clock_nanosleep),
    call!(SYS_nanosleep),
    call!(SYS_getrandom),
    // Per-thread credentials: creating as the client's owner, and the capability set.
    call!(SYS_setfsuid),
    call!(SYS_setfsgid),
    call!(SYS_capget),
    call!(SYS_capset),
];

/// `--host-uds open`: a new Unix socket connected to a host socket file, for
/// ConnectWithCreds under the client's effective IDs (switched on the calling thread).
const UDS_CONNECT: &[Call] = &[
    call!(SYS_socket, check::UNIX),
    call!(SYS_connect),
    call!(SYS_geteuid),
    call!(SYS_getegid),
    call!(SYS_setresuid),
    call!(SYS_setresgid),
];

/// `--host-uds create`: a new Unix socket bound to a new socket file, listened and
/// accepted on (`accept4` is in [`BASE`] for the gofer's own socket).
const UDS_CREATE: &[Call] = &[
    call!(SYS_socket, check::UNIX),
    call!(SYS_bind),
    call!(SYS_listen),
];

/// The audit log: `SO_PEERCRED` of each connection, read once when it starts.
const PEER_CREDENTIALS: &[Call] = &[call!(SYS_getsockopt, check::PEERCRED)];

/// The parent that waits for the serving child (see [`install_waiter`]).
const WAITER: &[Call] = &[
    // Signals: handlers, masks, waiting for one, and raising the child's on itself.
    call!(SYS_rt_sigaction),
    call!(SYS_rt_sigprocmask),
    call!(SYS_rt_sigreturn),
    call!(SYS_rt_sigtimedwait),
    call!(SYS_sigaltstack),
    // The child: waiting on its pidfd, signalling it, reaping it.
    call!(SYS_ppoll),
    call!(SYS_kill),
    call!(SYS_pidfd_send_signal),
    call!(SYS_wait4),
    call!(SYS_waitid),
    // Removing the socket file once the child is gone, by an FD of its directory.
    call!(SYS_statx, check::DIRFD),
    call!(SYS_unlinkat, check::DIRFD),
    // The self-pipe, the ready pipe, the log line, systemd's notification socket, and the
    // memory and time those need.
    call!(SYS_read),
    call!(SYS_write),
    call!(SYS_sendto),
    call!(SYS_recvfrom),
    call!(SYS_close),
    // Debug builds of Rust's `OwnedFd` check that an FD is open before closing it.
    call!(SYS_fcntl, check::GETFD),
    call!(SYS_futex),
    call!(SYS_mmap, check::NO_EXEC),
    call!(SYS_munmap),
    call!(SYS_mremap),
    call!(SYS_brk),
    call!(SYS_madvise),
    call!(SYS_clock_gettime),
    call!(SYS_getpid),
    call!(SYS_gettid),
    call!(SYS_tgkill),
    call!(SYS_exit),
    call!(SYS_exit_group),
];

/// The waiting parent's reload (`--config`): it opens the config file (to read) and the
/// audit file (to append, creating it after a rotation) by name in the directories it
/// holds, and passes both to the child with `SCM_RIGHTS`.
const RELOADER: &[Call] = &[call!(SYS_openat), call!(SYS_sendmsg)];

#[cfg(test)]
mod tests;
