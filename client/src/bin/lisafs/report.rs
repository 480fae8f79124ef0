//! Failures and how they are reported: one line per failed operand, coreutils style, and
//! nothing at all when the reader of standard output went away.

use std::io;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use lisafs_client::{Error, ErrorKind};

/// Why an operand failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// An operation failed: what was being done ("CMD PATH") and why.
    Op {
        /// "CMD PATH", or "write error" for standard output.
        what: String,
        /// The cause.
        err: Error,
    },
    /// Standard output is a pipe nobody reads any more (`EPIPE`).
    StdoutClosed,
}

impl Failure {
    /// Whether no later operand can succeed either: the connection is gone, or nobody
    /// reads what we print.
    pub(crate) fn is_final(&self) -> bool {
        match self {
            Failure::Op { err, .. } => err.kind() == ErrorKind::Transport,
            Failure::StdoutClosed => true,
        }
    }
}

/// The result of one operand.
pub(crate) type Outcome = Result<(), Failure>;

/// Attaches "CMD PATH" to an error.
pub(crate) fn on<T>(
    result: Result<T, impl Into<Error>>,
    cmd: &str,
    path: &Path,
) -> Result<T, Failure> {
    result.map_err(|err| Failure::Op {
        what: format!("{cmd} {}", path.display()),
        err: err.into(),
    })
}

/// The outcome of a write to standard output. A closed pipe is not an error to report
/// (the reader, e.g. `head`, has what it wanted); any other failure is a "write error",
/// as coreutils call it, since no file is involved.
pub(crate) fn stdout_write(result: io::Result<()>) -> Outcome {
    match result {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Err(Failure::StdoutClosed),
        Err(err) => Err(Failure::Op {
            what: "write error".to_owned(),
            err: err.into(),
        }),
    }
}

/// What an error says to the user. A broken connection is named as such rather than
/// as a bare `EIO`, which would read like a failure of the file.
pub(crate) fn message(err: &Error, timeout: Option<Duration>) -> String {
    if err.is_timeout() {
        let secs = timeout.map_or(0.0, |t| t.as_secs_f64());
        return format!("no answer from the gofer within {secs} s (--timeout)");
    }
    match err.kind() {
        ErrorKind::Transport => "connection to the gofer lost".to_owned(),
        _ => err.to_string(),
    }
}

/// Prints one line per failure and picks the exit status: 0, 1 if anything failed, or
/// 141 (how a shell shows a death by SIGPIPE, which is how coreutils end) if standard
/// output was closed, with nothing printed for that.
pub(crate) fn report(failures: &[Failure], timeout: Option<Duration>) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for failure in failures {
        match failure {
            Failure::Op { what, err } => {
                eprintln!("lisafs: {what}: {}", message(err, timeout));
                status = ExitCode::FAILURE;
            }
            Failure::StdoutClosed => return ExitCode::from(141),
        }
    }
    status
}
