//! A Getdents64 reply being filled, within lisafs's limits, for any backend.

use lisafs_protocol::wire::{linux_reclen, Dirent64, DirentList, MAX_MESSAGE_SIZE};

/// Entries of one Getdents64 reply: each charged its [`linux_reclen`] against the budget
/// the client asked for, and the reply kept within one message and 65,535 entries.
#[derive(Debug)]
pub struct DirentBatch {
    list: DirentList,
    budget: usize,
    used: usize,
}

impl DirentBatch {
    /// An empty batch that takes entries whose record lengths add up to at most `budget`.
    pub fn new(budget: usize) -> Self {
        Self {
            // Encoded entries take about as much as their records; room for a quarter of
            // a message up front spares the regrowth of a long listing.
            list: DirentList::with_capacity(budget.min(MAX_MESSAGE_SIZE as usize / 4)),
            budget,
            used: 0,
        }
    }

    /// Appends `entry` if it fits; `false`, the batch unchanged, once it is full.
    pub fn push(&mut self, entry: &Dirent64<'_>) -> bool {
        let cost = linux_reclen(entry.name.len());
        let fits = self.used + cost <= self.budget
            && self.list.wire_size() + entry.wire_size() <= MAX_MESSAGE_SIZE as usize
            && self.list.push(entry).is_ok();
        if fits {
            self.used += cost;
        }
        fits
    }

    /// The entries taken.
    pub fn into_list(self) -> DirentList {
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &[u8]) -> Dirent64<'_> {
        Dirent64 {
            name,
            ..Dirent64::default()
        }
    }

    #[test]
    fn the_budget_counts_record_lengths_and_an_entry_that_does_not_fit_is_refused() {
        let mut batch = DirentBatch::new(24 + 32);
        assert!(batch.push(&named(b"abcd")));
        assert!(!batch.push(&named(b"123456789abcd")), "40 bytes, 32 left");
        assert!(batch.push(&named(b"abcde")));
        assert!(!batch.push(&named(b"")));
        let names: Vec<&[u8]> = batch.list.iter().map(|d| d.name).collect();
        assert_eq!(names, [&b"abcd"[..], b"abcde"]);
    }

    #[test]
    fn a_reply_stops_before_it_outgrows_a_message() {
        let name = [b'n'; 255];
        let mut batch = DirentBatch::new(usize::MAX);
        while batch.push(&named(&name)) {}
        let list = batch.into_list();
        assert!(list.wire_size() <= MAX_MESSAGE_SIZE as usize);
        assert!(list.wire_size() + 27 + 255 > MAX_MESSAGE_SIZE as usize);
    }

    #[test]
    fn a_reply_stops_at_65535_entries() {
        let mut batch = DirentBatch::new(usize::MAX);
        while batch.push(&named(b"")) {}
        assert_eq!(batch.into_list().len(), 65_535);
    }
}
