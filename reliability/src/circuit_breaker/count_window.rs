//! The count window of the rate rule (the last N calls), without a lock.
//!
//! The window keeps running totals instead of outcomes: `head` holds the number of calls recorded
//! in this period and the cumulative counts of failures and slow calls, and each call leaves in
//! the ring the cumulative counts just after it. The window of the last N calls is then the head's
//! counts minus the ones the ring holds for the call N places earlier. A call is recorded with one
//! compare-exchange of `head` (which orders all calls of the period, exactly), two loads and one
//! plain store to the ring; nothing is allocated, no lock is taken, and the ring's length is a
//! power of two, so no call divides.
//!
//! Every word carries the period's tag (the low bits of the breaker's generation): a call of an
//! earlier period fails the compare-exchange of `head` and is not counted, and a transition starts
//! a new period by swapping `head` (under the breaker's lock), without touching the ring.
//!
//! When the call N places earlier has not yet left its counts in the ring (more than N outcomes
//! were being recorded at once, or a slow store overwrote them), a call is counted but cannot see
//! its window: it makes no decision, and the next one does.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use super::window::{Counts, Outcome};
use crate::sync::AtomicU64;

// `head`: tag (11 bits) | full (1) | seq (20) | cumulative failures (16) | cumulative slow (16).
// A ring slot: tag | valid (1) | seq | failures | slow: the counts just after call `seq`.
const SLOW_SHIFT: u32 = 0;
const FAIL_SHIFT: u32 = 16;
const SEQ_SHIFT: u32 = 32;
const FLAG: u64 = 1 << 52;
const TAG_SHIFT: u32 = 53;
const SEQ_BITS: u32 = 20;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
const TAG_MASK: u64 = (1 << (64 - TAG_SHIFT)) - 1;

/// The largest window: the cumulative counts are kept modulo 2^16.
pub(crate) const MAX_CALLS: u32 = u16::MAX as u32;

fn tag(word: u64) -> u64 {
    word >> TAG_SHIFT
}

fn seq(word: u64) -> u64 {
    (word >> SEQ_SHIFT) & SEQ_MASK
}

fn failures(word: u64) -> u16 {
    (word >> FAIL_SHIFT) as u16
}

fn slow(word: u64) -> u16 {
    (word >> SLOW_SHIFT) as u16
}

fn pack(tag: u64, flag: bool, seq: u64, failures: u16, slow: u16) -> u64 {
    ((tag & TAG_MASK) << TAG_SHIFT)
        | if flag { FLAG } else { 0 }
        | (seq << SEQ_SHIFT)
        | (u64::from(failures) << FAIL_SHIFT)
        | (u64::from(slow) << SLOW_SHIFT)
}

/// What recording one outcome gave.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// The outcome belongs to an earlier period: not counted.
    Stale,
    /// Counted as call `seq` of the period (modulo `2^20`); `window` is what the window
    /// held just after it, when known; `full`: the window held N calls already before it.
    Counted {
        seq: u64,
        window: Option<Counts>,
        full: bool,
    },
}

/// The last `size` calls of the current period.
pub(crate) struct CountWindow {
    size: u64,
    /// The ring's length minus one: the length is the power of two at or above `2 × size`, so
    /// that a slot's index is a mask of `seq` (which counts modulo `2^20`, a multiple of it), and
    /// no call divides.
    mask: u64,
    head: AtomicU64,
    /// At least `2 × size` slots: the counts after call `seq` stay until call `seq + mask + 1`
    /// replaces them, so the call `size` places later, and a reader at rest, find them.
    ring: Box<[AtomicU64]>,
}

