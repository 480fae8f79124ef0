//! Walks from the mount root to a path with one Walk RPC (the FD-level API beneath the
//! path layer) and prints each component the server walked, then why the walk stopped.
//!
//! The server resolves one component at a time and never follows a symlink: a walk stops
//! at a missing component, or at a symlink with components left (a client then reads the
//! link and walks on, which `Client::open` and friends do for you).
//!
//! Run it against a gofer serving some directory (as root; add `--sandbox none` to the
//! gofer without root):
//!
//! ```text
//! cargo build -p lisafs-gofer
//! target/debug/gofer --root /srv/data --socket /tmp/gofer.sock &
//! cargo run -p lisafs-client --example walk -- /tmp/gofer.sock docs/notes.txt
//! ```

use std::env;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lisafs_client::{Client, FileType, Result, WalkStatus};

fn main() -> ExitCode {
    let args: Vec<PathBuf> = env::args_os().skip(1).map(PathBuf::from).collect();
    let [socket, path] = args.as_slice() else {
        eprintln!("usage: walk SOCKET PATH");
        return ExitCode::from(2);
    };
    match walk(socket, path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("walk {}: {err}", path.display());
            ExitCode::FAILURE
        }
    }
}

fn walk(socket: &Path, path: &Path) -> Result<()> {
    let client = Client::connect(socket)?;
    // Walk takes names, not a path: "/" separates them and empty ones are dropped.
    let components: Vec<&[u8]> = path
        .as_os_str()
        .as_bytes()
        .split(|&byte| byte == b'/')
        .filter(|name| !name.is_empty())
        .collect();
    let (status, inodes) = client.root().walk(&components)?;

    // One new ControlFd per component walked, each with its file's attributes. The
    // handles are released (a batched Close) when `inodes` is dropped.
    let mut walked = Vec::new();
    for (name, inode) in components.iter().zip(&inodes) {
        walked.push(String::from_utf8_lossy(name));
        let stat = &inode.stat;
        println!(
            "{}: {}, inode {}, {} bytes",
            walked.join("/"),
            kind(FileType::from_mode(stat.mode)),
            stat.ino,
            stat.size,
        );
    }
    match status {
        WalkStatus::Success => println!("walked all {} components", components.len()),
        WalkStatus::ComponentDoesNotExist => {
            let missing = String::from_utf8_lossy(components[inodes.len()]);
            walked.push(missing);
            println!("stopped: {} does not exist", walked.join("/"));
        }
        WalkStatus::ComponentSymlink => {
            // The last inode is the symlink; ReadLinkAt on its ControlFd gives the target.
            if let Some(link) = inodes.last() {
                let target = link.fd.readlink_at()?;
                println!(
                    "stopped at a symlink: {} -> {} (components left: {})",
                    walked.join("/"),
                    String::from_utf8_lossy(&target),
                    components.len() - inodes.len(),
                );
            }
        }
    }
    Ok(())
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
