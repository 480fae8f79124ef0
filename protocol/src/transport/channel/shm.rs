//! The mapped packet window: the only `unsafe` in the protocol crate.
//!
//! The window is shared with the peer process, which may be hostile and may write to it at
//! any moment. So no Rust reference to window memory is ever created except the
//! `AtomicU32` control words: payload bytes move only by copying through raw pointers into
//! or out of our own buffers (what is copied out is validated after the copy), or by the
//! kernel, to which `pread(2)` and `pwrite(2)` hand raw pointers into the window
//! ([`Window::pread_into`], [`Window::pwrite_from`]; through `libc`, as rustix takes
//! slices).
#![allow(unsafe_code)] // Reason: mmap of a shared memfd, and access to memory another process writes.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;

use rustix::fs::{fcntl_add_seals, ftruncate, memfd_create, MemfdFlags, SealFlags};
use rustix::io::Errno;
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};

use crate::transport::retry_intr;

/// Offset of the connection state word (the futex).
const STATE_OFFSET: usize = 0;
/// Offset of the data length word.
const DATA_LEN_OFFSET: usize = 4;
/// Offset of the word where our client says it polls the state word (lisafs-rs; gVisor
/// leaves these reserved bytes zero).
const CLIENT_POLLING_OFFSET: usize = 8;
/// Offset of the same word for our server.
const SERVER_POLLING_OFFSET: usize = 12;
/// Offset of the data area (channel header, then payload).
pub(crate) const DATA_OFFSET: usize = 16;

/// A mapped packet window.
#[derive(Debug)]
pub(crate) struct Window {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the window is plain shared memory; every access goes through atomics or raw
// copies that tolerate concurrent modification, so it may be used from any thread.
unsafe impl Send for Window {}
// SAFETY: as above; `&Window` hands out only `&AtomicU32`s and copies.
unsafe impl Sync for Window {}

impl Window {
    /// Creates a sealed memfd of `len` bytes for a new window. Shrinking is sealed so the
    /// peer can never truncate the file under our mapping (which would fault us).
    pub(crate) fn create_memfd(len: usize) -> Result<OwnedFd, Errno> {
        let fd = memfd_create(
            "flipcall_packet_windows",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        ftruncate(&fd, len as u64)?;
        fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
        Ok(fd)
    }

    /// Maps `len` bytes of `fd` at `offset`, shared and read-write. The length must hold
    /// the 16-byte header and the 4-byte channel header.
    pub(crate) fn map(fd: impl AsFd, offset: u64, len: usize) -> Result<Self, Errno> {
        if len < DATA_OFFSET + 4 || len > u32::MAX as usize {
            return Err(Errno::INVAL);
        }
        // SAFETY: a fresh mapping at an address the kernel picks (null hint) cannot alias
        // any Rust object; the result is checked and owned by the returned Window, which
        // unmaps exactly this range on drop.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                offset,
            )?
        };
        let base = NonNull::new(ptr.cast::<u8>()).ok_or(Errno::INVAL)?;
        Ok(Self { base, len })
    }

    /// Bytes available for the channel header plus payload.
    pub(crate) fn data_capacity(&self) -> usize {
        self.len - DATA_OFFSET
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: the mapping is page-aligned and at least DATA_OFFSET bytes long, so
        // `offset` (0, 4, 8 or 12) is in bounds and 4-aligned; it lives as long as
        // `self`. Only atomic operations are ever done on these words, by us and the peer.
        unsafe { &*self.base.as_ptr().wrapping_add(offset).cast::<AtomicU32>() }
    }

    /// The state word: 0 client's turn, 1 server's turn, 2 shut down.
    pub(crate) fn state(&self) -> &AtomicU32 {
        self.word(STATE_OFFSET)
    }

    /// The data length word: bytes of header plus payload in the data area.
    pub(crate) fn data_len(&self) -> &AtomicU32 {
        self.word(DATA_LEN_OFFSET)
    }

    /// The word in which the server's side (`server`) or the client's says that it is
    /// polling the state word, so that a send need not wake it (SPEC.md §9.3).
    pub(crate) fn polling(&self, server: bool) -> &AtomicU32 {
        self.word(match server {
            true => SERVER_POLLING_OFFSET,
            false => CLIENT_POLLING_OFFSET,
        })
    }

