//! The compiled filters are checked two ways: a small interpreter runs the BPF for
//! many (call, arguments) pairs, and child processes (this test binary run again)
//! install them for real and make calls the kernel then allows or punishes.

use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

use super::*;

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const LOG: u32 = libc::SECCOMP_RET_LOG;
const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS.unsigned_abs();
const EACCES: u32 = libc::SECCOMP_RET_ERRNO | libc::EACCES.unsigned_abs();

/// Runs `program` on a `struct seccomp_data` for call `nr` with `args`, as the kernel
/// would. Only the instructions seccompiler emits are known; any other fails the test.
fn run(program: &[seccompiler::sock_filter], arch: u32, nr: i64, args: [u64; 6]) -> u32 {
    let load = |offset: u32| -> u32 {
        match offset {
            0 => u32::try_from(nr).expect("a 32-bit call number"),
            4 => arch,
            16..=63 => {
                // Little-endian: the low half of each 64-bit argument comes first.
                let arg = args[(offset as usize - 16) / 8].to_le_bytes();
                let half = if offset.is_multiple_of(8) {
                    &arg[..4]
                } else {
                    &arg[4..]
                };
                u32::from_le_bytes(half.try_into().expect("four bytes"))
            }
            _ => panic!("load from offset {offset}"),
        }
    };
    let (mut acc, mut pc) = (0u32, 0usize);
    loop {
        let insn = &program[pc];
        pc += 1;
        let jump = |taken: bool| usize::from(if taken { insn.jt } else { insn.jf });
        match insn.code {
            0x20 => acc = load(insn.k),
            0x54 => acc &= insn.k,
            0x05 => pc += insn.k as usize,
            0x15 => pc += jump(acc == insn.k),
            0x25 => pc += jump(acc > insn.k),
            0x35 => pc += jump(acc >= insn.k),
            0x06 => return insn.k,
            code => panic!("instruction {code:#x} not interpreted"),
        }
    }
}

/// The kernel's verdict over several filters: the strictest action wins.
fn verdict(programs: &[BpfProgram], nr: i64, args: [u64; 6]) -> u32 {
    let arch = native_arch();
    programs
        .iter()
        .map(|program| run(program, arch, nr, args))
        .min_by_key(|&ret| (ret & libc::SECCOMP_RET_ACTION_FULL).cast_signed())
        .expect("at least one program")
}

/// The architecture value of this build's calls, as the kernel reports it.
fn native_arch() -> u32 {
    match std::env::consts::ARCH {
        "x86_64" => 0xc000_003e,
        "aarch64" => 0xc000_00b7,
        "riscv64" => 0xc000_00f3,
        other => panic!("no filter for {other}"),
    }
}

/// The programs `install` installs, in order.
fn serving(features: Features, action: BpfAction) -> Vec<BpfProgram> {
    let mut programs = errno_filters().expect("errno filters");
    programs.push(compile(&rules(&serving_sets(features)), action).expect("serving filter"));
    programs
}

/// Arguments that satisfy `args`' check.
fn passing(args: Args) -> Vec<[u64; 6]> {
    let mut out = Vec::new();
    match args {
        Args::Any => out.push([0; 6]),
        Args::OneOf(arg, values) => {
            for &value in values {
                let mut a = [0; 6];
                a[usize::from(arg)] = value;
                out.push(a);
            }
        }
        Args::Masked(arg, _, value) => {
            let mut a = [0; 6];
            a[usize::from(arg)] = value;
            out.push(a);
        }
        Args::Fds(fds) => {
            let mut a = [0; 6];
            for &arg in fds {
                a[usize::from(arg)] = 3;
            }
            out.push(a);
        }
    }
    out
}

