//! Socket framing over real socketpairs: frames, FD donation, limits and peer failures.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::thread;

use rustix::fs::fstat;
use rustix::io::{fcntl_getfd, Errno, FdFlags};
use rustix::net::{send, SendFlags};
use rustix::pipe::{pipe_with, PipeFlags};

use lisafs_protocol::transport::socket::{FramedSocket, SocketError, MAX_FDS, SEND_BUFFER};
use lisafs_protocol::wire::{Mid, MAX_MESSAGE_SIZE};

const LIMIT: u32 = MAX_MESSAGE_SIZE;

fn pair() -> (FramedSocket, FramedSocket) {
    FramedSocket::pair().unwrap()
}

fn temp_file(content: &[u8]) -> File {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(content).unwrap();
    file
}

/// Writes raw bytes, bypassing the framing, to build malformed or split frames.
fn raw_write(sock: &FramedSocket, bytes: &[u8]) {
    assert_eq!(send(sock, bytes, SendFlags::NOSIGNAL).unwrap(), bytes.len());
}

/// A pipe whose read end reports EOF only once every copy of the write end is closed: the
/// way to prove that a write end sent as an unwanted FD was not leaked into this process.
fn pipe() -> (OwnedFd, OwnedFd) {
    pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).unwrap()
}

fn write_end_is_closed_everywhere(read_end: &OwnedFd) -> bool {
    match rustix::io::read(read_end, &mut [0u8; 1]) {
        Ok(0) => true,
        Err(Errno::AGAIN) => false,
        other => panic!("unexpected read result {other:?}"),
    }
}

#[test]
fn frames_arrive_in_order_with_their_mids() {
    let (a, mut b) = pair();
    a.send(Mid::FStat.as_u16(), &[7, 0, 0, 0, 0, 0, 0, 0], &[])
        .unwrap();
    a.send(Mid::Mount.as_u16(), &[], &[]).unwrap();
    a.send(999, b"unknown mids are framed too", &[]).unwrap();

    let frame = b.recv(LIMIT, 0).unwrap();
    assert_eq!(
        (frame.mid, frame.payload),
        (3, &[7u8, 0, 0, 0, 0, 0, 0, 0][..])
    );
    let frame = b.recv(LIMIT, 0).unwrap();
    assert_eq!((frame.mid, frame.payload.len()), (1, 0));
    let frame = b.recv(LIMIT, 0).unwrap();
    assert_eq!(
        (frame.mid, frame.payload),
        (999, &b"unknown mids are framed too"[..])
    );
}

#[test]
fn a_maximum_size_payload_crosses_in_many_partial_writes() {
    let (a, mut b) = pair();
    let payload: Vec<u8> = (0..LIMIT).map(|i| (i % 251) as u8).collect();
    let expected = payload.clone();
    // The socket buffer is far smaller than 2 MiB, so send blocks and resumes mid-frame.
    let sender = thread::spawn(move || a.send(Mid::PWrite.as_u16(), &payload, &[]));
    let frame = b.recv(LIMIT, 0).unwrap();
    assert_eq!(frame.mid, Mid::PWrite.as_u16());
    assert!(frame.payload == expected.as_slice());
    sender.join().unwrap().unwrap();
}

#[test]
fn a_largest_frame_is_queued_whole_before_the_peer_reads_where_the_system_allows() {
    // The kernel grants twice what is asked, at most twice `net.core.wmem_max`.
    let wmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (a, mut b) = pair();
    let granted = rustix::net::sockopt::socket_send_buffer_size(&a).unwrap();
    assert!(granted >= 2 * SEND_BUFFER.min(wmem_max), "{granted} bytes");
    if wmem_max < SEND_BUFFER {
        return; // A frame this large then waits for the reader, as it always did.
    }
    let (sent, done) = std::sync::mpsc::channel();
    let sender = thread::spawn(move || {
        a.send(7, &vec![0x5a; LIMIT as usize], &[]).unwrap();
        sent.send(()).unwrap();
        a
    });
    done.recv_timeout(std::time::Duration::from_secs(10))
        .expect("the send waited for the reader");
    let frame = b.recv(LIMIT, 0).unwrap();
    assert_eq!((frame.mid, frame.payload.len()), (7, LIMIT as usize));
    assert!(frame.payload.iter().all(|&byte| byte == 0x5a));
    drop(sender.join().unwrap());
}

