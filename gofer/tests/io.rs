//! OpenAt policy and donation, PRead/PWrite, FAllocate (hole punching), FSync, and FIFOs
//! that never block the gofer.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use lisafs_gofer::host::{FileKind, HostOptions};
use lisafs_gofer::wire::Errno;
use lisafs_server::{Backend, OpenFlags};
use rustix::fs::{FileType, Mode, OFlags};

const FALLOC_FL_KEEP_SIZE: u64 = 0x01;
const FALLOC_FL_PUNCH_HOLE: u64 = 0x02;

#[test]
fn read_and_write_at_offsets() {
    let fx = Fixture::new();
    let f = fx.file(&fx.root, "f", b"hello world");
    let open = fx.backend.open(&f.file, RDWR).unwrap().open;
    let mut buf = [0u8; 5];
    assert_eq!(fx.backend.read(&open, 6, &mut buf).unwrap(), 5);
    assert_eq!(&buf, b"world");
    assert_eq!(fx.backend.write(&open, 0, b"HELLO").unwrap(), 5);
    assert_eq!(
        fx.backend.read(&open, 11, &mut buf).unwrap(),
        0,
        "end of file"
    );
    assert_eq!(std::fs::read(fx.path("f")).unwrap(), b"HELLO world");
    fx.backend.sync(&open).unwrap();
}

#[test]
fn access_mode_is_enforced() {
    let fx = Fixture::new();
    let f = fx.file(&fx.root, "f", b"abc");
    let ro = fx.backend.open(&f.file, RDONLY).unwrap();
    assert_eq!(errno(fx.backend.write(&ro.open, 0, b"x")), Errno::EBADF);
    assert_eq!(errno(fx.backend.allocate(&ro.open, 0, 0, 10)), Errno::EBADF);
    let donated = ro.donated.unwrap();
    let status = rustix::fs::fcntl_getfl(&donated).unwrap();
    assert_eq!(status & OFlags::ACCMODE, OFlags::RDONLY, "never upgraded");
    let wo = fx.backend.open(&f.file, WRONLY).unwrap().open;
    let mut buf = [0u8; 3];
    assert_eq!(errno(fx.backend.read(&wo, 0, &mut buf)), Errno::EBADF);
}

#[test]
fn open_with_truncate_empties_the_file() {
    let fx = Fixture::new();
    let f = fx.file(&fx.root, "f", b"abc");
    let flags = OpenFlags {
        truncate: true,
        ..WRONLY
    };
    fx.backend.open(&f.file, flags).unwrap();
    assert_eq!(lstat(&fx.path("f")).len(), 0);
}

#[test]
fn directories_open_read_only_and_are_never_donated() {
    let fx = Fixture::new();
    let opened = fx.backend.open(&fx.root, RDONLY).unwrap();
    assert!(opened.donated.is_none());
    assert_eq!(opened.open.kind(), FileKind::Directory);
    let status = rustix::fs::fcntl_getfl(&opened.open).unwrap();
    assert_eq!(status & OFlags::ACCMODE, OFlags::RDONLY);
}

#[test]
fn fallocate_mode_is_passed_through_and_holes_can_be_punched() {
    let fx = Fixture::new();
    let f = fx.file(&fx.root, "f", b"");
    let open = fx.backend.open(&f.file, RDWR).unwrap().open;
    fx.backend.allocate(&open, 0, 0, 1 << 20).unwrap();
    assert_eq!(lstat(&fx.path("f")).len(), 1 << 20);
    let full = lstat(&fx.path("f")).blocks();
    fx.backend.write(&open, 0, &vec![1u8; 1 << 20]).unwrap();
    let mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
    fx.backend.allocate(&open, mode, 0, 512 * 1024).unwrap();
    let meta = lstat(&fx.path("f"));
    assert_eq!(meta.len(), 1 << 20, "KEEP_SIZE");
    assert!(
        meta.blocks() < full,
        "the hole freed blocks ({} < {full})",
        meta.blocks()
    );
    let mut buf = [9u8; 16];
    fx.backend.read(&open, 4096, &mut buf).unwrap();
    assert_eq!(buf, [0u8; 16]);
    // PUNCH_HOLE without KEEP_SIZE is refused by the host, not by the gofer.
    assert_eq!(
        errno(fx.backend.allocate(&open, FALLOC_FL_PUNCH_HOLE, 0, 10)),
        Errno::EOPNOTSUPP
    );
    assert_eq!(
        errno(fx.backend.allocate(&open, 1 << 40, 0, 10)),
        Errno::EINVAL
    );
}

