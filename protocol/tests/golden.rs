//! Golden bytes for every request and response, written out by hand from SPEC.md's layout
//! tables (spaces separate fields). Each golden is checked four ways: encoding gives the
//! bytes, decoding gives the value (directly and through the MID-dispatched decoders),
//! trailing bytes are ignored, and every strict prefix is a decode error, not a panic.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::any::type_name;
use std::collections::BTreeSet;

use lisafs_protocol::wire::*;

/// A stat with a distinct value in every field, so that a swapped or misplaced field
/// cannot produce the golden bytes.
fn statx() -> Statx {
    Statx {
        mask: 0x7ff,
        blksize: 4096,
        attributes: 0x20,
        nlink: 3,
        uid: 1000,
        gid: 1001,
        mode: 0o100644,
        ino: 42,
        size: 5,
        blocks: 8,
        attributes_mask: 0x100,
        atime: ts(1, 2),
        btime: ts(3, 4),
        ctime: ts(5, 6),
        mtime: ts(7, 8),
        rdev_major: 9,
        rdev_minor: 10,
        dev_major: 11,
        dev_minor: 12,
        ..Default::default()
    }
}

const STATX: &str = "ff070000 00100000 2000000000000000 03000000 e8030000 e9030000 a481 0000
    2a00000000000000 0500000000000000 0800000000000000 0001000000000000
    0100000000000000 02000000 00000000  0300000000000000 04000000 00000000
    0500000000000000 06000000 00000000  0700000000000000 08000000 00000000
    09000000 0a000000 0b000000 0c000000";

fn ts(sec: i64, nsec: u32) -> StatxTimestamp {
    StatxTimestamp {
        sec,
        nsec,
        ..Default::default()
    }
}

fn inode(fd: u64) -> Inode {
    Inode {
        control_fd: FdId(fd),
        stat: statx(),
    }
}

fn inode_hex(fd: u8) -> String {
    format!("{fd:02x}00000000000000 {STATX}")
}

fn common(dir: u64, uid: Uid, gid: Gid, mode: u16) -> CreateCommon {
    CreateCommon {
        dir_fd: FdId(dir),
        uid,
        gid,
        mode,
        ..Default::default()
    }
}

fn s(text: &str) -> SizedString {
    SizedString::from(text)
}

fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert_eq!(digits.len() % 2, 0, "odd hex length in {text}");
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Request,
    Response,
}

#[derive(Default)]
struct Goldens {
    seen: BTreeSet<(u16, Kind)>,
}

impl Goldens {
    fn req<T: Request + PartialEq>(&mut self, msg: T, hex: &str) {
        self.check(msg, hex, Kind::Request);
    }

    fn resp<T: Message + PartialEq>(&mut self, msg: T, hex: &str) {
        self.check(msg, hex, Kind::Response);
    }

    fn check<T: Message + PartialEq>(&mut self, msg: T, hex: &str, kind: Kind) {
        let name = type_name::<T>();
        let bytes = unhex(hex);
        assert_eq!(encode(&msg).unwrap(), bytes, "{name}: encoding");
        assert_eq!(decode::<T>(&bytes).unwrap(), msg, "{name}: decoding");
        assert_eq!(
            any_reencoded(T::MID, kind, &bytes),
            Ok(bytes.clone()),
            "{name}: by MID"
        );

        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0xa5; 5]);
        assert_eq!(decode::<T>(&longer).unwrap(), msg, "{name}: trailing bytes");

        for len in 0..bytes.len() {
            assert!(
                decode::<T>(&bytes[..len]).is_err(),
                "{name}: {len}-byte prefix"
            );
            assert!(any_reencoded(T::MID, kind, &bytes[..len]).is_err());
        }
        assert!(
            self.seen.insert((T::MID.as_u16(), kind)),
            "{name}: golden twice"
        );
    }
}

fn any_reencoded(mid: Mid, kind: Kind, bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    match kind {
        Kind::Request => AnyRequest::decode(mid, bytes)?.encode_into(&mut out),
        Kind::Response => AnyResponse::decode(mid, bytes)?.encode_into(&mut out),
    }
    .unwrap();
    Ok(out)
}

fn session(g: &mut Goldens) {
    g.req(MountReq {}, "");
    g.resp(
        MountResp {
            root: inode(1),
            max_message_size: MAX_MESSAGE_SIZE,
            supported: vec![1, 2, 33],
        },
        &format!("{} 00f01f00 0300 0100 0200 2100", inode_hex(1)),
    );
    g.req(ChannelReq {}, "");
    g.resp(
        ChannelResp {
            data_offset: 0x40_0000,
            data_length: 0x20_0000,
        },
        "0000400000000000 0000200000000000",
    );
    g.resp(
        ErrorResp {
            errno: Errno::ENOENT,
        },
        "02000000",
    );
}

