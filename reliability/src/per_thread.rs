//! A copy of a value per thread, found in two dependent loads: the thread's index (a
//! `const`-initialised thread local, read inline) and the slot of that index in a bucket.
//!
//! Each thread holds an index while it lives and gives it back when it ends; the lowest free index
//! is handed out first, so the buckets stay as small as the number of threads alive at once. A
//! thread that gets a returned index gets that index's copies too, as the `thread_local` crate
//! does: it takes them over after their last user is gone (through the lock that hands the index
//! on), so copies written only by their own thread stay exact.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Mutex, OnceLock};

use crate::stats::lock;

/// Bucket `b` holds `2^b` slots: 32 buckets hold more threads than can be alive at once.
const BUCKETS: usize = 32;

/// This thread has no index yet.
const UNSET: usize = usize::MAX;
/// This thread gave its index back (it is ending) or could not get one: it uses no slot.
const NONE: usize = usize::MAX - 1;

thread_local! {
    /// This thread's index; no destructor, so it can be read at any point of the thread's life.
    static INDEX: Cell<usize> = const { Cell::new(UNSET) };
    /// Gives the index back when the thread ends.
    static LEASE: Lease = const { Lease(Cell::new(UNSET)) };
}

/// The indices of ended threads, and the next never handed out.
static FREE: Mutex<(BinaryHeap<Reverse<usize>>, usize)> = Mutex::new((BinaryHeap::new(), 0));

struct Lease(Cell<usize>);

impl Drop for Lease {
    fn drop(&mut self) {
        let index = self.0.replace(UNSET);
        if index < NONE {
            // Whatever this thread still counts (another thread local's destructor) goes nowhere
            // rather than into a slot that another thread now owns.
            let _ = INDEX.try_with(|i| i.set(NONE));
            lock(&FREE).0.push(Reverse(index));
        }
    }
}

/// This thread's index, or `NONE`.
#[inline]
fn index() -> usize {
    match INDEX.with(Cell::get) {
        UNSET => assign(),
        index => index,
    }
}

#[cold]
fn assign() -> usize {
    let index = {
        let mut free = lock(&FREE);
        match free.0.pop() {
            Some(Reverse(index)) => index,
            None => {
                free.1 += 1;
                free.1 - 1
            }
        }
    };
    let index = match LEASE.try_with(|lease| lease.0.set(index)) {
        Ok(()) => index,
        // The thread is ending and can hold nothing more: the index goes straight back.
        Err(_) => {
            lock(&FREE).0.push(Reverse(index));
            NONE
        }
    };
    INDEX.with(|i| i.set(index));
    index
}

/// Whether this thread's index is `index` (a thread that has none is never at an index).
#[inline]
pub(crate) fn at(index: usize) -> bool {
    INDEX.with(Cell::get) == index
}

/// This thread's index, and its bucket and place in it; `None` for a thread that holds no index.
#[inline]
fn place() -> Option<(usize, usize, usize)> {
    match index() {
        NONE.. => None,
        index => {
            let (bucket, at) = locate(index);
            Some((index, bucket, at))
        }
    }
}

/// The bucket and the place in it of index `index`.
#[inline]
fn locate(index: usize) -> (usize, usize) {
    let n = index + 1;
    let bucket = (usize::BITS - 1 - n.leading_zeros()) as usize;
    (bucket, n - (1 << bucket))
}

/// A `T` per thread that used it; every copy can be read from any thread.
pub(crate) struct PerThread<T> {
    buckets: [OnceLock<Box<[T]>>; BUCKETS],
}

impl<T: Default> PerThread<T> {
    pub(crate) const fn new() -> Self {
        PerThread {
            buckets: [const { OnceLock::new() }; BUCKETS],
        }
    }

    /// This thread's index and copy, if it has one. The copy stays this index's: a later call on
    /// a thread [`at`] the same index may use it again without looking it up.
    #[inline]
    pub(crate) fn get(&self) -> Option<(usize, &T)> {
        let (index, bucket, at) = place()?;
        Some((index, self.buckets.get(bucket)?.get()?.get(at)?))
    }

    /// This thread's copy, made (with its bucket) if it has none; `None` for a thread that is
    /// ending.
    #[cold]
    pub(crate) fn get_or_default(&self) -> Option<&T> {
        let (_, bucket, at) = place()?;
        self.buckets
            .get(bucket)?
            .get_or_init(|| (0..1usize << bucket).map(|_| T::default()).collect())
            .get(at)
    }

    /// Every copy made so far (some of threads that ended).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.buckets.iter().filter_map(OnceLock::get).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn indices_fill_the_buckets_in_order() {
        let places: Vec<_> = (0..7).map(locate).collect();
        assert_eq!(
            places,
            [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2), (2, 3)]
        );
        assert_eq!(locate((1 << 31) - 2), (30, (1 << 30) - 1));
    }

    #[test]
    fn each_thread_counts_in_its_own_copy_and_nothing_is_lost() {
        static COUNTS: PerThread<AtomicU64> = PerThread::new();
        let add = || {
            let copy = match COUNTS.get() {
                Some((_, copy)) => copy,
                None => COUNTS.get_or_default().expect("a live thread has an index"),
            };
            copy.store(copy.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        };
        // 8 rounds of 4 threads, 1 000 counts each; a thread of a later round may get the index
        // (and the copy) of one that ended.
        for _ in 0..8 {
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| (0..1_000).for_each(|_| add()));
                }
            });
        }
        let total: u64 = COUNTS.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        assert_eq!(total, 32_000);
    }
}
