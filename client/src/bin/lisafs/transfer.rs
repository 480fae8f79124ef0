//! `put`, `get` and `cat`: copying file data without ever losing the destination's old
//! contents. The source is opened and checked to be a regular file before the destination
//! is looked at; the data goes to a temporary file beside the destination, which is
//! renamed over it only once complete, and removed if anything fails.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use lisafs_client::{Client, Errno, Error, File as RemoteFile, FileType, O_RDONLY, O_WRONLY};

use crate::paths::{clean, file_name, into_dir};
use crate::progress::Progress;
use crate::report::{on, stdout_write, Outcome};

/// Bytes per read and write: large enough to amortise an RPC, small enough to stream.
const CHUNK: usize = 1 << 20;

/// Attempts at a fresh temporary name before giving up (another writer raced us each
/// time, or a crashed run left them).
const TEMP_TRIES: u32 = 100;

/// The longest destination name kept in a temporary name: with the suffix it stays under
/// NAME_MAX (255).
const TEMP_NAME_KEEP: usize = 200;

/// `cat`: the remote file's bytes to standard output.
pub(crate) fn cat(client: &Client, out: &mut impl Write, path: &Path) -> Outcome {
    let cleaned = on(clean(client, path), "cat", path)?;
    let file = on(client.open(&cleaned, O_RDONLY), "cat", path)?;
    let mut buf = vec![0; CHUNK];
    let mut offset = 0;
    loop {
        let n = on(read_at(&file, &mut buf, &mut offset), "cat", path)?;
        if n == 0 {
            return Ok(());
        }
        stdout_write(out.write_all(&buf[..n]))?;
    }
}

/// `get REMOTE LOCAL`.
pub(crate) fn get(client: &Client, remote: &Path, local: &Path) -> Outcome {
    let cleaned = on(clean(client, remote), "get", remote)?;
    let source = on(client.open(&cleaned, O_RDONLY), "get", remote)?;
    let stat = on(source.metadata(), "get", remote)?;
    on(regular(stat.mode), "get", remote)?;
    let mut progress = Progress::new(format!("get {}", remote.display()), Some(stat.size));
    let mut offset = 0;
    let mut read = |buf: &mut [u8]| on(read_at(&source, buf, &mut offset), "get", remote);
    if local == Path::new("-") {
        let mut out = io::stdout().lock();
        copy(
            &mut read,
            |data| stdout_write(out.write_all(data)),
            &mut progress,
        )?;
        return stdout_write(out.flush());
    }
    let dest = on(local_dest(&cleaned, local), "get", local)?;
    let (mut temp, temp_path) = on(local_temp(&dest), "get", local)?;
    let written = copy(
        &mut read,
        |data| on(temp.write_all(data), "get", local),
        &mut progress,
    )
    .and_then(|()| {
        // Set-ID and sticky bits from a server are not trusted locally.
        let mode = u32::from(stat.mode) & 0o777;
        on(
            temp.set_permissions(fs::Permissions::from_mode(mode)),
            "get",
            local,
        )?;
        // Durable before it replaces anything, so a crash cannot leave an empty file.
        on(temp.sync_all(), "get", local)?;
        on(fs::rename(&temp_path, &dest), "get", local)
    });
    if written.is_err() {
        let _ = fs::remove_file(&temp_path);
    }
    written
}

/// `put LOCAL REMOTE`.
pub(crate) fn put(client: &Client, local: &Path, remote: &Path) -> Outcome {
    let stdin = local == Path::new("-");
    let (mut source, mode, size): (Box<dyn Read>, u16, Option<u64>) = if stdin {
        (Box::new(io::stdin().lock()), 0o644, None)
    } else {
        // Checked before opening too: opening a FIFO would wait for a writer.
        on(
            regular(local_mode(&on(fs::metadata(local), "put", local)?)),
            "put",
            local,
        )?;
        let file = on(fs::File::open(local), "put", local)?;
        let meta = on(file.metadata(), "put", local)?;
        let mode = local_mode(&meta);
        on(regular(mode), "put", local)?;
        (Box::new(file), mode & 0o7777, Some(meta.len()))
    };
    let cleaned = on(clean(client, remote), "put", remote)?;
    let dest = on(into_dir(client, local, &cleaned, remote), "put", remote)?;
    let Some(name) = file_name(&dest) else {
        return on(Err(Errno::EISDIR), "put", remote);
    };
    let dir = dest.parent().unwrap_or(Path::new("/"));
    let (temp, temp_path) = on(
        remote_temp(client, dir, name.as_bytes(), mode),
        "put",
        remote,
    )?;
    let mut offset = 0;
    let mut progress = Progress::new(format!("put {}", local.display()), size);
    let written = copy(
        &mut |buf| on(read_local(&mut source, buf), "put", local),
        |data| on(write_all_at(&temp, data, &mut offset), "put", remote),
        &mut progress,
    )
    .and_then(|()| {
        // Durable before it replaces anything, so a crash cannot leave an empty file.
        match temp.sync_all() {
            // A server without FSync cannot do better; the rename is still atomic.
            Err(err) if err.errno() == Errno::EOPNOTSUPP => {}
            synced => on(synced, "put", remote)?,
        }
        on(client.rename(&temp_path, &dest), "put", remote)
    });
    if written.is_err() {
        // Fails too if the connection is gone; the hidden temporary then stays behind.
        let _ = client.remove_file(&temp_path);
    }
    written
}

