//! Large reads cut into pieces served on two channels at once, against a server in this
//! process whose backend serves one file of known content and can fail at an offset:
//! results, short reads, failures part-way, and that both channels really carry pieces
//! at the same time.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lisafs_client::{Client, ClientOptions, OpenFd};
use lisafs_protocol::transport::socket::FramedSocket;
use lisafs_protocol::wire::{Errno, Statx};
use lisafs_server::{BResult, Backend, Mounted, Name, Node, OpenFlags, Opened, Server};

const ROOT: u64 = 1;
const FILE: u64 = 2;
/// The file's length: three 256 KiB pieces and a ragged end.
const LEN: usize = 3 * 256 * 1024 + 123;

fn byte_at(offset: usize) -> u8 {
    (offset * 7 + offset / 4093).to_le_bytes()[0]
}

/// Reads counted, with the most that were ever in progress at once.
#[derive(Default)]
struct Reads {
    now: AtomicUsize,
    most: AtomicUsize,
    calls: AtomicUsize,
}

/// `/file` of [`LEN`] bytes; a read starting in `fails` fails with `EIO`, and every read
/// takes `pause`, so that reads the client has in flight together overlap here.
struct OneFile {
    fails: Range<usize>,
    pause: Duration,
    reads: Arc<Reads>,
}

fn node(ino: u64) -> Node<u64> {
    let mode = if ino == ROOT { 0o040_755 } else { 0o100_644 };
    let stat = Statx {
        ino,
        mode,
        size: LEN as u64,
        ..Default::default()
    };
    Node { file: ino, stat }
}

impl Backend for OneFile {
    type File = u64;
    type Open = u64;
    type Socket = ();

    fn mount(&self) -> BResult<Mounted<u64>> {
        Ok(Mounted {
            root: node(ROOT),
            donated: None,
        })
    }

    fn stat(&self, file: &u64) -> BResult<Statx> {
        Ok(node(*file).stat)
    }

    fn walk(&self, dir: &u64, name: Name<'_>) -> BResult<Node<u64>> {
        match (*dir, name.as_bytes()) {
            (ROOT, b"file") => Ok(node(FILE)),
            _ => Err(Errno::ENOENT),
        }
    }

    fn open(&self, file: &u64, _flags: OpenFlags) -> BResult<Opened<u64>> {
        Ok(Opened {
            open: *file,
            donated: None,
        })
    }

    fn read(&self, _open: &u64, offset: u64, buf: &mut [u8]) -> BResult<usize> {
        let reads = &self.reads;
        reads.calls.fetch_add(1, Ordering::SeqCst);
        let now = reads.now.fetch_add(1, Ordering::SeqCst) + 1;
        reads.most.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(self.pause);
        reads.now.fetch_sub(1, Ordering::SeqCst);
        let offset = usize::try_from(offset).unwrap();
        if self.fails.contains(&offset) {
            return Err(Errno::EIO);
        }
        let n = buf.len().min(LEN.saturating_sub(offset));
        for (i, byte) in buf[..n].iter_mut().enumerate() {
            *byte = byte_at(offset + i);
        }
        Ok(n)
    }
}

/// A client with `channels` channels, mounted on a server of [`OneFile`] in this
/// process, and `/file` opened read-only.
fn serve(channels: usize, fails: Range<usize>, pause: Duration) -> (Client, OpenFd, Arc<Reads>) {
    let reads = Arc::new(Reads::default());
    let backend = OneFile {
        fails,
        pause,
        reads: Arc::clone(&reads),
    };
    let (client_end, server_end) = FramedSocket::pair().unwrap();
    Server::new(backend, Default::default())
        .spawn(server_end)
        .unwrap();
    let options = ClientOptions {
        channels,
        ..Default::default()
    };
    let client = Client::from_fd_with(client_end.into_inner(), options).unwrap();
    assert_eq!(client.idle_channels(), channels);
    let (_, inodes) = client.root().walk(&["file"]).unwrap();
    let opened = inodes[0].fd.open_at(0).unwrap();
    (client, opened.fd, reads)
}

