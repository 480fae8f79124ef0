//! The per-RPC methods of ControlFd and BoundSocketFd: request fields, response checks,
//! mandatory donated FDs, and the RenameAt2 / ConnectWithCreds choices.
#![allow(clippy::unwrap_used)]

mod fake;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use fake::{closes, fsgofer_mids, inode, Fake, Mount, Reply, DIR, ROOT};
use lisafs_client::wire::{
    AcceptResp, AnyRequest, AnyResponse, BindAtResp, ConnectReq, ConnectWithCredsReq, Errno, FdId,
    Gid, Mid, RenameAt2Req, RenameAtReq, SetStatReq, SetStatResp, Timespec, Uid, WalkResp,
    WalkStatus,
};
use lisafs_client::{Owner, SetStat, RENAME_NOREPLACE, SOCK_STREAM};

fn socket_pair() -> (UnixStream, OwnedFd) {
    let (mine, theirs) = UnixStream::pair().unwrap();
    (mine, theirs.into())
}

#[test]
fn walk_response_inconsistent_with_its_status_is_eio_and_its_fds_are_closed() {
    let (client, fake) = Fake::start(Mount::default(), |req| match req {
        AnyRequest::Walk(_) => Reply::Resp(AnyResponse::Walk(WalkResp {
            status: WalkStatus::Success,
            inodes: vec![inode(7, DIR)],
        })),
        other => Reply::empty(other),
    });

    let err = client.root().walk(&["a", "b"]).unwrap_err();
    client.flush_closes().unwrap();

    assert_eq!(err.errno(), Errno::EIO);
    assert_eq!(closes(&fake.log()), [vec![7]]);
}

#[test]
fn connect_prefers_connect_with_creds_when_supported_and_ids_are_set() {
    let (_mine, theirs) = socket_pair();
    let mut donated = Some(theirs);
    let (client, fake) = Fake::start(Mount::default(), move |req| match req {
        AnyRequest::ConnectWithCreds(_) => Reply::WithFds(
            AnyResponse::ConnectWithCreds(Default::default()),
            donated.take().into_iter().collect(),
        ),
        other => Reply::empty(other),
    });

    client
        .root()
        .connect(SOCK_STREAM, Owner::new(1000, 1000))
        .unwrap();

    assert_eq!(
        fake.sent(),
        [AnyRequest::ConnectWithCreds(ConnectWithCredsReq {
            fd: ROOT,
            sock_type: SOCK_STREAM,
            _pad: 0,
            uid: Uid(1000),
            gid: Gid(1000),
        })]
    );
}

#[test]
fn connect_falls_back_to_connect_without_creds_or_support() {
    let (client, fake) = Fake::start(Mount::default(), Reply::empty);
    let no_creds = client
        .root()
        .connect(SOCK_STREAM, Owner::UNSET)
        .unwrap_err();
    let mount = Mount {
        supported: fsgofer_mids().into_iter().filter(|&m| m != 32).collect(),
        ..Mount::default()
    };
    let (old_client, old_fake) = Fake::start(mount, Reply::empty);
    let old_server = old_client
        .root()
        .connect(SOCK_STREAM, Owner::new(1, 1))
        .unwrap_err();

    let plain = AnyRequest::Connect(ConnectReq {
        fd: ROOT,
        sock_type: SOCK_STREAM,
        _pad: 0,
    });
    assert_eq!(fake.sent(), std::slice::from_ref(&plain));
    assert_eq!(old_fake.sent(), [plain]);
    // Both answers lacked the mandatory socket.
    assert_eq!(no_creds.errno(), Errno::EBADF);
    assert_eq!(old_server.errno(), Errno::EBADF);
}

#[test]
fn bind_at_without_its_socket_is_ebadf_and_both_fdids_are_closed() {
    let (client, fake) = Fake::start(Mount::default(), |req| match req {
        AnyRequest::BindAt(_) => Reply::Resp(AnyResponse::BindAt(BindAtResp {
            child: inode(5, 0o140_755),
            bound_socket_fd: FdId(6),
        })),
        other => Reply::empty(other),
    });

    let err = client
        .root()
        .bind_at("s", SOCK_STREAM, 0o755, Owner::UNSET)
        .unwrap_err();
    client.flush_closes().unwrap();

    assert_eq!(err.errno(), Errno::EBADF);
    let mut closed = closes(&fake.log()).concat();
    closed.sort_unstable();
    assert_eq!(closed, [5, 6]);
}

