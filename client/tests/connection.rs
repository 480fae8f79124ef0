//! Mount and the request/response rules of SPEC.md §8.3, against the scripted fake.
#![allow(clippy::unwrap_used)]

mod fake;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use fake::{stat, Fake, Mount, Reply, DIR, REG, ROOT};
use lisafs_client::wire::{
    AnyRequest, AnyResponse, Errno, FStatResp, FdId, Mid, MountHints, MountReq, SymlinkAtReq,
    DEFAULT_CLIENT_MAX_MESSAGE_SIZE,
};
use lisafs_client::{Client, ErrorKind, Owner};
use lisafs_protocol::transport::socket::FramedSocket;

#[test]
fn mount_adopts_max_message_size_and_keeps_the_raw_supported_list() {
    let mount = Mount {
        max_message_size: 4096,
        supported: vec![1, 3, 9, 300],
        fd: None,
    };
    let (client, fake) = Fake::start(mount, Reply::empty);

    assert_eq!(client.max_message_size(), 4096);
    assert_eq!(client.supported_mids(), [1, 3, 9, 300]);
    assert!(client.supported(Mid::FStat));
    assert!(!client.supported(Mid::Walk));
    assert_eq!(client.root().id(), ROOT);
    assert_eq!(client.root_stat().mode, DIR);
    assert!(client.mount_fd().is_none());
    drop(client);
    let log = fake.finish();
    assert_eq!(log[0], AnyRequest::Mount(MountReq {}));
}

/// Answers the first request (Mount) with `mid` and `payload`; the thread returns the
/// request's MID and payload.
fn raw_mount_server(
    mid: u16,
    payload: Vec<u8>,
) -> (OwnedFd, std::thread::JoinHandle<(u16, Vec<u8>)>) {
    let (client_end, mut server_end) = FramedSocket::pair().unwrap();
    let thread = std::thread::spawn(move || {
        let frame = server_end.recv(1024, 0).unwrap();
        let request = (frame.mid, frame.payload.to_vec());
        // The client may hang up part-way through an oversized payload.
        let _ = server_end.send(mid, &payload, &[]);
        request
    });
    (client_end.into_inner(), thread)
}

#[test]
fn mount_says_the_client_polls_in_hints_other_servers_ignore() {
    let (fd, thread) = raw_mount_server(Mid::Error.as_u16(), Errno::EACCES.0.to_le_bytes().into());
    Client::from_fd(fd).unwrap_err();
    let (mid, payload) = thread.join().unwrap();

    assert_eq!(mid, Mid::Mount.as_u16());
    let hints = MountHints::of(&payload).expect("hints after the empty MountReq");
    assert!(hints.polls());
    // What gVisor's server decodes: the empty request (trailing bytes ignored).
    assert_eq!(
        AnyRequest::decode(Mid::Mount, &payload).unwrap(),
        AnyRequest::Mount(MountReq {})
    );
}

#[test]
fn mount_response_beyond_the_default_limit_fails_with_eio() {
    let len = usize::try_from(DEFAULT_CLIENT_MAX_MESSAGE_SIZE).unwrap() + 1;
    let (fd, thread) = raw_mount_server(Mid::Mount.as_u16(), vec![0; len]);

    let err = Client::from_fd(fd).unwrap_err();

    assert_eq!(err.errno(), Errno::EIO);
    assert_eq!(err.kind(), ErrorKind::Transport);
    thread.join().unwrap();
}

#[test]
fn mount_refused_by_the_server_fails_with_its_errno() {
    let (fd, thread) = raw_mount_server(Mid::Error.as_u16(), Errno::EACCES.0.to_le_bytes().into());

    let err = Client::from_fd(fd).unwrap_err();

    assert_eq!(err.errno(), Errno::EACCES);
    thread.join().unwrap();
}

#[test]
fn donated_mount_fd_is_kept() {
    let file = tempfile::tempfile().unwrap();
    let ino = file.metadata().unwrap().ino();
    let mount = Mount {
        fd: Some(file.into()),
        ..Mount::default()
    };
    let (mut client, _fake) = Fake::start(mount, Reply::empty);

    let fd = client.take_mount_fd().unwrap();
    let received = std::fs::File::from(fd);
    assert_eq!(received.metadata().unwrap().ino(), ino);
    assert!(client.mount_fd().is_none());
}

