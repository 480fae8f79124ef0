//! Fuzzing entry points (feature `fuzzing`). Each takes arbitrary bytes and panics only on
//! a real bug: a decoder panic, a non-canonical decode, a failed round trip, or a receive
//! buffer that grew past its limit. The cargo-fuzz targets in `fuzz/` call these, and a
//! stable test replays the checked-in seeds through them.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use arbitrary::{Arbitrary, Unstructured};

use crate::transport::channel::{Channel, SpinPolicy};
use crate::transport::socket::{FramedSocket, SocketError};
use crate::wire::{AnyRequest, AnyResponse, Mid, PWriteData, PWriteHead};

/// Splits `data` into a MID (first two bytes, little-endian) and a payload.
fn mid_and_payload(data: &[u8]) -> Option<(Mid, &[u8])> {
    let (mid, payload) = data.split_first_chunk::<2>()?;
    Some((Mid::try_from(u16::from_le_bytes(*mid)).ok()?, payload))
}

/// Decodes `data[2..]` as the request of MID `data[..2]`; a success must re-encode to
/// exactly the bytes it consumed.
pub fn decode_request(data: &[u8]) {
    let Some((mid, payload)) = mid_and_payload(data) else {
        return;
    };
    let decoded = AnyRequest::decode(mid, payload);
    if let Ok(req) = &decoded {
        let mut again = Vec::new();
        req.encode_into(&mut again)
            .expect("a decoded request re-encodes");
        assert_eq!(req.mid(), mid);
        assert_eq!(again[..], payload[..again.len()], "non-canonical decode");
    }
    // Clients encode PWrite from borrowed data, and the server reads its fixed part alone
    // and takes the data after it: both must accept and read exactly what the owned
    // decoder does.
    if mid == Mid::PWrite {
        let view = PWriteData::decode(payload).ok();
        let by_head = PWriteHead::decode(payload)
            .ok()
            .filter(|head| head.len() <= payload.len() - PWriteHead::SIZE)
            .map(|head| PWriteData {
                offset: head.offset,
                fd: head.fd,
                data: &payload[PWriteHead::SIZE..][..head.len()],
            });
        let owned = match decoded {
            Ok(AnyRequest::PWrite(req)) => Some(req),
            _ => None,
        };
        let same = match (view, &owned) {
            (Some(view), Some(req)) => {
                (view.offset, view.fd, view.data) == (req.offset, req.fd, &req.data[..])
            }
            (None, None) => true,
            _ => false,
        };
        assert!(
            same,
            "PWrite decoded in place differs: {view:?} against {owned:?}"
        );
        assert_eq!(by_head, view, "PWrite read by its fixed part differs");
    }
}

/// Decodes `data[2..]` as the response of MID `data[..2]`; as [`decode_request`].
pub fn decode_response(data: &[u8]) {
    let Some((mid, payload)) = mid_and_payload(data) else {
        return;
    };
    if let Ok(resp) = AnyResponse::decode(mid, payload) {
        let mut again = Vec::new();
        resp.encode_into(&mut again)
            .expect("a decoded response re-encodes");
        assert_eq!(resp.mid(), mid);
        assert_eq!(again[..], payload[..again.len()], "non-canonical decode");
    }
}

/// Builds a request and a response from `data` and checks that each survives
/// encode → decode unchanged.
pub fn roundtrip(data: &[u8]) {
    let mut input = Unstructured::new(data);
    if let Ok(req) = AnyRequest::arbitrary(&mut input) {
        let mut bytes = Vec::new();
        if req.encode_into(&mut bytes).is_ok() {
            assert_eq!(AnyRequest::decode(req.mid(), &bytes).ok(), Some(req));
        }
    }
    if let Ok(resp) = AnyResponse::arbitrary(&mut input) {
        let mut bytes = Vec::new();
        if resp.encode_into(&mut bytes).is_ok() {
            assert_eq!(AnyResponse::decode(resp.mid(), &bytes).ok(), Some(resp));
        }
    }
}

