//! security.md #49 and #51: the kernel features the gofer depends on. #51: started under
//! a seccomp filter that makes `openat2` fail (ENOSYS as on an old kernel, EPERM as an old
//! container profile answers unknown calls, EAGAIN as a transient error), the gofer
//! refuses to start with a one-line message: there is no fallback walker it could
//! downgrade to. #49: a client cannot truncate, grow or seal the shared memory of its
//! channel, so the gofer never takes SIGBUS.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use lisafs_protocol::transport::channel::{Channel, SpinPolicy};
use lisafs_protocol::wire::*;
use lisafs_tests::attacks::within;
use lisafs_tests::Gofer;
use rustix::fs::SealFlags;

const GOFER: &str = env!("CARGO_BIN_EXE_test-gofer");
const ENOSYS_WRAPPER: &str = env!("CARGO_BIN_EXE_test-enosys");

const EPERM: u32 = 1;
const EAGAIN: u32 = 11;
const ENOSYS: u32 = 38;

/// Runs the gofer under `test-enosys <call> <errno>` on a fresh root with `extra` flags;
/// returns its exit code, its standard error, and whether its socket still accepts
/// connections after it exited (it must not: nothing may serve).
fn start_with_failing(call: &str, errno: u32, extra: &[&str]) -> (Option<i32>, String, bool) {
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let socket = dir.path().join("s");
    let mut cmd = Command::new(ENOSYS_WRAPPER);
    cmd.arg(call)
        .arg(errno.to_string())
        .arg(GOFER)
        .arg("--root")
        .arg(&root)
        .arg("--socket")
        .arg(&socket)
        .args(["--log-level", "warn"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // A gofer that (wrongly) started would serve forever: the deadline catches that.
    let output = within(
        "the gofer under a failing openat2",
        Duration::from_secs(20),
        move || cmd.output().unwrap(),
    );
    let listened = std::os::unix::net::UnixStream::connect(&socket).is_ok();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        listened,
    )
}

/// The lines of `stderr` that are not log records (the `--sandbox none` warning is one):
/// the start-up error must be exactly one line, `gofer: ...`, and nothing else.
fn error_lines(stderr: &str) -> Vec<&str> {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains(" WARN "))
        .collect();
    for line in &lines {
        assert!(line.starts_with("gofer: "), "unexpected output: {stderr:?}");
    }
    lines
}

/// Would catch: a gofer that falls back to a plain multi-component `openat` walk (or any
/// weaker resolver) when `openat2` is missing or filtered, or one that starts and serves
/// anyway; also a start-up failure reported as a panic or a multi-line dump.
#[test]
fn a_gofer_without_openat2_refuses_to_start() {
    for sandbox in ["namespace", "none"] {
        for errno in [ENOSYS, EPERM, EAGAIN] {
            let (code, stderr, listened) =
                start_with_failing("openat2", errno, &["--sandbox", sandbox]);
            let what = format!("--sandbox {sandbox}, openat2 failing with errno {errno}");
            assert_eq!(code, Some(1), "{what}: exit status; stderr: {stderr}");
            let lines = error_lines(&stderr);
            assert_eq!(lines.len(), 1, "{what}: not a one-line message: {stderr:?}");
            assert!(!stderr.contains("panicked"), "{what}: {stderr:?}");
            if errno == ENOSYS {
                assert!(lines[0].contains("openat2"), "{what}: {stderr:?}");
            }
            assert!(!listened, "{what}: something still serves the socket");
        }
    }
}

/// statx is the other call resolution depends on (libpathrs runs its suite with both
/// filtered): without it the gofer refuses to start the same way. Would catch a gofer
/// that starts and then fails (or guesses) every stat.
#[test]
fn a_gofer_without_statx_refuses_to_start() {
    for errno in [ENOSYS, EPERM] {
        let (code, stderr, _) = start_with_failing("statx", errno, &[]);
        assert_eq!(code, Some(1), "statx errno {errno}: {stderr}");
        let lines = error_lines(&stderr);
        assert_eq!(lines.len(), 1, "statx errno {errno}: {stderr:?}");
    }
}

