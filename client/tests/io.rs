//! Reads, writes, sync and flush on an OpenFd: chunking by the server's limit, EOF, short
//! transfers and donated host FDs.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)] // Test sizes are small.

mod fake;

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::net::UnixStream;

use fake::{inode, stat, Fake, Mount, Reply, REG};
use lisafs_client::wire::{
    AnyRequest, AnyResponse, Errno, FStatResp, FSyncReq, FdId, Mid, OpenAtResp, PReadResp,
    PWriteResp, WalkResp, WalkStatus,
};
use lisafs_client::{Client, File, O_RDONLY, O_RDWR};

/// A fake serving one regular file, "f" (FDID 2, OpenFd 3), whose contents are `data`.
/// PWrite stores at most `write_cap` bytes per request.
fn file_fake(max_message_size: u32, mut data: Vec<u8>, write_cap: usize) -> (Client, Fake) {
    let mount = Mount {
        max_message_size,
        ..Mount::default()
    };
    Fake::start(mount, move |req| match req {
        AnyRequest::Walk(_) => Reply::Resp(AnyResponse::Walk(WalkResp {
            status: WalkStatus::Success,
            inodes: vec![inode(2, REG)],
        })),
        AnyRequest::OpenAt(_) => Reply::Resp(AnyResponse::OpenAt(OpenAtResp { open_fd: FdId(3) })),
        AnyRequest::FStat(_) => {
            let mut st = stat(REG);
            st.size = data.len() as u64;
            Reply::Resp(AnyResponse::FStat(FStatResp { stat: st }))
        }
        AnyRequest::PRead(read) => {
            let start = (read.offset as usize).min(data.len());
            let end = (start + read.count as usize).min(data.len());
            Reply::Resp(AnyResponse::PRead(PReadResp {
                data: data[start..end].to_vec(),
            }))
        }
        AnyRequest::PWrite(write) => {
            let n = write.data.len().min(write_cap);
            let start = write.offset as usize;
            if data.len() < start + n {
                data.resize(start + n, 0);
            }
            data[start..start + n].copy_from_slice(&write.data[..n]);
            Reply::Resp(AnyResponse::PWrite(PWriteResp { count: n as u64 }))
        }
        other => Reply::empty(other),
    })
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// (offset, count) of every PRead in `log`.
fn preads(log: &[AnyRequest]) -> Vec<(u64, u32)> {
    log.iter()
        .filter_map(|req| match req {
            AnyRequest::PRead(r) => Some((r.offset, r.count)),
            _ => None,
        })
        .collect()
}

/// (offset, length) of every PWrite in `log`.
fn pwrites(log: &[AnyRequest]) -> Vec<(u64, usize)> {
    log.iter()
        .filter_map(|req| match req {
            AnyRequest::PWrite(w) => Some((w.offset, w.data.len())),
            _ => None,
        })
        .collect()
}

#[test]
fn pread_is_chunked_at_max_message_size_minus_8() {
    let (client, fake) = file_fake(4096, pattern(20_000), usize::MAX);
    let file = client.open("f", O_RDONLY).unwrap();
    let mut buf = vec![0; 10_000];

    let n = file.read_at(&mut buf, 100).unwrap();

    assert_eq!(n, 10_000);
    assert_eq!(buf, pattern(20_000)[100..10_100]);
    assert_eq!(
        preads(&fake.log()),
        [(100, 4088), (4188, 4088), (8276, 1824)]
    );
}

#[test]
fn pread_stops_at_the_first_short_chunk() {
    let (client, fake) = file_fake(4096, pattern(5000), usize::MAX);
    let file = client.open("f", O_RDONLY).unwrap();
    let mut buf = vec![0; 10_000];

    let n = file.read_at(&mut buf, 0).unwrap();

    assert_eq!(n, 5000);
    assert_eq!(buf[..5000], pattern(5000)[..]);
    assert_eq!(preads(&fake.log()), [(0, 4088), (4088, 4088)]);
}

#[test]
fn end_of_file_is_a_zero_length_read() {
    let (client, fake) = file_fake(4096, pattern(10), usize::MAX);
    let file = client.open("f", O_RDONLY).unwrap();
    let mut buf = [0; 64];

    assert_eq!(file.read_at(&mut buf, 10).unwrap(), 0);
    assert_eq!(file.read_at(&mut buf, 1000).unwrap(), 0);
    assert_eq!(file.read_at(&mut [], 0).unwrap(), 0);
    // The empty read sent nothing.
    assert_eq!(preads(&fake.log()).len(), 2);
}

#[test]
fn pread_reply_longer_than_requested_is_eio() {
    let (client, _fake) = Fake::start(Mount::default(), |req| match req {
        AnyRequest::PRead(_) => Reply::Resp(AnyResponse::PRead(PReadResp { data: vec![1; 9] })),
        AnyRequest::OpenAt(_) => Reply::Resp(AnyResponse::OpenAt(OpenAtResp { open_fd: FdId(3) })),
        other => Reply::empty(other),
    });
    let opened = client.root().open_at(O_RDONLY).unwrap();

    let err = opened.fd.pread(0, &mut [0; 8]).unwrap_err();

    assert_eq!(err.errno(), Errno::EIO);
}

#[test]
fn pwrite_is_chunked_at_max_message_size_minus_20() {
    let (client, fake) = file_fake(4096, Vec::new(), usize::MAX);
    let file = client.open("f", O_RDWR).unwrap();

    let n = file.write_at(&pattern(10_000), 7).unwrap();

    assert_eq!(n, 10_000);
    assert_eq!(
        pwrites(&fake.log()),
        [(7, 4076), (4083, 4076), (8159, 1848)]
    );
    let mut back = vec![0; 10_000];
    file.read_at(&mut back, 7).unwrap();
    assert_eq!(back, pattern(10_000));
}

#[test]
fn pwrite_stops_at_the_first_short_write() {
    let (client, fake) = file_fake(4096, Vec::new(), 1000);
    let file = client.open("f", O_RDWR).unwrap();

    let n = file.write_at(&pattern(10_000), 0).unwrap();

    assert_eq!(n, 1000);
    assert_eq!(pwrites(&fake.log()), [(0, 4076)]);
}

#[test]
fn client_write_repeats_short_writes_until_everything_is_written() {
    let (client, _fake) = file_fake(4096, Vec::new(), 1000);

    client.write("f", pattern(2500)).unwrap();

    assert_eq!(client.read("f").unwrap(), pattern(2500));
}

#[test]
fn client_read_reads_until_eof() {
    let (client, fake) = file_fake(4096, pattern(9000), usize::MAX);

    let data = client.read("f").unwrap();

    assert_eq!(data, pattern(9000));
    let reads = preads(&fake.log());
    assert_eq!(reads.last(), Some(&(9000, 4088)));
}

#[test]
fn file_implements_std_io_read_write_and_seek() {
    let (client, _fake) = file_fake(4096, pattern(100), usize::MAX);
    let mut file = client.open("f", O_RDWR).unwrap();

    let mut first = [0; 10];
    file.read_exact(&mut first).unwrap();
    assert_eq!(first[..], pattern(100)[..10]);
    assert_eq!(file.seek(SeekFrom::End(-5)).unwrap(), 95);
    file.write_all(b"hello world").unwrap();
    assert_eq!(file.stream_position().unwrap(), 106);
    file.seek(SeekFrom::Start(95)).unwrap();
    let mut rest = String::new();
    file.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "hello world");
    assert!(file.seek(SeekFrom::Current(-1000)).is_err());
}

