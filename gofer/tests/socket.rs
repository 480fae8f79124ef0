//! Host Unix sockets: policy, bind/listen/accept/connect round trips, and connecting with
//! a client's credentials.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::MetadataExt;

use common::*;
use lisafs_gofer::host::{FileKind, HostOptions};
use lisafs_gofer::wire::{Errno, Gid, Uid};
use lisafs_server::{Backend, Create};
use rustix::fs::OFlags;

const SOCK_STREAM: u32 = 1;
const SOCK_DGRAM: u32 = 2;
const SOCK_SEQPACKET: u32 = 5;

fn uds_all() -> Fixture {
    Fixture::with(HostOptions {
        uds_connect: true,
        uds_create: true,
        ..HostOptions::default()
    })
}

#[test]
fn host_sockets_are_refused_by_default() {
    let fx = Fixture::new();
    assert_eq!(
        errno(fx.backend.bind(&fx.root, n("s"), SOCK_STREAM, attrs(0o755))),
        Errno::EPERM
    );
    assert!(!fx.path("s").exists());
    let listener = std::os::unix::net::UnixListener::bind(fx.path("host.sock")).unwrap();
    let node = fx.walk(&fx.root, "host.sock").unwrap();
    assert_eq!(node.file.kind(), FileKind::Socket);
    assert_eq!(
        errno(fx.backend.connect(&node.file, SOCK_STREAM, None)),
        Errno::EPERM
    );
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "nothing connected");
}

#[test]
fn open_and_create_policies_are_separate() {
    let connect_only = Fixture::with(HostOptions {
        uds_connect: true,
        ..HostOptions::default()
    });
    assert_eq!(
        errno(
            connect_only
                .backend
                .bind(&connect_only.root, n("s"), SOCK_STREAM, attrs(0o755))
        ),
        Errno::EPERM
    );
    let _listener = std::os::unix::net::UnixListener::bind(connect_only.path("l")).unwrap();
    let node = connect_only.walk(&connect_only.root, "l").unwrap();
    assert!(connect_only
        .backend
        .connect(&node.file, SOCK_STREAM, None)
        .is_ok());

    let create_only = Fixture::with(HostOptions {
        uds_create: true,
        ..HostOptions::default()
    });
    let (node, _socket, _donated) = create_only
        .backend
        .bind(&create_only.root, n("s"), SOCK_STREAM, attrs(0o755))
        .unwrap();
    assert_eq!(
        errno(create_only.backend.connect(&node.file, SOCK_STREAM, None)),
        Errno::EPERM
    );
}

