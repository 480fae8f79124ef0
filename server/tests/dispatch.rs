//! The server's protocol rules, checked over a real socketpair against a stub backend: a
//! fixed tree `/ {file, dir/, link -> file, boom}` where walking "boom" panics. Host
//! behaviour is the gofer's business and is tested there and end to end.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::os::fd::OwnedFd;
use std::thread::JoinHandle;

use lisafs_protocol::transport::socket::{FramedSocket, SocketError};
use lisafs_protocol::wire::*;
use lisafs_server::{
    BResult, Backend, Mounted, Name, Node, OpenFlags, Opened, Server, ServerOptions,
};

const ROOT: u64 = 1;
const FILE: u64 = 2;
const DIR: u64 = 3;
const LINK: u64 = 4;

fn stat_of(ino: u64) -> Statx {
    let mode = match ino {
        ROOT | DIR => 0o040755,
        LINK => 0o120777,
        _ => 0o100644,
    };
    Statx {
        ino,
        mode,
        ..Default::default()
    }
}

fn node(ino: u64) -> Node<u64> {
    Node {
        file: ino,
        stat: stat_of(ino),
    }
}

struct Stub;

impl Backend for Stub {
    type File = u64;
    type Open = u64;
    type Socket = ();

    fn mount(&self) -> BResult<Mounted<u64>> {
        Ok(Mounted {
            root: node(ROOT),
            donated: None,
        })
    }

    fn stat(&self, file: &u64) -> BResult<Statx> {
        Ok(stat_of(*file))
    }

    fn walk(&self, dir: &u64, name: Name<'_>) -> BResult<Node<u64>> {
        match (*dir, name.as_bytes()) {
            (ROOT, b"file") => Ok(node(FILE)),
            (ROOT, b"dir") => Ok(node(DIR)),
            (ROOT, b"link") => Ok(node(LINK)),
            (ROOT, b"boom") => panic!("stub backend panics on purpose"),
            (ROOT, b"denied") => Err(Errno::EACCES),
            (DIR, b"file") => Ok(node(FILE)),
            _ => Err(Errno::ENOENT),
        }
    }

    fn open(&self, file: &u64, _flags: OpenFlags) -> BResult<Opened<u64>> {
        Ok(Opened {
            open: *file,
            donated: None,
        })
    }

    fn read(&self, _open: &u64, offset: u64, buf: &mut [u8]) -> BResult<usize> {
        let content = b"stub file content";
        let start = usize::try_from(offset).unwrap().min(content.len());
        let n = buf.len().min(content.len() - start);
        buf[..n].copy_from_slice(&content[start..start + n]);
        Ok(n)
    }
}

struct Peer {
    sock: FramedSocket,
    server: Option<JoinHandle<()>>,
}

impl Peer {
    fn start(options: ServerOptions) -> Self {
        let (client, server_end) = FramedSocket::pair().unwrap();
        let server = Server::new(Stub, options);
        let server = Some(server.spawn(server_end).unwrap());
        Self {
            sock: client,
            server,
        }
    }

    fn mounted() -> (Self, FdId) {
        let mut peer = Self::start(ServerOptions::default());
        let root = match peer.call(&MountReq {}) {
            Ok(resp) => resp.root.control_fd,
            Err(errno) => panic!("mount failed: {errno:?}"),
        };
        (peer, root)
    }

    fn raw(&mut self, mid: u16, payload: &[u8]) -> (u16, Vec<u8>, Vec<OwnedFd>) {
        self.sock.send(mid, payload, &[]).unwrap();
        let frame = self.sock.recv(MAX_MESSAGE_SIZE, 2).unwrap();
        (frame.mid, frame.payload.to_vec(), frame.fds)
    }

    fn call<R: Request>(&mut self, req: &R) -> Result<R::Response, Errno> {
        let payload = encode(req).unwrap();
        let (mid, resp, _fds) = self.raw(R::MID.as_u16(), &payload);
        if mid == Mid::Error.as_u16() {
            return Err(decode::<ErrorResp>(&resp).unwrap().errno);
        }
        assert_eq!(mid, R::MID.as_u16());
        Ok(decode(&resp).unwrap())
    }

    fn errno_of(&mut self, mid: u16, payload: &[u8]) -> Errno {
        let (resp_mid, resp, _) = self.raw(mid, payload);
        assert_eq!(resp_mid, 0, "expected an error response");
        decode::<ErrorResp>(&resp).unwrap().errno
    }