impl CountWindow {
    /// A window of the last `size` calls (1 to [`MAX_CALLS`]), in period `generation`.
    pub(crate) fn new(size: u32, generation: u64) -> Self {
        let size = u64::from(size.clamp(1, MAX_CALLS));
        let slots = (2 * size).next_power_of_two();
        CountWindow {
            size,
            mask: slots - 1,
            head: AtomicU64::new(pack(generation, false, 0, 0, 0)),
            ring: (0..slots).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Starts period `generation`, empty. Called under the breaker's lock at every transition.
    pub(crate) fn reset(&self, generation: u64) {
        // A swap, not a store, so that it is ordered with the compare-exchanges of `record` in
        // every model (loom 0.7 lets a compare-exchange read past a plain store).
        self.head.swap(pack(generation, false, 0, 0, 0), AcqRel);
    }

    /// Records the outcome of a call admitted in period `generation`.
    #[cfg(test)]
    pub(crate) fn record(&self, generation: u64, outcome: Outcome) -> Recorded {
        self.record_with(generation, outcome, false, |seq, full, window| {
            Recorded::Counted { seq, window, full }
        })
        .unwrap_or(Recorded::Stale)
    }

    /// Records the outcome of a call admitted in period `generation`, and whether the window it
    /// leaves opens the breaker by `opens` (the breaker's rule). A call that neither failed nor
    /// was slow cannot open a window that was full before it (the window holds no more failures
    /// or slow calls than it did before, on which the call before decided): it does not ask.
    /// Returns a `bool` (in a register) rather than a report, which on the closed path costs.
    pub(crate) fn record_opens(
        &self,
        generation: u64,
        outcome: Outcome,
        opens: impl Fn(Counts) -> bool,
    ) -> bool {
        self.record_with(generation, outcome, true, |_, _, window| {
            window.is_some_and(&opens)
        })
        .unwrap_or(false)
    }

    /// Records the outcome; `None` if it is of an earlier period, else `report(seq, full, window)`.
    /// With `to_decide`, the window of a call neither failed nor slow is not looked up once the
    /// window was full before it (`None`).
    #[inline(always)]
    fn record_with<R>(
        &self,
        generation: u64,
        outcome: Outcome,
        to_decide: bool,
        report: impl FnOnce(u64, bool, Option<Counts>) -> R,
    ) -> Option<R> {
        let tag = generation & TAG_MASK;
        let mut word = self.head.load(Acquire);
        let (seq, full, after) = loop {
            if self::tag(word) != tag {
                return None;
            }
            let seq = self::seq(word);
            let full = word & FLAG != 0;
            let after = pack(
                tag,
                full || seq + 1 >= self.size,
                (seq + 1) & SEQ_MASK,
                failures(word).wrapping_add(u16::from(outcome.failed)),
                slow(word).wrapping_add(u16::from(outcome.slow)),
            );
            match self
                .head
                .compare_exchange_weak(word, after, AcqRel, Acquire)
            {
                Ok(_) => break (seq, full, after),
                Err(now) => word = now,
            }
        };
        let window = if to_decide && full && !outcome.failed && !outcome.slow {
            None
        } else if full {
            self.since(tag, seq.wrapping_sub(self.size) & SEQ_MASK, after)
        } else {
            // The period's first calls: the counts are since its start.
            Some(Counts {
                calls: seq + 1,
                failures: u64::from(failures(after)),
                slow: u64::from(slow(after)),
            })
        };
        self.leave(tag, seq, after);
        Some(report(seq, full, window))
    }

    /// The counts between the end of call `base` and `head` (a window of `size` calls), if the
    /// ring still holds the counts after `base`.
    fn since(&self, tag: u64, base: u64, head: u64) -> Option<Counts> {
        let slot = self.ring[(base & self.mask) as usize].load(Acquire);
        let found = slot & FLAG != 0 && self::tag(slot) == tag && self::seq(slot) == base;
        found.then(|| Counts {
            calls: self.size,
            failures: u64::from(failures(head).wrapping_sub(failures(slot))),
            slow: u64::from(slow(head).wrapping_sub(slow(slot))),
        })
    }

    /// Leaves the counts after call `seq` in its slot, unless a later call is there already (this
    /// one was overtaken by a whole lap of the ring, or by a later period).
    ///
    /// A check and a plain store, not a compare-exchange: a locked instruction here cost as much
    /// as the rest of the call. A later call that stores between the check and the store is
    /// overwritten; the slot then holds an earlier call's counts, which a reader recognises by
    /// their sequence number and does not use (the call that needed them makes no decision, as
    /// when more than N outcomes are recorded at once). No reader is ever given wrong counts.
    fn leave(&self, tag: u64, seq: u64, after: u64) {
        let entry = pack(tag, true, seq, failures(after), slow(after));
        let slot = &self.ring[(seq & self.mask) as usize];
        let old = slot.load(Relaxed);
        let later = old & FLAG != 0
            && if self::tag(old) == tag {
                let ahead = self::seq(old).wrapping_sub(seq) & SEQ_MASK;
                ahead != 0 && ahead < SEQ_MASK / 2
            } else {
                // Tags wrap too: a tag less than half the tag space ahead is a later period.
                let ahead = self::tag(old).wrapping_sub(tag) & TAG_MASK;
                ahead != 0 && ahead < TAG_MASK / 2
            };
        if !later {
            slot.store(entry, Release);
        }
    }

    /// What the window holds now; exact once every `record` has returned.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> Counts {
        let head = self.head.load(Acquire);
        let seq = seq(head);
        if head & FLAG == 0 {
            return Counts {
                calls: seq,
                failures: u64::from(failures(head)),
                slow: u64::from(slow(head)),
            };
        }
        // The counts after the call before the window; at rest the ring holds them, unless the
        // window holds the period's first calls.
        let base = seq.wrapping_sub(1 + self.size) & SEQ_MASK;
        self.since(tag(head), base, head).unwrap_or_else(|| {
            assert_eq!(
                seq, self.size,
                "at rest, the ring holds the counts before the window"
            );
            Counts {
                calls: self.size,
                failures: u64::from(failures(head)),
                slow: u64::from(slow(head)),
            }
        })
    }
}

/// A copy, for the model that explores the breaker's states.
#[cfg(all(test, not(reliability_loom)))]
impl Clone for CountWindow {
    fn clone(&self) -> Self {
        let copy = |a: &AtomicU64| AtomicU64::new(a.load(Relaxed));
        CountWindow {
            size: self.size,
            mask: self.mask,
            head: copy(&self.head),
            ring: self.ring.iter().map(copy).collect(),
        }
    }
}

impl std::fmt::Debug for CountWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountWindow")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(reliability_loom)))]
mod tests {
    use super::*;

