//! Getdents64's entries, kept in their wire encoding.
//!
//! A listing of a thousand entries is a thousand names; holding each in its own allocation
//! made `malloc`/`free` a third of the gofer's Getdents64 time, and the client's decoding
//! allocated as many again. A [`DirentList`] is instead the encoded records back to back in
//! one buffer: the gofer appends to it straight from the kernel's `getdents64` buffer, the
//! server copies it into the reply whole, and the client checks it once when decoding and
//! then reads each entry in place as a borrowed [`Dirent64`].

use std::fmt;

use crate::wire::codec::{Decoder, EncodeError, Encoder, Wire};
use crate::wire::DecodeError;

/// Bytes of a [`Dirent64`]'s encoding besides its name: `ino`, `dev_minor`, `dev_major`,
/// `off`, `d_type` and the name's `u16` length.
pub const DIRENT64_FIXED_SIZE: usize = 27;

/// What Linux charges for an entry in a `getdents64` buffer, the unit of Getdents64's
/// budget: `struct linux_dirent64` is 19 bytes plus the name and its NUL, rounded up to 8.
pub fn linux_reclen(name_len: usize) -> usize {
    (19 + name_len + 1).next_multiple_of(8)
}

/// One directory entry of a Getdents64 response (SPEC.md §3.7: 27 bytes + name), its
/// name borrowed from the [`DirentList`] that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Dirent64<'a> {
    /// Inode number.
    pub ino: u64,
    /// Minor number of the device holding the entry.
    pub dev_minor: u32,
    /// Major number of the device holding the entry.
    pub dev_major: u32,
    /// Opaque offset of the next entry (the host's `d_off`).
    pub off: u64,
    /// `DT_*` file type.
    pub d_type: u8,
    /// Entry name.
    pub name: &'a [u8],
}

impl Dirent64<'_> {
    /// Bytes this entry's encoding takes.
    pub fn wire_size(&self) -> usize {
        DIRENT64_FIXED_SIZE + self.name.len()
    }
}

/// The entries of a Getdents64 response, in directory order (lisafs's `[]Dirent64`: a
/// `u16` count, then the entries back to back), stored encoded.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DirentList {
    count: u16,
    /// The entries' encodings; every one of the `count` records is complete and valid.
    bytes: Vec<u8>,
}

impl DirentList {
    /// An empty list (the end of a directory).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty list with room for `bytes` bytes of entries.
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            count: 0,
            bytes: Vec::with_capacity(bytes),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// True when the list holds no entry.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the list's encoding takes, count included.
    pub fn wire_size(&self) -> usize {
        2 + self.bytes.len()
    }

    /// Appends `entry`. Fails, leaving the list as it was, when the list already holds
    /// 65,535 entries or the name is longer than 65,535 bytes (the wire's limits).
    pub fn push(&mut self, entry: &Dirent64<'_>) -> Result<(), EncodeError> {
        let max = usize::from(u16::MAX);
        if self.count == u16::MAX {
            return Err(EncodeError { len: max + 1, max });
        }
        let name_len = u16::try_from(entry.name.len()).map_err(|_| EncodeError {
            len: entry.name.len(),
            max,
        })?;
        self.bytes.reserve(entry.wire_size());
        self.bytes.extend_from_slice(&entry.ino.to_le_bytes());
        self.bytes.extend_from_slice(&entry.dev_minor.to_le_bytes());
        self.bytes.extend_from_slice(&entry.dev_major.to_le_bytes());
        self.bytes.extend_from_slice(&entry.off.to_le_bytes());
        self.bytes.push(entry.d_type);
        self.bytes.extend_from_slice(&name_len.to_le_bytes());
        self.bytes.extend_from_slice(entry.name);
        self.count += 1;
        Ok(())
    }

    /// Keeps only the entries `keep` accepts, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&Dirent64<'_>) -> bool) {
        let mut kept = Self::with_capacity(self.bytes.len());
        kept.extend(self.iter().filter(|entry| keep(entry)));
        *self = kept;
    }

    /// The entries, in order, read in place.
    pub fn iter(&self) -> DirentIter<'_> {
        DirentIter {
            dec: Decoder::new(&self.bytes),
            left: self.count,
        }
    }
}

impl<'a> IntoIterator for &'a DirentList {
    type Item = Dirent64<'a>;
    type IntoIter = DirentIter<'a>;

    fn into_iter(self) -> DirentIter<'a> {
        self.iter()
    }
}

impl<'b> Extend<Dirent64<'b>> for DirentList {
    /// Appends entries; any beyond the wire's limits (see [`DirentList::push`]) are left
    /// out.
    fn extend<I: IntoIterator<Item = Dirent64<'b>>>(&mut self, entries: I) {
        for entry in entries {
            let _ = self.push(&entry);
        }
    }
}

impl<'b> FromIterator<Dirent64<'b>> for DirentList {
    /// Collects entries as [`Extend`] appends them.
    fn from_iter<I: IntoIterator<Item = Dirent64<'b>>>(entries: I) -> Self {
        let mut list = Self::new();
        list.extend(entries);
        list
    }
}

