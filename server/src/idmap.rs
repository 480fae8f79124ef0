//! User and group ID mapping between the client's view and the host, as virtiofsd's
//! `--translate-uid`/`--translate-gid` do.
//!
//! A sandbox often runs its files under IDs that mean something else on the host (root
//! inside, an unprivileged range outside). With a map, every ID a request carries (the
//! owner of OpenCreateAt, MkdirAt, MknodAt, SymlinkAt and BindAt; SetStat's chown;
//! ConnectWithCreds' credentials) is translated from inside to outside, and an ID outside
//! every range is refused with `EPERM`; every ID a response carries (the `Statx` of Mount,
//! Walk, WalkStat, FStat and the creates) is translated back, and a host ID outside every
//! range is shown as the overflow ID 65534, as the kernel shows unmapped IDs in a user
//! namespace. "Keep the server's" (`-1`) passes through.
//!
//! The mapping sits at the protocol boundary (after decoding, before encoding), so it holds
//! for every backend and both transports. It cannot reach what the client does on a host
//! FD it was given (a donated file or mount FD): there the kernel shows host IDs.

use lisafs_protocol::wire::{AnyRequest, AnyResponse, Errno, Gid, SetStatReq, Statx, Uid};

/// The ID the client sees for a host ID outside every range.
pub const OVERFLOW_ID: u32 = 65_534;

/// `count` consecutive IDs starting at `inside` (the client's view) and at `outside` (the
/// host's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// The first ID as the client sees it.
    pub inside: u32,
    /// The first ID on the host.
    pub outside: u32,
    /// How many.
    pub count: u32,
}

/// The ranges for user IDs and for group IDs; `None` leaves that kind unmapped (the same
/// on both sides).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdMap {
    uid: Option<Vec<IdRange>>,
    gid: Option<Vec<IdRange>>,
}

/// Why ranges cannot form a map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdMapError {
    /// A range holds no IDs.
    #[error("a range with count 0")]
    Empty,
    /// A range runs past the largest ID (or into the "keep" value, `-1`).
    #[error("a range runs past 4294967294")]
    Overflow,
    /// Two ranges share IDs on one side, which would make the map ambiguous.
    #[error("ranges overlap on the {0} side")]
    Overlap(&'static str),
}

impl IdMap {
    /// A map from the user ID ranges `uid` and group ID ranges `gid`.
    pub fn new(uid: Option<Vec<IdRange>>, gid: Option<Vec<IdRange>>) -> Result<Self, IdMapError> {
        for ranges in [&uid, &gid].into_iter().flatten() {
            check(ranges)?;
        }
        Ok(Self { uid, gid })
    }

    /// The user ID ranges, if user IDs are mapped.
    pub fn uid_ranges(&self) -> Option<&[IdRange]> {
        self.uid.as_deref()
    }

    /// The group ID ranges, if group IDs are mapped.
    pub fn gid_ranges(&self) -> Option<&[IdRange]> {
        self.gid.as_deref()
    }

