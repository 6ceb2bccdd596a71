//! The sliding window of the rate rule: the outcomes of the last N calls, or of the calls that
//! ended in the last DUR.
//!
//! A window lives in the breaker's `Core`, under its lock, and is only touched by a closed breaker
//! in rate mode. It allocates once, when the breaker is made (the ring of a count window); recording
//! an outcome allocates nothing.

use super::config::SlidingWindow;

/// How one call ended, as the window sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Outcome {
    /// A counted failure.
    pub(crate) failed: bool,
    /// Took longer than `slow_call`.
    pub(crate) slow: bool,
}

impl Outcome {
    const FAILED: u8 = 1;
    const SLOW: u8 = 2;

    fn bits(self) -> u8 {
        (u8::from(self.failed) * Self::FAILED) | (u8::from(self.slow) * Self::SLOW)
    }
}

/// What a window holds at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct Counts {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

impl Counts {
    fn add(&mut self, bits: u8) {
        self.calls += 1;
        self.failures += u64::from(bits & Outcome::FAILED != 0);
        self.slow += u64::from(bits & Outcome::SLOW != 0);
    }

    fn remove(&mut self, bits: u8) {
        self.calls -= 1;
        self.failures -= u64::from(bits & Outcome::FAILED != 0);
        self.slow -= u64::from(bits & Outcome::SLOW != 0);
    }
}

/// Buckets of a time window: a call stays in it between 9 and 10 bucket widths after it ended.
pub(crate) const BUCKETS: usize = 10;

/// A sliding window of outcomes.
// One per breaker, beside its lock: the buckets stay inline rather than behind a pointer.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Window {
    /// The last `ring.len()` calls.
    Count(CountWindow),
    /// The calls that ended in the last [`BUCKETS`] buckets.
    Time(TimeWindow),
}

impl Window {
    pub(crate) fn new(spec: SlidingWindow) -> Self {
        match spec {
            SlidingWindow::Calls(n) => Window::Count(CountWindow {
                ring: vec![0; n.max(1) as usize].into_boxed_slice(),
                next: 0,
                counts: Counts::default(),
            }),
            SlidingWindow::Duration(d) => {
                let width = u64::try_from(d.as_nanos() / BUCKETS as u128).unwrap_or(u64::MAX);
                Window::Time(TimeWindow {
                    width: width.max(1),
                    buckets: [Bucket::EMPTY; BUCKETS],
                    latest: 0,
                })
            }
        }
    }

    /// Records an outcome that arrived at `now` (nanoseconds on the breaker's clock) and returns
    /// what the window holds afterwards.
    pub(crate) fn record(&mut self, outcome: Outcome, now: u64) -> Counts {
        match self {
            Window::Count(w) => w.record(outcome.bits()),
            Window::Time(w) => w.record(outcome.bits(), now),
        }
    }

    /// What the window holds at `now`.
    #[cfg(test)]
    pub(crate) fn counts(&self, now: u64) -> Counts {
        match self {
            Window::Count(w) => w.counts,
            Window::Time(w) => w.counts(now),
        }
    }

    /// A count window's outcomes, oldest first, as `(failed, slow)`; `None` for a time window.
    #[cfg(all(test, not(reliability_loom)))]
    pub(crate) fn contents(&self) -> Option<Vec<(bool, bool)>> {
        let Window::Count(w) = self else { return None };
        let len = w.ring.len();
        let calls = w.counts.calls as usize;
        Some(
            (0..calls)
                .map(|i| w.ring[(w.next + len - calls + i) % len])
                .map(|bits| (bits & Outcome::FAILED != 0, bits & Outcome::SLOW != 0))
                .collect(),
        )
    }

    /// Forgets every outcome.
    pub(crate) fn clear(&mut self) {
        match self {
            Window::Count(w) => {
                w.next = 0;
                w.counts = Counts::default();
            }
            Window::Time(w) => w.buckets = [Bucket::EMPTY; BUCKETS],
        }
    }
}

/// The last N outcomes in a ring, with their totals kept up to date.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CountWindow {
    /// Outcome bits; the first `counts.calls` slots before `next` (wrapping) are the window.
    ring: Box<[u8]>,
    /// Where the next outcome goes.
    next: usize,
    counts: Counts,
}