    fn walk(&mut self, dir: FdId, path: &[&str]) -> Result<WalkResp, Errno> {
        self.call(&WalkReq {
            dir_fd: dir,
            path: path.iter().map(|&p| SizedString::from(p)).collect(),
        })
    }

    fn walk_one(&mut self, dir: FdId, name: &str) -> FdId {
        let resp = self.walk(dir, &[name]).unwrap();
        assert_eq!(resp.status, WalkStatus::Success);
        resp.inodes[0].control_fd
    }

    fn open(&mut self, fd: FdId) -> FdId {
        self.call(&OpenAtReq {
            fd,
            flags: 0,
            _pad: 0,
        })
        .unwrap()
        .open_fd
    }

    /// Proves the connection still serves requests.
    fn assert_alive(&mut self, root: FdId) {
        assert_eq!(self.call(&FStatReq { fd: root }).unwrap().stat.ino, ROOT);
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Closing our end ends the server's loop; join it so a server panic fails the test.
        let (dead, _) = FramedSocket::pair().unwrap();
        drop(std::mem::replace(&mut self.sock, dead));
        if let Some(server) = self.server.take() {
            server.join().unwrap();
        }
    }
}

#[test]
fn mount_returns_root_limit_and_a_non_empty_supported_list() {
    let mut peer = Peer::start(ServerOptions::default());
    let resp = peer.call(&MountReq {}).unwrap();
    assert_eq!(resp.root.control_fd, FdId(1));
    assert_eq!(resp.root.stat.ino, ROOT);
    assert_eq!(resp.max_message_size, MAX_MESSAGE_SIZE);
    assert!(resp.supports(Mid::Mount) && resp.supports(Mid::RenameAt2));
    assert!(!resp.supports(Mid::Flush) && !resp.supports(Mid::Error));
    // A second Mount is answered too, with a new root FD.
    assert_eq!(peer.call(&MountReq {}).unwrap().root.control_fd, FdId(2));
}

#[test]
fn requests_before_mount_are_einval() {
    let mut peer = Peer::start(ServerOptions::default());
    let fstat = encode(&FStatReq { fd: FdId(1) }).unwrap();
    assert_eq!(peer.errno_of(Mid::FStat.as_u16(), &fstat), Errno::EINVAL);
    let close = encode(&CloseReq { fds: vec![FdId(1)] }).unwrap();
    assert_eq!(peer.errno_of(Mid::Close.as_u16(), &close), Errno::EINVAL);
    // PWrite takes its own path (its data is not copied out of the request).
    let write = encode(&PWriteReq {
        offset: 0,
        fd: FdId(1),
        data: b"x".to_vec(),
    })
    .unwrap();
    assert_eq!(peer.errno_of(Mid::PWrite.as_u16(), &write), Errno::EINVAL);
}

#[test]
fn unknown_unsupported_and_error_mids_are_eopnotsupp() {
    let (mut peer, root) = Peer::mounted();
    for mid in [0u16, 34, 255, 256, 4000, u16::MAX] {
        assert_eq!(
            peer.errno_of(mid, &[1, 2, 3]),
            Errno::EOPNOTSUPP,
            "MID {mid}"
        );
    }
    // Flush is a known MID but not advertised: refused like any other, whatever its FD
    // (issue 12: it used to be served, so a bad FD gave EBADF).
    for fd in [root, FdId(999)] {
        let flush = encode(&FlushReq { fd }).unwrap();
        assert_eq!(
            peer.errno_of(Mid::Flush.as_u16(), &flush),
            Errno::EOPNOTSUPP
        );
    }
    peer.assert_alive(root);
}

#[test]
fn every_truncation_of_a_request_is_eio_and_harmless() {
    let (mut peer, root) = Peer::mounted();
    let walk = encode(&WalkReq {
        dir_fd: root,
        path: vec!["dir".into(), "x".into()],
    })
    .unwrap();
    // PWrite is decoded on a path of its own (its data is not copied out).
    let write = encode(&PWriteReq {
        offset: 0,
        fd: root,
        data: b"data".to_vec(),
    })
    .unwrap();
    for (mid, request) in [(Mid::Walk, walk), (Mid::PWrite, write)] {
        for len in 0..request.len() {
            assert_eq!(
                peer.errno_of(mid.as_u16(), &request[..len]),
                Errno::EIO,
                "{mid:?} cut to {len}"
            );
        }
    }
    // Nothing was created by the failed walks: the next FDID is 2.
    assert_eq!(peer.walk_one(root, "file"), FdId(2));
}