/// Every entry of every set the features enable is allowed with passing arguments.
#[test]
fn every_listed_call_is_allowed() {
    for (connect, create) in [(false, false), (true, false), (false, true), (true, true)] {
        let features = Features {
            uds_connect: connect,
            uds_create: create,
            peer_credentials: connect,
        };
        let programs = serving(features, BpfAction::KillProcess);
        for allow in serving_sets(features).iter().flat_map(|set| set.iter()) {
            let want = if allow.nr == nr::SYS_clone3 {
                ENOSYS
            } else {
                ALLOW
            };
            for args in passing(allow.args) {
                let got = verdict(&programs, allow.nr, args);
                assert_eq!(got, want, "{} {args:?} under {features:?}", allow.name);
            }
        }
    }
}

/// What an escaped attacker would reach for first is not in any set.
const DANGEROUS: &[(&str, i64)] = &[
    ("execve", nr::SYS_execve),
    ("execveat", nr::SYS_execveat),
    ("ptrace", nr::SYS_ptrace),
    ("mount", nr::SYS_mount),
    ("umount2", nr::SYS_umount2),
    ("open_tree", nr::SYS_open_tree),
    ("move_mount", nr::SYS_move_mount),
    ("fsopen", nr::SYS_fsopen),
    ("pivot_root", nr::SYS_pivot_root),
    ("chroot", nr::SYS_chroot),
    ("unshare", nr::SYS_unshare),
    ("setns", nr::SYS_setns),
    ("bpf", nr::SYS_bpf),
    ("io_uring_setup", nr::SYS_io_uring_setup),
    ("io_uring_enter", nr::SYS_io_uring_enter),
    ("userfaultfd", nr::SYS_userfaultfd),
    ("perf_event_open", nr::SYS_perf_event_open),
    ("process_vm_writev", nr::SYS_process_vm_writev),
    ("process_vm_readv", nr::SYS_process_vm_readv),
    ("keyctl", nr::SYS_keyctl),
    ("add_key", nr::SYS_add_key),
    ("open_by_handle_at", nr::SYS_open_by_handle_at),
    ("name_to_handle_at", nr::SYS_name_to_handle_at),
    ("init_module", nr::SYS_init_module),
    ("finit_module", nr::SYS_finit_module),
    ("kexec_load", nr::SYS_kexec_load),
    ("seccomp", nr::SYS_seccomp),
    ("pidfd_getfd", nr::SYS_pidfd_getfd),
    ("ioctl", nr::SYS_ioctl),
    ("kill", nr::SYS_kill),
    ("setuid", nr::SYS_setuid),
    ("setresuid", nr::SYS_setresuid),
];

#[test]
fn dangerous_calls_kill_or_log() {
    let all = Features {
        uds_connect: true,
        uds_create: true,
        peer_credentials: true,
    };
    for (action, want) in [(BpfAction::KillProcess, KILL), (BpfAction::Log, LOG)] {
        let programs = serving(Features::default(), action);
        for &(name, nr) in DANGEROUS {
            assert_eq!(verdict(&programs, nr, [0; 6]), want, "{name}");
        }
    }
    // Host-socket calls exist only with their feature.
    let plain = serving(Features::default(), BpfAction::KillProcess);
    let unix = [libc::AF_UNIX.unsigned_abs().into(), 1, 0, 0, 0, 0];
    for nr in [
        nr::SYS_socket,
        nr::SYS_connect,
        nr::SYS_bind,
        nr::SYS_listen,
    ] {
        assert_eq!(
            verdict(&plain, nr, unix),
            KILL,
            "call {nr} without --host-uds"
        );
    }
    let programs = serving(all, BpfAction::KillProcess);
    assert_eq!(verdict(&programs, nr::SYS_setresuid, [0; 6]), ALLOW);
    assert_eq!(verdict(&programs, nr::SYS_execve, [0; 6]), KILL);
}

