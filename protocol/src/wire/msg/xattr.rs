//! FGetXattr (MID 25), FSetXattr (MID 26), FListXattr (MID 27) and FRemoveXattr (MID 28).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::wire::codec::{fixed_wire, wire_struct};
use crate::wire::types::{fixed_struct, FdId, SizedString, StringArray};

fixed_struct! {
    /// FListXattr request.
    pub struct FListXattrReq {
        /// Control FD of the file.
        pub fd: FdId,
        /// Largest list size wanted (0 means the maximum).
        pub size: u64,
    }
}

fixed_wire! {
    FListXattrReq = 16,
}

wire_struct! {
    /// FGetXattr request.
    pub struct FGetXattrReq {
        /// Control FD of the file.
        pub fd: FdId,
        /// Largest value size wanted (0 means the maximum).
        pub buf_size: u32,
        /// Attribute name.
        pub name: SizedString,
    }

    /// FGetXattr response.
    pub struct FGetXattrResp {
        /// Attribute value.
        pub value: SizedString,
    }

    /// FSetXattr request.
    pub struct FSetXattrReq {
        /// Control FD of the file.
        pub fd: FdId,
        /// `XATTR_CREATE` (1) or `XATTR_REPLACE` (2), or 0.
        pub flags: u32,
        /// Attribute name.
        pub name: SizedString,
        /// Attribute value.
        pub value: SizedString,
    }

    /// FSetXattr response: empty.
    pub struct FSetXattrResp {}

    /// FListXattr response.
    pub struct FListXattrResp {
        /// Attribute names.
        pub xattrs: StringArray,
    }

    /// FRemoveXattr request.
    pub struct FRemoveXattrReq {
        /// Control FD of the file.
        pub fd: FdId,
        /// Attribute name.
        pub name: SizedString,
    }

    /// FRemoveXattr response: empty.
    pub struct FRemoveXattrResp {}
}