    /// Translates the IDs of a decoded request to the host's, or refuses it.
    pub(crate) fn map_request(&self, req: &mut AnyRequest) -> Result<(), Errno> {
        let owner = |uid: &mut Uid, gid: &mut Gid| -> Result<(), Errno> {
            uid.0 = outside(self.uid.as_deref(), uid.0)?;
            gid.0 = outside(self.gid.as_deref(), gid.0)?;
            Ok(())
        };
        match req {
            AnyRequest::OpenCreateAt(r) => owner(&mut r.common.uid, &mut r.common.gid),
            AnyRequest::MkdirAt(r) => owner(&mut r.common.uid, &mut r.common.gid),
            AnyRequest::MknodAt(r) => owner(&mut r.common.uid, &mut r.common.gid),
            AnyRequest::BindAt(r) => owner(&mut r.common.uid, &mut r.common.gid),
            AnyRequest::SymlinkAt(r) => owner(&mut r.uid, &mut r.gid),
            AnyRequest::ConnectWithCreds(r) => owner(&mut r.uid, &mut r.gid),
            AnyRequest::SetStat(r) => {
                // Only the IDs the mask says are set; the others may hold anything.
                if r.mask & SetStatReq::UID != 0 {
                    r.uid.0 = outside(self.uid.as_deref(), r.uid.0)?;
                }
                if r.mask & SetStatReq::GID != 0 {
                    r.gid.0 = outside(self.gid.as_deref(), r.gid.0)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Translates the IDs in a response's file attributes to the client's.
    pub(crate) fn map_response(&self, resp: &mut AnyResponse) {
        let stat = |stat: &mut Statx| {
            stat.uid = inside(self.uid.as_deref(), stat.uid);
            stat.gid = inside(self.gid.as_deref(), stat.gid);
        };
        match resp {
            AnyResponse::Mount(r) => stat(&mut r.root.stat),
            AnyResponse::Walk(r) => r.inodes.iter_mut().for_each(|i| stat(&mut i.stat)),
            AnyResponse::WalkStat(r) => r.stats.iter_mut().for_each(stat),
            AnyResponse::FStat(r) => stat(&mut r.stat),
            AnyResponse::OpenCreateAt(r) => stat(&mut r.child.stat),
            AnyResponse::MkdirAt(r) => stat(&mut r.child.stat),
            AnyResponse::MknodAt(r) => stat(&mut r.child.stat),
            AnyResponse::SymlinkAt(r) => stat(&mut r.symlink.stat),
            AnyResponse::LinkAt(r) => stat(&mut r.link.stat),
            AnyResponse::BindAt(r) => stat(&mut r.child.stat),
            _ => {}
        }
    }
}

/// "Keep the server's" (`-1`): never mapped.
const KEEP: u32 = u32::MAX;

fn check(ranges: &[IdRange]) -> Result<(), IdMapError> {
    for range in ranges {
        if range.count == 0 {
            return Err(IdMapError::Empty);
        }
        let last = |start: u32| start.checked_add(range.count - 1).filter(|&end| end < KEEP);
        if last(range.inside).is_none() || last(range.outside).is_none() {
            return Err(IdMapError::Overflow);
        }
    }
    for (side, start) in [
        ("inside", (|r: &IdRange| r.inside) as fn(&IdRange) -> u32),
        ("outside", |r: &IdRange| r.outside),
    ] {
        let mut spans: Vec<_> = ranges.iter().map(|r| (start(r), r.count)).collect();
        spans.sort_unstable();
        if spans
            .windows(2)
            .any(|w| u64::from(w[0].0) + u64::from(w[0].1) > u64::from(w[1].0))
        {
            return Err(IdMapError::Overlap(side));
        }
    }
    Ok(())
}

/// The host ID for the client's `id`, or `EPERM` if no range holds it.
fn outside(ranges: Option<&[IdRange]>, id: u32) -> Result<u32, Errno> {
    let Some(ranges) = ranges else {
        return Ok(id);
    };
    if id == KEEP {
        return Ok(id);
    }
    ranges
        .iter()
        .find(|r| id >= r.inside && id - r.inside < r.count)
        .map(|r| r.outside + (id - r.inside))
        .ok_or(Errno::EPERM)
}

/// The client's ID for the host's `id`, or [`OVERFLOW_ID`] if no range holds it.
fn inside(ranges: Option<&[IdRange]>, id: u32) -> u32 {
    let Some(ranges) = ranges else {
        return id;
    };
    ranges
        .iter()
        .find(|r| id >= r.outside && id - r.outside < r.count)
        .map_or(OVERFLOW_ID, |r| r.inside + (id - r.outside))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBUIDS: IdRange = IdRange {
        inside: 0,
        outside: 100_000,
        count: 65_536,
    };

    #[test]
    fn ids_map_both_ways_and_unmapped_ones_are_refused_or_overflow() {
        let ranges = Some(vec![SUBUIDS]);
        assert_eq!(outside(ranges.as_deref(), 0), Ok(100_000));
        assert_eq!(outside(ranges.as_deref(), 1000), Ok(101_000));
        assert_eq!(outside(ranges.as_deref(), 65_536), Err(Errno::EPERM));
        assert_eq!(outside(ranges.as_deref(), KEEP), Ok(KEEP));
        assert_eq!(inside(ranges.as_deref(), 101_000), 1000);
        assert_eq!(inside(ranges.as_deref(), 0), OVERFLOW_ID);
        assert_eq!(inside(ranges.as_deref(), 165_536), OVERFLOW_ID);
        assert_eq!(inside(None, 7), 7);
        assert_eq!(outside(None, 7), Ok(7));
    }

    #[test]
    fn bad_ranges_are_refused() {
        let range = |inside, outside, count| IdRange {
            inside,
            outside,
            count,
        };
        let map = |ranges| IdMap::new(Some(ranges), None);
        assert_eq!(map(vec![range(0, 0, 0)]), Err(IdMapError::Empty));
        assert_eq!(
            map(vec![range(u32::MAX - 1, 0, 2)]),
            Err(IdMapError::Overflow)
        );
        assert_eq!(
            map(vec![range(0, 0, 10), range(5, 100, 10)]),
            Err(IdMapError::Overlap("inside"))
        );
        assert_eq!(
            map(vec![range(0, 0, 10), range(100, 5, 10)]),
            Err(IdMapError::Overlap("outside"))
        );
        assert!(map(vec![range(0, 100, 10), range(10, 0, 10)]).is_ok());
    }
}