fn stat(g: &mut Goldens) {
    g.req(FStatReq { fd: FdId(7) }, "0700000000000000");
    g.resp(FStatResp { stat: statx() }, STATX);
    g.req(
        SetStatReq {
            fd: FdId(7),
            mask: SetStatReq::SUPPORTED_MASK,
            mode: 0o760,
            uid: Uid(1000),
            gid: Gid(1001),
            size: 50,
            atime: Timespec {
                sec: 1,
                nsec: (1 << 30) - 1, // UTIME_NOW
            },
            mtime: Timespec {
                sec: 2,
                nsec: (1 << 30) - 2, // UTIME_OMIT
            },
        },
        "0700000000000000 7a020000 f0010000 e8030000 e9030000 3200000000000000
         0100000000000000 ffffff3f00000000 0200000000000000 feffff3f00000000",
    );
    g.resp(
        SetStatResp {
            failure_mask: SetStatReq::MODE,
            failure_errno: 95,
        },
        "02000000 5f000000",
    );
    g.req(FStatFSReq { fd: FdId(1) }, "0100000000000000");
    g.resp(
        FStatFSResp {
            stat: StatFS {
                fs_type: 0x0102_1994,
                block_size: 4096,
                blocks: 100,
                blocks_free: 50,
                blocks_available: 40,
                files: 1000,
                files_free: 900,
                name_length: 255,
            },
        },
        "9419020100000000 0010000000000000 6400000000000000 3200000000000000
         2800000000000000 e803000000000000 8403000000000000 ff00000000000000",
    );
}

fn walk(g: &mut Goldens) {
    g.req(
        WalkReq {
            dir_fd: FdId(1),
            path: vec![s("a"), s("bc")],
        },
        "0100000000000000 0200 0100 61 0200 6263",
    );
    g.resp(
        WalkResp {
            status: WalkStatus::ComponentSymlink,
            inodes: vec![inode(9)],
        },
        &format!("02 0100 {}", inode_hex(9)),
    );
    g.req(
        WalkStatReq {
            dir_fd: FdId(1),
            path: vec![s(""), s("a")],
        },
        "0100000000000000 0200 0000 0100 61",
    );
    g.resp(
        WalkStatResp {
            stats: vec![statx(), statx()],
        },
        &format!("0200 {STATX} {STATX}"),
    );
}

fn open(g: &mut Goldens) {
    g.req(
        OpenAtReq {
            fd: FdId(9),
            flags: 0o1002, // O_RDWR | O_TRUNC
            _pad: 0,
        },
        "0900000000000000 02020000 00000000",
    );
    g.resp(OpenAtResp { open_fd: FdId(10) }, "0a00000000000000");
    g.req(
        OpenCreateAtReq {
            common: common(1, Uid(1000), Gid(1001), 0o644),
            flags: 2,
            name: s("f"),
        },
        "0100000000000000 e8030000 e9030000 a401 0000 00000000 02000000 0100 66",
    );
    g.resp(
        OpenCreateAtResp {
            child: inode(11),
            new_fd: FdId(12),
        },
        &format!("{} 0c00000000000000", inode_hex(11)),
    );
    g.req(
        CloseReq {
            fds: vec![FdId(10), FdId(11)],
        },
        "0200 0a00000000000000 0b00000000000000",
    );
    g.resp(CloseResp {}, "");
    g.req(
        FSyncReq {
            fds: vec![FdId(10)],
        },
        "0100 0a00000000000000",
    );
    g.resp(FSyncResp {}, "");
    g.req(FlushReq { fd: FdId(10) }, "0a00000000000000");
    g.resp(FlushResp {}, "");
}

fn io(g: &mut Goldens) {
    g.req(
        PWriteReq {
            offset: 4096,
            fd: FdId(10),
            data: b"hello".to_vec(),
        },
        "0010000000000000 0a00000000000000 05000000 68656c6c6f",
    );
    g.resp(PWriteResp { count: 5 }, "0500000000000000");
    g.req(
        PReadReq {
            offset: 1,
            fd: FdId(10),
            count: 4096,
            _pad: 0,
        },
        "0100000000000000 0a00000000000000 00100000 00000000",
    );
    g.resp(
        PReadResp {
            data: b"hi".to_vec(),
        },
        "0200000000000000 6869",
    );
    g.req(
        FAllocateReq {
            fd: FdId(10),
            mode: 1,
            offset: 2,
            length: 40,
        },
        "0a00000000000000 0100000000000000 0200000000000000 2800000000000000",
    );
    g.resp(FAllocateResp {}, "");
}