#[test]
fn a_donated_fd_refers_to_the_same_file_and_is_cloexec() {
    let (a, mut b) = pair();
    let mut file = temp_file(b"host data");
    a.send(
        Mid::OpenAt.as_u16(),
        &[10, 0, 0, 0, 0, 0, 0, 0],
        &[file.as_fd()],
    )
    .unwrap();

    let frame = b.recv(LIMIT, Mid::OpenAt.response_fds()).unwrap();
    assert_eq!(frame.fds.len(), 1);
    let received = &frame.fds[0];
    let (ours, theirs) = (fstat(&file).unwrap(), fstat(received).unwrap());
    assert_eq!((ours.st_dev, ours.st_ino), (theirs.st_dev, theirs.st_ino));
    assert!(fcntl_getfd(received).unwrap().contains(FdFlags::CLOEXEC));

    // Data written through the received FD is visible through the original.
    let mut via_received = File::from(received.try_clone().unwrap());
    via_received.write_all(b" and more").unwrap();
    let mut content = String::new();
    file.rewind().unwrap();
    file.read_to_string(&mut content).unwrap();
    assert_eq!(content, "host data and more");
}

#[test]
fn donated_fds_keep_their_order() {
    let (a, mut b) = pair();
    let (first, second) = (temp_file(b"first"), temp_file(b"second"));
    a.send(
        Mid::Channel.as_u16(),
        &[0; 16],
        &[first.as_fd(), second.as_fd()],
    )
    .unwrap();

    let frame = b.recv(LIMIT, Mid::Channel.response_fds()).unwrap();
    let inodes: Vec<u64> = frame
        .fds
        .iter()
        .map(|fd| fstat(fd).unwrap().st_ino)
        .collect();
    let want = vec![
        fstat(&first).unwrap().st_ino,
        fstat(&second).unwrap().st_ino,
    ];
    assert_eq!(inodes, want);
}

#[test]
fn fds_beyond_those_wanted_are_closed() {
    let (a, mut b) = pair();
    let file = temp_file(b"x");
    let (read_end, write_end) = pipe();
    a.send(
        Mid::OpenAt.as_u16(),
        &[0; 8],
        &[file.as_fd(), write_end.as_fd(), write_end.as_fd()],
    )
    .unwrap();
    drop(write_end);

    let frame = b.recv(LIMIT, 1).unwrap();
    assert_eq!(frame.fds.len(), 1);
    assert_eq!(
        fstat(&frame.fds[0]).unwrap().st_ino,
        fstat(&file).unwrap().st_ino
    );
    assert!(write_end_is_closed_everywhere(&read_end));
}

#[test]
fn fds_sent_where_none_are_wanted_are_closed() {
    // Clients never send FDs; a server reads requests with want_fds = 0.
    let (a, mut b) = pair();
    let (read_end, write_end) = pipe();
    a.send(
        Mid::FStat.as_u16(),
        &[1, 0, 0, 0, 0, 0, 0, 0],
        &[write_end.as_fd()],
    )
    .unwrap();
    drop(write_end);

    let frame = b.recv(LIMIT, 0).unwrap();
    assert_eq!((frame.mid, frame.fds.len()), (Mid::FStat.as_u16(), 0));
    assert!(write_end_is_closed_everywhere(&read_end));
}

#[test]
fn fds_attached_after_the_first_header_bytes_are_closed() {
    let (a, mut b) = pair();
    let (read_end, write_end) = pipe();
    // Header in one write, then the payload carrying an FD as a separate sendmsg.
    raw_write(&a, &[4, 0, 0, 0, 3, 0, 0, 0]);
    let raw = FramedSocket::new(a.into_inner());
    send_bytes_with_fd(&raw, &[1, 2, 3, 4], write_end.as_fd());
    drop(write_end);

    let frame = b.recv(LIMIT, 1).unwrap();
    assert_eq!((frame.payload, frame.fds.len()), (&[1u8, 2, 3, 4][..], 0));
    assert!(write_end_is_closed_everywhere(&read_end));
}

/// Sends raw bytes with one FD attached (no framing).
fn send_bytes_with_fd(sock: &FramedSocket, bytes: &[u8], fd: BorrowedFd<'_>) {
    use std::io::IoSlice;
    use std::mem::MaybeUninit;

    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage};

    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
    let sent = sendmsg(
        sock,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .unwrap();
    assert_eq!(sent, bytes.len());
}