/// Feeds `data[1..]` as a byte stream into a socket and receives frames from it until the
/// stream ends. `data[0]` picks how many FDs to accept and the payload limit. Oversized
/// frames are discarded; the receive buffer must never exceed the limit.
pub fn socket_stream(data: &[u8]) {
    const LIMITS: [u32; 4] = [0, 16, 4096, crate::wire::MAX_MESSAGE_SIZE];
    let Some((&knobs, stream)) = data.split_first() else {
        return;
    };
    // A socketpair buffers far more than this, so one thread can write it all first.
    let stream = &stream[..stream.len().min(32 * 1024)];
    let want_fds = usize::from(knobs & 3);
    let limit = LIMITS[usize::from(knobs >> 2) & 3];
    let (writer, mut reader) = FramedSocket::pair().expect("socketpair");
    if !stream.is_empty() {
        let sent = rustix::net::send(writer.as_fd(), stream, rustix::net::SendFlags::NOSIGNAL)
            .expect("send to socketpair");
        assert_eq!(sent, stream.len());
    }
    drop(writer);
    loop {
        match reader.recv(limit, want_fds) {
            Ok(frame) => assert!(frame.payload.len() <= limit as usize && frame.fds.is_empty()),
            Err(SocketError::Oversized { len, .. }) => {
                if reader.discard(len).is_err() {
                    break;
                }
            }
            Err(_) => break,
        }
        assert!(reader.recv_buffer_len() <= (limit as usize).max(64 * 1024));
    }
}

/// Plays a hostile client's side of a channel, writing the window by hand, against a
/// server's [`Channel::next_request_split`]. `data[0]` picks the split (bit 5 clear: PWrite
/// requests keep all but their first `data[0] & 31` payload bytes in the window); then
/// records follow, each a little-endian `u32` data length, a `u16` byte count and that
/// many bytes for the data area (header, then payload). Every request the server accepts
/// must account for exactly its data length, be copied out as written, and leave only a
/// split request's rest in the window, which can be copied and written out but no more.
pub fn channel_requests(data: &[u8]) {
    let Some((&knobs, mut records)) = data.split_first() else {
        return;
    };
    let split = (knobs & 0x20 == 0).then(|| (Mid::PWrite.as_u16(), usize::from(knobs & 0x1f)));
    // No spinning: the turn is always the server's when it looks.
    let no_spin = SpinPolicy {
        max_spin: std::time::Duration::ZERO,
    };
    let new = Channel::create(crate::wire::MAX_MESSAGE_SIZE, no_spin).expect("a channel");
    let mut server = new.channel;
    let [memfd, _sock] = new.donate;
    let window = File::from(memfd);
    let target = File::from(
        rustix::fs::memfd_create("fuzz-target", rustix::fs::MemfdFlags::CLOEXEC).expect("memfd"),
    );
    // The client's turn: `bytes` in the data area, `len` in dataLen, then the server's turn.
    let hand_over = |len: u32, bytes: &[u8]| {
        window.write_all_at(bytes, 16).expect("write the data area");
        window
            .write_all_at(&len.to_le_bytes(), 4)
            .expect("write dataLen");
        window
            .write_all_at(&1u32.to_le_bytes(), 0)
            .expect("hand over the turn");
    };
    hand_over(3, b"{}\n");
    server.accept().expect("handshake");
    while records.len() >= 6 {
        let len = u32::from_le_bytes(records[..4].try_into().expect("4 bytes"));
        let count = usize::from(u16::from_le_bytes(
            records[4..6].try_into().expect("2 bytes"),
        ));
        let bytes = &records[6..(6 + count).min(records.len())];
        records = &records[6 + bytes.len()..];
        hand_over(len, bytes);
        let Ok((frame, reply)) = server.next_request_split(split) else {
            break;
        };
        let copied = frame.payload.len();
        let rest = reply.request_rest();
        assert_eq!(
            4 + copied + rest,
            len as usize,
            "the request's bytes are all accounted for"
        );
        match split {
            Some((mid, head)) if mid == frame.mid => assert!(copied <= head),
            _ => assert_eq!(rest, 0, "only a split request leaves bytes in the window"),
        }
        let written = bytes.get(4..).unwrap_or_default();
        let shown = copied.min(written.len());
        assert_eq!(
            frame.payload[..shown],
            written[..shown],
            "copied out as written"
        );
        let mut left = vec![0; rest];
        reply
            .copy_request_rest(&mut left)
            .expect("the rest copies out");
        let tail = written.get(copied..).unwrap_or_default();
        let shown = rest.min(tail.len());
        assert_eq!(left[..shown], tail[..shown], "the rest is what was written");
        assert!(reply.copy_request_rest(&mut vec![0; rest + 1]).is_err());
        assert!(reply
            .pwrite_from_request(rest + 1, target.as_fd(), 0)
            .is_err());
        assert_eq!(
            reply.pwrite_from_request(rest, target.as_fd(), 0).ok(),
            Some(rest)
        );
        if reply.send(frame.mid, b"", &[]).is_err() {
            break;
        }
    }
}
