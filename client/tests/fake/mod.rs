//! A scripted fake server: a thread on the other end of `FramedSocket::pair()` that
//! answers Mount itself, passes every other request to the test's handler, and logs
//! every request it decoded so that tests can assert exactly what the client sent.
// Each test binary uses a different part of the harness; `pub` items are for them; the
// fake's sizes and offsets are small.
#![allow(dead_code, unreachable_pub, clippy::cast_possible_truncation)]

pub mod tree;

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use lisafs_client::wire::{
    encode, AnyRequest, AnyResponse, Errno, ErrorResp, FdId, Inode, Mid, MountResp, Statx,
    MAX_MESSAGE_SIZE,
};
use lisafs_client::{Client, ClientOptions};
use lisafs_protocol::transport::socket::{FramedSocket, SocketError};
use parking_lot::Mutex;

pub const DIR: u16 = 0o040_755;
pub const REG: u16 = 0o100_644;
pub const LNK: u16 = 0o120_777;
pub const ROOT: FdId = FdId(1);

/// What the fake answers to one request.
pub enum Reply {
    /// A well-formed response, sent under its own MID.
    Resp(AnyResponse),
    /// A well-formed response with donated FDs.
    WithFds(AnyResponse, Vec<OwnedFd>),
    /// Arbitrary bytes under an arbitrary MID.
    Raw(u16, Vec<u8>),
    /// Close the connection instead of answering.
    HangUp,
}

impl Reply {
    /// An `ErrorResp` with `errno`.
    pub fn err(errno: Errno) -> Self {
        Self::Resp(AnyResponse::Error(ErrorResp { errno }))
    }

    /// An empty payload under the request's MID: the success response of every
    /// message whose response is empty (Close, FSync, UnlinkAt, ...).
    pub fn empty(req: &AnyRequest) -> Self {
        Self::Raw(req.mid().as_u16(), Vec::new())
    }
}

/// How the fake answers Mount.
pub struct Mount {
    pub max_message_size: u32,
    pub supported: Vec<u16>,
    pub fd: Option<OwnedFd>,
}

impl Default for Mount {
    fn default() -> Self {
        Self {
            max_message_size: MAX_MESSAGE_SIZE,
            supported: fsgofer_mids(),
            fd: None,
        }
    }
}

/// gVisor fsgofer's (and our server's) list: every MID 1–33 but Flush.
pub fn fsgofer_mids() -> Vec<u16> {
    (1..=33).filter(|&m| m != Mid::Flush.as_u16()).collect()
}

pub fn stat(mode: u16) -> Statx {
    Statx {
        mask: 0x7ff,
        mode,
        nlink: 1,
        ..Statx::default()
    }
}

pub fn inode(id: u64, mode: u16) -> Inode {
    Inode {
        control_fd: FdId(id),
        stat: stat(mode),
    }
}

pub struct Fake {
    log: Arc<Mutex<Vec<AnyRequest>>>,
    thread: JoinHandle<()>,
}

impl Fake {
    /// Mounts a client against a fake that answers Mount as `mount` says and everything
    /// else with `handler`.
    pub fn start(
        mount: Mount,
        handler: impl FnMut(&AnyRequest) -> Reply + Send + 'static,
    ) -> (Client, Fake) {
        let (client_end, server_end) = FramedSocket::pair().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let thread = std::thread::spawn({
            let log = Arc::clone(&log);
            move || serve(server_end, mount, handler, &log)
        });
        // The fake answers on the socket only; channels are tested against the gofer.
        let socket_only = ClientOptions {
            channels: 0,
            ..ClientOptions::default()
        };
        let client = Client::from_fd_with(client_end.into_inner(), socket_only).unwrap();
        (client, Fake { log, thread })
    }

    /// Every request decoded so far, Mount included.
    pub fn log(&self) -> Vec<AnyRequest> {
        self.log.lock().clone()
    }

    /// The requests after Mount.
    pub fn sent(&self) -> Vec<AnyRequest> {
        self.log().into_iter().skip(1).collect()
    }

    /// Waits for the connection to end (drop every client handle first) and returns the
    /// full log. Re-raises a panic of the server thread (a failed assertion in a handler).
    pub fn finish(self) -> Vec<AnyRequest> {
        self.thread.join().unwrap();
        Arc::try_unwrap(self.log).unwrap().into_inner()
    }
}

/// Serves every connection made to a Unix socket at `path`, one after the other, all
/// with the same handler (so state such as a [`tree::Tree`] persists across them). For
/// tests of the `lisafs` binary, which connects by path.
pub fn listen(path: &Path, mut handler: impl FnMut(&AnyRequest) -> Reply + Send + 'static) {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let log = Mutex::new(Vec::new());
        for stream in listener.incoming() {
            let sock = FramedSocket::new(OwnedFd::from(stream.unwrap()));
            serve(sock, Mount::default(), &mut handler, &log);
        }
    });
}

fn serve(
    mut sock: FramedSocket,
    mut mount: Mount,
    mut handler: impl FnMut(&AnyRequest) -> Reply,
    log: &Mutex<Vec<AnyRequest>>,
) {
    loop {
        let req = match sock.recv(MAX_MESSAGE_SIZE, 0) {
            Ok(frame) => {
                let mid = Mid::try_from(frame.mid).unwrap();
                AnyRequest::decode(mid, frame.payload).unwrap()
            }
            Err(SocketError::Closed) => return,
            Err(err) => panic!("fake server receive failed: {err}"),
        };
        log.lock().push(req.clone());
        let reply = match req {
            AnyRequest::Mount(_) => {
                let resp = AnyResponse::Mount(MountResp {
                    root: inode(ROOT.0, DIR),
                    max_message_size: mount.max_message_size,
                    supported: mount.supported.clone(),
                });
                Reply::WithFds(resp, mount.fd.take().into_iter().collect())
            }
            ref other => handler(other),
        };
        let (mid, payload, fds) = match reply {
            Reply::Resp(resp) => (resp.mid().as_u16(), encode_any(&resp), Vec::new()),
            Reply::WithFds(resp, fds) => (resp.mid().as_u16(), encode_any(&resp), fds),
            Reply::Raw(mid, payload) => (mid, payload, Vec::new()),
            Reply::HangUp => return,
        };
        let borrowed: Vec<_> = fds.iter().map(AsFd::as_fd).collect();
        if sock.send(mid, &payload, &borrowed).is_err() {
            return;
        }
    }
}

fn encode_any(resp: &AnyResponse) -> Vec<u8> {
    let mut buf = Vec::new();
    resp.encode_into(&mut buf).unwrap();
    buf
}

/// Encodes any wire value (for hand-made raw replies).
pub fn bytes<T: lisafs_client::wire::Wire>(value: &T) -> Vec<u8> {
    encode(value).unwrap()
}

/// The Close requests in `log`, as lists of raw IDs.
pub fn closes(log: &[AnyRequest]) -> Vec<Vec<u64>> {
    log.iter()
        .filter_map(|req| match req {
            AnyRequest::Close(close) => Some(close.fds.iter().map(|fd| fd.0).collect()),
            _ => None,
        })
        .collect()
}

/// The MIDs of the requests in `log`.
pub fn mids(log: &[AnyRequest]) -> Vec<Mid> {
    log.iter().map(AnyRequest::mid).collect()
}
