//! Runs a program with one system call made to fail (security.md #51, libpathrs'
//! `fake-enosys` idea): `test-enosys <openat2|statx|getcpu> <errno number> <program> [args...]`
//! installs a seccomp filter that answers that call with the errno (every other call is
//! allowed), then execs the program, which inherits the filter.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;

/// `openat2` has the same number on every architecture (added after the tables merged).
const SYS_OPENAT2: i64 = 437;
#[cfg(target_arch = "x86_64")]
const SYS_STATX: i64 = 332;
#[cfg(target_arch = "aarch64")]
const SYS_STATX: i64 = 291;
/// A call the gofer never makes: the control case.
#[cfg(target_arch = "x86_64")]
const SYS_GETCPU: i64 = 309;
#[cfg(target_arch = "aarch64")]
const SYS_GETCPU: i64 = 168;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [call, errno, program, rest @ ..] = &args[..] else {
        eprintln!("usage: test-enosys <openat2|statx|getcpu> <errno> <program> [args...]");
        return ExitCode::from(2);
    };
    let nr = match call.as_str() {
        "openat2" => SYS_OPENAT2,
        "statx" => SYS_STATX,
        "getcpu" => SYS_GETCPU,
        other => {
            eprintln!("test-enosys: unknown system call {other}");
            return ExitCode::from(2);
        }
    };
    let Ok(errno) = errno.parse::<u32>() else {
        eprintln!("test-enosys: bad errno {errno}");
        return ExitCode::from(2);
    };
    // An empty rule list matches the call whatever its arguments.
    let rules = BTreeMap::from([(nr, Vec::new())]);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno),
        ARCH,
    )
    .and_then(BpfProgram::try_from);
    let program_bpf = match filter {
        Ok(bpf) => bpf,
        Err(err) => {
            eprintln!("test-enosys: cannot build the filter: {err}");
            return ExitCode::from(2);
        }
    };
    // Sets no_new_privs and installs the filter for this thread; exec keeps it.
    if let Err(err) = seccompiler::apply_filter(&program_bpf) {
        eprintln!("test-enosys: cannot install the filter: {err}");
        return ExitCode::from(2);
    }
    let err = Command::new(program).args(rest).exec();
    eprintln!("test-enosys: cannot run {program}: {err}");
    ExitCode::from(2)
}