#[test]
fn two_parts_travel_as_one_payload() {
    let (a, mut b) = pair();
    let data = vec![7u8; 100_000];
    let sender = thread::spawn(move || {
        a.send_parts(Mid::PWrite.as_u16(), [b"fixed", &data], &[])
            .unwrap();
        a.send_parts(Mid::FStat.as_u16(), [b"", b"only"], &[])
            .unwrap();
        a
    });
    let frame = b.recv(LIMIT, 0).unwrap();
    assert_eq!(
        (frame.mid, frame.payload.len()),
        (Mid::PWrite.as_u16(), 100_005)
    );
    assert_eq!(&frame.payload[..5], b"fixed");
    assert!(frame.payload[5..].iter().all(|&byte| byte == 7));
    let frame = b.recv(LIMIT, 0).unwrap();
    assert_eq!(frame.payload, b"only");
    drop(sender.join().unwrap());
}

#[test]
fn missing_fds_are_visible_to_the_caller() {
    let (a, mut b) = pair();
    a.send(Mid::OpenAt.as_u16(), &[0; 8], &[]).unwrap();
    let frame = b.recv(LIMIT, Mid::OpenAt.response_fds()).unwrap();
    assert!(frame.fds.is_empty());
}

#[test]
fn a_4_gib_payload_length_is_rejected_without_buffering_it() {
    let (a, mut b) = pair();
    raw_write(&a, &[0xff, 0xff, 0xff, 0xff, 5, 0, 0, 0]);
    raw_write(&a, b"only a few bytes follow");

    let err = b.recv(LIMIT, 0).unwrap_err();
    assert!(matches!(
        err,
        SocketError::Oversized { mid: 5, len: 0xffff_ffff, max } if max == u64::from(LIMIT)
    ));
    // Only the fixed read-ahead was allocated.
    assert!(b.recv_buffer_len() <= 16 * 1024, "{}", b.recv_buffer_len());
}

#[test]
fn frames_read_ahead_keep_their_boundaries_whatever_their_sizes() {
    let (a, mut b) = pair();
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let expected = big.clone();
    let writer = thread::spawn(move || {
        a.send(Mid::FStat.as_u16(), &[1; 8], &[]).unwrap();
        a.send(Mid::PWrite.as_u16(), &big, &[]).unwrap();
        a.send(Mid::Flush.as_u16(), &[2; 8], &[]).unwrap();
        a.send(Mid::Mount.as_u16(), &[], &[]).unwrap();
    });
    writer.join().unwrap();

    // The first read takes the first frame and the start of the second.
    let frame = b.recv(LIMIT, 0).unwrap();
    assert_eq!(
        (frame.mid, frame.payload),
        (Mid::FStat.as_u16(), &[1u8; 8][..])
    );
    let frame = b.recv(LIMIT, 0).unwrap();
    assert_eq!(frame.mid, Mid::PWrite.as_u16());
    assert!(frame.payload == expected.as_slice());
    let frame = b.recv(LIMIT, 0).unwrap();
    assert_eq!(
        (frame.mid, frame.payload),
        (Mid::Flush.as_u16(), &[2u8; 8][..])
    );
    let frame = b.recv(LIMIT, 0).unwrap();
    assert_eq!((frame.mid, frame.payload.len()), (Mid::Mount.as_u16(), 0));
}

#[test]
fn a_split_frame_puts_its_rest_into_the_callers_buffer_and_keeps_the_next_frame() {
    let (a, mut b) = pair();
    let pread = Mid::PRead.as_u16();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let mut long = 8u64.to_le_bytes().to_vec();
    long.extend_from_slice(&data);
    let sent = long.clone();
    let writer = thread::spawn(move || {
        // A short split frame that arrives whole in the read-ahead with the start of a
        // long one, then a frame after it.
        a.send(pread, &[1, 0, 0, 0, 0, 0, 0, 0, 0xaa, 0xbb], &[])
            .unwrap();
        a.send(pread, &sent, &[]).unwrap();
        a.send(Mid::Flush.as_u16(), &[2; 8], &[]).unwrap();
    });
    let mut dest = vec![0u8; 400_000];
    let (frame, rest) = b.recv_split(LIMIT, 0, (pread, 8), &mut dest).unwrap();
    assert_eq!(
        (frame.mid, frame.payload),
        (pread, &[1u8, 0, 0, 0, 0, 0, 0, 0][..])
    );
    assert_eq!(rest, Some(2));
    assert_eq!(dest[..2], [0xaa, 0xbb]);
    let (frame, rest) = b.recv_split(LIMIT, 0, (pread, 8), &mut dest).unwrap();
    assert_eq!(frame.payload, &long[..8]);
    assert_eq!(rest, Some(data.len()));
    assert!(dest[..data.len()] == data[..]);
    writer.join().unwrap();
    let frame = b.recv(LIMIT, 0).unwrap();
    assert_eq!(
        (frame.mid, frame.payload),
        (Mid::Flush.as_u16(), &[2u8; 8][..])
    );
}

