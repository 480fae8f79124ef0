//! Shared-memory channels against the real gofer: concurrency through one client, either
//! side dying mid-call, and a hostile client rewriting its window.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use lisafs_client::{Client, ClientOptions};
use lisafs_protocol::transport::channel::{Channel, SpinPolicy};
use lisafs_protocol::wire::*;
use lisafs_tests::Gofer;

const GOFER: &str = env!("CARGO_BIN_EXE_test-gofer");
const CLIENT: &str = env!("CARGO_BIN_EXE_test-client");

#[test]
fn a_client_opens_channels_and_uses_them() {
    let gofer = Gofer::start(GOFER, &[]);
    let client = gofer.client();
    assert!(client.supported(Mid::Channel));
    let want = ClientOptions::default().channels;
    assert_eq!(client.idle_channels(), want);
    let stats = client.root().walk_stat(&[""]).unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(
        client.idle_channels(),
        want,
        "a channel was lost after a call"
    );
}

#[test]
fn the_server_limit_leaves_the_client_with_what_it_granted() {
    let gofer = Gofer::start(GOFER, &["--max-channels", "1"]);
    let options = ClientOptions {
        channels: 4,
        ..Default::default()
    };
    let client = Client::connect_with(gofer.socket(), options).unwrap();
    assert_eq!(client.idle_channels(), 1);
    let none = Gofer::start(GOFER, &["--max-channels", "0"]);
    let client = Client::connect_with(none.socket(), options).unwrap();
    assert_eq!(client.idle_channels(), 0);
    assert_eq!(
        client.root().walk_stat(&[""]).unwrap().len(),
        1,
        "the socket still works"
    );
}

#[test]
fn many_threads_share_one_client_and_every_result_is_right() {
    const THREADS: usize = 8;
    const CALLS: usize = 300;
    let gofer = Gofer::start(GOFER, &[]);
    for t in 0..THREADS {
        fs::write(
            gofer.root().join(format!("f{t}")),
            format!("content of {t}"),
        )
        .unwrap();
    }
    let client = Arc::new(gofer.client());
    let start = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (client, start) = (Arc::clone(&client), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                let want = format!("content of {t}");
                for _ in 0..CALLS {
                    let (_, inodes) = client.root().walk(&[format!("f{t}")]).unwrap();
                    let opened = inodes[0].fd.open_at(0).unwrap();
                    let mut buf = [0u8; 64];
                    let n = opened.fd.pread(0, &mut buf).unwrap();
                    assert_eq!(&buf[..n], want.as_bytes());
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(client.idle_channels(), ClientOptions::default().channels);
}

#[test]
fn reads_over_a_channel_arrive_whole_and_match_the_socket() {
    let gofer = Gofer::start(GOFER, &[]);
    // Several message-sized chunks and a ragged end, with a pattern that shows misplaced
    // or repeated chunks.
    let content: Vec<u8> = (0..5_000_003u32)
        .map(|i| (i * 7 + i / 4093).to_le_bytes()[0])
        .collect();
    fs::write(gofer.root().join("big"), &content).unwrap();
    fs::write(gofer.root().join("wo"), b"secret").unwrap();
    let socket_only = ClientOptions {
        channels: 0,
        ..Default::default()
    };
    let on_socket = Client::connect_with(gofer.socket(), socket_only).unwrap();
    let on_channels = gofer.client();
    assert!(
        content.len() > 2 * on_channels.max_message_size() as usize,
        "the file must span several chunks"
    );
    for client in [&on_channels, &on_socket] {
        let (_, inodes) = client.root().walk(&["big"]).unwrap();
        let opened = inodes[0].fd.open_at(0).unwrap();
        let mut buf = vec![0u8; content.len() + 100];
        assert_eq!(opened.fd.pread(0, &mut buf).unwrap(), content.len());
        assert!(
            buf[..content.len()] == content[..],
            "whole-file read differs"
        );
        let mut part = vec![0u8; 70_000];
        assert_eq!(opened.fd.pread(1_234_567, &mut part).unwrap(), part.len());
        assert!(part[..] == content[1_234_567..1_234_567 + part.len()]);
        let tail = content.len() as u64 - 10;
        assert_eq!(
            opened.fd.pread(tail, &mut part).unwrap(),
            10,
            "short at the end"
        );
        assert_eq!(part[..10], content[content.len() - 10..]);
        assert_eq!(opened.fd.pread(content.len() as u64, &mut part).unwrap(), 0);
        let (_, inodes) = client.root().walk(&["wo"]).unwrap();
        let write_only = inodes[0].fd.open_at(1).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(
            lisafs_tests::errno(write_only.fd.pread(0, &mut buf)),
            Errno::EBADF
        );
        assert_eq!(buf, [0u8; 16], "nothing was read into the caller's buffer");
    }
    assert_eq!(
        on_channels.idle_channels(),
        ClientOptions::default().channels,
        "a channel was lost"
    );
}

/// The gofer writes a PWrite's data to the file straight from the window: what lands
/// must be exactly what the socket path writes, chunk by chunk, at every offset.
#[test]
fn writes_over_a_channel_land_whole_and_match_the_socket() {
    let gofer = Gofer::start(GOFER, &[]);
    let content: Vec<u8> = (0..5_000_011u32)
        .map(|i| (i * 13 + i / 4091).to_le_bytes()[0])
        .collect();
    let socket_only = ClientOptions {
        channels: 0,
        ..Default::default()
    };
    let on_socket = Client::connect_with(gofer.socket(), socket_only).unwrap();
    let on_channels = gofer.client();
    assert!(content.len() > 2 * on_channels.max_message_size() as usize);
    for (name, client) in [("c", &on_channels), ("s", &on_socket)] {
        fs::write(gofer.root().join(name), b"").unwrap();
        let (_, inodes) = client.root().walk(&[name]).unwrap();
        let opened = inodes[0].fd.open_at(2).unwrap();
        // Several message-sized chunks, then small writes over the middle and past the end.
        assert_eq!(opened.fd.pwrite(0, &content).unwrap(), content.len());
        assert_eq!(opened.fd.pwrite(1_234_567, b"patch").unwrap(), 5);
        assert_eq!(
            opened.fd.pwrite(content.len() as u64 + 3, b"tail").unwrap(),
            4
        );
        assert_eq!(opened.fd.pwrite(7, b"").unwrap(), 0);
        // Past the host's off_t: the host's errno on either path.
        assert_eq!(
            lisafs_tests::errno(opened.fd.pwrite(1 << 63, b"far")),
            Errno::EINVAL
        );
        let (_, inodes) = client.root().walk(&[name]).unwrap();
        let read_only = inodes[0].fd.open_at(0).unwrap();
        assert_eq!(
            lisafs_tests::errno(read_only.fd.pwrite(0, b"no")),
            Errno::EBADF
        );
    }
    let mut want = content.clone();
    want[1_234_567..1_234_572].copy_from_slice(b"patch");
    want.extend_from_slice(b"\0\0\0tail");
    for name in ["c", "s"] {
        let got = fs::read(gofer.root().join(name)).unwrap();
        assert!(got == want, "{name}: the file differs");
    }
    assert_eq!(
        on_channels.idle_channels(),
        ClientOptions::default().channels,
        "a channel was lost"
    );
}

#[test]
fn callers_get_eio_not_a_hang_when_the_gofer_dies() {
    let mut gofer = Gofer::start(GOFER, &[]);
    fs::write(gofer.root().join("f"), b"x").unwrap();
    let client = Arc::new(gofer.client());
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (client, stop) = (Arc::clone(&client), Arc::clone(&stop));
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Err(err) = client.root().walk_stat(&["", "f"]) {
                        return Some((err.errno(), Instant::now()));
                    }
                }
                None
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(100));
    gofer.kill();
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(5);
    while callers.iter().any(|c| !c.is_finished()) {
        assert!(
            Instant::now() < deadline,
            "a caller hung after the gofer died"
        );
        thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        let (errno, when) = caller
            .join()
            .unwrap()
            .expect("every caller saw the failure");
        assert_eq!(errno, Errno::EIO);
        assert!(
            when.duration_since(killed) < Duration::from_secs(1),
            "EIO took over a second"
        );
    }
    assert_eq!(
        client.root().walk_stat(&[""]).unwrap_err().errno(),
        Errno::EIO
    );
}

