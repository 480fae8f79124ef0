//! Where diagnostics go. While the command is attached to its caller: standard error.
//! Once a background mount is up the caller must not be held (`lisafs-mount … 2>&1 | cat`
//! would wait for the mount to end), so standard input, output and error become
//! `/dev/null` and diagnostics go to `--log-file` (standard error is pointed at it too, so
//! a panic lands there), else to the system log through `/dev/log`, else nowhere, as
//! libfuse daemons do. The gofer's own standard error is a pipe read here, so its lines
//! follow the same way.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::Mutex;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

use crate::cli::LogLevel;

/// The current destination.
enum Sink {
    Stderr,
    File(File),
    Syslog(UnixDatagram),
    Discard,
}

static SINK: Mutex<Sink> = Mutex::new(Sink::Stderr);

/// syslog's "daemon" facility, shifted as the priority field wants it.
const LOG_DAEMON: u8 = 3 << 3;

/// Installs the `tracing` subscriber that writes through the sink.
pub(crate) fn init(level: LogLevel) {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level.as_str()))
        .with_writer(Writers)
        .init();
}

/// Reports a failure after which the process exits: `lisafs-mount: MESSAGE` wherever
/// diagnostics go now.
pub(crate) fn fatal(message: &str) {
    deliver(3, format!("lisafs-mount: {message}\n").as_bytes());
}

/// Opens `--log-file` early, so that a bad path is reported to the caller.
pub(crate) fn open_file(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|err| format!("--log-file {}: {err}", path.display()))
}

/// Lets go of the caller's terminal or pipes: stdin and stdout become /dev/null, stderr
/// the log file or /dev/null, and diagnostics follow.
pub(crate) fn detach(log_file: Option<File>) -> io::Result<()> {
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    rustix::stdio::dup2_stdin(&null)?;
    rustix::stdio::dup2_stdout(&null)?;
    let sink = match log_file {
        Some(file) => {
            rustix::stdio::dup2_stderr(&file)?;
            Sink::File(file)
        }
        None => {
            rustix::stdio::dup2_stderr(&null)?;
            syslog().map_or(Sink::Discard, Sink::Syslog)
        }
    };
    *lock() = sink;
    Ok(())
}

/// In the foreground with `--log-file`: diagnostics go to the file from now on, while
/// standard error stays the caller's.
pub(crate) fn to_file(file: File) {
    *lock() = Sink::File(file);
}

/// Copies the gofer's standard error, line by line, to the sink until the gofer (and
/// every process sharing the pipe) has exited; says whether there was anything to copy.
pub(crate) fn forward(from: impl io::Read) -> bool {
    let mut said = false;
    for line in BufReader::new(from).split(b'\n') {
        let Ok(mut line) = line else { break };
        let severity = if contains(&line, b"ERROR") {
            3
        } else if contains(&line, b"WARN") {
            4
        } else {
            6
        };
        line.push(b'\n');
        deliver(severity, &line);
        said = true;
    }
    said
}

fn contains(line: &[u8], word: &[u8]) -> bool {
    line.windows(word.len()).any(|window| window == word)
}

fn syslog() -> Option<UnixDatagram> {
    let socket = UnixDatagram::unbound().ok()?;
    socket.connect("/dev/log").ok()?;
    Some(socket)
}

fn lock() -> std::sync::MutexGuard<'static, Sink> {
    // A panic while holding the lock leaves a usable sink behind.
    SINK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes one message (one or more whole lines) with syslog `severity`. Failures are
/// dropped: there is nowhere left to report them.
fn deliver(severity: u8, message: &[u8]) {
    let mut sink = lock();
    match &mut *sink {
        Sink::Stderr => {
            let _ = io::stderr().write_all(message);
        }
        Sink::File(file) => {
            let _ = file.write_all(message);
        }
        Sink::Syslog(socket) => {
            let pid = std::process::id();
            for line in message.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let mut datagram =
                    format!("<{}>lisafs-mount[{pid}]: ", LOG_DAEMON | severity).into_bytes();
                datagram.extend_from_slice(line);
                let _ = socket.send(&datagram);
            }
        }
        Sink::Discard => {}
    }
}

/// `tracing`'s writer factory: one buffer per event, delivered whole.
struct Writers;

/// One event's text, delivered when the formatter is done with it.
struct EventWriter {
    severity: u8,
    text: Vec<u8>,
}

impl<'a> MakeWriter<'a> for Writers {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> EventWriter {
        EventWriter {
            severity: 6,
            text: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> EventWriter {
        let severity = match *meta.level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            _ => 7,
        };
        EventWriter {
            severity,
            text: Vec::new(),
        }
    }
}

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if !self.text.is_empty() {
            deliver(self.severity, &self.text);
        }
    }
}
