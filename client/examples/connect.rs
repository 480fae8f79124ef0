//! Connects to a gofer's socket, mounts, and prints what the Mount answer told the client:
//! the server's message size limit, the root's attributes, the RPCs it supports, and how
//! many shared-memory channels it granted.
//!
//! Run it against a gofer serving some directory (as root; add `--sandbox none` to the
//! gofer without root):
//!
//! ```text
//! cargo build -p lisafs-gofer
//! target/debug/gofer --root /srv/data --socket /tmp/gofer.sock &
//! cargo run -p lisafs-client --example connect -- /tmp/gofer.sock
//! ```

use std::env;
use std::path::PathBuf;
use std::process::ExitCode;

use lisafs_client::{Client, FileType, Mid};

fn main() -> ExitCode {
    let args: Vec<PathBuf> = env::args_os().skip(1).map(PathBuf::from).collect();
    let [socket] = args.as_slice() else {
        eprintln!("usage: connect SOCKET");
        return ExitCode::from(2);
    };
    // `connect` mounts too: the Client is ready for RPCs once it returns.
    let client = match Client::connect(socket) {
        Ok(client) => client,
        Err(err) => {
            eprintln!("connect {}: {err}", socket.display());
            return ExitCode::FAILURE;
        }
    };

    println!("mounted {}", socket.display());
    println!("max message size: {} bytes", client.max_message_size());
    let root = client.root_stat();
    println!(
        "root: {}, mode {:04o}, inode {}, uid {}, gid {}",
        kind(FileType::from_mode(root.mode)),
        root.mode & 0o7777,
        root.ino,
        root.uid,
        root.gid,
    );
    // The list as the server sent it: a newer server may list MIDs this client does not
    // know, and the client refuses unlisted ones locally with EOPNOTSUPP.
    let names: Vec<String> = client
        .supported_mids()
        .iter()
        .map(|&mid| Mid::try_from(mid).map_or_else(|_| format!("#{mid}"), |m| format!("{m:?}")))
        .collect();
    println!("supported RPCs ({}): {}", names.len(), names.join(" "));
    // Channels are opened right after Mount (ClientOptions::default asks for 2 to 4,
    // depending on the CPUs); the gofer's --max-channels caps them.
    println!("shared-memory channels: {}", client.idle_channels());
    let donated = if client.mount_fd().is_some() {
        "yes"
    } else {
        "no (gofer --donate-mount-fd gives one)"
    };
    println!("mount FD donated: {donated}");
    ExitCode::SUCCESS
}

fn kind(file_type: FileType) -> &'static str {
    match file_type {
        FileType::Regular => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::Socket => "socket",
        FileType::Fifo => "fifo",
        FileType::CharDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Unknown => "unknown",
    }
}
