//! Child processes: the gofer that `--root` starts, and the background copy of ourselves
//! that serves the mount when `--foreground` is not given.

use std::env;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rustix::io::{fcntl_setfd, FdFlags};
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};

use crate::cli::Args;

/// The hidden flag that marks the background copy (it reports readiness on stdout).
pub(crate) const DAEMON_FLAG: &str = "--daemon-child";

/// The gofer binary: `--gofer`, else `gofer` next to this program, else `gofer` on PATH.
fn gofer_binary(args: &Args) -> PathBuf {
    if let Some(path) = &args.gofer {
        return path.clone();
    }
    env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("gofer")))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("gofer"))
}

/// Starts `gofer --root DIR --fd N` on one end of a new socketpair; returns the child and
/// our end. Call before starting threads: the child's end is inheritable until the
/// child has been spawned.
pub(crate) fn start_gofer(args: &Args, root: &Path) -> Result<(Child, OwnedFd), String> {
    let sockets = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    );
    let (ours, theirs) = sockets.map_err(|err| format!("socketpair: {err}"))?;
    fcntl_setfd(&theirs, FdFlags::empty()).map_err(|err| format!("fcntl: {err}"))?;
    let binary = gofer_binary(args);
    let mut command = Command::new(&binary);
    command
        .arg("--root")
        .arg(root)
        .arg("--fd")
        .arg(theirs.as_raw_fd().to_string())
        .stdin(Stdio::null());
    if args.readonly {
        command.arg("--readonly");
    }
    if !args
        .gofer_arg
        .iter()
        .any(|arg| arg.starts_with("--log-level"))
    {
        command.arg("--log-level").arg(&args.log_level);
    }
    command.args(&args.gofer_arg);
    let child = command
        .spawn()
        .map_err(|err| format!("cannot start {}: {err}", binary.display()))?;
    drop(theirs);
    Ok((child, ours))
}

/// Waits up to `grace` for the gofer to exit (it does once the connection closes), then
/// kills it. Returns how it ended.
pub(crate) fn stop_gofer(child: &mut Child, grace: Duration) -> String {
    let deadline = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.to_string(),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                if let Err(err) = child.kill() {
                    return format!("could not be killed: {err}");
                }
                return match child.wait() {
                    Ok(status) => format!("killed ({status})"),
                    Err(err) => format!("killed, wait failed: {err}"),
                };
            }
            Err(err) => return format!("wait failed: {err}"),
        }
    }
}

/// Without `--foreground`: runs a copy of this program in the foreground mode, in its own
/// session, and returns once it reports the mount is up (exit 0) or exits (its error is
/// already on the shared standard error; exit 1).
pub(crate) fn background() -> ExitCode {
    let exe = match env::current_exe() {
        Ok(exe) => exe,
        Err(err) => {
            eprintln!("lisafs-mount: cannot find own executable: {err}");
            return ExitCode::FAILURE;
        }
    };
    let args: Vec<OsString> = env::args_os().skip(1).collect();
    let child = Command::new(exe)
        .args(args)
        .arg("--foreground")
        .arg(DAEMON_FLAG)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) => {
            eprintln!("lisafs-mount: cannot start the background process: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        // A read error is the same as EOF here: the child did not report readiness.
        let _ = BufReader::new(stdout).read_line(&mut line);
    }
    if line.trim() == "ok" {
        return ExitCode::SUCCESS;
    }
    let _ = child.wait();
    ExitCode::FAILURE
}

/// Cuts the background copy loose from the terminal: its own session, so that the
/// shell's SIGINT and SIGHUP do not reach it.
pub(crate) fn detach() {
    if let Err(err) = rustix::process::setsid() {
        tracing::debug!(%err, "setsid failed");
    }
}