#[test]
fn unsupported_mid_fails_with_eopnotsupp_without_sending() {
    let mount = Mount {
        supported: vec![1, 9],
        ..Mount::default()
    };
    let (client, fake) = Fake::start(mount, Reply::empty);

    let err = client.root().fstat().unwrap_err();

    assert_eq!(err.errno(), Errno::EOPNOTSUPP);
    assert_eq!(err.kind(), ErrorKind::Local);
    drop(client);
    // Mount, then only the final Close of the root: the FStat never left the client.
    assert_eq!(fake::mids(&fake.finish()), [Mid::Mount, Mid::Close]);
}

#[test]
fn error_response_becomes_its_errno() {
    let (client, _fake) = Fake::start(Mount::default(), |_| Reply::err(Errno::ENOENT));

    let err = client.root().fstat().unwrap_err();

    assert_eq!(err.errno(), Errno::ENOENT);
    assert_eq!(err.kind(), ErrorKind::Remote);
    assert_eq!(err.to_string(), "No such file or directory");
    let io_err = io::Error::from(err);
    assert_eq!(io_err.raw_os_error(), Some(2));
    assert_eq!(io_err.kind(), io::ErrorKind::NotFound);
}

#[test]
fn response_under_another_mid_is_einval_and_the_connection_survives() {
    let mut first = true;
    let (client, _fake) = Fake::start(Mount::default(), move |req| {
        let wrong = std::mem::replace(&mut first, false);
        match req {
            AnyRequest::FStat(_) if wrong => Reply::Raw(Mid::WalkStat.as_u16(), vec![0, 0]),
            AnyRequest::FStat(_) => Reply::Resp(AnyResponse::FStat(FStatResp { stat: stat(REG) })),
            other => Reply::empty(other),
        }
    });

    let err = client.root().fstat().unwrap_err();
    assert_eq!(err.errno(), Errno::EINVAL);
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert_eq!(client.root().fstat().unwrap().mode, REG);
    assert!(!client.is_broken());
}

#[test]
fn truncated_response_is_eio() {
    let (client, _fake) = Fake::start(Mount::default(), |req| match req {
        AnyRequest::FStat(_) => Reply::Raw(Mid::FStat.as_u16(), vec![0; 10]),
        other => Reply::empty(other),
    });

    let err = client.root().fstat().unwrap_err();

    assert_eq!(err.errno(), Errno::EIO);
    assert_eq!(err.kind(), ErrorKind::Protocol);
}

#[test]
fn error_response_with_errno_zero_is_eio() {
    let (client, _fake) = Fake::start(Mount::default(), |_| Reply::err(Errno(0)));

    assert_eq!(client.root().fstat().unwrap_err().errno(), Errno::EIO);
}

#[test]
fn hang_up_is_eio_and_later_calls_fail_fast() {
    let (client, fake) = Fake::start(Mount::default(), |_| Reply::HangUp);

    let first = client.root().fstat().unwrap_err();
    let second = client.root().fstatfs().unwrap_err();

    assert_eq!(first.errno(), Errno::EIO);
    assert_eq!(first.kind(), ErrorKind::Transport);
    assert_eq!(second.errno(), Errno::EIO);
    assert_eq!(second.kind(), ErrorKind::Transport);
    assert!(client.is_broken());
    drop(client);
    assert_eq!(fake::mids(&fake.finish()), [Mid::Mount, Mid::FStat]);
}

#[test]
fn oversized_response_is_eio_and_breaks_the_client() {
    let mount = Mount {
        max_message_size: 4096,
        ..Mount::default()
    };
    let (client, _fake) = Fake::start(mount, |req| Reply::Raw(req.mid().as_u16(), vec![0; 5000]));

    let err = client.root().fstat().unwrap_err();

    assert_eq!(err.errno(), Errno::EIO);
    assert!(client.is_broken());
}

#[test]
fn request_larger_than_the_server_limit_is_eio_without_sending() {
    let mount = Mount {
        max_message_size: 4096,
        ..Mount::default()
    };
    let (client, fake) = Fake::start(mount, Reply::empty);

    let err = client
        .root()
        .symlink_at("l", vec![b'x'; 5000], Owner::UNSET)
        .unwrap_err();

    assert_eq!(err.errno(), Errno::EIO);
    assert_eq!(err.kind(), ErrorKind::Local);
    assert!(!client.is_broken());
    assert!(fake.sent().is_empty());
}