#[test]
fn donated_host_fd_is_delivered_with_open() {
    let (mine, theirs) = UnixStream::pair().unwrap();
    let mut donated = Some(theirs);
    let (client, _fake) = Fake::start(Mount::default(), move |req| match req {
        AnyRequest::OpenAt(_) => Reply::WithFds(
            AnyResponse::OpenAt(OpenAtResp { open_fd: FdId(3) }),
            donated.take().map(Into::into).into_iter().collect(),
        ),
        other => Reply::empty(other),
    });

    let opened = client.root().open_at(O_RDONLY).unwrap();

    let file = File::new(opened);
    let host = file.into_parts().1.unwrap();
    let mut host = UnixStream::from(host);
    host.write_all(b"ping").unwrap();
    let mut got = [0; 4];
    (&mine).read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
}

#[test]
fn open_without_a_donated_fd_is_fine() {
    let (client, _fake) = file_fake(4096, Vec::new(), usize::MAX);

    let file = client.open("f", O_RDONLY).unwrap();

    assert!(file.host_fd().is_none());
}

#[test]
fn flush_is_a_silent_no_op_when_the_server_does_not_advertise_it() {
    let (client, fake) = file_fake(4096, Vec::new(), usize::MAX);
    let mut file = client.open("f", O_RDWR).unwrap();

    file.flush().unwrap();

    assert!(!fake::mids(&fake.log()).contains(&Mid::Flush));
}

#[test]
fn flush_is_sent_when_advertised() {
    let mount = Mount {
        supported: (1..=33).collect(),
        ..Mount::default()
    };
    let (client, fake) = Fake::start(mount, |req| match req {
        AnyRequest::OpenAt(_) => Reply::Resp(AnyResponse::OpenAt(OpenAtResp { open_fd: FdId(3) })),
        other => Reply::empty(other),
    });
    let opened = client.root().open_at(O_RDONLY).unwrap();

    opened.fd.flush().unwrap();

    assert_eq!(fake::mids(&fake.sent()), [Mid::OpenAt, Mid::Flush]);
}

#[test]
fn fsync_of_many_files_is_one_rpc() {
    let mut next = 3;
    let (client, fake) = Fake::start(Mount::default(), move |req| match req {
        AnyRequest::OpenAt(_) => {
            next += 1;
            Reply::Resp(AnyResponse::OpenAt(OpenAtResp {
                open_fd: FdId(next - 1),
            }))
        }
        other => Reply::empty(other),
    });
    let a = client.root().open_at(O_RDONLY).unwrap();
    let b = client.root().open_at(O_RDONLY).unwrap();

    client.fsync(&[&a.fd, &b.fd]).unwrap();

    let sent = fake.sent();
    assert_eq!(
        sent.last(),
        Some(&AnyRequest::FSync(FSyncReq {
            fds: vec![FdId(3), FdId(4)]
        }))
    );
}

#[test]
fn client_read_starts_small_and_doubles_up_to_the_message_limit() {
    let (client, fake) = file_fake(600_008, pattern(1_000_000), usize::MAX);

    assert_eq!(client.read("f").unwrap(), pattern(1_000_000));
    let reads = preads(&fake.log());
    const K: u32 = 1024;
    let at = |kib: u32| u64::from(kib * K);
    let expected = [
        (0, 64 * K),
        (at(64), 128 * K),
        (at(192), 256 * K),
        (at(448), 512 * K),
        // Capped: the message limit less the response's 8-byte count.
        (at(960), 600_000),
        // The read before was short (the file ends at 1,000,000): this one finds EOF.
        (1_000_000, 600_000),
    ];
    assert_eq!(reads, expected);
}
