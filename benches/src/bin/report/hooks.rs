//! What the hook layer costs: FStat and OpenAt + PRead + Close over a channel against
//! three in-process servers of the same tree: the host backend alone, wrapped in
//! `Hooked` with a hook that does nothing, and with a hook that asks every operation for
//! its path (`Op::path`, which the host backend answers with three system calls). In
//! process, so the gofer's confinement is not part of it; the other sections measure that.

use std::fmt::Write as _;
use std::path::Path;

use lisafs_benches::measure::{run, Budget, Summary};
use lisafs_benches::pingpong::BoxError;
use lisafs_client::{Client, ClientOptions, Errno, O_RDONLY};
use lisafs_gofer::host::{HostBackend, HostOptions};
use lisafs_protocol::transport::socket::FramedSocket;
use lisafs_server::hooks::{Hook, Hooked, NoHook, Op};
use lisafs_server::{Backend, Server, ServerOptions};

use crate::ops::Remote;
use crate::{latency, progress, rate};

/// Asks for the path of every operation, as a path rule for every class would.
struct AsksPath;

impl Hook for AsksPath {
    fn before(&self, op: &Op<'_>) -> Result<(), Errno> {
        match op.path() {
            Some(path) if path.starts_with("denied") => Err(Errno::EACCES),
            _ => Ok(()),
        }
    }
}

/// One server configuration: its two measurements.
#[derive(Debug)]
pub(crate) struct Row {
    setup: &'static str,
    fstat: Summary,
    open_read_close: Summary,
}

fn connect<B: Backend>(backend: B, options: ClientOptions) -> Result<Client, BoxError> {
    let server = Server::new(backend, ServerOptions::default());
    let (client_end, server_end) = FramedSocket::pair()?;
    // The thread ends when the client hangs up.
    server.spawn(server_end)?;
    Ok(Client::from_fd_with(client_end.into_inner(), options)?)
}

/// Measures the three setups on `root`, which `populate` filled.
pub(crate) fn measure(
    root: &Path,
    options: ClientOptions,
    budget: &Budget,
) -> Result<Vec<Row>, BoxError> {
    let backend = || HostBackend::new(root, HostOptions::default());
    let setups = [
        ("no hooks", connect(backend()?, options)?),
        (
            "Hooked, no-op hook",
            connect(Hooked::new(backend()?, NoHook), options)?,
        ),
        (
            "Hooked, hook asks every path",
            connect(Hooked::new(backend()?, AsksPath), options)?,
        ),
    ];
    let mut rows = Vec::new();
    for (i, (setup, client)) in setups.iter().enumerate() {
        progress(&format!("hooks: {setup}"));
        let remote = Remote::open(client, &format!("hooks{i}"))?;
        let small = remote.small();
        let fstat = run(budget, || {
            small.fstat().expect("FStat");
        });
        let mut buf = vec![0; 4096];
        let open_read_close = run(budget, || {
            let opened = small.open_at(O_RDONLY).expect("OpenAt");
            opened.fd.pread(0, &mut buf).expect("PRead");
        });
        rows.push(Row {
            setup,
            fstat,
            open_read_close,
        });
    }
    Ok(rows)
}

/// Appends the section's table to `out`.
pub(crate) fn render(out: &mut String, rows: &[Row]) {
    let _ = writeln!(
        out,
        "\n### Hooks: FStat and OpenAt + PRead + Close, channel, in process\n"
    );
    let _ = writeln!(
        out,
        "| setup | FStat ops/s | median | OpenAt+PRead+Close ops/s | median |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            row.setup,
            rate(row.fstat.ops_per_sec()),
            latency(row.fstat.median),
            rate(row.open_read_close.ops_per_sec()),
            latency(row.open_read_close.median)
        );
    }
}