#[test]
fn string_too_long_for_its_prefix_is_e2big_without_sending() {
    let (client, fake) = Fake::start(Mount::default(), Reply::empty);

    let err = client
        .root()
        .set_xattr("user.k", vec![0u8; 65_536], 0)
        .unwrap_err();

    assert_eq!(err.errno(), Errno::E2BIG);
    assert!(fake.sent().is_empty());
}

#[test]
fn requests_carry_the_fields_the_caller_gave() {
    let (client, fake) = Fake::start(Mount::default(), |req| match req {
        AnyRequest::SymlinkAt(_) => {
            Reply::Resp(AnyResponse::SymlinkAt(lisafs_client::wire::SymlinkAtResp {
                symlink: fake::inode(2, fake::LNK),
            }))
        }
        other => Reply::empty(other),
    });

    let link = client
        .root()
        .symlink_at("l", "/t", Owner::new(1000, 100))
        .unwrap();

    assert_eq!(link.fd.id(), FdId(2));
    assert_eq!(
        fake.sent()[0],
        AnyRequest::SymlinkAt(SymlinkAtReq {
            dir_fd: ROOT,
            uid: lisafs_client::wire::Uid(1000),
            gid: lisafs_client::wire::Gid(100),
            name: "l".into(),
            target: "/t".into(),
        })
    );
}

#[test]
fn connect_failure_is_reported_with_the_os_errno() {
    let dir = tempfile::tempdir().unwrap();
    let err = Client::connect(dir.path().join("absent.sock")).unwrap_err();
    assert_eq!(err.errno(), Errno::ENOENT);
}

#[test]
fn client_and_handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Client>();
    assert_send_sync::<lisafs_client::ControlFd>();
    assert_send_sync::<lisafs_client::OpenFd>();
    assert_send_sync::<lisafs_client::File>();
}

#[test]
fn concurrent_calls_from_many_threads_are_serialised() {
    let (client, fake) = Fake::start(Mount::default(), |req| match req {
        AnyRequest::FStat(_) => Reply::Resp(AnyResponse::FStat(FStatResp { stat: stat(DIR) })),
        other => Reply::empty(other),
    });

    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..50 {
                    assert_eq!(client.root().fstat().unwrap().mode, DIR);
                }
            });
        }
    });

    assert_eq!(fake.sent().len(), 400);
}

/// A server that dies in the middle of a channel handshake (it donated the channel, then
/// went away without answering on it) must not leave the client waiting forever: the
/// watchdog wakes the handshake, and the client is made with what it has.
#[test]
fn server_dying_during_a_channel_handshake_does_not_hang_the_client() {
    use lisafs_client::wire::AnyResponse;
    use lisafs_protocol::transport::channel::{Channel, SpinPolicy};

    let (client_end, mut server_end) = FramedSocket::pair().unwrap();
    let server = std::thread::spawn(move || {
        let mut out = Vec::new();
        server_end.recv(1024, 0).unwrap();
        let mount = lisafs_client::wire::MountResp {
            root: fake::inode(ROOT.0, DIR),
            max_message_size: 4096,
            supported: fake::fsgofer_mids(),
        };
        AnyResponse::Mount(mount).encode_into(&mut out).unwrap();
        server_end.send(Mid::Mount.as_u16(), &out, &[]).unwrap();
        let frame = server_end.recv(1024, 0).unwrap();
        assert_eq!(frame.mid, Mid::Channel.as_u16());
        let new = Channel::create(4096, SpinPolicy::default()).unwrap();
        out.clear();
        AnyResponse::Channel(new.resp)
            .encode_into(&mut out)
            .unwrap();
        let [memfd, sock] = &new.donate;
        server_end
            .send(Mid::Channel.as_u16(), &out, &[memfd.as_fd(), sock.as_fd()])
            .unwrap();
        // Dies: its end of the channel and the socket close, the handshake unanswered.
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let options = lisafs_client::ClientOptions {
            channels: 1,
            ..Default::default()
        };
        let client = Client::from_fd_with(client_end.into_inner(), options);
        let _ = done_tx.send(client.map(|client| client.idle_channels()));
    });
    let result = done_rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the client hung in the channel handshake");
    server.join().unwrap();
    // Either outcome is honest (a client that reports no channels, or an error); a hang
    // is not.
    if let Ok(channels) = result {
        assert_eq!(channels, 0);
    }
}