/// The control for the tests above: under the same wrapper, with a call the gofer never
/// makes filtered, the gofer starts and serves. Would catch a wrapper that breaks every
/// program it runs (then the refusals above would prove nothing).
#[test]
fn under_the_wrapper_with_a_harmless_filter_the_gofer_serves() {
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("f"), b"served").unwrap();
    let socket = dir.path().join("s");
    let mut child = Command::new(ENOSYS_WRAPPER)
        .args(["getcpu", &ENOSYS.to_string(), GOFER, "--root"])
        .arg(&root)
        .arg("--socket")
        .arg(&socket)
        .args(["--log-level", "warn"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let client = loop {
        if let Ok(client) = lisafs_client::Client::connect(&socket) {
            break client;
        }
        assert!(child.try_wait().unwrap().is_none(), "the gofer exited");
        assert!(
            std::time::Instant::now() < deadline,
            "no socket within 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let (status, _) = client.root().walk(&["f"]).unwrap();
    assert_eq!(status, WalkStatus::Success);
    drop(client);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The channel's memfd as a client receives it: a raw Channel RPC on a mounted socket.
fn raw_channel(
    gofer: &Gofer,
) -> (
    lisafs_protocol::transport::socket::FramedSocket,
    FdId,
    Channel,
    OwnedFd,
) {
    let (mut sock, root) = gofer.mounted_raw();
    sock.send(Mid::Channel.as_u16(), &[], &[]).unwrap();
    let frame = sock.recv(MAX_MESSAGE_SIZE, 2).unwrap();
    assert_eq!(frame.mid, Mid::Channel.as_u16(), "Channel refused");
    let resp = decode::<ChannelResp>(frame.payload).unwrap();
    let [memfd, fd_sock]: [OwnedFd; 2] = frame.fds.try_into().unwrap();
    let mut channel = Channel::open(&resp, &memfd, fd_sock, SpinPolicy::default()).unwrap();
    channel.connect().unwrap();
    (sock, root, channel, memfd)
}

/// Would catch: a window memfd shared without `F_SEAL_SHRINK` (a client truncating it
/// makes the gofer's next access to the window SIGBUS, killing every connection),
/// without `F_SEAL_GROW`, or without `F_SEAL_SEAL` (a client adding `F_SEAL_WRITE` would
/// make the gofer's writes fail); and a gofer that dies or stops answering afterwards.
#[test]
fn a_client_cannot_shrink_grow_or_seal_its_channel_memory() {
    let mut gofer = Gofer::start(GOFER, &[]);
    fs::write(gofer.root().join("f"), b"still served").unwrap();
    let (_sock, root, mut channel, memfd) = raw_channel(&gofer);
    let size = u64::try_from(rustix::fs::fstat(&memfd).unwrap().st_size).unwrap();
    assert!(size >= 4096, "window of {size} bytes");
    let seals = rustix::fs::fcntl_get_seals(&memfd).unwrap();
    assert!(
        seals.contains(SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL),
        "seals {seals:?}"
    );
    // The client got the memfd read-write (it maps it shared), so only seals stop these.
    for len in [0, 4096, size - 1, size * 2] {
        assert_eq!(
            rustix::fs::ftruncate(&memfd, len),
            Err(rustix::io::Errno::PERM),
            "ftruncate to {len}"
        );
    }
    for seal in [SealFlags::WRITE, SealFlags::FUTURE_WRITE, SealFlags::SHRINK] {
        assert_eq!(
            rustix::fs::fcntl_add_seals(&memfd, seal),
            Err(rustix::io::Errno::PERM),
            "F_ADD_SEALS {seal:?}"
        );
    }
    assert_eq!(
        u64::try_from(rustix::fs::fstat(&memfd).unwrap().st_size).unwrap(),
        size
    );

    // The channel still carries calls, and the gofer serves everyone.
    let walk = encode(&WalkReq {
        dir_fd: root,
        path: vec!["f".into()],
    })
    .unwrap();
    for _ in 0..100 {
        let frame = channel
            .call(Mid::Walk.as_u16(), &walk, 0, MAX_MESSAGE_SIZE as usize)
            .unwrap();
        assert_eq!(frame.mid, Mid::Walk.as_u16());
    }
    assert!(gofer.is_alive(), "the gofer died");
    let client = gofer.client();
    let (_, inodes) = client.root().walk(&["f"]).unwrap();
    let opened = inodes[0].fd.open_at(0).unwrap();
    let mut buf = [0u8; 32];
    let n = opened.fd.pread(0, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"still served");
}
