//! A custom hook around the host backend: serves DIR on the Unix socket SOCKET, refusing
//! (`EACCES`) every change under a top-level `private/` directory and printing every
//! operation that changed something (or tried to) on a worker thread.
//!
//! ```text
//! cargo run -p lisafs-gofer --example deny_hook -- DIR SOCKET
//! lisafs --socket SOCKET ls /        # the client CLI, from another shell
//! ```
//!
//! It serves unconfined and without the gofer's flags: a starting point for embedding
//! policy, not a replacement for `gofer`.

use std::os::unix::net::UnixListener;
use std::path::Path;

use lisafs_gofer::host::{HostBackend, HostOptions};
use lisafs_protocol::transport::socket::FramedSocket;
use lisafs_server::hooks::{Deferred, Hook, Hooked, Op, OpClass};
use lisafs_server::wire::Errno;
use lisafs_server::{Server, ServerOptions};

/// Read-only `private/`, judged by where a file is now, not where it was walked from.
struct PrivateIsReadOnly;

impl Hook for PrivateIsReadOnly {
    fn before(&self, op: &Op<'_>) -> Result<(), Errno> {
        if matches!(op.class(), OpClass::Stat | OpClass::Read) {
            // Decided without a path: reads never pay for the lookup.
            return Ok(());
        }
        // A file outside the share (`None`) is refused too.
        let private = |path: Option<&Path>| path.is_none_or(|p| p.starts_with("private"));
        if private(op.path()) || (op.has_new_path() && private(op.new_path())) {
            return Err(Errno::EACCES);
        }
        Ok(())
    }
}

/// Prints changes; runs on `Deferred`'s worker, off the request's path.
struct PrintChanges;

impl Hook for PrintChanges {
    fn after(&self, op: &Op<'_>, outcome: Result<(), Errno>) {
        if !matches!(op.class(), OpClass::Stat | OpClass::Read) {
            println!(
                "{} {} {:?} -> {outcome:?}",
                op.class(),
                op.name(),
                op.path()
            );
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), Some(socket)) = (args.next(), args.next()) else {
        return Err("usage: deny_hook DIR SOCKET".into());
    };
    let backend = HostBackend::new(Path::new(&dir), HostOptions::default())?;
    let hook = (PrivateIsReadOnly, Deferred::new(PrintChanges, 1024)?);
    let server = Server::new(Hooked::new(backend, hook), ServerOptions::default());
    let listener = UnixListener::bind(&socket)?;
    for stream in listener.incoming() {
        // One thread per connection, each a mount with its own FD table.
        server.spawn(FramedSocket::new(stream?.into()))?;
    }
    Ok(())
}