/// `st_mode` in the wire's 16 bits (type and permission bits fit).
fn local_mode(meta: &fs::Metadata) -> u16 {
    u16::try_from(meta.mode() & 0o177_777).unwrap_or(0)
}

/// One read of the local source; a signal's interruption is not a failure.
fn read_local(source: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match source.read(buf) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            read => return read,
        }
    }
}

/// Reads at `*offset` and advances it. The library's own call rather than `io::Read`,
/// whose `io::Error` would hide that the connection (not the file) failed.
fn read_at(file: &RemoteFile, buf: &mut [u8], offset: &mut u64) -> Result<usize, Error> {
    let n = file.read_at(buf, *offset)?;
    *offset += u64::try_from(n).unwrap_or(u64::MAX);
    Ok(n)
}

/// Writes all of `data` at `*offset` and advances it (see [`read_at`] for why not
/// `io::Write`).
fn write_all_at(file: &RemoteFile, mut data: &[u8], offset: &mut u64) -> Result<(), Error> {
    while !data.is_empty() {
        let n = file.write_at(data, *offset)?;
        if n == 0 {
            return Err(Errno::EIO.into());
        }
        data = data.get(n..).unwrap_or_default();
        *offset += u64::try_from(n).unwrap_or(u64::MAX);
    }
    Ok(())
}

/// Copies until `read` returns 0.
fn copy(
    read: &mut dyn FnMut(&mut [u8]) -> Result<usize, crate::report::Failure>,
    mut write: impl FnMut(&[u8]) -> Outcome,
    progress: &mut Progress,
) -> Outcome {
    let mut buf = vec![0; CHUNK];
    loop {
        let n = read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        write(&buf[..n])?;
        progress.advance(n);
    }
}

/// `EISDIR` for a directory, `EINVAL` for anything else that is not a regular file:
/// only regular files are copied (a device or FIFO could block or never end).
fn regular(mode: u16) -> Result<(), Errno> {
    match FileType::from_mode(mode) {
        FileType::Regular => Ok(()),
        FileType::Directory => Err(Errno::EISDIR),
        _ => Err(Errno::EINVAL),
    }
}

/// Where `get` writes: inside `local` if it is a directory (under the remote file's
/// name), through `local` if it is a symlink to a file (as `cp` writes through one).
fn local_dest(remote: &Path, local: &Path) -> io::Result<PathBuf> {
    let dest = match fs::metadata(local) {
        Ok(meta) if meta.is_dir() => {
            let name = file_name(remote).ok_or(io::Error::from(io::ErrorKind::IsADirectory))?;
            local.join(name)
        }
        _ if local.as_os_str().as_bytes().ends_with(b"/") => {
            return Err(io::Error::from(io::ErrorKind::NotADirectory));
        }
        _ => local.to_path_buf(),
    };
    match fs::symlink_metadata(&dest) {
        Ok(meta) if meta.is_dir() => Err(io::Error::from(io::ErrorKind::IsADirectory)),
        Ok(meta) if meta.file_type().is_symlink() => match fs::canonicalize(&dest) {
            Ok(target) => Ok(target),
            // A dangling link is replaced, as by rename(2).
            Err(_) => Ok(dest),
        },
        _ => Ok(dest),
    }
}

/// A hidden temporary name beside `name`: `.NAME.lisafs-PID-N`.
fn temp_name(name: &[u8], n: u32) -> Vec<u8> {
    let kept = name.get(..TEMP_NAME_KEEP).unwrap_or(name);
    let mut out = b".".to_vec();
    out.extend_from_slice(kept);
    out.extend_from_slice(format!(".lisafs-{}-{n}", std::process::id()).as_bytes());
    out
}

/// A new local temporary file in `dest`'s directory, readable only by us until complete.
fn local_temp(dest: &Path) -> io::Result<(fs::File, PathBuf)> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let name = dest.file_name().map_or(&b""[..], |n| n.as_bytes());
    for n in 0..TEMP_TRIES {
        let path = dir.join(std::ffi::OsStr::from_bytes(&temp_name(name, n)));
        let opened = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path);
        match opened {
            Ok(file) => return Ok((file, path)),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err),
        }
    }
    Err(io::Error::from(io::ErrorKind::AlreadyExists))
}

/// A new remote temporary file in `dir`, created with `mode` (OpenCreateAt: it fails
/// rather than reuse an existing file).
fn remote_temp(
    client: &Client,
    dir: &Path,
    name: &[u8],
    mode: u16,
) -> Result<(RemoteFile, PathBuf), Error> {
    for n in 0..TEMP_TRIES {
        let path = dir.join(std::ffi::OsStr::from_bytes(&temp_name(name, n)));
        match client.create_new(&path, mode, O_WRONLY) {
            Ok(file) => return Ok((file, path)),
            Err(err) if err.errno() == Errno::EEXIST => {}
            Err(err) => return Err(err),
        }
    }
    Err(Errno::EEXIST.into())
}