impl CountWindow {
    fn record(&mut self, bits: u8) -> Counts {
        let full = self.counts.calls == self.ring.len() as u64;
        let slot = &mut self.ring[self.next];
        if full {
            self.counts.remove(*slot);
        }
        *slot = bits;
        self.counts.add(bits);
        self.next = (self.next + 1) % self.ring.len();
        self.counts
    }
}

/// Ten buckets of `width` nanoseconds; bucket `i` holds the calls that ended in an epoch
/// (`now / width`) congruent to `i`, stamped with that epoch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TimeWindow {
    width: u64,
    buckets: [Bucket; BUCKETS],
    /// The latest time recorded: an outcome read the clock before it took the breaker's lock, so
    /// one that arrives after a later one is recorded at the later time (its bucket may already
    /// hold calls ten epochs younger, which it must not wipe).
    latest: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Bucket {
    /// The epoch of the calls counted here; `u64::MAX` when none are.
    epoch: u64,
    counts: Counts,
}

impl Bucket {
    const EMPTY: Bucket = Bucket {
        epoch: u64::MAX,
        counts: Counts {
            calls: 0,
            failures: 0,
            slow: 0,
        },
    };
}

impl TimeWindow {
    fn record(&mut self, bits: u8, now: u64) -> Counts {
        let now = now.max(self.latest);
        self.latest = now;
        let epoch = now / self.width;
        let bucket = &mut self.buckets[(epoch % BUCKETS as u64) as usize];
        if bucket.epoch != epoch {
            // The bucket's calls are ten epochs old (or older): they have left the window.
            *bucket = Bucket {
                epoch,
                counts: Counts::default(),
            };
        }
        bucket.counts.add(bits);
        self.counts(now)
    }

    /// The sum of the buckets of the last ten epochs, the current one included.
    fn counts(&self, now: u64) -> Counts {
        let epoch = now / self.width;
        let mut total = Counts::default();
        for bucket in &self.buckets {
            if bucket.epoch <= epoch && epoch - bucket.epoch < BUCKETS as u64 {
                total.calls += bucket.counts.calls;
                total.failures += bucket.counts.failures;
                total.slow += bucket.counts.slow;
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const OK: Outcome = Outcome {
        failed: false,
        slow: false,
    };
    const FAIL: Outcome = Outcome {
        failed: true,
        slow: false,
    };
    const SLOW: Outcome = Outcome {
        failed: false,
        slow: true,
    };

    fn counts(calls: u64, failures: u64, slow: u64) -> Counts {
        Counts {
            calls,
            failures,
            slow,
        }
    }

    #[test]
    fn a_count_window_holds_the_last_n_outcomes() {
        let mut w = Window::new(SlidingWindow::Calls(3));
        assert_eq!(w.record(FAIL, 0), counts(1, 1, 0));
        assert_eq!(w.record(SLOW, 0), counts(2, 1, 1));
        assert_eq!(w.record(OK, 0), counts(3, 1, 1));
        assert_eq!(w.record(OK, 0), counts(3, 0, 1), "the failure left");
        assert_eq!(w.record(FAIL, 0), counts(3, 1, 0), "the slow call left");
        w.clear();
        assert_eq!(w.counts(0), counts(0, 0, 0));
        assert_eq!(w.record(OK, 0), counts(1, 0, 0));
    }

    #[test]
    fn a_call_leaves_a_time_window_between_nine_and_ten_tenths_after_it_ended() {
        let dur = Duration::from_secs(10);
        let s = 1_000_000_000;
        let mut w = Window::new(SlidingWindow::Duration(dur));
        // Ended at the very start of a bucket: stays 10 s. At its very end: 9 s and a nanosecond.
        w.record(FAIL, 0);
        w.record(SLOW, s - 1);
        assert_eq!(w.counts(10 * s - 1), counts(2, 1, 1));
        assert_eq!(w.counts(10 * s), counts(0, 0, 0));
        // A bucket reused ten epochs later starts empty.
        assert_eq!(w.record(OK, 10 * s + 5), counts(1, 0, 0));
        // Long idle: every bucket is stale.
        assert_eq!(w.counts(1_000 * s), counts(0, 0, 0));
        assert_eq!(w.record(FAIL, 1_000 * s), counts(1, 1, 0));
        // An outcome that read the clock before a later one was recorded counts at the later time,
        // and wipes nothing.
        assert_eq!(w.record(OK, 990 * s), counts(2, 1, 0));
    }
}