    /// Copies `dst.len()` bytes from the data area, starting `at` bytes in, into `dst`.
    pub(crate) fn read_data(&self, at: usize, dst: &mut [u8]) -> Result<(), Errno> {
        self.check(at.checked_add(dst.len()).ok_or(Errno::INVAL)?)?;
        // SAFETY: `check` keeps the range inside the mapping; `dst` is our own buffer and
        // cannot overlap shared memory. The peer may change the bytes while we copy; they
        // are plain `u8`s with no validity invariant, and the caller validates the copy.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.base.as_ptr().wrapping_add(DATA_OFFSET + at),
                dst.as_mut_ptr(),
                dst.len(),
            );
        }
        Ok(())
    }

    /// Copies `src` into the data area at `at` bytes from its start.
    pub(crate) fn write_data(&self, at: usize, src: &[u8]) -> Result<(), Errno> {
        self.check(at.checked_add(src.len()).ok_or(Errno::INVAL)?)?;
        // SAFETY: `check` keeps the range inside the mapping; `src` is our own buffer and
        // cannot overlap shared memory. The peer must not read these bytes until we hand
        // it the turn, and if it does, it only sees bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                src.as_ptr(),
                self.base.as_ptr().wrapping_add(DATA_OFFSET + at),
                src.len(),
            );
        }
        Ok(())
    }

    /// Reads up to `len` bytes of `fd` from `offset` (`pread(2)`, retried on `EINTR`)
    /// into the data area at `at`: the kernel copies file data straight into the window.
    /// Returns the bytes read.
    pub(crate) fn pread_into(
        &self,
        at: usize,
        len: usize,
        fd: BorrowedFd<'_>,
        offset: u64,
    ) -> Result<usize, Errno> {
        let (area, offset) = (self.raw_area(at, len)?, file_offset(offset)?);
        retry_intr(|| {
            // SAFETY: `raw_area` keeps `len` bytes from `area` inside the mapping, which
            // outlives the call; the kernel writes them, and we never read them, only
            // count them. No Rust reference to them exists.
            counted(unsafe { libc::pread(fd.as_raw_fd(), area.cast(), len, offset) })
        })
    }

    /// Writes `len` bytes of the data area at `at` to `fd` at `offset` (`pwrite(2)`,
    /// retried on `EINTR`): the kernel copies them straight from the window. Returns the
    /// bytes written.
    pub(crate) fn pwrite_from(
        &self,
        at: usize,
        len: usize,
        fd: BorrowedFd<'_>,
        offset: u64,
    ) -> Result<usize, Errno> {
        let (area, offset) = (self.raw_area(at, len)?, file_offset(offset)?);
        retry_intr(|| {
            // SAFETY: `raw_area` keeps `len` bytes from `area` inside the mapping, which
            // outlives the call; only the kernel reads them. The peer may change them
            // meanwhile, and the file then gets what it left there: its own data to
            // choose. No Rust reference to them exists.
            counted(unsafe { libc::pwrite(fd.as_raw_fd(), area.cast_const().cast(), len, offset) })
        })
    }

    /// Where `len` bytes at `at` in the data area start, if they are inside it: a pointer
    /// for the kernel alone to use.
    fn raw_area(&self, at: usize, len: usize) -> Result<*mut u8, Errno> {
        self.check(at.checked_add(len).ok_or(Errno::INVAL)?)?;
        Ok(self.base.as_ptr().wrapping_add(DATA_OFFSET + at))
    }

    fn check(&self, end: usize) -> Result<(), Errno> {
        if end > self.data_capacity() {
            return Err(Errno::INVAL);
        }
        Ok(())
    }
}

/// A file offset as the kernel's `off_t`; `EINVAL` beyond it, as the kernel answers.
fn file_offset(offset: u64) -> Result<i64, Errno> {
    i64::try_from(offset).map_err(|_| Errno::INVAL)
}

/// A `pread`/`pwrite`-style return value: the count, or the errno it left.
fn counted(ret: isize) -> Result<usize, Errno> {
    usize::try_from(ret)
        .map_err(|_| Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO))
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly the range `map` mapped, and no reference into it
        // outlives `self` (the atomics borrow `self`).
        let _ = unsafe { munmap(self.base.as_ptr().cast(), self.len) };
    }
}
