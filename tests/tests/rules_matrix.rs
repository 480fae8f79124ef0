//! Each rule action against each operation class: one rule on `target/**` naming one
//! class, then one request of every class on files beneath it, through the gofer's rules
//! hook around the host backend, served in this process over a real socket. The files are
//! reached before the rule is set (`Rules::replace`, as a SIGHUP reload does), so each
//! request meets the rule on its own, not at the walk that led to it.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::os::unix::net::UnixListener;

use lisafs_client::{Client, ControlFd, Owner, SetStat, WalkStatus, O_RDONLY, O_WRONLY};
use lisafs_gofer::host::{HostBackend, HostOptions};
use lisafs_gofer::rules::{Action, Rule, Rules};
use lisafs_protocol::transport::socket::FramedSocket;
use lisafs_protocol::wire::Errno;
use lisafs_server::hooks::{Hooked, OpClass};
use lisafs_server::{Server, ServerOptions};
use rustix::fs::{Mode, OFlags};

/// `SOCK_STREAM`, as Connect takes it.
const SOCK_STREAM: u32 = 1;

const ACTIONS: [Action; 4] = [Action::Allow, Action::Deny, Action::ReadOnly, Action::Hide];

/// The classes a request here can be of, each with one request of it.
const CLASSES: [OpClass; 8] = [
    OpClass::Stat,
    OpClass::Read,
    OpClass::Write,
    OpClass::Create,
    OpClass::Remove,
    OpClass::Rename,
    OpClass::SetAttr,
    OpClass::Connect,
];

/// What the rules should answer to a request of class `request` on a file under a rule
/// with `action` on `class`.
fn expected(action: Action, class: OpClass, request: OpClass) -> Result<(), Errno> {
    // `readonly` lets only these through (connecting to a host socket talks to
    // whatever serves it, so it counts as a change).
    let mutation = !matches!(request, OpClass::Stat | OpClass::Read);
    if request == class {
        return match action {
            Action::Allow => Ok(()),
            Action::Deny => Err(Errno::EACCES),
            Action::ReadOnly if mutation => Err(Errno::EACCES),
            Action::ReadOnly => Ok(()),
            Action::Hide => Err(Errno::ENOENT),
        };
    }
    // A file any rule restricts, for any class, is never renamed: the rename would carry
    // it out of the rule's reach.
    match (request, action) {
        (OpClass::Rename, Action::Allow) => Ok(()),
        (OpClass::Rename, _) => Err(Errno::EACCES),
        _ => Ok(()),
    }
}

/// The handles the requests need, taken before the rule exists.
struct Handles {
    target: ControlFd,
    file: ControlFd,
    socket: ControlFd,
}

fn walk(client: &Client, path: &[&str]) -> ControlFd {
    let (status, mut inodes) = client.root().walk(path).unwrap();
    assert_eq!(status, WalkStatus::Success, "{path:?}");
    inodes.pop().unwrap().fd
}

/// One request of `class`; `Err(errno)` if it failed.
fn request(handles: &Handles, class: OpClass) -> Result<(), Errno> {
    let result = match class {
        OpClass::Stat => handles.file.fstat().map(drop),
        OpClass::Read => handles.file.open_at(O_RDONLY).map(drop),
        OpClass::Write => handles.file.open_at(O_WRONLY).map(drop),
        OpClass::Create => handles
            .target
            .mkdir_at("new", 0o755, Owner::UNSET)
            .map(drop),
        OpClass::Remove => handles.target.unlink_at("removable", 0),
        OpClass::Rename => handles
            .target
            .rename_at("movable", &handles.target, "moved", 0),
        OpClass::SetAttr => {
            let chmod = SetStat {
                mode: Some(0o600),
                ..SetStat::default()
            };
            handles.file.set_stat(&chmod).map(drop)
        }
        OpClass::Connect => handles.socket.connect(SOCK_STREAM, Owner::UNSET).map(drop),
    };
    result.map_err(|err| err.errno())
}

#[test]
fn every_action_against_every_operation_class() {
    let mut failures = Vec::new();
    for action in ACTIONS {
        for class in CLASSES {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            std::fs::create_dir(root.join("target")).unwrap();
            for name in ["f", "removable", "movable"] {
                std::fs::write(root.join("target").join(name), b"data").unwrap();
            }
            let _listener = UnixListener::bind(root.join("target/s")).unwrap();

            let root_fd = || {
                let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
                rustix::fs::open(root, flags, Mode::empty()).unwrap()
            };
            let options = HostOptions {
                uds_connect: true,
                ..HostOptions::default()
            };
            let backend = HostBackend::new(root, options).unwrap();
            let rules = Rules::new(Vec::new(), Some(root_fd()));
            let server = Server::new(
                Hooked::new(backend, rules.clone()),
                ServerOptions::default(),
            );
            let (client_end, server_end) = FramedSocket::pair().unwrap();
            let serving = server.spawn(server_end).unwrap();
            let client = Client::from_fd(client_end.into_inner()).unwrap();
            let handles = Handles {
                target: walk(&client, &["target"]),
                file: walk(&client, &["target", "f"]),
                socket: walk(&client, &["target", "s"]),
            };

            rules.replace(vec![Rule {
                path: "target/**".into(),
                ops: vec![class],
                action,
            }]);
            for req in CLASSES {
                let got = request(&handles, req);
                let want = expected(action, class, req);
                if got != want {
                    failures.push(format!(
                        "rule {} on {class:?}: a {req:?} request gave {got:?}, not {want:?}",
                        action.name()
                    ));
                }
            }
            drop((handles, client));
            serving.join().unwrap();
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
