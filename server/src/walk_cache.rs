//! The directories a connection's WalkStats passed through, so that the next WalkStat
//! through them asks the backend only whether each name still names the same directory
//! ([`Backend::revalidate`](crate::Backend::revalidate)) instead of looking it up anew.
//!
//! Trust does not rest on the cache: an entry is a hint, used only after the backend has
//! proven, against the live directory, that the name names the cached file now. So an
//! entry's parent is remembered by address only (a new file at a freed file's address
//! meets the entry only through that same proof), and nothing is ever invalidated
//! eagerly: a host rename, a client rename or an unlink shows at the next revalidation.
//!
//! Entries hold backend files (host FDs), so the cache is small and per connection: it
//! goes with the connection, and an FD budget must count it ([`WALK_CACHE_CAPACITY`]).

use std::sync::Arc;

use parking_lot::Mutex;

use crate::name::Name;

/// Directories one connection's walk cache holds at most: each may pin one host FD.
pub const WALK_CACHE_CAPACITY: usize = 32;

/// One cached step: `name` in the directory at address `parent` was `dir`.
struct Entry<F> {
    parent: usize,
    name: Box<[u8]>,
    dir: Arc<F>,
}

/// A bounded set of cached WalkStat steps, replaced round-robin when full.
pub(crate) struct WalkCache<F> {
    slots: Mutex<Slots<F>>,
}

struct Slots<F> {
    entries: Vec<Entry<F>>,
    /// The entry the next insertion into a full cache replaces.
    next: usize,
}

/// `file`'s address: the key of the directory an entry's name is in.
fn address<F>(file: &F) -> usize {
    std::ptr::from_ref(file) as usize
}

impl<F> WalkCache<F> {
    pub(crate) fn new() -> Self {
        Self {
            slots: Mutex::new(Slots {
                entries: Vec::new(),
                next: 0,
            }),
        }
    }

    fn position(slots: &Slots<F>, parent: usize, name: Name<'_>) -> Option<usize> {
        slots
            .entries
            .iter()
            .position(|e| e.parent == parent && *e.name == *name.as_bytes())
    }

    /// The directory `name` in `parent` was when last cached, to be revalidated.
    pub(crate) fn get(&self, parent: &F, name: Name<'_>) -> Option<Arc<F>> {
        let slots = self.slots.lock();
        let at = Self::position(&slots, address(parent), name)?;
        Some(slots.entries[at].dir.clone())
    }

    /// Remembers that `name` in `parent` is the directory `dir`.
    pub(crate) fn insert(&self, parent: &F, name: Name<'_>, dir: Arc<F>) {
        let parent = address(parent);
        let mut slots = self.slots.lock();
        let entry = Entry {
            parent,
            name: name.as_bytes().into(),
            dir,
        };
        if let Some(at) = Self::position(&slots, parent, name) {
            slots.entries[at] = entry;
        } else if slots.entries.len() < WALK_CACHE_CAPACITY {
            slots.entries.push(entry);
        } else {
            let at = slots.next;
            slots.next = (at + 1) % WALK_CACHE_CAPACITY;
            slots.entries[at] = entry;
        }
    }

    /// Forgets `name` in `parent` (it failed revalidation).
    pub(crate) fn remove(&self, parent: &F, name: Name<'_>) {
        let mut slots = self.slots.lock();
        if let Some(at) = Self::position(&slots, address(parent), name) {
            slots.entries.swap_remove(at);
        }
    }

    /// How many directories are cached.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name<'_> {
        Name::new(s.as_bytes()).unwrap()
    }

    #[test]
    fn finds_by_parent_and_name_and_forgets_on_remove() {
        let cache = WalkCache::new();
        let (p, q) = (1u32, 2u32);
        cache.insert(&p, name("a"), Arc::new(10u32));
        cache.insert(&q, name("a"), Arc::new(20u32));
        assert_eq!(cache.get(&p, name("a")).as_deref(), Some(&10));
        assert_eq!(cache.get(&q, name("a")).as_deref(), Some(&20));
        assert!(cache.get(&p, name("b")).is_none());
        cache.insert(&p, name("a"), Arc::new(11u32));
        assert_eq!(cache.get(&p, name("a")).as_deref(), Some(&11));
        assert_eq!(cache.len(), 2);
        cache.remove(&p, name("a"));
        assert!(cache.get(&p, name("a")).is_none());
        assert_eq!(cache.get(&q, name("a")).as_deref(), Some(&20));
    }

    #[test]
    fn never_holds_more_than_its_capacity() {
        let cache = WalkCache::new();
        let parent = 0u8;
        let names: Vec<String> = (0..3 * WALK_CACHE_CAPACITY)
            .map(|i| format!("d{i}"))
            .collect();
        let dir = Arc::new(0u8);
        for n in &names {
            cache.insert(&parent, name(n), dir.clone());
        }
        assert_eq!(cache.len(), WALK_CACHE_CAPACITY);
        // Round-robin: the last WALK_CACHE_CAPACITY insertions are what is left.
        let kept = &names[names.len() - WALK_CACHE_CAPACITY..];
        assert!(kept.iter().all(|n| cache.get(&parent, name(n)).is_some()));
        assert_eq!(Arc::strong_count(&dir), WALK_CACHE_CAPACITY + 1);
    }
}
