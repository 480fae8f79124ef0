//! Shared-memory channels between two threads over real memfds, futexes and SEQPACKET
//! sockets: calls, FD donation, shutdown, and hostile windows.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use lisafs_protocol::transport::channel::{window_size, Channel, ChannelError, SpinPolicy};
use lisafs_protocol::wire::{ChannelResp, MAX_MESSAGE_SIZE};

const MAX: usize = MAX_MESSAGE_SIZE as usize;

/// A server channel and the pieces a client gets in the Channel response.
fn create() -> (Channel, ChannelResp, OwnedFd, OwnedFd) {
    let new = Channel::create(MAX_MESSAGE_SIZE, SpinPolicy::default()).unwrap();
    let [memfd, sock] = new.donate;
    (new.channel, new.resp, memfd, sock)
}

/// An echo server: answers each request with its payload reversed under MID + 1, and
/// donates a file when the payload is "fd".
fn echo_server(mut server: Channel) -> thread::JoinHandle<Result<usize, ChannelError>> {
    thread::spawn(move || {
        server.accept()?;
        let mut served = 0;
        loop {
            let (mid, reply) = match server.recv_request() {
                Ok(frame) => (
                    frame.mid,
                    frame.payload.iter().rev().copied().collect::<Vec<u8>>(),
                ),
                Err(ChannelError::Shutdown) => return Ok(served),
                Err(err) => return Err(err),
            };
            let file = tempfile::tempfile().unwrap();
            let donate = if reply == b"df" {
                vec![file.as_fd()]
            } else {
                vec![]
            };
            server.send_response(mid + 1, &reply, &donate)?;
            served += 1;
        }
    })
}

#[test]
fn window_size_holds_the_maximum_message_in_whole_pages() {
    assert_eq!(window_size(MAX_MESSAGE_SIZE), 2 * 1024 * 1024);
    assert_eq!(window_size(0), 4096);
}

#[test]
fn calls_round_trip_with_their_mids_payloads_and_fds() {
    let (server, resp, memfd, sock) = create();
    assert_eq!((resp.data_offset, resp.data_length), (0, 2 * 1024 * 1024));
    let shutdown = server.shutdown_handle();
    let serving = echo_server(server);
    let mut client = Channel::open(&resp, &memfd, sock, SpinPolicy::default()).unwrap();
    drop(memfd);
    client.connect().unwrap();

    for i in 0..1000u32 {
        let payload = i.to_le_bytes();
        let frame = client.call(7, &payload, 0, MAX).unwrap();
        let mut want = payload.to_vec();
        want.reverse();
        assert_eq!((frame.mid, frame.payload), (8, &want[..]));
    }
    let big: Vec<u8> = (0..MAX).map(|i| u8::try_from(i % 253).unwrap()).collect();
    let frame = client.call(1, &big, 0, MAX).unwrap();
    assert_eq!(frame.payload.len(), MAX);
    assert!(frame.payload.iter().rev().eq(big.iter()));

    let frame = client.call(3, b"fd", 1, MAX).unwrap();
    assert_eq!(frame.fds.len(), 1);
    let mut donated = File::from(frame.fds.into_iter().next().unwrap());
    donated.write_all(b"works").unwrap();

    shutdown.shutdown();
    assert_eq!(serving.join().unwrap().unwrap(), 1002);
    assert!(matches!(
        client.call(1, b"x", 0, MAX),
        Err(ChannelError::Shutdown)
    ));
}