#[test]
fn argument_checks_refuse_what_the_gofer_never_does() {
    let all = Features {
        uds_connect: true,
        uds_create: true,
        peer_credentials: true,
    };
    let programs = serving(all, BpfAction::KillProcess);
    let at_fdcwd = u64::from(libc::AT_FDCWD.cast_unsigned());
    let flags = |bits: i32| u64::from(bits.unsigned_abs());
    let thread = flags(
        libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM,
    );
    let cases: &[(&str, i64, [u64; 6], u32)] = &[
        ("a thread", nr::SYS_clone, [thread, 0, 0, 0, 0, 0], ALLOW),
        (
            "fork",
            nr::SYS_clone,
            [flags(libc::SIGCHLD), 0, 0, 0, 0, 0],
            KILL,
        ),
        (
            "a thread in a new user namespace",
            nr::SYS_clone,
            [thread | flags(libc::CLONE_NEWUSER), 0, 0, 0, 0, 0],
            KILL,
        ),
        ("clone3", nr::SYS_clone3, [0; 6], ENOSYS),
        (
            "an inet socket",
            nr::SYS_socket,
            [flags(libc::AF_INET), 1, 0, 0, 0, 0],
            KILL,
        ),
        (
            "an inet pair",
            nr::SYS_socketpair,
            [flags(libc::AF_INET), 1, 0, 0, 0, 0],
            KILL,
        ),
        (
            "executable memory",
            nr::SYS_mmap,
            [0, 4096, flags(libc::PROT_READ | libc::PROT_EXEC), 0, 0, 0],
            KILL,
        ),
        (
            "writable memory",
            nr::SYS_mmap,
            [0, 4096, flags(libc::PROT_READ | libc::PROT_WRITE), 0, 0, 0],
            ALLOW,
        ),
        (
            "making memory executable",
            nr::SYS_mprotect,
            [0, 4096, flags(libc::PROT_EXEC), 0, 0, 0],
            KILL,
        ),
        (
            "fcntl F_SETOWN",
            nr::SYS_fcntl,
            [3, flags(libc::F_SETOWN), 0, 0, 0, 0],
            KILL,
        ),
        (
            "fcntl F_SETLK",
            nr::SYS_fcntl,
            [3, flags(libc::F_SETLK), 0, 0, 0, 0],
            KILL,
        ),
        (
            "prctl PR_SET_DUMPABLE",
            nr::SYS_prctl,
            [flags(libc::PR_SET_DUMPABLE), 1, 0, 0, 0, 0],
            KILL,
        ),
        (
            "prctl PR_SET_SECCOMP",
            nr::SYS_prctl,
            [flags(libc::PR_SET_SECCOMP), 2, 0, 0, 0, 0],
            KILL,
        ),
        (
            "openat from the working directory",
            nr::SYS_openat,
            [at_fdcwd, 0, 0, 0, 0, 0],
            EACCES,
        ),
        (
            "openat from an FD",
            nr::SYS_openat,
            [3, 0, 0, 0, 0, 0],
            ALLOW,
        ),
        (
            "a directory made in the working directory",
            nr::SYS_mkdirat,
            [at_fdcwd, 0, 0, 0, 0, 0],
            KILL,
        ),
        (
            "a link into the working directory",
            nr::SYS_linkat,
            [3, 0, at_fdcwd, 0, 0, 0],
            KILL,
        ),
        (
            "a rename from the working directory",
            nr::SYS_renameat2,
            [at_fdcwd, 0, 3, 0, 0, 0],
            KILL,
        ),
        (
            "a symlink in the working directory",
            nr::SYS_symlinkat,
            [0, at_fdcwd, 0, 0, 0, 0],
            KILL,
        ),
    ];
    for &(what, nr, args, want) in cases {
        assert_eq!(verdict(&programs, nr, args), want, "{what}");
    }
    // A call made through another ABI (32-bit x86 numbers) never matches the list.
    let program = compile(&rules(&serving_sets(all)), BpfAction::KillProcess).expect("filter");
    assert_eq!(run(&program, 0x4000_0003, nr::SYS_read, [0; 6]), KILL);
}

