//! Child processes: the gofer that `--root` or `--memory` starts, and the background copy of ourselves
//! that serves the mount when `--foreground` is not given.

use std::env;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rustix::io::{fcntl_setfd, FdFlags};
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};

use crate::cli::Args;
use crate::log;

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

/// A gofer started for `--root` or `--memory`.
pub(crate) struct Gofer {
    /// The process, reaped by `main` whatever happens.
    pub(crate) child: Child,
    /// Says, once the copy of the gofer's standard error has reached its end, whether
    /// the gofer wrote anything.
    pub(crate) stderr_done: mpsc::Receiver<bool>,
}

impl Gofer {
    /// Waits (up to `grace`) for the last of the gofer's standard error to be copied, so
    /// that its own message is out before ours; true if it wrote any (as far as we know
    /// by then).
    pub(crate) fn drain_stderr(&self, grace: Duration) -> bool {
        self.stderr_done.recv_timeout(grace).unwrap_or(false)
    }
}

/// Starts `gofer --root DIR --fd N` (or, with `root` `None`, `gofer --memory --fd N`) on
/// one end of a new socketpair; returns the gofer and our end. Its standard error is a pipe copied by a thread to wherever our diagnostics
/// go (see `log.rs`), so that it never holds the caller's stderr once we have detached.
/// Call before starting threads: the child's end is inheritable until the child has
/// been spawned.
pub(crate) fn start_gofer(args: &Args, root: Option<&Path>) -> Result<(Gofer, OwnedFd), String> {
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
    match root {
        Some(root) => command.arg("--root").arg(root),
        None => command.arg("--memory"),
    };
    command
        .arg("--fd")
        .arg(theirs.as_raw_fd().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if args.readonly {
        command.arg("--readonly");
    }
    if !args
        .gofer_arg
        .iter()
        .any(|arg| arg.starts_with("--log-level"))
    {
        command.arg("--log-level").arg(args.log_level.as_str());
    }
    command.args(&args.gofer_arg);
    let mut child = command
        .spawn()
        .map_err(|err| format!("cannot start {}: {err}", binary.display()))?;
    drop(theirs);
    let (done, stderr_done) = mpsc::channel();
    if let Some(stderr) = child.stderr.take() {
        thread::Builder::new()
            .name("gofer-stderr".into())
            .spawn(move || {
                let _ = done.send(log::forward(stderr));
            })
            .map_err(|err| format!("thread: {err}"))?;
    }
    Ok((Gofer { child, stderr_done }, ours))
}

/// The gofer's exit status if it exits within `grace` on its own.
pub(crate) fn wait_exit(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) | Err(_) => return None,
        }
    }
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
/// already on the shared standard error; its exit status). The copy lets go of the
/// shared standard error once it has reported.
pub(crate) fn background(args: &[OsString]) -> ExitCode {
    let exe = match env::current_exe() {
        Ok(exe) => exe,
        Err(err) => {
            eprintln!("lisafs-mount: cannot find own executable: {err}");
            return ExitCode::FAILURE;
        }
    };
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
    match child.wait().ok().and_then(|status| status.code()) {
        Some(code @ 1..=255) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        _ => ExitCode::FAILURE,
    }
}

/// Cuts the background copy loose from the terminal: its own session, so that the
/// shell's SIGINT and SIGHUP do not reach it.
pub(crate) fn detach() {
    if let Err(err) = rustix::process::setsid() {
        tracing::debug!(%err, "setsid failed");
    }
}
