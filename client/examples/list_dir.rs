//! Lists a directory of the share, `ls -l` style: type and permissions, size, name, and
//! the target of each symlink. The path defaults to the mount root.
//!
//! Run it against a gofer serving some directory (as root; add `--sandbox none` to the
//! gofer without root):
//!
//! ```text
//! cargo build -p lisafs-gofer
//! target/debug/gofer --root /srv/data --socket /tmp/gofer.sock &
//! cargo run -p lisafs-client --example list_dir -- /tmp/gofer.sock docs
//! ```

use std::env;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lisafs_client::{Client, FileType, Result};

fn main() -> ExitCode {
    let args: Vec<PathBuf> = env::args_os().skip(1).map(PathBuf::from).collect();
    let (socket, dir) = match args.as_slice() {
        [socket] => (socket, Path::new("/")),
        [socket, dir] => (socket, dir.as_path()),
        _ => {
            eprintln!("usage: list_dir SOCKET [PATH]");
            return ExitCode::from(2);
        }
    };
    match list_dir(socket, dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("list_dir {}: {err}", dir.display());
            ExitCode::FAILURE
        }
    }
}

fn list_dir(socket: &Path, dir: &Path) -> Result<()> {
    let client = Client::connect(socket)?;
    // Getdents64 until the directory is exhausted; "." and ".." are left out. The order
    // is the host filesystem's, so sort for display.
    let mut entries = client.read_dir(dir)?;
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    println!("{} entries in {}", entries.len(), dir.display());
    for entry in &entries {
        // Names are bytes (not necessarily UTF-8); paths are relative to the mount root.
        let path = dir.join(OsStr::from_bytes(&entry.name));
        // One WalkStat per entry; a symlink's own attributes, not its target's.
        let stat = client.symlink_metadata(&path)?;
        let mut line = format!(
            "{} {:>10} {}",
            mode_string(stat.mode),
            stat.size,
            entry.name_lossy()
        );
        if entry.file_type == FileType::Symlink {
            let target = client.read_link(&path)?;
            line.push_str(&format!(" -> {}", String::from_utf8_lossy(&target)));
        }
        println!("{line}");
    }
    Ok(())
}

/// `ls -l`-style mode text, e.g. `drwxr-xr-x` (set-ID and sticky bits left out).
fn mode_string(mode: u16) -> String {
    let mut out = String::from(FileType::from_mode(mode).ls_char());
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 0o7;
        out.push(if bits & 0o4 != 0 { 'r' } else { '-' });
        out.push(if bits & 0o2 != 0 { 'w' } else { '-' });
        out.push(if bits & 0o1 != 0 { 'x' } else { '-' });
    }
    out
}
