//! Reads a file of the share and copies it to standard output, like `cat`, through the
//! path layer and `std::io::Read`. A summary goes to standard error.
//!
//! Run it against a gofer serving some directory (as root; add `--sandbox none` to the
//! gofer without root):
//!
//! ```text
//! cargo build -p lisafs-gofer
//! target/debug/gofer --root /srv/data --socket /tmp/gofer.sock &
//! cargo run -p lisafs-client --example read_file -- /tmp/gofer.sock docs/notes.txt
//! ```

use std::env;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lisafs_client::{Client, O_RDONLY};

fn main() -> ExitCode {
    let args: Vec<PathBuf> = env::args_os().skip(1).map(PathBuf::from).collect();
    let [socket, path] = args.as_slice() else {
        eprintln!("usage: read_file SOCKET PATH");
        return ExitCode::from(2);
    };
    match read_file(socket, path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("read_file {}: {err}", path.display());
            ExitCode::FAILURE
        }
    }
}

fn read_file(socket: &Path, path: &Path) -> io::Result<()> {
    let client = Client::connect(socket)?;
    // Resolves the path with one Walk (following symlinks client-side), then OpenAt.
    let file = client.open(path, O_RDONLY)?;
    let size = file.metadata()?.size;
    // The gofer donates the host FD of a regular file; a caller may read it directly.
    // `File` itself always reads with PRead RPCs.
    let donated = file.host_fd().is_some();

    // Each read is one PRead of at most the buffer's size: a buffer as large as the
    // server's message limit takes the fewest round trips.
    let chunk = usize::try_from(client.max_message_size()).unwrap_or(usize::MAX);
    let mut reader = BufReader::with_capacity(chunk, file);
    let mut stdout = io::stdout().lock();
    let copied = io::copy(&mut reader, &mut stdout)?;
    stdout.flush()?;

    eprintln!(
        "read_file: {copied} bytes of {} ({size} bytes by FStat); host FD donated: {}",
        path.display(),
        if donated { "yes" } else { "no" },
    );
    Ok(())
}
