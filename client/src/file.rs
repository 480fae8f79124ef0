//! [`File`]: an OpenFd with a cursor, implementing `std::io::{Read, Write, Seek}`.

use std::io::{self, SeekFrom};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use lisafs_protocol::wire::Statx;

use crate::error::Result;
use crate::fd::{OpenFd, Opened};

/// An open remote file with a position, for code written against `std::io`. Reads and
/// writes go through PRead/PWrite at the position (chunked as [`OpenFd::pread`] and
/// [`OpenFd::pwrite`] describe); a zero-length read is end of file.
///
/// If the server donated a host FD ([`File::host_fd`]), a caller may use it for faster
/// I/O; `File` itself always uses RPCs, so the two never disagree about the position.
#[derive(Debug)]
pub struct File {
    fd: OpenFd,
    host_fd: Option<OwnedFd>,
    pos: u64,
}

impl File {
    /// Wraps an opened file, positioned at offset 0.
    pub fn new(opened: Opened) -> Self {
        Self {
            fd: opened.fd,
            host_fd: opened.host_fd,
            pos: 0,
        }
    }

    /// The OpenFd, for RPCs `File` does not wrap.
    pub fn open_fd(&self) -> &OpenFd {
        &self.fd
    }

    /// The host FD the server donated on open, if any.
    pub fn host_fd(&self) -> Option<BorrowedFd<'_>> {
        self.host_fd.as_ref().map(AsFd::as_fd)
    }

    /// Splits the file into its OpenFd and donated host FD.
    pub fn into_parts(self) -> (OpenFd, Option<OwnedFd>) {
        (self.fd, self.host_fd)
    }

    /// The current position.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The file's attributes (FStat on the OpenFd).
    pub fn metadata(&self) -> Result<Statx> {
        self.fd.fstat()
    }

    /// Flushes the file to stable storage (FSync).
    pub fn sync_all(&self) -> Result<()> {
        self.fd.fsync()
    }

    /// Reads from `offset` without moving the position.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        self.fd.pread(offset, buf)
    }

    /// Writes at `offset` without moving the position.
    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<usize> {
        self.fd.pwrite(offset, buf)
    }

    fn advance(&mut self, n: usize) {
        self.pos = self
            .pos
            .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
    }
}

impl io::Read for File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.fd.pread(self.pos, buf)?;
        self.advance(n);
        Ok(n)
    }
}

impl io::Write for File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.fd.pwrite(self.pos, buf)?;
        self.advance(n);
        Ok(n)
    }

    /// Nothing is buffered client-side; this sends Flush where the server supports it.
    fn flush(&mut self) -> io::Result<()> {
        Ok(self.fd.flush()?)
    }
}

impl io::Seek for File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let (base, delta) = match pos {
            SeekFrom::Start(offset) => {
                self.pos = offset;
                return Ok(offset);
            }
            SeekFrom::Current(delta) => (self.pos, delta),
            SeekFrom::End(delta) => (self.fd.fstat()?.size, delta),
        };
        let new = base.checked_add_signed(delta).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start or past 2^64",
            )
        })?;
        self.pos = new;
        Ok(new)
    }
}