#[test]
fn the_waiter_may_only_wait_signal_and_exit() {
    let program = compile(&rules(&[WAITER]), BpfAction::KillProcess).expect("filter");
    let programs = [program];
    for nr in [
        nr::SYS_wait4,
        nr::SYS_kill,
        nr::SYS_rt_sigtimedwait,
        nr::SYS_exit_group,
    ] {
        assert_eq!(verdict(&programs, nr, [0; 6]), ALLOW, "call {nr}");
    }
    for nr in [
        nr::SYS_openat,
        nr::SYS_clone,
        nr::SYS_socket,
        nr::SYS_accept4,
        nr::SYS_execve,
    ] {
        assert_eq!(verdict(&programs, nr, [0; 6]), KILL, "call {nr}");
    }
    // A reloading parent may open files and pass them on, nothing more.
    let reloader = [compile(&rules(&[WAITER, RELOADER]), BpfAction::KillProcess).expect("filter")];
    for nr in [nr::SYS_openat, nr::SYS_sendmsg] {
        assert_eq!(verdict(&programs, nr, [0; 6]), KILL, "call {nr}");
        assert_eq!(verdict(&reloader, nr, [0; 6]), ALLOW, "call {nr}");
    }
    for nr in [nr::SYS_clone, nr::SYS_socket, nr::SYS_execve] {
        assert_eq!(verdict(&reloader, nr, [0; 6]), KILL, "call {nr}");
    }
    // The socket file goes by its directory's FD, never by a path from the working
    // directory.
    let at_cwd = u64::from(libc::AT_FDCWD.cast_unsigned());
    for nr in [nr::SYS_statx, nr::SYS_unlinkat] {
        assert_eq!(
            verdict(&programs, nr, [5, 0, 0, 0, 0, 0]),
            ALLOW,
            "call {nr}"
        );
        assert_eq!(
            verdict(&programs, nr, [at_cwd, 0, 0, 0, 0, 0]),
            KILL,
            "call {nr}"
        );
    }
}

/// The variable that makes [`child`] do its part instead of passing at once.
const CHILD_ENV: &str = "LISAFS_SECCOMP_UNIT_CHILD";

/// This test binary again, running only [`child`] as `role`.
fn run_child(role: &str) -> Output {
    let exe = std::env::current_exe().expect("test binary");
    Command::new(exe)
        .args(["--exact", "sandbox::seccomp::tests::child", "--nocapture"])
        .env(CHILD_ENV, role)
        .output()
        .expect("run the child")
}

/// The child side of the tests below; passes at once when not run as a child.
#[test]
fn child() {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return;
    };
    // No core file from a child killed by SIGSYS.
    let none = rustix::process::Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    rustix::process::setrlimit(rustix::process::Resource::Core, none).expect("RLIMIT_CORE");
    match role.as_str() {
        "workload" => workload(),
        "forbidden" => forbidden(),
        "waiter" => waiter(),
        "sleeper" => loop {
            std::thread::sleep(std::time::Duration::from_secs(60));
        },
        other => panic!("unknown child role {other}"),
    }
}

