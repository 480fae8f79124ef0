//! A client process for lifecycle tests: mounts the gofer at the socket path given as its
//! argument, opens FDs and channels, prints "ready", then runs RPCs until it is killed.
use std::io::Write;

use lisafs_client::{Client, ClientOptions};

fn main() {
    let socket = std::env::args().nth(1).expect("usage: test-client SOCKET");
    let client = Client::connect_with(&socket, ClientOptions::default()).expect("mount");
    let held: Vec<_> = (0..50)
        .map(|_| client.root().walk(&["f"]).expect("walk"))
        .collect();
    println!("ready {}", client.idle_channels());
    std::io::stdout().flush().expect("stdout");
    loop {
        for (_, inodes) in &held {
            let opened = inodes[0].fd.open_at(0).expect("open");
            let mut buf = [0u8; 64];
            opened.fd.pread(0, &mut buf).expect("read");
        }
    }
}