#[test]
fn an_oversized_request_is_eio_and_the_connection_lives_on() {
    let (mut peer, root) = Peer::mounted();
    let big = vec![0u8; MAX_MESSAGE_SIZE as usize + 1];
    let writer = {
        let sock = FramedSocket::new(peer.sock.as_fd_dup());
        std::thread::spawn(move || sock.send(Mid::PWrite.as_u16(), &big, &[]).unwrap())
    };
    let frame = peer.sock.recv(MAX_MESSAGE_SIZE, 0).unwrap();
    assert_eq!(frame.mid, 0);
    assert_eq!(
        decode::<ErrorResp>(frame.payload).unwrap().errno,
        Errno::EIO
    );
    writer.join().unwrap();
    peer.assert_alive(root);
}

#[test]
fn a_4_gib_payload_length_closes_the_connection_without_reading_it() {
    let (mut peer, _root) = Peer::mounted();
    // Header only: the server must give up on the length alone.
    let header = encode(&SocketHeader {
        payload_len: u32::MAX,
        mid: Mid::PWrite.as_u16(),
        _pad: 0,
    })
    .unwrap();
    rustix::net::send(&peer.sock, &header, rustix::net::SendFlags::NOSIGNAL).unwrap();
    assert!(matches!(
        peer.sock.recv(MAX_MESSAGE_SIZE, 0),
        Err(SocketError::Closed)
    ));
}

#[test]
fn a_handler_panic_is_eremoteio_and_the_connection_lives_on() {
    let (mut peer, root) = Peer::mounted();
    assert_eq!(peer.walk(root, &["boom"]), Err(Errno::EREMOTEIO));
    peer.assert_alive(root);
}

#[test]
fn fd_ids_unknown_wrong_kind_and_never_reused() {
    let (mut peer, root) = Peer::mounted();
    assert_eq!(peer.call(&FStatReq { fd: FdId(99) }), Err(Errno::EBADF));
    assert_eq!(peer.call(&FStatReq { fd: FdId(0) }), Err(Errno::EBADF));
    let file = peer.walk_one(root, "file");
    let open = peer.open(file);
    // An open FD where a control FD is needed, and the reverse.
    let walk_from_open = peer.walk(open, &["x"]);
    assert_eq!(walk_from_open, Err(Errno::EINVAL));
    let read_control = peer.call(&PReadReq {
        offset: 0,
        fd: file,
        count: 4,
        _pad: 0,
    });
    assert_eq!(read_control, Err(Errno::EINVAL));
    // Closing frees IDs but never recycles them; unknown IDs in Close are ignored.
    peer.call(&CloseReq {
        fds: vec![file, open, FdId(12345)],
    })
    .unwrap();
    assert_eq!(peer.call(&FStatReq { fd: file }), Err(Errno::EBADF));
    assert_eq!(peer.walk_one(root, "file"), FdId(open.0 + 1));
}

#[test]
fn bad_names_are_einval_for_the_whole_walk() {
    let (mut peer, root) = Peer::mounted();
    for bad in ["", ".", "..", "a/b", "/", "nul\0byte"] {
        assert_eq!(
            peer.walk(root, &["dir", bad]),
            Err(Errno::EINVAL),
            "{bad:?}"
        );
    }
    assert_eq!(
        peer.walk_one(root, "dir"),
        FdId(2),
        "failed walks created FDs"
    );
}