fn create(g: &mut Goldens) {
    g.req(
        MkdirAtReq {
            common: common(1, Uid::NONE, Gid::NONE, 0o755),
            name: s("d"),
        },
        "0100000000000000 ffffffff ffffffff ed01 0000 00000000 0100 64",
    );
    g.resp(MkdirAtResp { child: inode(13) }, &inode_hex(13));
    g.req(
        MknodAtReq {
            common: common(1, Uid(0), Gid(0), 0o100644),
            minor: 3,
            major: 4,
            name: s("n"),
        },
        "0100000000000000 00000000 00000000 a481 0000 00000000 03000000 04000000 0100 6e",
    );
    g.resp(MknodAtResp { child: inode(14) }, &inode_hex(14));
    g.req(
        SymlinkAtReq {
            dir_fd: FdId(1),
            uid: Uid(1000),
            gid: Gid(1001),
            name: s("l"),
            target: s("/tmp/x"),
        },
        "0100000000000000 e8030000 e9030000 0100 6c 0600 2f746d702f78",
    );
    g.resp(SymlinkAtResp { symlink: inode(15) }, &inode_hex(15));
    g.req(
        LinkAtReq {
            dir_fd: FdId(1),
            target: FdId(11),
            name: s("h"),
        },
        "0100000000000000 0b00000000000000 0100 68",
    );
    g.resp(LinkAtResp { link: inode(16) }, &inode_hex(16));
}

fn dir(g: &mut Goldens) {
    g.req(ReadLinkAtReq { fd: FdId(14) }, "0e00000000000000");
    g.resp(
        ReadLinkAtResp {
            target: s("/tmp/x"),
        },
        "0600 2f746d702f78",
    );
    g.req(
        UnlinkAtReq {
            dir_fd: FdId(1),
            flags: 0x200,
            name: s("d"),
        },
        "0100000000000000 00020000 0100 64",
    );
    g.resp(UnlinkAtResp {}, "");
    g.req(
        RenameAtReq {
            old_dir: FdId(1),
            new_dir: FdId(13),
            old_name: s("a"),
            new_name: s("b"),
        },
        "0100000000000000 0d00000000000000 0100 61 0100 62",
    );
    g.resp(RenameAtResp {}, "");
    g.req(
        RenameAt2Req {
            old_dir: FdId(1),
            new_dir: FdId(1),
            old_name: s("a"),
            new_name: s("b"),
            flags: 2,
        },
        "0100000000000000 0100000000000000 0100 61 0100 62 02000000",
    );
    g.resp(RenameAt2Resp {}, "");
    g.req(
        Getdents64Req {
            dir_fd: FdId(16),
            count: -65536,
            _pad: 0,
        },
        "1000000000000000 0000ffff 00000000",
    );
    g.resp(
        Getdents64Resp {
            dirents: [
                Dirent64 {
                    ino: 44,
                    dev_minor: 1,
                    dev_major: 8,
                    off: 1,
                    d_type: 8,
                    name: b"f",
                },
                Dirent64 {
                    ino: 45,
                    dev_minor: 1,
                    dev_major: 8,
                    off: 2,
                    d_type: 4,
                    name: b"dd",
                },
            ]
            .into_iter()
            .collect(),
        },
        "0200
         2c00000000000000 01000000 08000000 0100000000000000 08 0100 66
         2d00000000000000 01000000 08000000 0200000000000000 04 0200 6464",
    );
}

fn xattr(g: &mut Goldens) {
    g.req(
        FGetXattrReq {
            fd: FdId(11),
            buf_size: 65535,
            name: s("user.k"),
        },
        "0b00000000000000 ffff0000 0600 757365722e6b",
    );
    g.resp(FGetXattrResp { value: s("v") }, "0100 76");
    g.req(
        FSetXattrReq {
            fd: FdId(11),
            flags: 1,
            name: s("user.k"),
            value: s("v"),
        },
        "0b00000000000000 01000000 0600 757365722e6b 0100 76",
    );
    g.resp(FSetXattrResp {}, "");
    g.req(
        FListXattrReq {
            fd: FdId(11),
            size: 65536,
        },
        "0b00000000000000 0000010000000000",
    );
    g.resp(
        FListXattrResp {
            xattrs: vec![s("user.a"), s("user.k")],
        },
        "0200 0600 757365722e61 0600 757365722e6b",
    );
    g.req(
        FRemoveXattrReq {
            fd: FdId(11),
            name: s("user.k"),
        },
        "0b00000000000000 0600 757365722e6b",
    );
    g.resp(FRemoveXattrResp {}, "");
}

