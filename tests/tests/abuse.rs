//! Protocol abuse against the real gofer (security.md §2 F, G): truncated requests,
//! unknown MIDs, absurd lengths, requests before Mount, FDIDs of every kind in Close, and
//! FD exhaustion. After each, the gofer is alive and other connections unaffected.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::fs;

use lisafs_protocol::transport::socket::{FramedSocket, SocketError};
use lisafs_protocol::wire::*;
use lisafs_tests::{vm_rss_kib, Gofer};

const GOFER: &str = env!("CARGO_BIN_EXE_test-gofer");

/// A raw, mounted connection speaking the wire format directly.
struct Raw {
    sock: FramedSocket,
    root: FdId,
}

impl Raw {
    fn mount(gofer: &Gofer) -> Self {
        let (sock, root) = gofer.mounted_raw();
        Self { sock, root }
    }

    /// Sends raw bytes under `mid`; returns the errno of an error reply, or `Ok(payload)`.
    fn send(&mut self, mid: u16, payload: &[u8]) -> Result<Vec<u8>, Errno> {
        self.sock.send(mid, payload, &[]).unwrap();
        let frame = self.sock.recv(MAX_MESSAGE_SIZE, 2).unwrap();
        if frame.mid == Mid::Error.as_u16() {
            return Err(decode::<ErrorResp>(frame.payload).unwrap().errno);
        }
        assert_eq!(frame.mid, mid);
        Ok(frame.payload.to_vec())
    }

    fn call<R: Request>(&mut self, req: &R) -> Result<R::Response, Errno> {
        let payload = self.send(R::MID.as_u16(), &encode(req).unwrap())?;
        Ok(decode(&payload).unwrap())
    }

    fn walk(&mut self, name: &str) -> Result<Inode, Errno> {
        let resp = self.call(&WalkReq {
            dir_fd: self.root,
            path: vec![name.into()],
        })?;
        assert_eq!(resp.status, WalkStatus::Success, "{name}");
        Ok(resp.inodes[0])
    }

    fn assert_alive(&mut self) {
        let stat = self.call(&FStatReq { fd: self.root }).unwrap().stat;
        assert_eq!(stat.mode & 0o170000, 0o040000);
    }
}

#[test]
fn every_truncation_of_every_request_kind_is_eio_with_no_effect() {
    let gofer = Gofer::start(GOFER, &[]);
    fs::write(gofer.root().join("f"), b"data").unwrap();
    let mut raw = Raw::mount(&gofer);
    let file = raw.walk("f").unwrap().control_fd;
    let requests: Vec<(Mid, Vec<u8>)> = vec![
        (
            Mid::Walk,
            encode(&WalkReq {
                dir_fd: raw.root,
                path: vec!["f".into()],
            })
            .unwrap(),
        ),
        (
            Mid::MkdirAt,
            encode(&MkdirAtReq {
                common: CreateCommon {
                    dir_fd: raw.root,
                    mode: 0o755,
                    ..Default::default()
                },
                name: "newdir".into(),
            })
            .unwrap(),
        ),
        (
            Mid::RenameAt2,
            encode(&RenameAt2Req {
                old_dir: raw.root,
                new_dir: raw.root,
                old_name: "f".into(),
                new_name: "g".into(),
                flags: 0,
            })
            .unwrap(),
        ),
        (
            Mid::SymlinkAt,
            encode(&SymlinkAtReq {
                dir_fd: raw.root,
                uid: Uid::NONE,
                gid: Gid::NONE,
                name: "l".into(),
                target: "f".into(),
            })
            .unwrap(),
        ),
        (
            Mid::SetStat,
            encode(&SetStatReq {
                fd: file,
                mask: SetStatReq::SIZE,
                size: 0,
                ..Default::default()
            })
            .unwrap(),
        ),
        (
            Mid::UnlinkAt,
            encode(&UnlinkAtReq {
                dir_fd: raw.root,
                flags: 0,
                name: "f".into(),
            })
            .unwrap(),
        ),
        (
            Mid::FSetXattr,
            encode(&FSetXattrReq {
                fd: file,
                flags: 0,
                name: "user.k".into(),
                value: "v".into(),
            })
            .unwrap(),
        ),
    ];
    for (mid, payload) in &requests {
        for len in 0..payload.len() {
            assert_eq!(
                raw.send(mid.as_u16(), &payload[..len]),
                Err(Errno::EIO),
                "{mid} at {len}"
            );
        }
    }
    // Nothing happened: the file is intact and nothing new exists.
    let mut names: Vec<_> = fs::read_dir(gofer.root())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["f"]);
    assert_eq!(fs::read(gofer.root().join("f")).unwrap(), b"data");
    raw.assert_alive();
}