#[test]
fn a_killed_client_process_leaves_no_host_fd_in_the_gofer() {
    let gofer = Gofer::start(GOFER, &[]);
    fs::write(gofer.root().join("f"), b"x").unwrap();
    let baseline = gofer.open_fds();
    let mut child = Command::new(CLIENT)
        .arg(gofer.socket())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("ready"), "{line:?}");
    assert_ne!(line.trim(), "ready 0", "the client process got no channel");
    thread::sleep(Duration::from_millis(50));
    assert!(
        gofer.open_fds() > baseline + 50,
        "the client held fewer FDs than expected"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let after = gofer.settle_fds(baseline);
    assert!(
        after <= baseline,
        "{after} FDs open after the client died, {baseline} before"
    );
}

#[test]
fn a_client_scribbling_on_its_window_cannot_harm_the_gofer() {
    let mut gofer = Gofer::start(GOFER, &[]);
    let (mut sock, root) = gofer.mounted_raw();
    sock.send(Mid::Channel.as_u16(), &[], &[]).unwrap();
    let frame = sock.recv(MAX_MESSAGE_SIZE, 2).unwrap();
    let resp = decode::<ChannelResp>(frame.payload).unwrap();
    let [memfd, fd_sock]: [OwnedFd; 2] = frame.fds.try_into().unwrap();
    let scribble = fs::File::from(memfd.try_clone().unwrap());
    let mut channel = Channel::open(&resp, &memfd, fd_sock, SpinPolicy::default()).unwrap();
    channel.connect().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let scribbler = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut x = 0x2545_f491u32;
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // Anywhere in the header words or the first bytes of the message.
                let at = u64::from(x % 48);
                scribble.write_all_at(&x.to_le_bytes(), at).unwrap();
            }
        })
    };
    let walk = encode(&WalkReq {
        dir_fd: root,
        path: vec!["x".into()],
    })
    .unwrap();
    // The calls run on their own thread: once the gofer gives up on the scribbled window
    // (it marks it shut down), the scribbler may still flip the state word back to "the
    // server's turn", and a call would then wait for an answer that never comes. The
    // gofer's health is what this test is about; the caller is woken by hand at the end.
    let wake = channel.shutdown_handle();
    let caller = thread::spawn(move || {
        for _ in 0..5000 {
            if channel
                .call(Mid::Walk.as_u16(), &walk, 0, MAX_MESSAGE_SIZE as usize)
                .is_err()
            {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !caller.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    scribbler.join().unwrap();
    wake.shutdown();
    caller.join().unwrap();

    assert!(gofer.is_alive(), "the gofer died");
    let client = gofer.client();
    assert_eq!(client.root().walk_stat(&[""]).unwrap().len(), 1);
    // The scribbled connection's socket still answers too.
    sock.send(
        Mid::FStat.as_u16(),
        &encode(&FStatReq { fd: root }).unwrap(),
        &[],
    )
    .unwrap();
    assert_eq!(
        sock.recv(MAX_MESSAGE_SIZE, 0).unwrap().mid,
        Mid::FStat.as_u16()
    );
}