    fn outcome(failed: bool, slow: bool) -> Outcome {
        Outcome { failed, slow }
    }

    /// Against the plain list of the last N outcomes, across many laps of the ring and of the
    /// sequence numbers' cycle, and across periods.
    #[test]
    fn the_counts_are_those_of_the_last_n_calls() {
        for size in [1, 2, 3, 7, 100] {
            let window = CountWindow::new(size, 0);
            let mut generation = 0;
            let mut list = std::collections::VecDeque::new();
            // A second period long enough to wrap the sequence numbers.
            for i in 0..(1 << SEQ_BITS) + 100_017_u64 {
                if i == 100_000 {
                    generation += 1;
                    window.reset(generation);
                    list.clear();
                }
                let (failed, slow) = (i % 3 == 0, i % 5 < 2);
                let Recorded::Counted {
                    window: Some(counts),
                    ..
                } = window.record(generation, outcome(failed, slow))
                else {
                    panic!("a sequential record sees its window")
                };
                list.push_back((failed, slow));
                if list.len() > size as usize {
                    list.pop_front();
                }
                let expected = Counts {
                    calls: list.len() as u64,
                    failures: list.iter().filter(|o| o.0).count() as u64,
                    slow: list.iter().filter(|o| o.1).count() as u64,
                };
                assert_eq!(counts, expected, "call {i}, size {size}");
                if i % 9_973 == 0 {
                    assert_eq!(window.counts(), expected);
                }
            }
        }
    }

    #[test]
    fn an_outcome_of_an_earlier_period_is_not_counted() {
        let window = CountWindow::new(4, 7);
        window.record(7, outcome(true, false));
        window.reset(8);
        assert_eq!(window.record(7, outcome(true, true)), Recorded::Stale);
        assert_eq!(window.counts(), Counts::default());
        // Tags wrap: a generation a whole tag space later is the same period to the window, which
        // is why transitions also check the full generation (in `Core`).
        assert!(matches!(
            window.record(8 + TAG_MASK + 1, outcome(false, false)),
            Recorded::Counted { .. }
        ));
    }
}
