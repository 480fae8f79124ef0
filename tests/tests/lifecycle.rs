//! Connection lifecycle against the real gofer: a client that vanishes mid-session leaves
//! no host FD behind, and other connections carry on.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::fs;

use lisafs_protocol::wire::*;
use lisafs_tests::Gofer;

const GOFER: &str = env!("CARGO_BIN_EXE_test-gofer");

#[test]
fn a_vanished_client_leaves_no_host_fd_and_others_carry_on() {
    let gofer = Gofer::start(GOFER, &[]);
    for i in 0..50 {
        fs::write(gofer.root().join(format!("f{i}")), b"x").unwrap();
        fs::create_dir(gofer.root().join(format!("d{i}"))).unwrap();
    }
    let survivor = gofer.client();
    let baseline = gofer.open_fds();

    let (mut sock, root) = gofer.mounted_raw();
    for i in 0..50 {
        for name in [format!("f{i}"), format!("d{i}")] {
            let walk = WalkReq {
                dir_fd: root,
                path: vec![name.as_str().into()],
            };
            sock.send(Mid::Walk.as_u16(), &encode(&walk).unwrap(), &[])
                .unwrap();
            let fd = decode::<WalkResp>(sock.recv(MAX_MESSAGE_SIZE, 0).unwrap().payload)
                .unwrap()
                .inodes[0]
                .control_fd;
            let open = OpenAtReq {
                fd,
                flags: 0,
                _pad: 0,
            };
            sock.send(Mid::OpenAt.as_u16(), &encode(&open).unwrap(), &[])
                .unwrap();
            assert_eq!(
                sock.recv(MAX_MESSAGE_SIZE, 1).unwrap().mid,
                Mid::OpenAt.as_u16()
            );
        }
    }
    assert!(
        gofer.open_fds() >= baseline + 200,
        "the session held fewer FDs than expected"
    );

    // The client disappears without closing anything.
    drop(sock);
    let after = gofer.settle_fds(baseline);
    assert!(
        after <= baseline,
        "host FDs outlived their connection: {after} open, {baseline} before"
    );

    // The other connection never noticed.
    let stat = survivor.root().walk_stat(&["", "d7"]).unwrap();
    assert_eq!(stat.len(), 2);
    gofer.assert_canary_untouched();
}
