//! FUSE passthrough in `lisafs-mount`: the kernel reads and writes the host file the gofer
//! opened itself, and files of one inode opened in different ways stay
//! coherent. A stopped bridge process tells the two paths apart: passthrough I/O still
//! completes, I/O through the bridge waits for it. Needs root and /dev/fuse.
#![allow(clippy::unwrap_used)]

mod mount_harness;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use mount_harness::{ready, Dirs, Mount, LIVENESS};
use rustix::process::Signal;

/// Runs `io` while the bridge is stopped: `Some(result)` if it finished within `wait`
/// (then the bridge had no part in it), `None` if it was still waiting for the bridge.
fn while_stopped<T: Send + 'static>(
    mount: &Mount,
    wait: Duration,
    io: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    mount.signal(Signal::STOP);
    let (tx, rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        let _ = tx.send(io());
    });
    let done = rx.recv_timeout(wait).ok();
    mount.signal(Signal::CONT);
    worker.join().unwrap();
    done
}

fn share_file(dirs: &Dirs, name: &str, content: &[u8]) {
    std::fs::write(dirs.path("b").join(name), content).unwrap();
}

/// Reads only: before each write the kernel asks the bridge for the file's
/// `security.capability` (it clears set-ID bits and capabilities on writes), so writes
/// still meet the bridge once, but their data goes straight to the host file.
#[test]
fn passthrough_reads_need_no_bridge_and_writes_reach_the_host_file() {
    if !ready() {
        return;
    }
    let dirs = Dirs::new();
    share_file(&dirs, "data", &[7; 65536]);
    let mount = Mount::new(&dirs, &[]);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dirs.m().join("data"))
        .unwrap();
    let file = std::sync::Arc::new(file);
    let reader = std::sync::Arc::clone(&file);
    let done = while_stopped(&mount, LIVENESS, move || {
        let mut buf = [0; 4096];
        reader.read_exact_at(&mut buf, 8192).unwrap();
        buf.iter().all(|&byte| byte == 7)
    });
    assert_eq!(done, Some(true));
    file.write_all_at(b"written through", 100).unwrap();
    let host = std::fs::read(dirs.path("b").join("data")).unwrap();
    assert_eq!(&host[100..115], b"written through");
}

#[test]
fn without_passthrough_reads_wait_for_the_bridge() {
    if !ready() {
        return;
    }
    let dirs = Dirs::new();
    share_file(&dirs, "data", &[7; 65536]);
    let mount = Mount::new(&dirs, &["--no-passthrough"]);
    let file = File::open(dirs.m().join("data")).unwrap();
    let done = while_stopped(&mount, Duration::from_millis(300), move || {
        let mut buf = [0; 4096];
        file.read_exact_at(&mut buf, 8192).unwrap();
    });
    assert_eq!(done, None, "a read finished without the bridge");
}

/// The kernel takes one backing ID per inode for all its passthrough opens, and opens
/// the file anew for each with that open's flags: files of one inode opened read-only,
/// write-only and read-write at once all work and see each other's writes, and once all
/// are closed the next open registers a new backing file.
#[test]
fn opens_of_one_file_in_every_access_mode_share_it() {
    if !ready() {
        return;
    }
    let dirs = Dirs::new();
    share_file(&dirs, "f", &[0; 8192]);
    let _mount = Mount::new(&dirs, &[]);
    let path = dirs.m().join("f");
    let open = |read: bool, write: bool| {
        OpenOptions::new()
            .read(read)
            .write(write)
            .open(&path)
            .unwrap()
    };
    for round in [b'a', b'b'] {
        let reader = open(true, false);
        let writer = open(false, true);
        let both = open(true, true);
        writer.write_all_at(&[round; 16], 0).unwrap();
        both.write_all_at(&[round + 16; 16], 4096).unwrap();
        let mut buf = [0; 8192];
        for file in [&reader, &both] {
            file.read_exact_at(&mut buf, 0).unwrap();
            assert_eq!(&buf[..16], &[round; 16]);
            assert_eq!(&buf[4096..4112], &[round + 16; 16]);
        }
    }
    let host = std::fs::read(dirs.path("b").join("f")).unwrap();
    assert_eq!(&host[..16], &[b'b'; 16]);
}
