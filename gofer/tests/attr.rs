//! SetStat bit by bit and its partial-failure report; FStatFS; ReadLinkAt.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::MetadataExt;

use common::*;
use lisafs_gofer::host::HostOptions;
use lisafs_gofer::wire::{Errno, Gid, SetStatReq, SetStatResp, Timespec, Uid};
use lisafs_server::Backend;

const UTIME_NOW: i64 = (1 << 30) - 1;
const UTIME_OMIT: i64 = (1 << 30) - 2;

fn req(mask: u32) -> SetStatReq {
    SetStatReq {
        mask,
        uid: Uid::NONE,
        gid: Gid::NONE,
        ..SetStatReq::default()
    }
}

const OK: SetStatResp = SetStatResp {
    failure_mask: 0,
    failure_errno: 0,
};

#[test]
fn mode_changes_permission_bits_only() {
    let fx = Fixture::new();
    let f = fx.file(&fx.root, "f", b"");
    let resp = fx.backend.set_stat(
        &f.file,
        &SetStatReq {
            mode: 0o170_600,
            ..req(SetStatReq::MODE)
        },
    );
    assert_eq!(resp.unwrap(), OK);
    assert_eq!(lstat(&fx.path("f")).mode(), 0o100_600);
}

#[test]
fn mode_strips_setid_bits_unless_allowed() {
    let fx = Fixture::new();
    let f = fx.file(&fx.root, "f", b"");
    let d = fx.mkdir(&fx.root, "d", 0o755).unwrap();
    let setid = SetStatReq {
        mode: 0o7777,
        ..req(SetStatReq::MODE)
    };
    assert_eq!(fx.backend.set_stat(&f.file, &setid).unwrap(), OK);
    assert_eq!(fx.backend.set_stat(&d.file, &setid).unwrap(), OK);
    assert_eq!(lstat(&fx.path("f")).mode(), 0o100_777);
    assert_eq!(lstat(&fx.path("d")).mode(), 0o041_777);

    let fx = Fixture::with(HostOptions {
        allow_setid: true,
        ..HostOptions::default()
    });
    let f = fx.file(&fx.root, "f", b"");
    assert_eq!(fx.backend.set_stat(&f.file, &setid).unwrap(), OK);
    assert_eq!(lstat(&fx.path("f")).mode(), 0o107_777);
}

#[test]
fn size_truncates_and_extends_regular_files() {
    let fx = Fixture::new();
    let f = fx.file(&fx.root, "f", b"0123456789");
    assert_eq!(
        fx.backend
            .set_stat(
                &f.file,
                &SetStatReq {
                    size: 4,
                    ..req(SetStatReq::SIZE)
                }
            )
            .unwrap(),
        OK
    );
    assert_eq!(std::fs::read(fx.path("f")).unwrap(), b"0123");
    assert_eq!(
        fx.backend
            .set_stat(
                &f.file,
                &SetStatReq {
                    size: 100,
                    ..req(SetStatReq::SIZE)
                }
            )
            .unwrap(),
        OK
    );
    assert_eq!(lstat(&fx.path("f")).len(), 100);
    let huge = SetStatReq {
        size: u64::MAX,
        ..req(SetStatReq::SIZE)
    };
    let resp = fx.backend.set_stat(&f.file, &huge).unwrap();
    assert_eq!(
        (resp.failure_mask, resp.failure_errno),
        (SetStatReq::SIZE, Errno::EINVAL.raw())
    );
}

#[test]
fn times_are_set_exactly_and_omitted_when_unset() {
    let fx = Fixture::new();
    let f = fx.file(&fx.root, "f", b"");
    let before = fx.stat(&f.file);
    let atime = Timespec {
        sec: 1_000_000_000,
        nsec: 123_456_789,
    };
    let mtime = Timespec {
        sec: 1_500_000_000,
        nsec: 987_654_321,
    };
    let both = SetStatReq {
        atime,
        mtime,
        ..req(SetStatReq::ATIME | SetStatReq::MTIME)
    };
    assert_eq!(fx.backend.set_stat(&f.file, &both).unwrap(), OK);
    let st = fx.stat(&f.file);
    assert_eq!((st.atime.sec, st.atime.nsec), (1_000_000_000, 123_456_789));
    assert_eq!((st.mtime.sec, st.mtime.nsec), (1_500_000_000, 987_654_321));
    // MTIME only: the atime stays; the unset mtime field of ATIME-only requests is ignored.
    let only_m = SetStatReq {
        atime: Timespec { sec: 5, nsec: 0 },
        mtime: Timespec { sec: 7, nsec: 0 },
        ..req(SetStatReq::MTIME)
    };
    assert_eq!(fx.backend.set_stat(&f.file, &only_m).unwrap(), OK);
    let st = fx.stat(&f.file);
    assert_eq!((st.atime.sec, st.mtime.sec), (1_000_000_000, 7));
    // UTIME_NOW and UTIME_OMIT pass through.
    let now = SetStatReq {
        atime: Timespec {
            sec: 0,
            nsec: UTIME_NOW,
        },
        mtime: Timespec {
            sec: 0,
            nsec: UTIME_OMIT,
        },
        ..req(SetStatReq::ATIME | SetStatReq::MTIME)
    };
    assert_eq!(fx.backend.set_stat(&f.file, &now).unwrap(), OK);
    let st = fx.stat(&f.file);
    assert!(st.atime.sec >= before.ctime.sec);
    assert_eq!(st.mtime.sec, 7);
    // An invalid nsec fails the time bits with EINVAL.
    let bad = SetStatReq {
        atime: Timespec {
            sec: 0,
            nsec: 1_000_000_000,
        },
        ..req(SetStatReq::ATIME)
    };
    let resp = fx.backend.set_stat(&f.file, &bad).unwrap();
    assert_eq!(
        (resp.failure_mask, resp.failure_errno),
        (SetStatReq::ATIME, Errno::EINVAL.raw())
    );
}