#[test]
fn walk_statuses_follow_lisafs() {
    let (mut peer, root) = Peer::mounted();
    let empty = peer.walk(root, &[]).unwrap();
    assert_eq!((empty.status, empty.inodes.len()), (WalkStatus::Success, 0));

    let missing = peer.walk(root, &["dir", "nothing", "more"]).unwrap();
    assert_eq!(missing.status, WalkStatus::ComponentDoesNotExist);
    assert_eq!(missing.inodes.len(), 1);

    let through_link = peer.walk(root, &["link", "x"]).unwrap();
    assert_eq!(through_link.status, WalkStatus::ComponentSymlink);
    assert_eq!(through_link.inodes.last().unwrap().stat.ino, LINK);

    let link_last = peer.walk(root, &["link"]).unwrap();
    assert_eq!(link_last.status, WalkStatus::Success);

    // Through a regular file: an error, and the FDs this walk made are gone.
    let before = peer.walk_one(root, "dir");
    assert_eq!(peer.walk(root, &["file", "x"]), Err(Errno::ENOTDIR));
    let made_by_failed_walk = FdId(before.0 + 1);
    assert_eq!(
        peer.call(&FStatReq {
            fd: made_by_failed_walk
        }),
        Err(Errno::EBADF)
    );
    assert_eq!(peer.walk(root, &["denied"]), Err(Errno::EACCES));
    // The walk from a non-directory control FD.
    let file = peer.walk_one(root, "file");
    assert_eq!(peer.walk(file, &["x"]), Err(Errno::ENOTDIR));
}

#[test]
fn walk_stat_with_leading_empty_component_stats_the_start() {
    let (mut peer, root) = Peer::mounted();
    let resp = peer
        .call(&WalkStatReq {
            dir_fd: root,
            path: vec!["".into(), "dir".into(), "missing".into()],
        })
        .unwrap();
    let inos: Vec<u64> = resp.stats.iter().map(|s| s.ino).collect();
    assert_eq!(inos, [ROOT, DIR]);
    let file = peer.walk_one(root, "file");
    let self_only = peer
        .call(&WalkStatReq {
            dir_fd: file,
            path: vec!["".into()],
        })
        .unwrap();
    assert_eq!(self_only.stats[0].ino, FILE);
}

#[test]
fn pread_count_beyond_the_limit_is_enobufs_even_where_32_bits_would_wrap() {
    let (mut peer, root) = Peer::mounted();
    let file = peer.walk_one(root, "file");
    let open = peer.open(file);
    for count in [MAX_MESSAGE_SIZE - 7, u32::MAX - 7, u32::MAX] {
        let req = PReadReq {
            offset: 0,
            fd: open,
            count,
            _pad: 0,
        };
        assert_eq!(peer.call(&req), Err(Errno::ENOBUFS), "count {count}");
    }
    let ok = peer.call(&PReadReq {
        offset: 5,
        fd: open,
        count: 4,
        _pad: 0,
    });
    assert_eq!(ok.unwrap().data, b"file");
}

#[test]
fn writes_on_a_read_only_fd_are_ebadf() {
    let (mut peer, root) = Peer::mounted();
    let file = peer.walk_one(root, "file");
    let open = peer.open(file);
    let write = PWriteReq {
        offset: 0,
        fd: open,
        data: b"x".to_vec(),
    };
    assert_eq!(peer.call(&write), Err(Errno::EBADF));
}

#[test]
fn open_rules_for_directories_symlinks_and_access_mode_3() {
    let (mut peer, root) = Peer::mounted();
    let dir = peer.walk_one(root, "dir");
    let link = peer.walk_one(root, "link");
    let open = |fd, flags| OpenAtReq { fd, flags, _pad: 0 };
    assert_eq!(peer.call(&open(dir, 2)), Err(Errno::EISDIR));
    assert_eq!(peer.call(&open(dir, 0o1000)), Err(Errno::EISDIR));
    assert_eq!(peer.call(&open(link, 0)), Err(Errno::EINVAL));
    assert_eq!(peer.call(&open(dir, 3)), Err(Errno::EINVAL));
    assert!(peer.call(&open(dir, 0)).is_ok());
}

#[test]
fn read_only_connections_refuse_mutations_with_erofs() {
    let mut peer = Peer::start(ServerOptions {
        readonly: true,
        ..Default::default()
    });
    let root = peer.call(&MountReq {}).unwrap().root.control_fd;
    let mkdir = MkdirAtReq {
        common: CreateCommon {
            dir_fd: root,
            mode: 0o755,
            ..Default::default()
        },
        name: "d".into(),
    };
    assert_eq!(peer.call(&mkdir), Err(Errno::EROFS));
    let unlink = UnlinkAtReq {
        dir_fd: root,
        flags: 0,
        name: "file".into(),
    };
    assert_eq!(peer.call(&unlink), Err(Errno::EROFS));
    let file = peer.walk_one(root, "file");
    let open_rw = OpenAtReq {
        fd: file,
        flags: 2,
        _pad: 0,
    };
    assert_eq!(peer.call(&open_rw), Err(Errno::EROFS));
    let open = peer.open(file);
    assert!(open.0 > 0, "read-only opens still work");
    let write = PWriteReq {
        offset: 0,
        fd: open,
        data: b"x".to_vec(),
    };
    assert_eq!(
        peer.call(&write),
        Err(Errno::EROFS),
        "before the FD's access mode"
    );
}