fn socket(g: &mut Goldens) {
    g.req(
        ConnectReq {
            fd: FdId(15),
            sock_type: 5,
            _pad: 0,
        },
        "0f00000000000000 05000000 00000000",
    );
    g.resp(ConnectResp {}, "");
    g.req(
        ConnectWithCredsReq {
            fd: FdId(15),
            sock_type: 1,
            _pad: 0,
            uid: Uid(1000),
            gid: Gid(1001),
        },
        "0f00000000000000 01000000 00000000 e8030000 e9030000",
    );
    g.resp(ConnectWithCredsResp {}, "");
    g.req(
        BindAtReq {
            common: common(1, Uid(0), Gid(0), 0o755),
            sock_type: 1,
            name: s("s"),
        },
        "0100000000000000 00000000 00000000 ed01 0000 00000000 01000000 0100 73",
    );
    g.resp(
        BindAtResp {
            child: inode(17),
            bound_socket_fd: FdId(18),
        },
        &format!("{} 1200000000000000", inode_hex(17)),
    );
    g.req(
        ListenReq {
            fd: FdId(18),
            backlog: 16,
            _pad: 0,
        },
        "1200000000000000 10000000 00000000",
    );
    g.resp(ListenResp {}, "");
    g.req(AcceptReq { fd: FdId(18) }, "1200000000000000");
    g.resp(
        AcceptResp {
            peer_addr: s("peer"),
        },
        "0400 70656572",
    );
}

const FAMILIES: [fn(&mut Goldens); 9] = [session, stat, walk, open, io, create, dir, xattr, socket];

#[test]
fn every_message_matches_its_golden_bytes() {
    let mut g = Goldens::default();
    for family in FAMILIES {
        family(&mut g);
    }
    // Every MID has a response golden (MID 0 is the error response) and every MID but 0 a
    // request golden.
    let mut want = BTreeSet::new();
    for mid in Mid::ALL {
        want.insert((mid.as_u16(), Kind::Response));
        if mid != Mid::Error {
            want.insert((mid.as_u16(), Kind::Request));
        }
    }
    assert_eq!(g.seen, want);
    assert_eq!(g.seen.len(), 67);
}

#[test]
fn socket_header_of_a_mount_request_is_eight_bytes() {
    let header = SocketHeader::new(Mid::Mount, 0);
    assert_eq!(encode(&header).unwrap(), unhex("00000000 0100 0000"));
    assert_eq!(header.mid(), Ok(Mid::Mount));
    assert_eq!(
        decode::<SocketHeader>(&unhex("de000000 2100 0000")).unwrap(),
        SocketHeader::new(Mid::RenameAt2, 222)
    );
}

#[test]
fn channel_header_is_mid_then_fd_count() {
    let header = ChannelHeader {
        mid: Mid::Channel.as_u16(),
        num_fds: 2,
        _pad: 0,
    };
    assert_eq!(encode(&header).unwrap(), unhex("0200 02 00"));
    assert_eq!(header.mid(), Ok(Mid::Channel));
}

#[test]
fn mount_response_advertising_32_mids_is_222_bytes() {
    let supported: Vec<u16> = (1..=33).filter(|&mid| mid != 20).collect();
    let resp = MountResp {
        root: inode(1),
        max_message_size: MAX_MESSAGE_SIZE,
        supported,
    };
    assert_eq!(encode(&resp).unwrap().len(), 222);
    assert!(resp.supports(Mid::RenameAt2));
    assert!(!resp.supports(Mid::Flush));
}

#[test]
fn error_mid_has_no_request() {
    assert_eq!(
        AnyRequest::decode(Mid::Error, &[]),
        Err(DecodeError::NoSuchMessage(0))
    );
}

#[test]
fn unknown_walk_status_is_rejected() {
    assert_eq!(
        decode::<WalkResp>(&unhex("03 0000")),
        Err(DecodeError::InvalidValue {
            what: "walk status",
            value: 3
        })
    );
}

#[test]
fn string_longer_than_u16_cannot_be_encoded() {
    let req = FGetXattrReq {
        fd: FdId(1),
        buf_size: 0,
        name: SizedString::from(vec![b'x'; 65_536]),
    };
    assert_eq!(
        encode(&req),
        Err(EncodeError {
            len: 65_536,
            max: 65_535
        })
    );
    let longest = SizedString::from(vec![b'x'; 65_535]);
    assert_eq!(encode(&longest).unwrap().len(), 65_537);
}
