//! security.md #48: double fetch. A client sends requests over a shared-memory channel
//! while another of its threads rewrites the request's bytes in the window, as the server
//! may be reading them: the name of a MkdirAt flips among `aaaa`, `../x`, `a/b\0` and
//! `....` (and its length between 4 and 65,535), and on a read-only share the flags of an
//! OpenAt flip between `O_RDONLY` and `O_RDWR`. The server copies a request out of the
//! window once and validates only its copy, so whatever mix it copied is judged as a whole.
//! Would catch: a server that validates the name in shared memory and then uses it (a
//! directory `x` beside the root), or checks the access mode before copying (a writable
//! FD on a read-only share). A PWrite's data, which the server writes from the window
//! itself, is the one part it does not copy: its count, flipping, is judged once.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use lisafs_protocol::transport::channel::{Channel, SpinPolicy};
use lisafs_protocol::transport::socket::{Frame, FramedSocket};
use lisafs_protocol::wire::*;
use lisafs_tests::Gofer;

const GOFER: &str = env!("CARGO_BIN_EXE_test-gofer");
const ROUNDS: usize = 20_000;
/// Where a request's payload starts in the window (SPEC.md §9.2).
const PAYLOAD: u64 = 20;

/// A channel of `sock`'s connection set up by hand, and a second handle on its window.
fn open_channel(sock: &mut FramedSocket) -> (Channel, fs::File) {
    sock.send(Mid::Channel.as_u16(), &[], &[]).unwrap();
    let frame = sock.recv(MAX_MESSAGE_SIZE, 2).unwrap();
    let resp = decode::<ChannelResp>(frame.payload).unwrap();
    let [memfd, fd_sock]: [OwnedFd; 2] = frame.fds.try_into().unwrap();
    let window = fs::File::from(memfd.try_clone().unwrap());
    let mut channel = Channel::open(&resp, &memfd, fd_sock, SpinPolicy::default()).unwrap();
    channel.connect().unwrap();
    (channel, window)
}

/// Writes each `(offset, bytes)` of `writes` into `window` in turn, round and round,
/// until `stop`.
fn flipper(
    window: fs::File,
    writes: Vec<(u64, Vec<u8>)>,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for (offset, bytes) in writes.iter().cycle() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            window.write_all_at(bytes, *offset).unwrap();
        }
    })
}

/// Walks to `name` in `dir` over the socket: its ControlFd.
fn walk_one(sock: &mut FramedSocket, dir: FdId, name: &str) -> FdId {
    let walk = WalkReq {
        dir_fd: dir,
        path: vec![SizedString::from(name)],
    };
    sock.send(Mid::Walk.as_u16(), &encode(&walk).unwrap(), &[])
        .unwrap();
    let walked = decode::<WalkResp>(sock.recv(MAX_MESSAGE_SIZE, 0).unwrap().payload).unwrap();
    walked.inodes[0].control_fd
}

/// The errno of an error response; `None` for any other.
fn refusal(frame: &Frame<'_>) -> Option<Errno> {
    (frame.mid == 0).then(|| decode::<ErrorResp>(frame.payload).unwrap().errno)
}

