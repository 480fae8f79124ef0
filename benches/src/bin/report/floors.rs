//! The physical floors: 64-byte ping-pong between this process and a child (this binary,
//! started with the hidden `--peer KIND`), over a socketpair and over a shared-memory
//! channel with and without spinning. The child inherits its end of a socketpair as
//! standard input: for the socket floor that is the ping-pong socket itself; for the
//! channel floors it is a control socket on which the child, as the server, hands over the
//! window and FD socket of a new channel (as the Channel RPC does).

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lisafs_benches::measure::{run, Budget, Summary};
use lisafs_benches::pingpong::{
    channel_ping, offer_channel, serve_echo, serve_socket_echo, socket_ping, take_channel,
    BoxError, PING_SIZE,
};
use lisafs_client::SpinPolicy;
use lisafs_protocol::transport::socket::FramedSocket;

/// One floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Floor {
    Socket,
    Futex,
    Spin,
}

impl Floor {
    pub(crate) const ALL: [Floor; 3] = [Floor::Socket, Floor::Futex, Floor::Spin];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Floor::Socket => "socketpair (`SOCK_STREAM`, write + read)",
            Floor::Futex => "shared memory, futex only (`max_spin: 0`)",
            Floor::Spin => "shared memory, spin then futex (default `SpinPolicy`)",
        }
    }

    fn arg(self) -> &'static str {
        match self {
            Floor::Socket => "socket",
            Floor::Futex => "futex",
            Floor::Spin => "spin",
        }
    }

    fn parse(arg: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|floor| floor.arg() == arg)
    }

    fn spin(self) -> SpinPolicy {
        match self {
            Floor::Futex => SpinPolicy {
                max_spin: Duration::ZERO,
            },
            _ => SpinPolicy::default(),
        }
    }
}

/// Measures one floor against a fresh child process.
pub(crate) fn measure(floor: Floor, budget: &Budget) -> Result<Summary, BoxError> {
    let (mine, theirs) = UnixStream::pair()?;
    let mut child = spawn_peer(floor, theirs)?;
    let ping = [0x42u8; PING_SIZE];
    let summary = match floor {
        Floor::Socket => {
            let mut stream = mine;
            let summary = run(budget, || {
                socket_ping(&mut stream, &ping).expect("socket ping")
            });
            // EOF ends the child's echo loop.
            drop(stream);
            summary
        }
        Floor::Futex | Floor::Spin => {
            let mut control = FramedSocket::new(OwnedFd::from(mine));
            let mut channel = take_channel(&mut control, floor.spin())?;
            channel.connect()?;
            let summary = run(budget, || {
                channel_ping(&mut channel, &ping).expect("channel ping");
            });
            // The shut-down state word ends the child's echo loop.
            channel.shutdown_handle().shutdown();
            summary
        }
    };
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("the {} peer failed: {status}", floor.arg()).into());
    }
    Ok(summary)
}

fn spawn_peer(floor: Floor, end: UnixStream) -> Result<Child, BoxError> {
    let exe = std::env::current_exe()?;
    let child = Command::new(exe)
        .args(["--peer", floor.arg()])
        .stdin(Stdio::from(OwnedFd::from(end)))
        .spawn()?;
    Ok(child)
}

/// The child's side (`--peer KIND`): echo until the parent is done.
pub(crate) fn peer_main(kind: &str) -> Result<(), BoxError> {
    let floor = Floor::parse(kind).ok_or_else(|| format!("unknown peer kind {kind:?}"))?;
    let end = std::io::stdin().as_fd().try_clone_to_owned()?;
    match floor {
        Floor::Socket => {
            serve_socket_echo(UnixStream::from(end))?;
        }
        Floor::Futex | Floor::Spin => {
            let control = FramedSocket::new(end);
            let channel = offer_channel(&control, floor.spin())?;
            serve_echo(channel)?;
        }
    }
    Ok(())
}
