//! Message IDs.

use std::fmt;

/// A lisafs message ID (MID). Requests and their responses share a MID; an error response
/// to any request is [`Mid::Error`]. Values come off the wire through [`TryFrom<u16>`]: an
/// unknown value is an error, never a panic or a transmute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[repr(u16)]
#[allow(missing_docs)] // Each variant is named after its message; SPEC.md §6 describes each.
pub enum Mid {
    Error = 0,
    Mount = 1,
    Channel = 2,
    FStat = 3,
    SetStat = 4,
    Walk = 5,
    WalkStat = 6,
    OpenAt = 7,
    OpenCreateAt = 8,
    Close = 9,
    FSync = 10,
    PWrite = 11,
    PRead = 12,
    MkdirAt = 13,
    MknodAt = 14,
    SymlinkAt = 15,
    LinkAt = 16,
    FStatFS = 17,
    FAllocate = 18,
    ReadLinkAt = 19,
    Flush = 20,
    Connect = 21,
    UnlinkAt = 22,
    RenameAt = 23,
    Getdents64 = 24,
    FGetXattr = 25,
    FSetXattr = 26,
    FListXattr = 27,
    FRemoveXattr = 28,
    BindAt = 29,
    Listen = 30,
    Accept = 31,
    ConnectWithCreds = 32,
    RenameAt2 = 33,
}

/// A MID value that names no message this crate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown message ID {0}")]
pub struct UnknownMid(pub u16);

impl Mid {
    /// Every MID, in numeric order.
    pub const ALL: [Mid; 34] = [
        Mid::Error,
        Mid::Mount,
        Mid::Channel,
        Mid::FStat,
        Mid::SetStat,
        Mid::Walk,
        Mid::WalkStat,
        Mid::OpenAt,
        Mid::OpenCreateAt,
        Mid::Close,
        Mid::FSync,
        Mid::PWrite,
        Mid::PRead,
        Mid::MkdirAt,
        Mid::MknodAt,
        Mid::SymlinkAt,
        Mid::LinkAt,
        Mid::FStatFS,
        Mid::FAllocate,
        Mid::ReadLinkAt,
        Mid::Flush,
        Mid::Connect,
        Mid::UnlinkAt,
        Mid::RenameAt,
        Mid::Getdents64,
        Mid::FGetXattr,
        Mid::FSetXattr,
        Mid::FListXattr,
        Mid::FRemoveXattr,
        Mid::BindAt,
        Mid::Listen,
        Mid::Accept,
        Mid::ConnectWithCreds,
        Mid::RenameAt2,
    ];

    /// The numeric value sent on the wire.
    pub const fn as_u16(self) -> u16 {
        self as u16
    }

    /// How many host FDs a successful response to this request may donate. The socket
    /// header carries no FD count, so a receiver sizes its control buffer from this.
    /// Clients never send FDs, so requests always expect none.
    pub const fn response_fds(self) -> usize {
        match self {
            Mid::Channel => 2,
            Mid::Mount
            | Mid::OpenAt
            | Mid::OpenCreateAt
            | Mid::Connect
            | Mid::ConnectWithCreds
            | Mid::BindAt
            | Mid::Accept => 1,
            _ => 0,
        }
    }
}

impl TryFrom<u16> for Mid {
    type Error = UnknownMid;

    fn try_from(value: u16) -> Result<Self, UnknownMid> {
        Mid::ALL
            .get(usize::from(value))
            .copied()
            .ok_or(UnknownMid(value))
    }
}

impl From<Mid> for u16 {
    fn from(mid: Mid) -> u16 {
        mid.as_u16()
    }
}

impl fmt::Display for Mid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_indexed_by_value() {
        for (i, mid) in Mid::ALL.iter().enumerate() {
            assert_eq!(usize::from(mid.as_u16()), i);
            assert_eq!(Mid::try_from(mid.as_u16()), Ok(*mid));
        }
    }

    #[test]
    fn unknown_values_are_errors() {
        assert_eq!(Mid::try_from(34), Err(UnknownMid(34)));
        assert_eq!(Mid::try_from(256), Err(UnknownMid(256)));
        assert_eq!(Mid::try_from(u16::MAX), Err(UnknownMid(u16::MAX)));
    }
}