#[test]
fn a_split_request_leaves_its_rest_in_the_window_for_the_kernel_to_write() {
    let (mut server, resp, memfd, sock) = create();
    let serving = thread::spawn(move || {
        server.accept().unwrap();
        let file = tempfile::tempfile().unwrap();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let (frame, mut reply) = server.next_request_split(Some((9, 4))).unwrap();
            let (mid, head, rest) = (frame.mid, frame.payload.to_vec(), reply.request_rest());
            if rest > 0 {
                // More than was left is refused; the first `rest - 1` bytes go from the
                // window to the file, and the first one is copied out.
                assert!(reply
                    .pwrite_from_request(rest + 1, file.as_fd(), 0)
                    .is_err());
                assert!(reply.copy_request_rest(&mut vec![0; rest + 1]).is_err());
                let mut first = [0u8; 1];
                reply.copy_request_rest(&mut first).unwrap();
                let n = reply
                    .pwrite_from_request(rest - 1, file.as_fd(), 0)
                    .unwrap();
                assert_eq!(n, rest - 1);
                let mut written = vec![0u8; n];
                file.read_exact_at(&mut written, 0).unwrap();
                seen.push((mid, head.clone(), written, first[0]));
            } else {
                seen.push((mid, head.clone(), Vec::new(), 0));
            }
            // The answer is written over the rest, which is then gone.
            reply.write_payload(0, b"ok").unwrap();
            assert_eq!(reply.request_rest(), 0);
            reply.send_in_place(mid + 1, 2).unwrap();
        }
        seen
    });
    let mut client = Channel::open(&resp, &memfd, sock, SpinPolicy::default()).unwrap();
    client.connect().unwrap();
    for (mid, payload) in [
        (9, &b"headxyz"[..]), // split: "head", then "xyz" in the window
        (9, b"hd"),           // shorter than the head: copied whole
        (7, b"headxyz"),      // another MID: copied whole
        (9, b"HEADab"),
    ] {
        let frame = client.call(mid, payload, 0, MAX).unwrap();
        assert_eq!((frame.mid, frame.payload), (mid + 1, &b"ok"[..]));
    }
    assert_eq!(
        serving.join().unwrap(),
        [
            (9, b"head".to_vec(), b"xy".to_vec(), b'x'),
            (9, b"hd".to_vec(), Vec::new(), 0),
            (7, b"headxyz".to_vec(), Vec::new(), 0),
            (9, b"HEAD".to_vec(), b"a".to_vec(), b'a'),
        ]
    );
}

#[test]
fn requests_started_on_two_channels_are_answered_on_each() {
    let mut clients = Vec::new();
    let mut shutdowns = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let (server, resp, memfd, sock) = create();
        shutdowns.push(server.shutdown_handle());
        servers.push(echo_server(server));
        let mut client = Channel::open(&resp, &memfd, sock, SpinPolicy::default()).unwrap();
        client.connect().unwrap();
        clients.push(client);
    }
    let finish = |client: &mut Channel| {
        let (payload, _) = client
            .finish_in_place(0, MAX, |incoming| incoming.payload().unwrap().to_vec())
            .unwrap();
        payload
    };
    for i in 0..100u8 {
        clients[0].start(5, &[i, 1]).unwrap();
        clients[1].start(5, &[i, 2]).unwrap();
        assert_eq!(finish(&mut clients[0]), [1, i]);
        assert_eq!(finish(&mut clients[1]), [2, i]);
    }
    // One request at a time per channel, and no response without a request.
    clients[0].start(5, b"a").unwrap();
    assert!(matches!(
        clients[0].start(5, b"b"),
        Err(ChannelError::Protocol(_))
    ));
    assert_eq!(finish(&mut clients[0]), b"a");
    assert!(matches!(
        clients[0].finish_in_place(0, MAX, |_| ()),
        Err(ChannelError::Protocol(_))
    ));
    assert_eq!(clients[0].call(1, b"xy", 0, MAX).unwrap().payload, b"yx");
    let served: Vec<usize> = shutdowns
        .iter()
        .zip(servers)
        .map(|(shutdown, serving)| {
            shutdown.shutdown();
            serving.join().unwrap().unwrap()
        })
        .collect();
    assert_eq!(served, [102, 100]);
}