#[test]
fn bind_listen_accept_deliver_their_sockets() {
    let (bound_mine, bound_theirs) = socket_pair();
    let (conn_mine, conn_theirs) = socket_pair();
    let mut bound = Some(bound_theirs);
    let mut conn = Some(conn_theirs);
    let (client, fake) = Fake::start(Mount::default(), move |req| match req {
        AnyRequest::BindAt(_) => Reply::WithFds(
            AnyResponse::BindAt(BindAtResp {
                child: inode(5, 0o140_755),
                bound_socket_fd: FdId(6),
            }),
            bound.take().into_iter().collect(),
        ),
        AnyRequest::Accept(_) => Reply::WithFds(
            AnyResponse::Accept(AcceptResp {
                peer_addr: "peer".into(),
            }),
            conn.take().into_iter().collect(),
        ),
        other => Reply::empty(other),
    });

    let (inode, bound_fd, bound_sock) = client
        .root()
        .bind_at("s", SOCK_STREAM, 0o755, Owner::UNSET)
        .unwrap();
    bound_fd.listen(16).unwrap();
    let (accepted, peer) = bound_fd.accept().unwrap();

    assert_eq!(inode.fd.id(), FdId(5));
    assert_eq!(bound_fd.id(), FdId(6));
    assert_eq!(peer, b"peer");
    for (mine, theirs) in [(bound_mine, bound_sock), (conn_mine, accepted)] {
        UnixStream::from(theirs).write_all(b"x").unwrap();
        let mut got = [0];
        (&mine).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"x");
    }
    assert_eq!(
        fake::mids(&fake.sent()),
        [Mid::BindAt, Mid::Listen, Mid::Accept]
    );
}

#[test]
fn rename_with_flags_uses_rename_at2() {
    let (client, fake) = Fake::start(Mount::default(), Reply::empty);

    client.root().rename_at("a", client.root(), "b", 0).unwrap();
    client
        .root()
        .rename_at("a", client.root(), "b", RENAME_NOREPLACE)
        .unwrap();

    assert_eq!(
        fake.sent(),
        [
            AnyRequest::RenameAt(RenameAtReq {
                old_dir: ROOT,
                new_dir: ROOT,
                old_name: "a".into(),
                new_name: "b".into(),
            }),
            AnyRequest::RenameAt2(RenameAt2Req {
                old_dir: ROOT,
                new_dir: ROOT,
                old_name: "a".into(),
                new_name: "b".into(),
                flags: RENAME_NOREPLACE,
            }),
        ]
    );
}

#[test]
fn rename_with_flags_without_rename_at2_is_einval_without_sending() {
    let mount = Mount {
        supported: fsgofer_mids().into_iter().filter(|&m| m != 33).collect(),
        ..Mount::default()
    };
    let (client, fake) = Fake::start(mount, Reply::empty);

    let err = client
        .root()
        .rename_at("a", client.root(), "b", RENAME_NOREPLACE)
        .unwrap_err();

    assert_eq!(err.errno(), Errno::EINVAL);
    assert!(fake.sent().is_empty());
}

#[test]
fn set_stat_sends_the_mask_of_the_set_fields_and_reports_partial_failure() {
    let (client, fake) = Fake::start(Mount::default(), |req| match req {
        AnyRequest::SetStat(_) => Reply::Resp(AnyResponse::SetStat(SetStatResp {
            failure_mask: SetStatReq::MODE,
            failure_errno: Errno::EOPNOTSUPP.0,
        })),
        other => Reply::empty(other),
    });
    let mtime = Timespec { sec: 5, nsec: 6 };

    let outcome = client
        .root()
        .set_stat(&SetStat {
            mode: Some(0o600),
            size: Some(50),
            mtime: Some(mtime),
            ..SetStat::default()
        })
        .unwrap();

    assert!(!outcome.is_complete());
    assert_eq!(outcome.failure_errno, Some(Errno::EOPNOTSUPP));
    assert_eq!(
        fake.sent(),
        [AnyRequest::SetStat(SetStatReq {
            fd: ROOT,
            mask: SetStatReq::MODE | SetStatReq::SIZE | SetStatReq::MTIME,
            mode: 0o600,
            uid: Uid::NONE,
            gid: Gid::NONE,
            size: 50,
            atime: Timespec::default(),
            mtime,
        })]
    );
}

#[test]
fn xattr_methods_round_trip_names_and_values() {
    let (client, fake) = Fake::start(Mount::default(), |req| match req {
        AnyRequest::FGetXattr(_) => {
            Reply::Resp(AnyResponse::FGetXattr(lisafs_client::wire::FGetXattrResp {
                value: "v".into(),
            }))
        }
        AnyRequest::FListXattr(_) => Reply::Resp(AnyResponse::FListXattr(
            lisafs_client::wire::FListXattrResp {
                xattrs: vec!["user.a".into(), "user.b".into()],
            },
        )),
        other => Reply::empty(other),
    });

    client.root().set_xattr("user.a", "v", 0).unwrap();
    let value = client.root().get_xattr("user.a", 0).unwrap();
    let names = client.root().list_xattr(0).unwrap();
    client.root().remove_xattr("user.a").unwrap();

    assert_eq!(value, b"v");
    assert_eq!(names, [b"user.a".to_vec(), b"user.b".to_vec()]);
    assert_eq!(
        fake::mids(&fake.sent()),
        [
            Mid::FSetXattr,
            Mid::FGetXattr,
            Mid::FListXattr,
            Mid::FRemoveXattr
        ]
    );
}
