//! Encoding and decoding of the hottest messages: a 3-component Walk, its response, and
//! the FStat response (one `Statx`). Small inputs, so each sample is nanoseconds.
#![allow(missing_docs)] // Reason: criterion's macros generate undocumented items.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use lisafs_protocol::wire::{
    decode, encode_into, FStatResp, FdId, Inode, SizedString, Statx, WalkReq, WalkResp, WalkStatus,
};

fn walk_req() -> WalkReq {
    WalkReq {
        dir_fd: FdId(1),
        path: ["usr", "lib", "libc.so.6"]
            .iter()
            .map(|name| SizedString::from(name.as_bytes()))
            .collect(),
    }
}

fn statx() -> Statx {
    Statx {
        mask: 0x7ff,
        blksize: 4096,
        nlink: 1,
        mode: 0o100644,
        size: 4096,
        blocks: 8,
        ..Statx::default()
    }
}

fn walk_resp() -> WalkResp {
    WalkResp {
        status: WalkStatus::Success,
        inodes: (0..3)
            .map(|i| Inode {
                control_fd: FdId(10 + i),
                stat: statx(),
            })
            .collect(),
    }
}

fn codec(c: &mut Criterion) {
    let mut buf = Vec::with_capacity(1024);

    let req = walk_req();
    c.bench_function("encode WalkReq (3 components)", |b| {
        b.iter(|| {
            buf.clear();
            encode_into(black_box(&req), &mut buf).expect("encode");
        })
    });
    buf.clear();
    encode_into(&req, &mut buf).expect("encode");
    let bytes = buf.clone();
    c.bench_function("decode WalkReq (3 components)", |b| {
        b.iter(|| decode::<WalkReq>(black_box(&bytes)).expect("decode"))
    });

    let resp = walk_resp();
    c.bench_function("encode WalkResp (3 inodes)", |b| {
        b.iter(|| {
            buf.clear();
            encode_into(black_box(&resp), &mut buf).expect("encode");
        })
    });
    buf.clear();
    encode_into(&resp, &mut buf).expect("encode");
    let bytes = buf.clone();
    c.bench_function("decode WalkResp (3 inodes)", |b| {
        b.iter(|| decode::<WalkResp>(black_box(&bytes)).expect("decode"))
    });

    let fstat = FStatResp { stat: statx() };
    c.bench_function("encode FStatResp (Statx)", |b| {
        b.iter(|| {
            buf.clear();
            encode_into(black_box(&fstat), &mut buf).expect("encode");
        })
    });
    buf.clear();
    encode_into(&fstat, &mut buf).expect("encode");
    let bytes = buf.clone();
    c.bench_function("decode FStatResp (Statx)", |b| {
        b.iter(|| decode::<FStatResp>(black_box(&bytes)).expect("decode"))
    });
}

criterion_group! {
    name = benches;
    // Few, short samples: these are for spotting regressions by eye, not for precision,
    // and the whole file must run in seconds.
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = codec
}
criterion_main!(benches);