#[test]
fn bind_listen_connect_accept_round_trip() {
    let fx = uds_all();
    let (node, socket, donated) = fx
        .backend
        .bind(&fx.root, n("s"), SOCK_STREAM, attrs(0o751))
        .unwrap();
    assert_eq!(node.file.kind(), FileKind::Socket);
    assert_eq!(node.stat.mode, 0o140_751);
    assert_eq!(lstat(&fx.path("s")).mode(), 0o140_751);
    // The control FD, the bound socket and the donated FD are three different FDs.
    assert_ne!(fd_path(&node.file), fd_path(&socket));
    assert_eq!(fd_path(&socket), fd_path(&donated));
    // Nothing pending: Accept says EAGAIN instead of waiting.
    fx.backend.listen(&socket, 8).unwrap();
    assert_eq!(errno(fx.backend.accept(&socket)), Errno::EAGAIN);
    let client = fx.backend.connect(&node.file, SOCK_STREAM, None).unwrap();
    assert!(!rustix::fs::fcntl_getfl(&client)
        .unwrap()
        .contains(OFlags::NONBLOCK));
    let (server, peer) = fx.backend.accept(&socket).unwrap();
    assert!(peer.is_empty());
    assert!(rustix::fs::fcntl_getfl(&server)
        .unwrap()
        .contains(OFlags::NONBLOCK));
    rustix::io::write(&client, b"hello").unwrap();
    let mut buf = [0u8; 5];
    rustix::io::read(&server, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    // A host client reaches the same socket by its path.
    let _host = std::os::unix::net::UnixStream::connect(fx.path("s")).unwrap();
    assert!(fx.backend.accept(&socket).is_ok());
}

#[test]
fn connect_checks_type_and_file_kind() {
    let fx = uds_all();
    let (node, socket, _) = fx
        .backend
        .bind(&fx.root, n("s"), SOCK_SEQPACKET, attrs(0o755))
        .unwrap();
    fx.backend.listen(&socket, 1).unwrap();
    assert_eq!(errno(fx.backend.connect(&node.file, 3, None)), Errno::ENXIO);
    assert_eq!(
        errno(fx.backend.connect(&node.file, SOCK_STREAM, None)),
        Errno::EPROTOTYPE
    );
    assert!(fx.backend.connect(&node.file, SOCK_SEQPACKET, None).is_ok());
    let f = fx.file(&fx.root, "f", b"");
    assert_eq!(
        errno(fx.backend.connect(&f.file, SOCK_STREAM, None)),
        Errno::ENOTSOCK
    );
    assert_eq!(
        errno(fx.backend.bind(&fx.root, n("t"), 99, attrs(0o755))),
        Errno::ENXIO
    );
    let dgram = fx
        .backend
        .bind(&fx.root, n("d"), SOCK_DGRAM, attrs(0o755))
        .unwrap();
    assert!(fx.backend.connect(&dgram.0.file, SOCK_DGRAM, None).is_ok());
}

#[test]
fn bind_over_an_existing_name_is_eexist_and_too_long_an_address_is_einval() {
    let fx = uds_all();
    fx.file(&fx.root, "taken", b"");
    assert_eq!(
        errno(
            fx.backend
                .bind(&fx.root, n("taken"), SOCK_STREAM, attrs(0o755))
        ),
        Errno::EEXIST
    );
    let long = "x".repeat(100);
    assert_eq!(
        errno(
            fx.backend
                .bind(&fx.root, n(&long), SOCK_STREAM, attrs(0o755))
        ),
        Errno::EINVAL
    );
    assert!(!fx.path(&long).exists());
}

#[test]
fn bind_applies_the_clients_owner() {
    let fx = uds_all();
    let owned = Create {
        mode: 0o700,
        uid: Uid(4242),
        gid: Gid(4343),
    };
    let (node, _, _) = fx
        .backend
        .bind(&fx.root, n("s"), SOCK_STREAM, owned)
        .unwrap();
    assert_eq!((node.stat.uid, node.stat.gid), (4242, 4343));
}

#[test]
fn connect_with_creds_uses_the_clients_identity_and_restores_ours() {
    let fx = uds_all();
    let open = Create {
        mode: 0o777,
        ..attrs(0)
    };
    let (node, socket, _) = fx
        .backend
        .bind(&fx.root, n("open"), SOCK_STREAM, open)
        .unwrap();
    fx.backend.listen(&socket, 4).unwrap();
    let client = fx
        .backend
        .connect(&node.file, SOCK_STREAM, Some((Uid(1000), Gid(1001))))
        .unwrap();
    let (server, _) = fx.backend.accept(&socket).unwrap();
    let peer = rustix::net::sockopt::socket_peercred(&server).unwrap();
    assert_eq!((peer.uid.as_raw(), peer.gid.as_raw()), (1000, 1001));
    assert_eq!(
        rustix::process::geteuid().as_raw(),
        0,
        "the thread is root again"
    );
    assert_eq!(rustix::process::getegid().as_raw(), 0);
    drop(client);

    // A socket only root may use refuses the client's identity, and not ours.
    let private = Create {
        mode: 0o700,
        ..attrs(0)
    };
    let (node, socket, _) = fx
        .backend
        .bind(&fx.root, n("private"), SOCK_STREAM, private)
        .unwrap();
    fx.backend.listen(&socket, 4).unwrap();
    let denied = fx
        .backend
        .connect(&node.file, SOCK_STREAM, Some((Uid(1000), Gid(1000))));
    assert_eq!(errno(denied), Errno::EACCES);
    assert!(fx.backend.connect(&node.file, SOCK_STREAM, None).is_ok());
    assert_eq!(rustix::process::geteuid().as_raw(), 0);
}

#[test]
fn a_socket_swapped_for_a_symlink_after_walking_is_not_followed() {
    let fx = uds_all();
    let outside = tempfile::tempdir().unwrap();
    let outside_listener =
        std::os::unix::net::UnixListener::bind(outside.path().join("host.sock")).unwrap();
    outside_listener.set_nonblocking(true).unwrap();
    let inside_listener = std::os::unix::net::UnixListener::bind(fx.path("s")).unwrap();
    inside_listener.set_nonblocking(true).unwrap();
    let node = fx.walk(&fx.root, "s").unwrap();
    // A host process replaces the name with a symlink to an outside socket.
    std::fs::rename(fx.path("s"), fx.path("old")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("host.sock"), fx.path("s")).unwrap();
    fx.backend.connect(&node.file, SOCK_STREAM, None).unwrap();
    assert!(
        outside_listener.accept().is_err(),
        "the outside socket was reached"
    );
    assert!(
        inside_listener.accept().is_ok(),
        "the pinned socket is the one connected"
    );
}