/// Reads `len` bytes at `offset` into a buffer of 0xEE; the result and the buffer.
fn read(fd: &OpenFd, offset: usize, len: usize) -> (lisafs_client::Result<usize>, Vec<u8>) {
    let mut buf = vec![0xEE; len];
    let result = fd.pread(offset as u64, &mut buf);
    (result, buf)
}

/// Whether `buf` holds the file's bytes from `offset` for `n` bytes and is untouched
/// (0xEE) after them.
fn holds(buf: &[u8], offset: usize, n: usize) -> bool {
    buf[..n]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == byte_at(offset + i))
        && buf[n..].iter().all(|&b| b == 0xEE)
}

#[test]
fn large_reads_are_whole_short_at_the_end_and_untouched_beyond() {
    let (client, fd, _) = serve(2, 0..0, Duration::ZERO);
    let mib = 1 << 20;
    for (offset, len, want) in [
        (0, mib, LEN),
        (0, LEN, LEN),
        (1_000, 512 * 1024, 512 * 1024),
        (300 * 1024, mib, LEN - 300 * 1024),
        (LEN - 5, mib, 5),
        (LEN, mib, 0),
        (LEN + 4096, mib, 0),
    ] {
        let (result, buf) = read(&fd, offset, len);
        assert_eq!(result.unwrap(), want, "read of {len} at {offset}");
        assert!(
            holds(&buf, offset, want),
            "bytes of the read of {len} at {offset}"
        );
    }
    assert_eq!(client.idle_channels(), 2, "both channels came back");
}

#[test]
fn a_failure_part_way_ends_the_read_short_and_a_first_one_is_the_error() {
    // The third of four 256 KiB pieces fails; the fourth, already in flight, does not,
    // and must not reach the buffer.
    let fail_from = 512 * 1024;
    let (client, fd, _) = serve(2, fail_from..fail_from + 1, Duration::ZERO);
    let (result, buf) = read(&fd, 0, 1 << 20);
    assert_eq!(result.unwrap(), fail_from, "the pieces before the failure");
    assert!(holds(&buf, 0, fail_from));
    let (result, buf) = read(&fd, fail_from, 1 << 20);
    assert_eq!(lisafs_tests::errno(result), Errno::EIO);
    assert!(holds(&buf, 0, 0), "nothing was written into the buffer");
    assert_eq!(
        client.idle_channels(),
        2,
        "errors leave the channels usable"
    );
    let (result, buf) = read(&fd, 0, 1000);
    assert_eq!(result.unwrap(), 1000);
    assert!(holds(&buf, 0, 1000));
}

#[test]
fn two_pieces_are_in_flight_at_once() {
    // Each read pauses, so pieces sent before either answer overlap in the server; a
    // client that sent one piece at a time would never have two reads in progress.
    let (_client, fd, reads) = serve(2, 0..0, Duration::from_millis(20));
    let (result, buf) = read(&fd, 0, 1 << 20);
    assert_eq!(result.unwrap(), LEN);
    assert!(holds(&buf, 0, LEN));
    assert_eq!(reads.most.load(Ordering::SeqCst), 2);
    assert_eq!(reads.calls.load(Ordering::SeqCst), 4);
}

#[test]
fn a_read_alongside_another_call_keeps_to_one_channel() {
    // Two of three channels are idle, but taking them would leave the other caller's
    // next call to the socket.
    let (client, fd, reads) = serve(3, 0..0, Duration::from_millis(50));
    std::thread::scope(|scope| {
        let other = scope.spawn(|| read(&fd, 0, 4096).0.unwrap());
        while reads.now.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        let (result, buf) = read(&fd, 0, 1 << 20);
        assert_eq!(result.unwrap(), LEN);
        assert!(holds(&buf, 0, LEN));
        assert_eq!(other.join().unwrap(), 4096);
    });
    assert_eq!(
        reads.calls.load(Ordering::SeqCst),
        2,
        "one read each, not pieces"
    );
    assert_eq!(client.idle_channels(), 3);
}