#[test]
fn a_frame_that_cannot_be_split_is_received_whole() {
    let (a, mut b) = pair();
    let pread = Mid::PRead.as_u16();
    a.send(Mid::Error.as_u16(), &[5, 0, 0, 0], &[]).unwrap();
    a.send(pread, &[7; 20], &[]).unwrap(); // 12 bytes after the head; room for 10
    a.send(pread, &[9; 5], &[]).unwrap(); // shorter than the head
    let mut dest = [0u8; 10];
    for (mid, len) in [(Mid::Error.as_u16(), 4), (pread, 20), (pread, 5)] {
        let (frame, rest) = b.recv_split(LIMIT, 0, (pread, 8), &mut dest).unwrap();
        assert_eq!((frame.mid, frame.payload.len(), rest), (mid, len, None));
    }
    assert_eq!(
        dest, [0; 10],
        "a whole frame left the caller's buffer alone"
    );
}

#[test]
fn peer_close_in_a_split_frames_rest_is_unexpected_eof() {
    let (a, mut b) = pair();
    raw_write(
        &a,
        &[100, 0, 0, 0, 3, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9],
    );
    drop(a);
    let mut dest = [0u8; 100];
    assert!(matches!(
        b.recv_split(LIMIT, 0, (3, 8), &mut dest),
        Err(SocketError::UnexpectedEof {
            received: 11,
            expected: 100
        })
    ));
}

#[test]
fn an_oversized_payload_partly_read_ahead_is_discarded_in_step() {
    let (a, mut b) = pair();
    a.send(Mid::FStat.as_u16(), &[1; 8], &[]).unwrap();
    a.send(Mid::PWrite.as_u16(), &[3; 10_000], &[]).unwrap();
    a.send(Mid::Flush.as_u16(), &[2; 8], &[]).unwrap();

    assert_eq!(b.recv(100, 0).unwrap().mid, Mid::FStat.as_u16());
    let len = match b.recv(100, 0) {
        Err(SocketError::Oversized { len, .. }) => len,
        other => panic!("expected Oversized, got {other:?}"),
    };
    assert_eq!(len, 10_000);
    b.discard(len).unwrap();
    let frame = b.recv(100, 0).unwrap();
    assert_eq!(
        (frame.mid, frame.payload),
        (Mid::Flush.as_u16(), &[2u8; 8][..])
    );
}

#[test]
fn fds_after_a_header_start_that_was_read_ahead_are_closed() {
    // The read that takes the first frame also takes the first 3 header bytes of the
    // next; an FD that comes with the rest of that header came after its first bytes.
    let (a, mut b) = pair();
    let (read_end, write_end) = pipe();
    raw_write(
        &a,
        &[8, 0, 0, 0, 3, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 4, 0, 0],
    );
    let raw = FramedSocket::new(a.into_inner());
    let first = b.recv(LIMIT, 0).unwrap();
    assert_eq!(first.payload, &[1, 2, 3, 4, 5, 6, 7, 8]);
    send_bytes_with_fd(&raw, &[0, 7, 0, 0, 0, 9, 9, 9, 9], write_end.as_fd());
    drop(write_end);

    let second = b.recv(LIMIT, 1).unwrap();
    assert_eq!(
        (second.mid, second.payload, second.fds.len()),
        (Mid::OpenAt.as_u16(), &[9u8, 9, 9, 9][..], 0)
    );
    assert!(write_end_is_closed_everywhere(&read_end));
}

