//! security.md #45: Close racing with use of the same FDID, through the real gofer. One
//! thread of a raw client walks and opens a file, publishes the open FDID, closes it and
//! starts again, while other threads of the same connection read that FDID over their own
//! shared-memory channels, and the host keeps opening unrelated files so that host FD
//! numbers recycle. Every read must give the file's own content or `EBADF`: never another
//! file's data, never a hang, never a dead gofer. Would catch: a handler that looks up an
//! FDID and then uses a host FD closed (and reused) underneath it, or FDIDs reused.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use lisafs_protocol::transport::channel::{Channel, SpinPolicy};
use lisafs_protocol::transport::socket::FramedSocket;
use lisafs_protocol::wire::*;
use lisafs_tests::attacks::within;
use lisafs_tests::Gofer;

const GOFER: &str = env!("CARGO_BIN_EXE_test-gofer");
const ROUNDS: usize = 3_000;
const CONTENT: &[u8] = b"the file under test";

/// One request on the raw socket; the response payload, or the errno of an `ErrorResp`.
fn call<Req: Wire, Resp: Wire>(
    sock: &mut FramedSocket,
    mid: Mid,
    req: &Req,
) -> Result<Resp, Errno> {
    sock.send(mid.as_u16(), &encode(req).unwrap(), &[]).unwrap();
    let frame = sock.recv(MAX_MESSAGE_SIZE, 2).unwrap();
    match frame.mid {
        0 => Err(decode::<ErrorResp>(frame.payload).unwrap().errno),
        _ => Ok(decode(frame.payload).unwrap()),
    }
}

/// A channel of the connection `sock`, set up by hand.
fn open_channel(sock: &mut FramedSocket) -> Channel {
    sock.send(Mid::Channel.as_u16(), &[], &[]).unwrap();
    let frame = sock.recv(MAX_MESSAGE_SIZE, 2).unwrap();
    let resp = decode::<ChannelResp>(frame.payload).unwrap();
    let [memfd, fd_sock]: [OwnedFd; 2] = frame.fds.try_into().unwrap();
    let mut channel = Channel::open(&resp, &memfd, fd_sock, SpinPolicy::default()).unwrap();
    channel.connect().unwrap();
    channel
}

#[test]
fn close_racing_reads_of_the_same_fdid_never_reads_another_file() {
    let gofer = Gofer::start(GOFER, &[]);
    fs::write(gofer.root().join("f"), CONTENT).unwrap();
    for i in 0..8 {
        fs::write(
            gofer.root().join(format!("other{i}")),
            format!("other file {i}"),
        )
        .unwrap();
    }
    let (mut sock, root) = gofer.mounted_raw();
    let readers: Vec<Channel> = (0..2).map(|_| open_channel(&mut sock)).collect();
    let current = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let reader_threads: Vec<_> = readers
        .into_iter()
        .map(|mut channel| {
            let (current, stop) = (Arc::clone(&current), Arc::clone(&stop));
            thread::spawn(move || {
                let (mut good, mut ebadf) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let req = PReadReq {
                        offset: 0,
                        fd: FdId(current.load(Ordering::Relaxed)),
                        count: 64,
                        _pad: 0,
                    };
                    let frame = channel
                        .call(Mid::PRead.as_u16(), &encode(&req).unwrap(), 0, 1 << 20)
                        .unwrap();
                    match frame.mid {
                        0 => {
                            let errno = decode::<ErrorResp>(frame.payload).unwrap().errno;
                            assert_eq!(errno, Errno::EBADF);
                            ebadf += 1;
                        }
                        _ => {
                            let data = decode::<PReadResp>(frame.payload).unwrap().data;
                            assert_eq!(data, CONTENT, "a read of a closed FDID saw other data");
                            good += 1;
                        }
                    }
                }
                (good, ebadf)
            })
        })
        .collect();

    // The host keeps opening and closing files, so freed FD numbers are taken again.
    let churn = {
        let (root, stop) = (gofer.root(), Arc::clone(&stop));
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let files: Vec<_> = (0..8)
                    .map(|i| fs::File::open(root.join(format!("other{i}"))).unwrap())
                    .collect();
                drop(files);
            }
        })
    };

    let opener = within(
        "the close/reopen loop",
        Duration::from_secs(60),
        move || {
            for _ in 0..ROUNDS {
                let walk = WalkReq {
                    dir_fd: root,
                    path: vec![SizedString::from("f")],
                };
                let walked: WalkResp = call(&mut sock, Mid::Walk, &walk).unwrap();
                let control = walked.inodes[0].control_fd;
                let open = OpenAtReq {
                    fd: control,
                    flags: 0,
                    _pad: 0,
                };
                let opened: OpenAtResp = call(&mut sock, Mid::OpenAt, &open).unwrap();
                current.store(opened.open_fd.0, Ordering::Relaxed);
                thread::yield_now();
                let close = CloseReq {
                    fds: vec![opened.open_fd, control],
                };
                let _: CloseResp = call(&mut sock, Mid::Close, &close).unwrap();
            }
            sock
        },
    );
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    let (mut good, mut ebadf) = (0, 0);
    for reader in reader_threads {
        let (g, e) = reader.join().unwrap();
        good += g;
        ebadf += e;
    }
    assert!(good > 0, "no read ever hit an open FDID ({ebadf} EBADF)");
    assert!(ebadf > 0, "no read ever raced a Close");
    // The connection still serves.
    let mut sock = opener;
    let stat: FStatResp = call(&mut sock, Mid::FStat, &FStatReq { fd: root }).unwrap();
    assert_eq!(stat.stat.mode & 0o170_000, 0o040_000);
}