#[test]
fn a_name_rewritten_while_the_server_reads_it_never_leaves_the_root() {
    let gofer = Gofer::start(GOFER, &[]);
    let (mut sock, root) = gofer.mounted_raw();
    let (mut channel, window) = open_channel(&mut sock);
    let req = encode(&MkdirAtReq {
        common: CreateCommon {
            dir_fd: root,
            mode: 0o755,
            ..CreateCommon::default()
        },
        name: SizedString::from("aaaa"),
    })
    .unwrap();
    let name_at = req.windows(4).position(|w| w == b"aaaa").unwrap() as u64;
    let stop = Arc::new(AtomicBool::new(false));
    let name = PAYLOAD + name_at;
    let mut writes: Vec<_> = [&b"aaaa"[..], b"../x", b"a/b\0", b"...."]
        .iter()
        .map(|v| (name, v.to_vec()))
        .collect();
    // The SizedString's u16 length, just before the bytes: 65,535, then 4 again.
    writes.push((name - 2, 0xffff_u16.to_le_bytes().to_vec()));
    writes.push((name - 2, 4_u16.to_le_bytes().to_vec()));
    let flip = flipper(window, writes, Arc::clone(&stop));
    let mut created = 0;
    for _ in 0..ROUNDS {
        let frame = channel
            .call(Mid::MkdirAt.as_u16(), &req, 0, MAX_MESSAGE_SIZE as usize)
            .unwrap();
        if frame.mid == Mid::MkdirAt.as_u16() {
            created += 1;
            // Remove whatever was made, by the host, so the next round can make it again.
            for entry in fs::read_dir(gofer.root()).unwrap() {
                fs::remove_dir(entry.unwrap().path()).unwrap();
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    flip.join().unwrap();
    assert!(created > 0, "no MkdirAt ever succeeded");
    gofer.assert_canary_untouched();
    let beside: Vec<_> = fs::read_dir(gofer.root().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(!beside.iter().any(|name| name == "x"), "{beside:?}");
}

#[test]
fn open_flags_rewritten_while_the_server_reads_them_never_give_write_access_on_a_readonly_share() {
    let gofer = Gofer::start(GOFER, &["--readonly"]);
    fs::write(gofer.root().join("f"), b"original").unwrap();
    let (mut sock, root) = gofer.mounted_raw();
    let file = walk_one(&mut sock, root, "f");
    let (mut channel, window) = open_channel(&mut sock);
    let req = encode(&OpenAtReq {
        fd: file,
        flags: 0,
        _pad: 0,
    })
    .unwrap();
    // The flags follow the 8-byte FDID.
    let stop = Arc::new(AtomicBool::new(false));
    let writes = [0_u32, 2]
        .iter()
        .map(|flags| (PAYLOAD + 8, flags.to_le_bytes().to_vec()))
        .collect();
    let flip = flipper(window, writes, Arc::clone(&stop));
    let (mut opened, mut refused) = (0, 0);
    for _ in 0..ROUNDS / 4 {
        let frame = channel
            .call(Mid::OpenAt.as_u16(), &req, 1, MAX_MESSAGE_SIZE as usize)
            .unwrap();
        if let Some(errno) = refusal(&frame) {
            assert_eq!(errno, Errno::EROFS);
            refused += 1;
            continue;
        }
        opened += 1;
        for fd in &frame.fds {
            let mode = rustix::fs::fcntl_getfl(fd.as_fd()).unwrap() & rustix::fs::OFlags::RWMODE;
            assert_eq!(
                mode,
                rustix::fs::OFlags::RDONLY,
                "a writable FD on a read-only share"
            );
        }
        let open = decode::<OpenAtResp>(frame.payload).unwrap().open_fd;
        // On the socket: in the window the flipper would rewrite the FDID's upper half,
        // and the OpenFds left open would end in EMFILE.
        let close = encode(&CloseReq { fds: vec![open] }).unwrap();
        sock.send(Mid::Close.as_u16(), &close, &[]).unwrap();
        assert_eq!(
            sock.recv(MAX_MESSAGE_SIZE, 0).unwrap().mid,
            Mid::Close.as_u16()
        );
    }
    stop.store(true, Ordering::Relaxed);
    flip.join().unwrap();
    assert!(
        opened > 0 && refused > 0,
        "opened {opened}, refused {refused}"
    );
    assert_eq!(fs::read(gofer.root().join("f")).unwrap(), b"original");
}

/// A PWrite's data is written from the window, where the client may still change it; its
/// fixed part is copied out once. With the count flipping among 10 (the data's length), 4,
/// 11 and 2^32 − 1, each write is judged by the count the server copied: 10 or 4 bytes
/// written, or EIO for a count beyond the data. Would catch: a server that checks one
/// copy of the count and writes with another read of it (bytes beyond the request in the
/// file: its length over 10), or that trusts a count larger than the window holds.
#[test]
fn a_pwrite_count_rewritten_while_the_server_reads_it_never_writes_past_the_request() {
    let gofer = Gofer::start(GOFER, &[]);
    fs::write(gofer.root().join("f"), b"").unwrap();
    let (mut sock, root) = gofer.mounted_raw();
    let open = OpenAtReq {
        fd: walk_one(&mut sock, root, "f"),
        flags: 2, // O_RDWR
        _pad: 0,
    };
    sock.send(Mid::OpenAt.as_u16(), &encode(&open).unwrap(), &[])
        .unwrap();
    let opened = decode::<OpenAtResp>(sock.recv(MAX_MESSAGE_SIZE, 1).unwrap().payload).unwrap();
    let (mut channel, window) = open_channel(&mut sock);
    let req = encode(&PWriteReq {
        offset: 0,
        fd: opened.open_fd,
        data: b"0123456789".to_vec(),
    })
    .unwrap();
    // The count follows the offset and the FDID.
    let stop = Arc::new(AtomicBool::new(false));
    let writes = [10_u32, 4, 11, u32::MAX]
        .iter()
        .map(|count| (PAYLOAD + 16, count.to_le_bytes().to_vec()))
        .collect();
    let flip = flipper(window, writes, Arc::clone(&stop));
    let (mut whole, mut short, mut refused) = (0, 0, 0);
    for _ in 0..ROUNDS / 4 {
        let frame = channel
            .call(Mid::PWrite.as_u16(), &req, 0, MAX_MESSAGE_SIZE as usize)
            .unwrap();
        if let Some(errno) = refusal(&frame) {
            assert_eq!(errno, Errno::EIO);
            refused += 1;
            continue;
        }
        match decode::<PWriteResp>(frame.payload).unwrap().count {
            10 => whole += 1,
            4 => short += 1,
            count => panic!("a write of {count} bytes"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    flip.join().unwrap();
    eprintln!("{whole} whole, {short} short, {refused} refused");
    assert!(whole + short > 0, "no PWrite ever succeeded");
    let content = fs::read(gofer.root().join("f")).unwrap();
    assert!(content.len() <= 10, "{} bytes in the file", content.len());
    assert_eq!(content, b"0123456789"[..content.len()]);
}