impl fmt::Debug for DirentList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The entries of a [`DirentList`], borrowed from it.
#[derive(Debug, Clone)]
pub struct DirentIter<'a> {
    dec: Decoder<'a>,
    left: u16,
}

impl<'a> Iterator for DirentIter<'a> {
    type Item = Dirent64<'a>;

    fn next(&mut self) -> Option<Dirent64<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The list's bytes were checked when it was built or decoded, so this succeeds.
        read_entry(&mut self.dec).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.left)))
    }
}

/// Reads one entry's encoding from the front of `dec`.
fn read_entry<'a>(dec: &mut Decoder<'a>) -> Result<Dirent64<'a>, DecodeError> {
    let ino = u64::decode(dec)?;
    let dev_minor = u32::decode(dec)?;
    let dev_major = u32::decode(dec)?;
    let off = u64::decode(dec)?;
    let d_type = u8::decode(dec)?;
    let name_len = usize::from(u16::decode(dec)?);
    let name = dec.take(name_len)?;
    Ok(Dirent64 {
        ino,
        dev_minor,
        dev_major,
        off,
        d_type,
        name,
    })
}

impl Wire for DirentList {
    const MIN_SIZE: usize = 2;

    fn encode(&self, enc: &mut Encoder<'_>) {
        self.count.encode(enc);
        enc.put(&self.bytes);
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let count = u16::decode(dec)?;
        dec.check_count(usize::from(count), DIRENT64_FIXED_SIZE)?;
        // Walk the records once to check them and find where they end, then copy them
        // whole: one allocation for the list, not one per name.
        let mut walk = dec.clone();
        for _ in 0..count {
            read_entry(&mut walk)?;
        }
        let size = dec.remaining() - walk.remaining();
        Ok(Self {
            count,
            bytes: dec.take(size)?.to_vec(),
        })
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for DirentList {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let entries: Vec<Dirent64<'a>> = u.arbitrary()?;
        Ok(entries.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode, encode};

    #[test]
    fn reclen_matches_linux_dirent64() {
        // 19 bytes of header, the name, its NUL, rounded up to 8.
        assert_eq!(linux_reclen(1), 24);
        assert_eq!(linux_reclen(4), 24);
        assert_eq!(linux_reclen(5), 32);
        assert_eq!(linux_reclen(255), 280);
    }

    fn entry(ino: u64, name: &[u8]) -> Dirent64<'_> {
        Dirent64 {
            ino,
            dev_minor: 1,
            dev_major: 8,
            off: ino + 100,
            d_type: 8,
            name,
        }
    }

    #[test]
    fn entries_read_back_in_order_after_a_round_trip() {
        let list: DirentList = [entry(1, b"a"), entry(2, b""), entry(3, b"long name")]
            .into_iter()
            .collect();
        let bytes = encode(&list).unwrap();
        assert_eq!(bytes.len(), list.wire_size());
        let back: DirentList = decode(&bytes).unwrap();
        assert_eq!(back, list);
        let names: Vec<&[u8]> = back.iter().map(|d| d.name).collect();
        assert_eq!(names, [&b"a"[..], b"", b"long name"]);
        assert_eq!(back.iter().nth(2), Some(entry(3, b"long name")));
    }

    #[test]
    fn a_record_cut_short_is_rejected() {
        let list: DirentList = [entry(1, b"abc")].into_iter().collect();
        let bytes = encode(&list).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode::<DirentList>(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn decoding_stops_at_the_last_entry() {
        let list: DirentList = [entry(1, b"x")].into_iter().collect();
        let mut bytes = encode(&list).unwrap();
        bytes.extend_from_slice(b"trailing");
        let mut dec = Decoder::new(&bytes);
        assert_eq!(DirentList::decode(&mut dec).unwrap(), list);
        assert_eq!(dec.remaining(), b"trailing".len());
    }

    #[test]
    fn the_wire_limits_refuse_an_entry_and_keep_the_list() {
        let mut list = DirentList::new();
        let long = vec![b'n'; 65_536];
        assert!(list.push(&entry(1, &long)).is_err());
        assert!(list.is_empty() && list.wire_size() == 2);
        for ino in 0..u64::from(u16::MAX) {
            list.push(&entry(ino, b"")).unwrap();
        }
        assert!(list.push(&entry(0, b"")).is_err());
        assert_eq!(list.len(), 65_535);
    }

    #[test]
    fn retain_keeps_the_accepted_entries_in_order() {
        let mut list: DirentList = [entry(1, b"keep"), entry(2, b"drop"), entry(3, b"keep2")]
            .into_iter()
            .collect();
        list.retain(|d| d.name != b"drop");
        let inos: Vec<u64> = list.iter().map(|d| d.ino).collect();
        assert_eq!(inos, [1, 3]);
        assert_eq!(
            list,
            [entry(1, b"keep"), entry(3, b"keep2")]
                .into_iter()
                .collect()
        );
    }
}
