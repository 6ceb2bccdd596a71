//! Each thread's front of a cache: copies of entries the thread found in moka, so that a repeated
//! hit takes no lock, writes no shared memory and skips moka's read bookkeeping.
//!
//! moka stays the owner of every entry: a copy answers only while its entry is live in moka
//! (eviction, expiry, replacement and invalidation clear the entry's `live` flag at once), and the
//! value is shared with moka's entry through an `Arc`, not copied. Memory: a front holds at most
//! [`CAPACITY`] entries, and drops the copies of removed entries the next time its thread uses the
//! cache after a removal, so values kept alive beyond `max_size` are bounded by
//! `threads × CAPACITY`, and only for threads that stopped using the cache.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::Ordering;

use thread_local::ThreadLocal;

use super::Stored;

/// Most entries one thread's front holds for one cache.
pub(super) const CAPACITY: usize = 64;

/// One lookup in this many skips the front and reads moka while the cache is far from full, so
/// that moka's eviction policy keeps seeing the entries that are read. Near capacity, when the
/// policy decides what stays, every lookup reads moka.
const SAMPLE: u32 = 256;

/// Every thread's front of one cache.
pub(super) struct Fronts<K: Send, V: Send + Sync> {
    fronts: ThreadLocal<Padded<RefCell<Front<K, V>>>>,
}

/// A value on cache lines of its own: a thread's front is written on every hit (its borrow flag),
/// and must not share a line with another thread's.
#[repr(align(128))]
struct Padded<T>(T);

struct Front<K, V> {
    /// The cache's invalidation epoch when the copies were made.
    epoch: u64,
    /// The cache's count of removals when dead copies were last dropped.
    removals: u64,
    lookups: u32,
    entries: HashMap<K, Stored<V>, foldhash::fast::RandomState>,
}

/// The cache's state a front is checked against.
#[derive(Clone, Copy)]
pub(super) struct Seen {
    /// Moved on by `invalidate_all`: every copy is dropped.
    pub(super) epoch: u64,
    /// Moved on by every removal from moka: dead copies are dropped.
    pub(super) removals: u64,
    /// The cache is near capacity: answer nothing from the front, so moka sees every read.
    pub(super) full: bool,
}

impl<K: Hash + Eq + Clone + Send, V: Clone + Send + Sync> Fronts<K, V> {
    pub(super) fn new() -> Self {
        Fronts {
            fronts: ThreadLocal::new(),
        }
    }

    /// The value of the live, unexpired copy of `key` in this thread's front; `None` also for the
    /// lookups that must read moka (sampled, or all of them near capacity).
    #[inline]
    pub(super) fn get(
        &self,
        key: &K,
        seen: Seen,
        expired: impl Fn(&Stored<V>) -> bool,
    ) -> Option<V> {
        let cell = &self.fronts.get()?.0;
        let mut front = cell.try_borrow_mut().ok()?;
        if front.epoch != seen.epoch || front.removals != seen.removals {
            front.refresh(seen);
        }
        front.lookups = front.lookups.wrapping_add(1);
        if seen.full || front.lookups.is_multiple_of(SAMPLE) {
            return None;
        }
        let stored = front.entries.get(key)?;
        if !stored.live.load(Ordering::Acquire) || expired(stored) {
            front.entries.remove(key);
            return None;
        }
        Some(V::clone(&stored.value))
    }

    /// Keeps a copy of `stored`, read from moka while the cache was as `seen`, in this thread's
    /// front.
    pub(super) fn keep(&self, key: &K, stored: &Stored<V>, seen: Seen, capacity: usize) {
        let cell = &self
            .fronts
            .get_or(|| {
                Padded(RefCell::new(Front {
                    epoch: seen.epoch,
                    removals: seen.removals,
                    lookups: 0,
                    entries: HashMap::default(),
                }))
            })
            .0;
        let Ok(mut front) = cell.try_borrow_mut() else {
            return;
        };
        if front.epoch != seen.epoch || front.removals != seen.removals {
            front.refresh(seen);
        }
        let capacity = capacity.clamp(1, CAPACITY);
        if front.entries.len() >= capacity && !front.entries.contains_key(key) {
            front.entries.retain(|_, s| s.live.load(Ordering::Relaxed));
            if front.entries.len() >= capacity {
                front.entries.clear();
            }
        }
        front.entries.insert(key.clone(), stored.clone());
    }
}

impl<K, V> Front<K, V> {
    /// Catches up with the cache: everything goes after `invalidate_all`, the dead copies after a
    /// removal.
    #[cold]
    fn refresh(&mut self, seen: Seen) {
        if self.epoch != seen.epoch {
            self.entries.clear();
        } else {
            self.entries.retain(|_, s| s.live.load(Ordering::Acquire));
        }
        self.epoch = seen.epoch;
        self.removals = seen.removals;
    }
}