#[test]
fn unknown_and_unsupported_mids_are_eopnotsupp() {
    let gofer = Gofer::start(GOFER, &[]);
    let mut raw = Raw::mount(&gofer);
    for mid in [0u16, 34, 100, 255, 256, 1000, u16::MAX] {
        assert_eq!(raw.send(mid, &[0; 16]), Err(Errno::EOPNOTSUPP), "MID {mid}");
    }
    raw.assert_alive();
}

#[test]
fn requests_before_mount_are_refused_without_effect() {
    let gofer = Gofer::start(GOFER, &[]);
    let mut sock = gofer.raw();
    let mkdir = MkdirAtReq {
        common: CreateCommon {
            dir_fd: FdId(1),
            mode: 0o755,
            ..Default::default()
        },
        name: "early".into(),
    };
    sock.send(Mid::MkdirAt.as_u16(), &encode(&mkdir).unwrap(), &[])
        .unwrap();
    let frame = sock.recv(MAX_MESSAGE_SIZE, 0).unwrap();
    assert_eq!(frame.mid, 0);
    assert_eq!(
        decode::<ErrorResp>(frame.payload).unwrap().errno,
        Errno::EINVAL
    );
    assert!(!gofer.root().join("early").exists());
}

#[test]
fn an_oversized_request_is_eio_and_the_connection_continues() {
    let gofer = Gofer::start(GOFER, &[]);
    let mut raw = Raw::mount(&gofer);
    let req = PWriteReq {
        offset: 0,
        fd: FdId(1),
        data: vec![0; MAX_MESSAGE_SIZE as usize],
    };
    assert_eq!(
        raw.send(Mid::PWrite.as_u16(), &encode(&req).unwrap()),
        Err(Errno::EIO)
    );
    raw.assert_alive();
}

#[test]
fn a_4_gib_length_is_a_clean_close_without_allocation() {
    let mut gofer = Gofer::start(GOFER, &[]);
    let before = vm_rss_kib(gofer.server_pid());
    let mut raw = Raw::mount(&gofer);
    let header = encode(&SocketHeader {
        payload_len: u32::MAX,
        mid: Mid::PWrite.as_u16(),
        _pad: 0,
    })
    .unwrap();
    rustix::net::send(&raw.sock, &header, rustix::net::SendFlags::NOSIGNAL).unwrap();
    assert!(matches!(
        raw.sock.recv(MAX_MESSAGE_SIZE, 0),
        Err(SocketError::Closed)
    ));
    let after = vm_rss_kib(gofer.server_pid());
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    assert!(gofer.is_alive());
    Raw::mount(&gofer).assert_alive();
}

#[test]
fn close_takes_fdids_of_every_kind_and_ignores_unknown_ones() {
    let gofer = Gofer::start(GOFER, &["--host-uds", "all"]);
    fs::write(gofer.root().join("f"), b"x").unwrap();
    let mut raw = Raw::mount(&gofer);
    let control = raw.walk("f").unwrap().control_fd;
    let open = raw
        .call(&OpenAtReq {
            fd: control,
            flags: 0,
            _pad: 0,
        })
        .unwrap()
        .open_fd;
    let bound = raw
        .call(&BindAtReq {
            common: CreateCommon {
                dir_fd: raw.root,
                mode: 0o755,
                ..Default::default()
            },
            sock_type: 1,
            name: "sock".into(),
        })
        .unwrap();
    let ids = vec![
        control,
        open,
        bound.child.control_fd,
        bound.bound_socket_fd,
        FdId(0),
        FdId(999),
        control,
    ];
    raw.call(&CloseReq { fds: ids }).unwrap();
    for id in [control, bound.child.control_fd] {
        assert_eq!(
            raw.call(&FStatReq { fd: id }).map(|_| ()),
            Err(Errno::EBADF)
        );
    }
    let read = raw.call(&PReadReq {
        offset: 0,
        fd: open,
        count: 1,
        _pad: 0,
    });
    assert_eq!(read.map(|_| ()), Err(Errno::EBADF));
    let listen = raw.call(&ListenReq {
        fd: bound.bound_socket_fd,
        backlog: 1,
        _pad: 0,
    });
    assert_eq!(listen.map(|_| ()), Err(Errno::EBADF));
    raw.assert_alive();
}

#[test]
fn fd_exhaustion_is_emfile_for_the_greedy_connection_only() {
    let gofer = Gofer::start(GOFER, &["--max-fds", "64"]);
    fs::write(gofer.root().join("f"), b"x").unwrap();
    let mut greedy = Raw::mount(&gofer);
    let mut held = 1;
    let err = loop {
        match greedy.walk("f") {
            Ok(_) => held += 1,
            Err(errno) => break errno,
        }
        assert!(held <= 64, "the limit was not enforced");
    };
    assert_eq!((err, held), (Errno::EMFILE, 64));
    let mut other = Raw::mount(&gofer);
    other.walk("f").unwrap();
    other.assert_alive();
}
