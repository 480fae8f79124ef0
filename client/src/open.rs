//! RPCs on an [`OpenFd`]: stat, chunked read and write, sync, flush, allocate and
//! directory listing.

use std::ops::ControlFlow;

use lisafs_protocol::wire::{
    DirentList, Errno, FAllocateReq, FStatReq, FlushReq, Getdents64Req, Mid, PReadReq, PReadResp,
    PWriteData, PWriteReq, Statx,
};

use crate::client::{typed, PWriteFrom};
use crate::error::{Error, Result};
use crate::fd::OpenFd;

/// Copies the data of the PRead response `payload` into the start of `dest` (as long as
/// the read asked for); the number of bytes.
pub(crate) fn read_into(dest: &mut [u8], payload: &[u8]) -> Result<usize> {
    let data = PReadResp::decode_data(payload)
        .map_err(|err| Error::protocol(Errno::EIO, format!("bad PRead response: {err}")))?;
    let Some(dest) = dest.get_mut(..data.len()) else {
        return Err(Error::protocol(
            Errno::EIO,
            format!("PRead of {} bytes returned {}", dest.len(), data.len()),
        ));
    };
    dest.copy_from_slice(data);
    Ok(data.len())
}

/// What a chunk's outcome (as [`Inner::pread_into`] returns it) means for a read that
/// has `done` bytes so far and asked this chunk for `want`: go on with the chunk's bytes,
/// or stop with the read's result. A bad response is an error even after some chunks; a
/// failed call ends the read short, with what was read, unless nothing was; a short chunk
/// ends it.
///
/// [`Inner::pread_into`]: crate::client::Inner::pread_into
pub(crate) fn chunk_read(
    done: usize,
    want: usize,
    outcome: Result<Result<usize>>,
) -> ControlFlow<Result<usize>, usize> {
    match outcome {
        Ok(Ok(n)) if n < want => ControlFlow::Break(Ok(done + n)),
        Ok(Ok(n)) => ControlFlow::Continue(n),
        Ok(Err(bad)) => ControlFlow::Break(Err(bad)),
        Err(err) if done == 0 => ControlFlow::Break(Err(err)),
        Err(_) => ControlFlow::Break(Ok(done)),
    }
}

/// PRead's response spends 8 bytes on the byte count before the data.
const PREAD_OVERHEAD: u32 = 8;
/// PWrite's request spends 20 bytes on offset, FDID and length before the data.
const PWRITE_OVERHEAD: u32 = 20;

impl OpenFd {
    /// The largest data chunk one RPC can carry with `overhead` bytes of fixed fields.
    fn chunk(&self, overhead: u32) -> Result<usize> {
        let chunk = self.inner().max_message_size().saturating_sub(overhead);
        if chunk == 0 {
            // A server whose limit cannot hold one byte of data cannot do I/O at all.
            return Err(Error::local(Errno::EIO));
        }
        Ok(usize::try_from(chunk).unwrap_or(usize::MAX))
    }

    /// FStat: the open file's attributes.
    pub fn fstat(&self) -> Result<Statx> {
        let (resp, _) = self.inner().call(&FStatReq { fd: self.id() })?;
        Ok(resp.stat)
    }

    /// PRead: reads into `buf` from `offset`, in chunks of `max_message_size − 8` bytes,
    /// stopping at the first short chunk. Returns the bytes read; 0 means end of file.
    /// If a chunk fails after some bytes were read, those bytes are reported and the
    /// error is left for the next call.
    pub fn pread(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let chunk = self.chunk(PREAD_OVERHEAD)?;
        if let Some(read) = self.inner().pread_split(self.id(), offset, buf, chunk) {
            return read;
        }
        let mut done = 0;
        while done < buf.len() {
            let want = chunk.min(buf.len() - done);
            let req = PReadReq {
                offset: advance(offset, done)?,
                fd: self.id(),
                // `want` ≤ chunk, which came from a u32.
                count: u32::try_from(want).unwrap_or(u32::MAX),
                _pad: 0,
            };
            // The data goes from where it arrived straight into `buf`.
            let outcome = self.inner().pread_into(&req, &mut buf[done..done + want]);
            match chunk_read(done, want, outcome) {
                ControlFlow::Continue(n) => done += n,
                ControlFlow::Break(read) => return read,
            }
        }
        Ok(done)
    }

    /// PWrite: writes `data` at `offset`, in chunks of `max_message_size − 20` bytes,
    /// stopping at the first short write. Returns the bytes written. If a chunk fails after
    /// some bytes were written, those bytes are reported and the error is left for the
    /// next call.
    pub fn pwrite(&self, offset: u64, data: &[u8]) -> Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let chunk = self.chunk(PWRITE_OVERHEAD)?;
        let mut done = 0;
        for piece in data.chunks(chunk) {
            let req = PWriteFrom(PWriteData {
                offset: advance(offset, done)?,
                fd: self.id(),
                data: piece,
            });
            let count = match self.inner().call_with(&req, typed::<PWriteReq>) {
                Ok((resp, _)) => resp.count,
                Err(err) if done == 0 => return Err(err),
                Err(_) => break,
            };
            let written = usize::try_from(count)
                .ok()
                .filter(|&n| n <= piece.len())
                .ok_or_else(|| {
                    Error::protocol(
                        Errno::EIO,
                        format!("PWrite of {} bytes reported {count}", piece.len()),
                    )
                })?;
            done += written;
            if written < piece.len() {
                break;
            }
        }
        Ok(done)
    }

    /// FSync: flushes the file to stable storage. See also
    /// [`Client::fsync`](crate::Client::fsync) to sync many files in one RPC.
    pub fn fsync(&self) -> Result<()> {
        self.inner().fsync(vec![self.id()])
    }

    /// Flush: the close-time hook. Succeeds without an RPC when the server does not
    /// advertise Flush (gVisor's and ours do not).
    pub fn flush(&self) -> Result<()> {
        if !self.inner().supports(Mid::Flush) {
            return Ok(());
        }
        self.inner().call(&FlushReq { fd: self.id() }).map(drop)
    }

    /// FAllocate: `fallocate(2)` with `mode` on `[offset, offset + length)`.
    pub fn fallocate(&self, mode: u64, offset: u64, length: u64) -> Result<()> {
        let req = FAllocateReq {
            fd: self.id(),
            mode,
            offset,
            length,
        };
        self.inner().call(&req).map(drop)
    }

    /// Getdents64: up to `count` bytes' worth of entries (charged as Linux `dirent64`
    /// records) from this directory. A negative `count` rewinds to the start first and
    /// uses its magnitude. An empty list means the end of the directory. The entries stay
    /// in their wire encoding, read in place by [`DirentList::iter`].
    pub fn getdents64(&self, count: i32) -> Result<DirentList> {
        let req = Getdents64Req {
            dir_fd: self.id(),
            count,
            _pad: 0,
        };
        let (resp, _) = self.inner().call(&req)?;
        Ok(resp.dirents)
    }
}

/// `offset + done`, or `EOVERFLOW` past the 64-bit file offset range.
fn advance(offset: u64, done: usize) -> Result<u64> {
    u64::try_from(done)
        .ok()
        .and_then(|done| offset.checked_add(done))
        .ok_or_else(|| Error::local(Errno::EOVERFLOW))
}