#[test]
fn oversized_payloads_are_refused_before_sending() {
    let (server, resp, memfd, sock) = create();
    let serving = echo_server(server);
    let mut client = Channel::open(&resp, &memfd, sock, SpinPolicy::default()).unwrap();
    client.connect().unwrap();
    let too_big = vec![0u8; client.max_payload() + 1];
    assert!(matches!(
        client.call(1, &too_big, 0, MAX),
        Err(ChannelError::TooLarge { .. })
    ));
    let half = vec![0u8; client.max_payload() / 2 + 1];
    assert!(matches!(
        client.call_parts(1, [&half, &half], 0, MAX),
        Err(ChannelError::TooLarge { .. })
    ));
    // The channel is still usable: nothing was sent.
    assert_eq!(client.call(1, b"ab", 0, MAX).unwrap().payload, b"ba");
    // Two parts travel as one payload.
    let frame = client.call_parts(1, [b"ab", b"cde"], 0, MAX).unwrap();
    assert_eq!(frame.payload, b"edcba");
    assert_eq!(
        client.call_parts(1, [b"", b"x"], 0, MAX).unwrap().payload,
        b"x"
    );
    drop(client);
    drop(serving);
}

#[test]
fn shutdown_wakes_a_caller_blocked_on_a_silent_server() {
    let (mut server, resp, memfd, sock) = create();
    let mut client = Channel::open(&resp, &memfd, sock, SpinPolicy::default()).unwrap();
    let handshake = thread::spawn(move || {
        server.accept().unwrap();
        server // never answers a request
    });
    client.connect().unwrap();
    let server = handshake.join().unwrap();
    let stopper = client.shutdown_handle();
    let started = Instant::now();
    let killer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        stopper.shutdown();
    });
    assert!(matches!(
        client.call(1, b"hello", 0, MAX),
        Err(ChannelError::Shutdown)
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
    killer.join().unwrap();
    drop(server);
}

#[test]
fn a_zero_spin_policy_still_works_through_futexes_alone() {
    let new = Channel::create(
        MAX_MESSAGE_SIZE,
        SpinPolicy {
            max_spin: Duration::ZERO,
        },
    )
    .unwrap();
    let [memfd, sock] = new.donate;
    let serving = echo_server(new.channel);
    let no_spin = SpinPolicy {
        max_spin: Duration::ZERO,
    };
    let mut client = Channel::open(&new.resp, &memfd, sock, no_spin).unwrap();
    client.connect().unwrap();
    for _ in 0..200 {
        assert_eq!(client.call(1, b"xy", 0, MAX).unwrap().payload, b"yx");
    }
    client.shutdown_handle().shutdown();
    assert_eq!(serving.join().unwrap().unwrap(), 200);
}

/// SPEC.md §9.3: a sender skips the wake-up of a peer that says it polls. With a spin so
/// short that both ends keep switching between polling and sleeping, no wake-up may be
/// lost: a lost one stalls the calls, and the test fails after a minute.
#[test]
fn no_wake_up_is_lost_when_peers_switch_between_polling_and_sleeping() {
    let brief = SpinPolicy {
        max_spin: Duration::from_micros(3),
    };
    let new = Channel::create(MAX_MESSAGE_SIZE, brief).unwrap();
    let [memfd, sock] = new.donate;
    let serving = echo_server(new.channel);
    let mut client = Channel::open(&new.resp, &memfd, sock, brief).unwrap();
    client.connect().unwrap();
    let calls = 50_000;
    let (done, finished) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for i in 0..calls {
            // Now and then a pause longer than any spin, so the server goes to sleep.
            if i % 1000 == 0 {
                thread::sleep(Duration::from_micros(200));
            }
            assert_eq!(client.call(1, b"ab", 0, MAX).unwrap().payload, b"ba");
        }
        client.shutdown_handle().shutdown();
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the calls stalled: a wake-up was lost");
    assert_eq!(serving.join().unwrap().unwrap(), calls);
}

/// SPEC.md §9.2: a waiter says in its polling word which CPU it runs on, (CPU + 1) << 1,
/// beside bit 0 (polling, or asleep when clear).
#[test]
fn a_waiter_says_which_cpu_it_runs_on() {
    let (mut server, resp, memfd, sock) = create();
    let client = Channel::open(&resp, &memfd, sock, SpinPolicy::default()).unwrap();
    let allowed = rustix::thread::sched_getaffinity(None).unwrap();
    let cpu = (0..rustix::thread::CpuSet::MAX_CPU)
        .rfind(|&cpu| allowed.is_set(cpu))
        .unwrap();
    let serving = thread::spawn(move || {
        let mut only = rustix::thread::CpuSet::new();
        only.set(cpu);
        rustix::thread::sched_setaffinity(None, &only).unwrap();
        // Waits for the handshake, which never comes: it sleeps once its spin is over.
        server.accept()
    });
    let memfd = File::from(memfd);
    let deadline = Instant::now() + Duration::from_secs(60);
    let word = loop {
        let mut word = [0u8; 4];
        memfd.read_exact_at(&mut word, 12).unwrap();
        let word = u32::from_le_bytes(word);
        if word != 0 && word & 1 == 0 {
            break word;
        }
        assert!(Instant::now() < deadline, "the server never said it sleeps");
        thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(word >> 1, u32::try_from(cpu).unwrap() + 1);
    client.shutdown_handle().shutdown();
    assert!(matches!(
        serving.join().unwrap(),
        Err(ChannelError::Shutdown)
    ));
}

/// Writes the window's header words as a hostile client would (through the memfd, which
/// changes the same pages the server has mapped).
fn poke(memfd: &File, state: u32, data_len: u32) {
    let mut header = [0u8; 8];
    header[..4].copy_from_slice(&state.to_le_bytes());
    header[4..].copy_from_slice(&data_len.to_le_bytes());
    memfd.write_all_at(&header[4..], 4).unwrap();
    memfd.write_all_at(&header[..4], 0).unwrap();
}

/// Hands the server its turn with a hostile data length already in place, then lets it
/// receive: it must refuse the message, not read past the mapping or panic.
fn receive_hostile(data_len: impl FnOnce(&ChannelResp) -> u32) -> ChannelError {
    let (mut server, resp, memfd, _sock) = create();
    let memfd = File::from(memfd);
    poke(&memfd, 1, data_len(&resp));
    thread::spawn(move || server.recv_request().map(|f| f.mid).unwrap_err())
        .join()
        .expect("the server panicked")
}

#[test]
fn a_data_length_beyond_the_window_is_refused() {
    let err = receive_hostile(|resp| u32::try_from(resp.data_length).unwrap() + 1);
    assert!(matches!(err, ChannelError::Protocol(_)), "{err:?}");
    let err = receive_hostile(|_| u32::MAX);
    assert!(matches!(err, ChannelError::Protocol(_)), "{err:?}");
}

#[test]
fn a_message_shorter_than_its_header_is_refused() {
    for len in 0..4 {
        let err = receive_hostile(|_| len);
        assert!(matches!(err, ChannelError::Protocol(_)), "{len}: {err:?}");
    }
}

#[test]
fn a_client_scribbling_on_the_window_cannot_crash_the_server() {
    let (server, resp, memfd, sock) = create();
    let scribble_fd = File::from(memfd.try_clone().unwrap());
    let serving = echo_server(server);
    let mut client = Channel::open(&resp, &memfd, sock, SpinPolicy::default()).unwrap();
    client.connect().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let scribbler = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut x = 0x9e37_79b9u32;
            while !stop.load(Ordering::Relaxed) {
                // Garbage over the channel header and payload, never the control words.
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let at = 16 + u64::from(x % 64);
                scribble_fd.write_all_at(&x.to_le_bytes(), at).unwrap();
            }
        })
    };
    let (mut answered, mut failed) = (0, 0);
    for i in 0..2000u32 {
        match client.call(5, &i.to_le_bytes(), 0, MAX) {
            Ok(_) => answered += 1,
            Err(_) => {
                failed += 1;
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    scribbler.join().unwrap();
    assert!(answered + failed > 0);
    client.shutdown_handle().shutdown();
    // The server thread ended cleanly (shutdown) or refused a garbled message; it never
    // panicked.
    let result = serving.join().expect("the server thread panicked");
    assert!(
        matches!(result, Ok(_) | Err(ChannelError::Protocol(_))),
        "{result:?}"
    );
}
