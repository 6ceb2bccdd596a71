//! The outcomes the rate rule counts, and its time window: the calls that ended in the last DUR.
//!
//! A time window lives in the breaker's `Core`, under its lock, and is only touched by a closed
//! breaker in rate mode; recording an outcome allocates nothing. (The count window is lock-free,
//! in `count_window`.)

use std::time::Duration;

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

    pub(crate) fn bits(self) -> u8 {
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
}

/// Buckets of a time window: a call stays in it between 9 and 10 bucket widths after it ended.
pub(crate) const BUCKETS: usize = 10;

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
    /// A window of the calls that ended in the last `duration` (at least 10 ns).
    pub(crate) fn new(duration: Duration) -> Self {
        let width = u64::try_from(duration.as_nanos() / BUCKETS as u128).unwrap_or(u64::MAX);
        TimeWindow {
            width: width.max(1),
            buckets: [Bucket::EMPTY; BUCKETS],
            latest: 0,
        }
    }

    /// Forgets every outcome.
    pub(crate) fn clear(&mut self) {
        self.buckets = [Bucket::EMPTY; BUCKETS];
    }

    /// Records an outcome that arrived at `now` (nanoseconds on the breaker's clock) and returns
    /// what the window holds afterwards.
    pub(crate) fn record(&mut self, outcome: Outcome, now: u64) -> Counts {
        let bits = outcome.bits();
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

    /// The sum of the buckets of the last ten epochs, the current one included: what the window
    /// holds at `now`.
    pub(crate) fn counts(&self, now: u64) -> Counts {
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
    fn a_call_leaves_a_time_window_between_nine_and_ten_tenths_after_it_ended() {
        let dur = Duration::from_secs(10);
        let s = 1_000_000_000;
        let mut w = TimeWindow::new(dur);
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
