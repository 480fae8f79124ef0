//! The `gofer` binary: help, one-line startup errors, `--socket` and `--fd`.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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
    assert_eq!(run(&["--root", "/"]).status.code(), Some(2));
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