/// What a serving gofer does besides host file calls, under the kill filter: start
/// named threads, run a channel (memfd, seals, shared mapping, futex, SEQPACKET FD
/// passing), grow and free memory (also in a thread's own arena), catch a panic, sleep,
/// and log to stderr.
fn workload() {
    use lisafs_protocol::transport::channel::{Channel, SpinPolicy};
    install(SeccompAction::Kill, Features::default()).expect("install");
    let new = Channel::create(4096, SpinPolicy::default()).expect("create a channel");
    let [memfd, fd_socket] = new.donate;
    let mut client =
        Channel::open(&new.resp, &memfd, fd_socket, SpinPolicy::default()).expect("open");
    let mut server = new.channel;
    let served = std::thread::Builder::new()
        .name("seccomp-server".into())
        .spawn(move || {
            server.accept().expect("accept");
            let frame = server.recv_request().expect("request");
            let reply: Vec<u8> = frame.payload.iter().rev().copied().collect();
            server
                .send_response(2, &reply, &[memfd.as_fd()])
                .expect("respond");
        })
        .expect("spawn");
    client.connect().expect("handshake");
    let frame = client.call(1, b"abc", 1, 4096).expect("call");
    assert_eq!(
        (frame.mid, frame.payload, frame.fds.len()),
        (2, &b"cba"[..], 1)
    );
    served.join().expect("server thread");
    let mut big: Vec<u8> = Vec::with_capacity(1 << 20);
    big.resize(64 << 20, 1);
    drop(big);
    let caught = std::panic::catch_unwind(|| panic!("a handler bug"));
    assert!(caught.is_err());
    std::thread::sleep(std::time::Duration::from_millis(1));
    // A thread's malloc arena grown and freed: glibc then shrinks the heap, and the
    // first time reads `/proc/sys/vm/overcommit_memory` (an open from the working
    // directory, which fails with EACCES instead of killing).
    std::thread::spawn(|| {
        let blocks: Vec<Vec<u8>> = (0..512).map(|_| vec![1u8; 60_000]).collect();
        drop(blocks);
    })
    .join()
    .expect("arena thread");
    let cwd_open = std::fs::File::open("/proc/sys/vm/overcommit_memory");
    assert_eq!(
        cwd_open.map_err(|err| err.raw_os_error()).err(),
        Some(Some(libc::EACCES))
    );
    let seeded = std::collections::HashMap::<u8, u8>::new();
    eprintln!("workload done ({} entries)", seeded.len());
    std::process::exit(0);
}

/// A thread started before the filter makes a call outside it: TSYNC covered the
/// thread, and the whole process dies.
fn forbidden() {
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        wait.recv().expect("go");
        let _ = rustix::process::chroot("/nonexistent");
    });
    install(SeccompAction::Kill, Features::default()).expect("install");
    go.send(()).expect("send");
    let _ = thread.join();
    std::process::exit(0);
}

/// The waiting parent: forwards a signal to its child and reaps it, then opens a
/// file, which it must not.
fn waiter() {
    let exe = std::env::current_exe().expect("test binary");
    let mut sleeper = Command::new(exe)
        .args(["--exact", "sandbox::seccomp::tests::child"])
        .env(CHILD_ENV, "sleeper")
        .spawn()
        .expect("spawn the sleeper");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("sock"), b"").expect("a file to remove");
    let dir_fd = rustix::fs::open(
        dir.path(),
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .expect("open the directory");
    install_waiter(SeccompAction::Kill, false).expect("install");
    sleeper.kill().expect("signal the child");
    let status = sleeper.wait().expect("reap the child");
    println!("reaped: {:?}", status.signal());
    rustix::fs::statx(
        &dir_fd,
        "sock",
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        rustix::fs::StatxFlags::INO,
    )
    .expect("statx by the directory FD");
    rustix::fs::unlinkat(&dir_fd, "sock", rustix::fs::AtFlags::empty()).expect("unlinkat");
    println!("removed");
    let _ = std::fs::File::open("/");
    std::process::exit(0);
}

#[test]
fn a_serving_workload_runs_under_the_kill_filter() {
    let out = run_child("workload");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.contains("workload done"), "{stderr}");
}

#[test]
fn a_call_outside_the_allowlist_kills_the_process_from_any_thread() {
    let out = run_child("forbidden");
    assert_eq!(out.status.signal(), Some(libc::SIGSYS), "{:?}", out.status);
}

#[test]
fn the_waiter_can_forward_a_signal_and_reap_but_not_open_files() {
    let out = run_child("waiter");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("reaped: Some(9)"), "{stdout}");
    assert!(stdout.contains("removed"), "{stdout}");
    assert_eq!(out.status.signal(), Some(libc::SIGSYS), "{:?}", out.status);
}