#[test]
fn fds_of_a_frame_sent_before_its_turn_are_closed_not_misattributed() {
    // A peer that sends a frame with FDs while the previous one is still unread: the
    // read that takes the first frame (no FDs wanted) reads ahead into the second, and
    // the kernel closes the second's FDs. The frames themselves stay intact.
    let (a, mut b) = pair();
    let (read_end, write_end) = pipe();
    a.send(Mid::FStat.as_u16(), &[1; 8], &[]).unwrap();
    a.send(Mid::OpenAt.as_u16(), &[0; 8], &[write_end.as_fd()])
        .unwrap();
    drop(write_end);

    let first = b.recv(LIMIT, 0).unwrap();
    assert_eq!((first.mid, first.fds.len()), (Mid::FStat.as_u16(), 0));
    let second = b.recv(LIMIT, 1).unwrap();
    assert_eq!((second.mid, second.fds.len()), (Mid::OpenAt.as_u16(), 0));
    assert!(write_end_is_closed_everywhere(&read_end));
}

#[test]
fn an_oversized_payload_can_be_discarded_without_buffering_it() {
    let (a, mut b) = pair();
    let limit = 4096;
    let big = vec![0x5a; 1_000_000];
    let writer = thread::spawn(move || {
        a.send(Mid::PWrite.as_u16(), &big, &[]).unwrap();
        a.send(Mid::Flush.as_u16(), &[9, 0, 0, 0, 0, 0, 0, 0], &[])
            .unwrap();
    });

    let len = match b.recv(limit, 0) {
        Err(SocketError::Oversized { len, .. }) => len,
        other => panic!("expected Oversized, got {other:?}"),
    };
    b.discard(len).unwrap();
    let frame = b.recv(limit, 0).unwrap();
    assert_eq!((frame.mid, frame.payload[0]), (Mid::Flush.as_u16(), 9));
    assert!(b.recv_buffer_len() <= 64 * 1024, "{}", b.recv_buffer_len());
    writer.join().unwrap();
}

#[test]
fn a_header_split_across_writes_is_reassembled_with_its_fds() {
    let (a, mut b) = pair();
    let file = temp_file(b"x");
    let raw = FramedSocket::new(a.into_inner());
    // First 3 header bytes carry the FD; the rest of the header and payload come later.
    send_bytes_with_fd(&raw, &[8, 0, 0], file.as_fd());
    let late = thread::spawn(move || {
        thread::sleep(std::time::Duration::from_millis(20));
        raw_write(&raw, &[0, 7, 0, 0, 0]);
        raw_write(&raw, &[1, 2, 3, 4, 5, 6, 7, 8]);
        raw
    });

    let frame = b.recv(LIMIT, 1).unwrap();
    assert_eq!(frame.mid, Mid::OpenAt.as_u16());
    assert_eq!(frame.payload, &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(frame.fds.len(), 1);
    drop(late.join().unwrap());
}

#[test]
fn peer_close_between_frames_is_closed() {
    let (a, mut b) = pair();
    drop(a);
    assert!(matches!(b.recv(LIMIT, 0), Err(SocketError::Closed)));
}

#[test]
fn peer_close_mid_header_is_unexpected_eof() {
    let (a, mut b) = pair();
    raw_write(&a, &[10, 0, 0, 0, 3]);
    drop(a);
    assert!(matches!(
        b.recv(LIMIT, 0),
        Err(SocketError::UnexpectedEof {
            received: 5,
            expected: 8
        })
    ));
}

#[test]
fn peer_close_mid_payload_is_unexpected_eof() {
    let (a, mut b) = pair();
    raw_write(&a, &[10, 0, 0, 0, 3, 0, 0, 0, 1, 2, 3]);
    drop(a);
    assert!(matches!(
        b.recv(LIMIT, 0),
        Err(SocketError::UnexpectedEof {
            received: 3,
            expected: 10
        })
    ));
}

#[test]
fn sending_to_a_closed_peer_is_an_error_not_a_signal() {
    let (a, b) = pair();
    drop(b);
    let err = a.send(Mid::Mount.as_u16(), &[], &[]).unwrap_err();
    assert!(matches!(err, SocketError::Io(Errno::PIPE)), "{err:?}");
}

#[test]
fn too_many_fds_are_refused_before_sending() {
    let (a, mut b) = pair();
    let file = temp_file(b"x");
    let fds = vec![file.as_fd(); MAX_FDS + 1];
    assert!(matches!(
        a.send(Mid::Mount.as_u16(), &[], &fds),
        Err(SocketError::TooManyFds(5))
    ));
    // Nothing was sent: the next frame is the first the peer sees.
    a.send(Mid::Flush.as_u16(), &[], &[]).unwrap();
    assert_eq!(b.recv(LIMIT, 0).unwrap().mid, Mid::Flush.as_u16());
}