#[test]
fn times_and_owner_of_a_symlink_change_the_link_itself() {
    let fx = Fixture::new();
    let target = fx.file(&fx.root, "target", b"");
    let target_before = fx.stat(&target.file);
    let l = fx
        .backend
        .symlink(&fx.root, n("l"), b"target", Uid::NONE, Gid::NONE)
        .unwrap();
    let times = SetStatReq {
        atime: Timespec { sec: 11, nsec: 0 },
        mtime: Timespec { sec: 22, nsec: 0 },
        uid: Uid(77),
        gid: Gid(88),
        ..req(SetStatReq::ATIME | SetStatReq::MTIME | SetStatReq::UID | SetStatReq::GID)
    };
    assert_eq!(fx.backend.set_stat(&l.file, &times).unwrap(), OK);
    let link = lstat(&fx.path("l"));
    assert_eq!((link.mtime(), link.uid(), link.gid()), (22, 77, 88));
    let after = fx.stat(&target.file);
    assert_eq!(
        (after.mtime.sec, after.uid),
        (target_before.mtime.sec, target_before.uid)
    );
}

#[test]
fn owner_sets_uid_and_gid_independently() {
    let fx = Fixture::new();
    let f = fx.file(&fx.root, "f", b"");
    let uid = SetStatReq {
        uid: Uid(1001),
        gid: Gid(2002),
        ..req(SetStatReq::UID)
    };
    assert_eq!(fx.backend.set_stat(&f.file, &uid).unwrap(), OK);
    assert_eq!(
        (lstat(&fx.path("f")).uid(), lstat(&fx.path("f")).gid()),
        (1001, 0)
    );
    let gid = SetStatReq {
        uid: Uid(3003),
        gid: Gid(2002),
        ..req(SetStatReq::GID)
    };
    assert_eq!(fx.backend.set_stat(&f.file, &gid).unwrap(), OK);
    assert_eq!(
        (lstat(&fx.path("f")).uid(), lstat(&fx.path("f")).gid()),
        (1001, 2002)
    );
}

#[test]
fn a_failing_attribute_is_reported_and_the_others_still_apply() {
    let fx = Fixture::new();
    let l = fx
        .backend
        .symlink(&fx.root, n("l"), b"x", Uid::NONE, Gid::NONE)
        .unwrap();
    let mode_and_time = SetStatReq {
        mode: 0o600,
        mtime: Timespec { sec: 33, nsec: 0 },
        ..req(SetStatReq::MODE | SetStatReq::MTIME)
    };
    let resp = fx.backend.set_stat(&l.file, &mode_and_time).unwrap();
    assert_eq!(
        (resp.failure_mask, resp.failure_errno),
        (SetStatReq::MODE, Errno::EOPNOTSUPP.raw())
    );
    assert_eq!(lstat(&fx.path("l")).mtime(), 33);

    let d = fx.mkdir(&fx.root, "d", 0o755).unwrap();
    let mode_and_size = SetStatReq {
        mode: 0o700,
        size: 0,
        ..req(SetStatReq::MODE | SetStatReq::SIZE)
    };
    let resp = fx.backend.set_stat(&d.file, &mode_and_size).unwrap();
    assert_eq!(
        (resp.failure_mask, resp.failure_errno),
        (SetStatReq::SIZE, Errno::EISDIR.raw())
    );
    assert_eq!(lstat(&fx.path("d")).mode(), 0o040_700);

    // Two failures: both bits, and the errno of the last in the order of application.
    let two = SetStatReq {
        mode: 0o600,
        mtime: Timespec { sec: 0, nsec: -5 },
        ..req(SetStatReq::MODE | SetStatReq::MTIME)
    };
    let resp = fx.backend.set_stat(&l.file, &two).unwrap();
    assert_eq!(resp.failure_mask, SetStatReq::MODE | SetStatReq::MTIME);
    assert_eq!(resp.failure_errno, Errno::EINVAL.raw());
}

#[test]
fn set_stat_works_on_a_removed_directory() {
    let fx = Fixture::new();
    let d = fx.mkdir(&fx.root, "d", 0o755).unwrap();
    std::fs::remove_dir(fx.path("d")).unwrap();
    let mode = SetStatReq {
        mode: 0o700,
        ..req(SetStatReq::MODE)
    };
    assert_eq!(fx.backend.set_stat(&d.file, &mode).unwrap(), OK);
    assert_eq!(fx.stat(&d.file).mode, 0o040_700);
    assert_eq!(errno(fx.mkdir(&d.file, "x", 0o755)), Errno::ENOENT);
}

#[test]
fn statfs_reports_the_host_filesystem() {
    let fx = Fixture::new();
    let st = fx.backend.statfs(&fx.root).unwrap();
    let host = rustix::fs::statfs(fx.dir.path()).unwrap();
    assert_eq!(st.fs_type, u64::try_from(host.f_type).unwrap());
    assert_eq!(st.blocks, host.f_blocks);
    assert_eq!(st.name_length, 255);
}

#[test]
fn readlink_reads_targets_and_refuses_other_files() {
    let fx = Fixture::new();
    let long = vec![b'x'; 4000];
    let l = fx
        .backend
        .symlink(&fx.root, n("l"), &long, Uid::NONE, Gid::NONE)
        .unwrap();
    assert_eq!(fx.backend.readlink(&l.file).unwrap(), long);
    let f = fx.file(&fx.root, "f", b"");
    assert_eq!(errno(fx.backend.readlink(&f.file)), Errno::EINVAL);
}
