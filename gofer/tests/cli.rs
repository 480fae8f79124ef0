//! The `gofer` binary: help, one-line startup errors, `--socket` and `--fd`.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lisafs_protocol::transport::socket::FramedSocket;
use lisafs_protocol::wire::{Mid, MAX_MESSAGE_SIZE};
use rustix::process::Signal;

fn gofer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gofer"))
}

fn run(args: &[&str]) -> Output {
    gofer().args(args).stdin(Stdio::null()).output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Kills the child on drop so a failed assertion leaves no server behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_socket(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "the gofer never created its socket"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn help_documents_every_flag() {
    let output = run(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--root",
        "--socket",
        "--fd",
        "--readonly",
        "--donate-mount-fd",
        "--host-uds",
        "--host-fifo",
        "--allow-submounts",
        "--allow-setid",
        "--max-fds",
        "--log-level",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}");
    }
}

#[test]
fn a_missing_root_is_a_one_line_error() {
    let output = run(&[
        "--root",
        "/nonexistent-gofer-root",
        "--socket",
        "/tmp/unused.sock",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "gofer: --root /nonexistent-gofer-root: No such file or directory\n"
    );
}

#[test]
fn a_root_that_is_a_file_is_a_one_line_error() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let path = file.path().to_str().unwrap();
    let output = run(&["--root", path, "--socket", "/tmp/unused.sock"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!("gofer: --root {path}: Not a directory\n")
    );
}

#[test]
fn socket_and_fd_are_mutually_exclusive_and_one_is_required() {
    let output = run(&["--root", "/"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "gofer: one of --socket and --fd is required (or systemd socket activation)\n"
    );
    assert_eq!(
        run(&["--root", "/", "--socket", "/s", "--fd", "3"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn fd_must_be_a_socket() {
    let output = run(&["--root", "/tmp", "--fd", "0"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "gofer: --fd 0: Socket operation on non-socket\n"
    );
    let output = run(&["--root", "/tmp", "--fd", "2"]);
    assert_eq!(output.status.code(), Some(1));
    let output = run(&["--root", "/tmp", "--fd", "77"]);
    assert_eq!(stderr(&output), "gofer: --fd 77: Bad file descriptor\n");
}

#[test]
fn fd_serves_an_inherited_socket_until_it_closes() {
    let dir = tempfile::tempdir().unwrap();
    let (ours, theirs) = UnixStream::pair().unwrap();
    let child = gofer()
        .args([
            "--root",
            dir.path().to_str().unwrap(),
            "--fd",
            "0",
            "--log-level",
            "error",
        ])
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(ours);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn socket_listens_with_a_private_mode_and_replaces_only_stale_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let socket = dir.path().join("gofer.sock");
    // A stale socket from an earlier run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let child = gofer()
        .args([
            "--root",
            root.to_str().unwrap(),
            "--socket",
            socket.to_str().unwrap(),
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    let stream = loop {
        if let Ok(stream) = UnixStream::connect(&socket) {
            break stream;
        }
        assert!(Instant::now() < deadline, "the gofer never listened");
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(stream);
    wait_for_socket(&socket);
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[test]
fn socket_refuses_to_replace_a_file_that_is_not_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("regular");
    std::fs::write(&path, b"keep").unwrap();
    let path_str = path.to_str().unwrap();
    let output = run(&["--root", dir.path().to_str().unwrap(), "--socket", path_str]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!("gofer: --socket {path_str}: File exists\n")
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"keep");
}

/// A second gofer on the socket of a running one refuses to start, and the first keeps
/// its socket (issue 12: it used to be unlinked and taken over).
#[test]
fn socket_refuses_to_take_over_a_live_gofer() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("gofer.sock");
    let socket_str = socket.to_str().unwrap();
    let root = dir.path().to_str().unwrap();
    let first = gofer()
        .args(["--root", root, "--socket", socket_str])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _running = Running(first);
    wait_for_socket(&socket);
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "the first gofer never listened");
        std::thread::sleep(Duration::from_millis(10));
    }
    let inode = std::fs::symlink_metadata(&socket).unwrap().ino();
    let output = run(&["--root", root, "--socket", socket_str]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!("gofer: --socket {socket_str}: another process is listening on it\n")
    );
    assert_eq!(std::fs::symlink_metadata(&socket).unwrap().ino(), inode);
    assert!(
        UnixStream::connect(&socket).is_ok(),
        "the first gofer lost its socket"
    );
}

/// Starts a gofer with `args` after `--root <dir>/root`, logging at info to `<dir>/log`.
fn start_logged(dir: &Path, args: &[&str], stdin: Stdio) -> Running {
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let child = gofer()
        .arg("--root")
        .arg(&root)
        .args(["--log-level", "info"])
        .args(args)
        .stdin(stdin)
        .stderr(log)
        .spawn()
        .unwrap();
    Running(child)
}

/// A connection that has mounted: the gofer answered its Mount.
fn mounted(socket: &Path) -> UnixStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(stream) = UnixStream::connect(socket) {
            let mut framed = FramedSocket::new(stream.try_clone().unwrap().into());
            if framed.send(Mid::Mount.as_u16(), &[], &[]).is_ok() {
                if let Ok(frame) = framed.recv(MAX_MESSAGE_SIZE, 0) {
                    assert_eq!(frame.mid, Mid::Mount.as_u16(), "Mount failed");
                    return stream;
                }
            }
        }
        assert!(Instant::now() < deadline, "the gofer never served");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(child: &Child, signal: Signal) {
    let pid = rustix::process::Pid::from_child(child);
    rustix::process::kill_process(pid, signal).unwrap();
}

/// Waits up to `limit` for the process to exit.
fn exit_within(running: &mut Running, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the gofer did not exit in time");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Issue 12 item 5: a stop signal ends the gofer cleanly in every sandbox mode: open
/// connections see end-of-file (not a hang), the socket file is gone, exit status 0, and
/// the log says so.
#[test]
fn a_stop_signal_ends_connections_removes_the_socket_and_exits_0() {
    for (mode, sig) in [
        ("namespace", Signal::TERM),
        ("chroot", Signal::INT),
        ("none", Signal::HUP),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("gofer.sock");
        let mut running = start_logged(
            dir.path(),
            &["--socket", socket.to_str().unwrap(), "--sandbox", mode],
            Stdio::null(),
        );
        let mut open = mounted(&socket);
        signal(&running.0, sig);
        open.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
        let read = std::io::Read::read(&mut open, &mut [0u8; 16]);
        assert!(
            matches!(read, Ok(0)),
            "{mode}: open connection not ended: {read:?}"
        );
        let status = exit_within(&mut running, Duration::from_secs(4));
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
        assert_eq!(status.code(), Some(0), "{mode}: {status}\n{log}");
        assert!(!socket.exists(), "{mode}: socket file left behind");
        assert!(log.contains("INFO stopped"), "{mode}: {log}");
        assert!(log.contains("open=1"), "{mode}: {log}");
    }
}

/// The socket file is removed only if it is still the gofer's own.
#[test]
fn a_replaced_socket_file_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("gofer.sock");
    let mut running = start_logged(
        dir.path(),
        &["--socket", socket.to_str().unwrap()],
        Stdio::null(),
    );
    drop(mounted(&socket));
    std::fs::remove_file(&socket).unwrap();
    std::fs::write(&socket, b"someone else's").unwrap();
    signal(&running.0, Signal::TERM);
    assert_eq!(
        exit_within(&mut running, Duration::from_secs(8)).code(),
        Some(0)
    );
    assert_eq!(std::fs::read(&socket).unwrap(), b"someone else's");
}

/// Issue 12 item 6: `--fd` takes a listening socket too, and serves every connection.
#[test]
fn fd_accepts_a_listening_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("listen.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let mut running = start_logged(
        dir.path(),
        &["--fd", "0"],
        Stdio::from(std::os::fd::OwnedFd::from(listener)),
    );
    let first = mounted(&socket);
    let second = mounted(&socket);
    drop((first, second));
    signal(&running.0, Signal::TERM);
    assert_eq!(
        exit_within(&mut running, Duration::from_secs(8)).code(),
        Some(0)
    );
    // The socket file is the launcher's: the gofer leaves it.
    assert!(socket.exists());
}

/// Issue 12 item 6: systemd socket activation (`LISTEN_FDS`, `LISTEN_PID`) and readiness
/// notification (`NOTIFY_SOCKET`): READY=1 once it serves, STOPPING=1 on a stop.
#[test]
fn systemd_activation_and_notification() {
    for mode in ["namespace", "none"] {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("activated.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let notify_path = dir.path().join("notify");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        // As systemd does: the socket at FD 3, LISTEN_PID naming the gofer's own process.
        let child = Command::new("sh")
            .args([
                "-c",
                "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\" 3<&0 0</dev/null",
                env!("CARGO_BIN_EXE_gofer"),
                "--root",
                root.to_str().unwrap(),
                "--sandbox",
                mode,
            ])
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(listener)))
            .stderr(log)
            .spawn()
            .unwrap();
        let mut running = Running(child);
        let mut message = [0u8; 64];
        let len = notify.recv(&mut message).unwrap();
        assert_eq!(&message[..len], b"READY=1", "{mode}");
        drop(mounted(&socket));
        signal(&running.0, Signal::TERM);
        let len = notify.recv(&mut message).unwrap();
        assert_eq!(&message[..len], b"STOPPING=1", "{mode}");
        let status = exit_within(&mut running, Duration::from_secs(8));
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
        assert_eq!(status.code(), Some(0), "{mode}: {log}");
    }
}

#[test]
fn activation_refuses_more_than_one_socket_and_a_clashing_flag() {
    let activated = |count: &str, extra: &[&str]| {
        let script = format!("LISTEN_PID=$$ LISTEN_FDS={count} exec \"$0\" \"$@\" 3</dev/null");
        Command::new("sh")
            .args(["-c", &script, env!("CARGO_BIN_EXE_gofer"), "--root", "/"])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let output = activated("2", &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "gofer: LISTEN_FDS=2: the gofer serves one socket; give each its own gofer\n"
    );
    let output = activated("1", &["--socket", "/tmp/unused.sock"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "gofer: systemd passed a socket (LISTEN_FDS): drop --socket and --fd\n"
    );
}

/// Issue 12 item 7: a refusal that looks like an attack is a warning, but a client
/// repeating it cannot flood the log (at most 10 per kind per 10 s); `--log-format json`
/// writes one JSON object per line.
#[test]
fn refusals_are_rate_limited_warnings_in_json() {
    use lisafs_protocol::wire::{encode, ErrorResp, FdId, SizedString, WalkReq};
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("gofer.sock");
    let mut running = start_logged(
        dir.path(),
        &["--socket", socket.to_str().unwrap(), "--log-format", "json"],
        Stdio::null(),
    );
    let mut framed = FramedSocket::new(mounted(&socket).into());
    let climb = encode(&WalkReq {
        dir_fd: FdId(1),
        path: vec![SizedString::from("..")],
    })
    .unwrap();
    for _ in 0..25 {
        framed.send(Mid::Walk.as_u16(), &climb, &[]).unwrap();
        let frame = framed.recv(MAX_MESSAGE_SIZE, 0).unwrap();
        assert_eq!(frame.mid, Mid::Error.as_u16());
        let errno = lisafs_protocol::wire::decode::<ErrorResp>(frame.payload).unwrap();
        assert_eq!(errno.errno, lisafs_protocol::wire::Errno::EINVAL);
    }
    drop(framed);
    signal(&running.0, Signal::TERM);
    assert_eq!(
        exit_within(&mut running, Duration::from_secs(8)).code(),
        Some(0)
    );
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    for line in log.lines() {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "not a JSON line: {line}"
        );
    }
    let warnings: Vec<_> = log
        .lines()
        .filter(|line| line.contains(r#""refusal":"escape""#))
        .collect();
    assert_eq!(warnings.len(), 10, "{log}");
    assert!(warnings
        .iter()
        .all(|line| line.contains(r#""level":"WARN""#)));
}

/// `RUST_LOG` overrides `--log-level`.
#[test]
fn rust_log_overrides_the_log_level() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("gofer.sock");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let child = gofer()
        .arg("--root")
        .arg(&root)
        .args(["--socket", socket.to_str().unwrap(), "--log-level", "error"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut running = Running(child);
    drop(mounted(&socket));
    signal(&running.0, Signal::TERM);
    assert_eq!(
        exit_within(&mut running, Duration::from_secs(8)).code(),
        Some(0)
    );
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert!(log.contains("INFO connection opened"), "{log}");
}

/// Issue 12 item 8: `--metrics-socket` serves the Prometheus text over HTTP from the
/// confined gofer, counting what a client did; the socket file goes with the gofer.
#[test]
fn metrics_socket_serves_prometheus_text_and_is_removed_at_stop() {
    use std::io::{Read, Write};
    for mode in ["namespace", "none"] {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("gofer.sock");
        let metrics = dir.path().join("metrics.sock");
        let mut running = start_logged(
            dir.path(),
            &[
                "--socket",
                socket.to_str().unwrap(),
                "--metrics-socket",
                metrics.to_str().unwrap(),
                "--sandbox",
                mode,
            ],
            Stdio::null(),
        );
        drop(mounted(&socket));
        // The Mount is counted once its response is sent; the scrape may come first.
        let deadline = Instant::now() + Duration::from_secs(5);
        let text = loop {
            let mut http = UnixStream::connect(&metrics).unwrap();
            http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut answer = String::new();
            http.read_to_string(&mut answer).unwrap();
            assert!(answer.starts_with("HTTP/1.1 200"), "{mode}: {answer}");
            if answer.contains("lisafs_requests_total{mid=\"Mount\"} 1\n")
                || Instant::now() > deadline
            {
                break answer;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(
            text.contains("lisafs_requests_total{mid=\"Mount\"} 1\n"),
            "{mode}: {text}"
        );
        signal(&running.0, Signal::TERM);
        assert_eq!(
            exit_within(&mut running, Duration::from_secs(8)).code(),
            Some(0)
        );
        assert!(!metrics.exists(), "{mode}: metrics socket left behind");
    }
}

/// `--config FILE --check` prints the effective configuration, or the first error with its
/// file, line and key; `--config` excludes the one-mount flags.
#[test]
fn config_check_prints_the_effective_configuration_or_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gofer.toml");
    let root = dir.path().to_str().unwrap();
    std::fs::write(
        &config,
        format!("[[mount]]\nname = \"data\"\nroot = \"{root}\"\nsocket = \"/run/d.sock\"\n"),
    )
    .unwrap();
    let config_str = config.to_str().unwrap();
    let output = run(&["--config", config_str, "--check"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = String::from_utf8(output.stdout).unwrap();
    for line in [
        "sandbox = \"namespace\"",
        "[[mount]]",
        "name = \"data\"",
        "socket = \"/run/d.sock\"",
        "readonly = false",
        "xattr = \"user\"",
    ] {
        assert!(printed.contains(line), "{line} not in:\n{printed}");
    }
    // What it prints is itself a valid config.
    std::fs::write(&config, &printed).unwrap();
    assert!(run(&["--config", config_str, "--check"]).status.success());

    std::fs::write(
        &config,
        format!("[[mount]]\nname = \"data\"\nroot = \"{root}\"\nsocket = \"/s\"\nhost_uds = \"every\"\n"),
    )
    .unwrap();
    let output = run(&["--config", config_str, "--check"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.starts_with(&format!("gofer: {config_str}:5: ")),
        "{err}"
    );
    assert!(err.contains("host_uds"), "{err}");

    std::fs::write(
        &config,
        "[[mount]]\nname = \"data\"\nroot = \"/nonexistent-root\"\nsocket = \"/s\"\n",
    )
    .unwrap();
    let output = run(&["--config", config_str, "--check"]);
    assert_eq!(
        stderr(&output),
        "gofer: mount \"data\": root /nonexistent-root: No such file or directory\n"
    );
    assert_eq!(
        run(&["--config", config_str, "--root", root]).status.code(),
        Some(2)
    );
}