#[test]
fn the_fd_limit_is_emfile_for_the_greedy_connection_only() {
    let mut peer = Peer::start(ServerOptions {
        max_fds: 3,
        ..Default::default()
    });
    let root = peer.call(&MountReq {}).unwrap().root.control_fd;
    peer.walk_one(root, "file");
    peer.walk_one(root, "dir");
    assert_eq!(peer.walk(root, &["file"]), Err(Errno::EMFILE));
    // A walk that runs out of room midway leaves nothing behind: after freeing one
    // slot, a two-component walk fails, and a one-component walk still fits.
    peer.call(&CloseReq { fds: vec![FdId(3)] }).unwrap();
    assert_eq!(peer.walk(root, &["dir", "file"]), Err(Errno::EMFILE));
    assert_eq!(peer.walk(root, &["dir"]).unwrap().inodes.len(), 1);

    let (mut other, other_root) = Peer::mounted();
    other.walk_one(other_root, "file");
}

#[test]
fn setstat_with_unsupported_mask_bits_is_eperm() {
    let (mut peer, root) = Peer::mounted();
    let req = SetStatReq {
        fd: root,
        mask: 0x1,
        ..Default::default()
    };
    assert_eq!(peer.call(&req), Err(Errno::EPERM));
}

#[test]
fn unimplemented_backend_methods_are_enosys() {
    let (mut peer, root) = Peer::mounted();
    let statfs = peer.call(&FStatFSReq { fd: root });
    assert_eq!(statfs, Err(Errno::ENOSYS));
}

#[test]
fn getdents_on_a_control_fd_is_einval_and_on_a_file_enotdir() {
    let (mut peer, root) = Peer::mounted();
    let file = peer.walk_one(root, "file");
    let open_file = peer.open(file);
    let req = |dir_fd| Getdents64Req {
        dir_fd,
        count: -65536,
        _pad: 0,
    };
    assert_eq!(peer.call(&req(root)), Err(Errno::EINVAL));
    assert_eq!(peer.call(&req(open_file)), Err(Errno::ENOTDIR));
}

/// Lets a test write on the peer's socket from another thread.
trait DupFd {
    fn as_fd_dup(&self) -> OwnedFd;
}

impl DupFd for FramedSocket {
    fn as_fd_dup(&self) -> OwnedFd {
        use std::os::fd::AsFd;
        self.as_fd().try_clone_to_owned().unwrap()
    }
}

#[test]
fn connections_are_independent() {
    let (mut a, a_root) = Peer::mounted();
    let (mut b, b_root) = Peer::mounted();
    let a_file = a.walk_one(a_root, "file");
    // The same FDID number means nothing on another connection.
    assert_eq!(b.call(&CloseReq { fds: vec![a_file] }), Ok(CloseResp {}));
    assert_eq!(a.call(&FStatReq { fd: a_file }).unwrap().stat.ino, FILE);
    b.assert_alive(b_root);
}

#[test]
fn channels_are_created_up_to_the_limit_then_enomem() {
    let mut peer = Peer::start(ServerOptions {
        max_channels: 2,
        ..Default::default()
    });
    let mount = peer.call(&MountReq {}).unwrap();
    assert!(mount.supports(Mid::Channel));
    for _ in 0..2 {
        let (mid, payload, fds) = peer.raw(Mid::Channel.as_u16(), &[]);
        assert_eq!(mid, Mid::Channel.as_u16());
        let resp = decode::<ChannelResp>(&payload).unwrap();
        assert_eq!(resp.data_length, 2 * 1024 * 1024);
        assert_eq!(fds.len(), 2, "memfd and FD socket");
    }
    assert_eq!(peer.errno_of(Mid::Channel.as_u16(), &[]), Errno::ENOMEM);
    peer.assert_alive(mount.root.control_fd);
}