fn make_fifo(fx: &Fixture, name: &str) {
    let dir = rustix::fs::open(fx.dir.path(), OFlags::PATH, Mode::empty()).unwrap();
    rustix::fs::mknodat(&dir, name, FileType::Fifo, Mode::from_raw_mode(0o666), 0).unwrap();
}

/// Runs `f` on another thread and fails (instead of hanging) if it takes over 5 s.
fn within_5s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the call blocked")
}

#[test]
fn fifos_are_refused_by_default_and_nothing_reaches_a_waiting_writer() {
    let fx = Fixture::new();
    make_fifo(&fx, "p");
    // A host writer blocks until some reader opens the FIFO.
    let path = fx.path("p");
    let (opened_tx, opened_rx) = mpsc::channel();
    let writer = std::thread::spawn(move || {
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        opened_tx.send(()).unwrap();
        drop(file);
    });
    let p = fx.walk(&fx.root, "p").unwrap();
    assert_eq!(p.file.kind(), FileKind::Fifo);
    fx.backend.stat(&p.file).unwrap();
    let _ = fx.backend.list_xattr(&p.file, 0);
    let _ = fx.backend.get_xattr(&p.file, b"user.x", 0);
    assert_eq!(errno(fx.backend.open(&p.file, RDONLY)), Errno::EPERM);
    assert_eq!(errno(fx.backend.open(&p.file, WRONLY)), Errno::EPERM);
    let dir = fx.backend.open(&fx.root, RDONLY).unwrap().open;
    assert_eq!(fx.backend.getdents(&dir, true, 4096).unwrap().len(), 1);
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        opened_rx.try_recv().is_err(),
        "a gofer operation opened the FIFO"
    );
    // Release the writer.
    let reader = std::fs::File::open(fx.path("p")).unwrap();
    opened_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    writer.join().unwrap();
    drop(reader);
}

#[test]
fn fifos_open_without_blocking_when_allowed_and_are_donated() {
    let fx = std::sync::Arc::new(Fixture::with(HostOptions {
        fifo_open: true,
        ..HostOptions::default()
    }));
    make_fifo(&fx, "p");
    let fx2 = std::sync::Arc::clone(&fx);
    // No writer: a read-only open completes at once.
    let reader = within_5s(move || {
        let p = fx2.walk(&fx2.root, "p").unwrap();
        fx2.backend.open(&p.file, RDONLY).unwrap()
    });
    let donated = reader.donated.unwrap();
    assert!(!rustix::fs::fcntl_getfl(&donated)
        .unwrap()
        .contains(OFlags::NONBLOCK));
    // With a reader present a writer opens too; data flows through the donated FDs.
    let p = fx.walk(&fx.root, "p").unwrap();
    let writer = fx.backend.open(&p.file, WRONLY).unwrap();
    rustix::io::write(writer.donated.as_ref().unwrap(), b"ping").unwrap();
    let mut buf = [0u8; 4];
    rustix::io::read(&donated, &mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    // PRead over RPC on a FIFO is refused by the host instead of waiting.
    assert_eq!(
        errno(fx.backend.read(&reader.open, 0, &mut buf)),
        Errno::ESPIPE
    );
    drop((writer, reader.open, donated));
    // No reader: a write-only open fails at once instead of waiting.
    let fx3 = std::sync::Arc::clone(&fx);
    let result = within_5s(move || {
        let p = fx3.walk(&fx3.root, "p").unwrap();
        fx3.backend.open(&p.file, WRONLY).map(drop)
    });
    assert_eq!(result.unwrap_err(), Errno::ENXIO);
}

#[test]
fn sockets_cannot_be_opened() {
    let fx = Fixture::with(HostOptions {
        uds_create: true,
        ..HostOptions::default()
    });
    let (node, _socket, _donated) = fx.backend.bind(&fx.root, n("s"), 1, attrs(0o755)).unwrap();
    assert_eq!(errno(fx.backend.open(&node.file, RDONLY)), Errno::EPERM);
}
