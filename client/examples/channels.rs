//! Shared-memory channels: one `Client` shared by several threads, each RPC on an idle
//! channel, so the threads' calls run in parallel instead of taking turns on the socket.
//! Opens one file and reads its start many times from THREADS threads (default 4), first
//! over channels, then with every RPC on the socket; checks that every read returned the
//! same bytes, and prints the times.
//!
//! Run it against a gofer serving some directory (as root; add `--sandbox none` to the
//! gofer without root; its `--max-channels` caps the channels per connection, 4 by
//! default):
//!
//! ```text
//! cargo build -p lisafs-gofer
//! target/debug/gofer --root /srv/data --socket /tmp/gofer.sock &
//! cargo run --release -p lisafs-client --example channels -- /tmp/gofer.sock docs/notes.txt 4
//! ```

use std::env;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use lisafs_client::{Client, ClientOptions, Errno, Error, Result, O_RDONLY};

/// Reads per thread.
const ROUNDS: usize = 1000;

/// Bytes per read, at most.
const MAX_READ: usize = 4096;

fn main() -> ExitCode {
    let args: Vec<PathBuf> = env::args_os().skip(1).map(PathBuf::from).collect();
    let usage = || {
        eprintln!("usage: channels SOCKET PATH [THREADS]");
        ExitCode::from(2)
    };
    let (socket, path, threads) = match args.as_slice() {
        [socket, path] => (socket, path, 4),
        [socket, path, threads] => match threads.to_str().and_then(|n| n.parse().ok()) {
            Some(threads) if threads > 0 => (socket, path, threads),
            _ => return usage(),
        },
        _ => return usage(),
    };
    match run(socket, path, threads) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("channels {}: {err}", path.display());
            ExitCode::FAILURE
        }
    }
}

fn run(socket: &Path, path: &Path, threads: usize) -> Result<()> {
    // Ask for one channel per thread. The server may grant fewer; a call that finds no
    // idle channel uses the socket.
    let options = ClientOptions {
        channels: threads,
        ..ClientOptions::default()
    };
    let client = Client::connect_with(socket, options)?;
    println!("channels: {} of {threads} asked", client.idle_channels());
    let (len, elapsed) = read_in_parallel(&client, path, threads)?;
    println!(
        "over channels: {threads} threads x {ROUNDS} reads of {len} bytes of {} in {}",
        path.display(),
        millis(elapsed),
    );

    // The same with channels: 0, every RPC serialised on the socket.
    let options = ClientOptions {
        channels: 0,
        ..ClientOptions::default()
    };
    let client = Client::connect_with(socket, options)?;
    let (len, elapsed) = read_in_parallel(&client, path, threads)?;
    println!(
        "on the socket: {threads} threads x {ROUNDS} reads of {len} bytes of {} in {}",
        path.display(),
        millis(elapsed),
    );
    Ok(())
}

/// Opens `path` once and reads its first [`MAX_READ`] bytes [`ROUNDS`] times from each of
/// `threads` threads sharing the open file (`Client` and its handles are `Send + Sync`).
/// Returns how many bytes each read returned. Fails with `EIO` if a read differs from the
/// first.
fn read_in_parallel(client: &Client, path: &Path, threads: usize) -> Result<(usize, Duration)> {
    let file = client.open(path, O_RDONLY)?;
    let mut expected = vec![0; MAX_READ];
    let len = file.read_at(&mut expected, 0)?;
    expected.truncate(len);
    let start = Instant::now();
    thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    let mut buf = vec![0; len];
                    for _ in 0..ROUNDS {
                        // One PRead RPC, on whichever channel is idle.
                        let n = file.read_at(&mut buf, 0)?;
                        if buf[..n] != expected[..] {
                            return Err(Error::from(Errno::EIO));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|worker| worker.join().unwrap_or(Err(Error::from(Errno::EIO))))
    })?;
    Ok((len, start.elapsed()))
}

fn millis(elapsed: Duration) -> String {
    format!("{:.1} ms", elapsed.as_secs_f64() * 1000.0)
}
