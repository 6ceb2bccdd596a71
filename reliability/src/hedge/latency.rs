//! The recent latencies of a percentile hedge: a histogram of log-linear buckets of atomic counters
//! (HdrHistogram's layout at low precision), in two windows that take turns, so that the
//! percentile follows what the service does now rather than what it did an hour ago.
//!
//! - **Recording** is three atomic adds (the bucket, the window's total, the samples since the
//!   percentile was last computed) and a load of the window's start: no lock, no allocation.
//! - **Buckets**: latencies are kept in whole microseconds; below 16 µs each microsecond has a
//!   bucket, above that every power of two is split into 16 buckets, up to 2³² µs (71 minutes;
//!   longer latencies count as that). A bucket is reported as its middle, so a percentile is within
//!   1/32 (3.1%) of the recorded latency it stands for (and latencies are truncated to the
//!   microsecond).
//! - **Decay**: samples go to the current window; when it holds [`WINDOW_SAMPLES`] samples, or is
//!   older than [`WINDOW_TIME`] and holds at least [`MIN_SAMPLES`], the other window is cleared and
//!   becomes current. A percentile is read over both windows: the last 2048 to 4096 samples at a
//!   high rate, the last 10 to 20 seconds at a lower one (and never fewer than [`MIN_SAMPLES`] once
//!   there were that many).
//! - **Reading** scans the buckets (two windows of 464 counters) at most once every
//!   [`REFRESH_SAMPLES`] samples; in between, calls read the cached value with one load.
//!
//! Writers never wait for each other or for a reader. A sample recorded while its window is being
//! cleared may be lost: a percentile is an estimate over thousands of samples, and one sample more
//! or less does not move it.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// No percentile before this many samples.
pub(crate) const MIN_SAMPLES: u32 = 20;
/// A window is full after this many samples.
pub(crate) const WINDOW_SAMPLES: u32 = 2048;
/// A window with at least [`MIN_SAMPLES`] samples is retired after this long.
pub(crate) const WINDOW_TIME: Duration = Duration::from_secs(10);
/// The cached percentile is computed again after this many new samples.
pub(crate) const REFRESH_SAMPLES: u32 = 64;

/// Buckets per power of two, as a power of two.
const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// The largest latency kept apart, in microseconds.
const MAX_MICROS: u64 = u32::MAX as u64;
/// `SUB` exact buckets, then `SUB` for each power of two from 2⁴ to 2³¹.
const BUCKETS: usize = SUB + (31 - SUB_BITS as usize + 1) * SUB;
/// [`Latencies::cached`] when nothing is cached.
const NONE: u64 = u64::MAX;

/// The bucket of a latency of `micros`.
fn index(micros: u64) -> usize {
    let v = micros.min(MAX_MICROS);
    if v < SUB as u64 {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - SUB_BITS;
    let sub = (v >> shift) as usize - SUB;
    SUB + shift as usize * SUB + sub
}

/// The latency a bucket stands for: its middle, in microseconds.
fn middle(index: usize) -> u64 {
    if index < SUB {
        return index as u64;
    }
    let shift = (index - SUB) / SUB;
    let sub = (index - SUB) % SUB;
    let lower = ((SUB + sub) as u64) << shift;
    lower + ((1_u64 << shift) >> 1)
}

struct Window {
    counts: [AtomicU32; BUCKETS],
    total: AtomicU32,
}

impl Window {
    fn new() -> Self {
        Window {
            counts: std::array::from_fn(|_| AtomicU32::new(0)),
            total: AtomicU32::new(0),
        }
    }

    fn clear(&self) {
        for count in &self.counts {
            count.store(0, Ordering::Relaxed);
        }
        self.total.store(0, Ordering::Relaxed);
    }
}

/// The recent latencies of one hedge, and the percentile of them it hedges at.
pub(crate) struct Latencies {
    windows: [Window; 2],
    /// Counts rotations; its low bit is the window being written.
    epoch: AtomicU32,
    /// When the current window began, in milliseconds since `origin`.
    began_ms: AtomicU64,
    origin: Instant,
    /// Held by the one writer that rotates the windows.
    rotating: AtomicBool,
    /// The percentile, in tenths of a percent (500..=999).
    permille: u64,
    /// The percentile last computed, in microseconds, or [`NONE`].
    cached: AtomicU64,
    /// Samples recorded since `cached` was computed.
    since: AtomicU32,
}

impl std::fmt::Debug for Latencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Latencies")
            .field("percentile", &(self.permille as f64 / 10.0))
            .field("samples", &self.samples())
            .finish_non_exhaustive()
    }
}

impl Latencies {
    /// Latencies for the percentile `percentile` (50..=99.9, checked by the caller), kept to a tenth.
    pub(crate) fn new(percentile: f64) -> Self {
        Latencies {
            windows: [Window::new(), Window::new()],
            epoch: AtomicU32::new(0),
            began_ms: AtomicU64::new(0),
            origin: Instant::now(),
            rotating: AtomicBool::new(false),
            permille: ((percentile * 10.0).round() as u64).clamp(1, 1000),
            cached: AtomicU64::new(NONE),
            since: AtomicU32::new(0),
        }
    }

    /// Samples in both windows.
    pub(crate) fn samples(&self) -> u32 {
        self.windows
            .iter()
            .map(|w| w.total.load(Ordering::Relaxed))
            .fold(0, u32::saturating_add)
    }

    fn millis(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX)
    }

    /// Records a latency of `latency`, measured at `now`.
    pub(crate) fn record(&self, latency: Duration, now: Instant) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let epoch = self.epoch.load(Ordering::Acquire);
        let window = &self.windows[(epoch & 1) as usize];
        window.counts[index(micros)].fetch_add(1, Ordering::Relaxed);
        let total = window
            .total
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        self.since.fetch_add(1, Ordering::Relaxed);
        let full = total >= WINDOW_SAMPLES;
        if full
            || (total >= MIN_SAMPLES
                && self
                    .millis(now)
                    .saturating_sub(self.began_ms.load(Ordering::Relaxed))
                    >= WINDOW_TIME.as_millis() as u64)
        {
            self.rotate(epoch, now);
        }
    }

    /// Clears the older window and makes it the current one, unless another writer is doing it or
    /// did it since `epoch`.
    #[cold]
    fn rotate(&self, epoch: u32, now: Instant) {
        if self.rotating.swap(true, Ordering::Acquire) {
            return;
        }
        if self.epoch.load(Ordering::Acquire) == epoch {
            self.windows[((epoch + 1) & 1) as usize].clear();
            self.began_ms.store(self.millis(now), Ordering::Relaxed);
            self.epoch.store(epoch.wrapping_add(1), Ordering::Release);
            // The samples that left are part of what the cache stands for: compute it again.
            self.since.store(REFRESH_SAMPLES, Ordering::Relaxed);
        }
        self.rotating.store(false, Ordering::Release);
    }

    /// The percentile of the recent latencies, or `None` before [`MIN_SAMPLES`] samples.
    pub(crate) fn percentile(&self) -> Option<Duration> {
        let cached = self.cached.load(Ordering::Relaxed);
        if cached != NONE && self.since.load(Ordering::Relaxed) < REFRESH_SAMPLES {
            return Some(Duration::from_micros(cached));
        }
        if self.samples() < MIN_SAMPLES {
            return (cached != NONE).then(|| Duration::from_micros(cached));
        }
        // One caller computes it again; the others keep the value cached meanwhile.
        if cached != NONE && self.since.swap(0, Ordering::Relaxed) < REFRESH_SAMPLES {
            return Some(Duration::from_micros(cached));
        }
        self.since.store(0, Ordering::Relaxed);
        let micros = self.compute()?;
        self.cached.store(micros, Ordering::Relaxed);
        Some(Duration::from_micros(micros))
    }

    /// Scans both windows: the middle of the bucket holding the sample of rank ⌈n × p⌉.
    fn compute(&self) -> Option<u64> {
        let count = |i: usize| {
            self.windows
                .iter()
                .map(|w| u64::from(w.counts[i].load(Ordering::Relaxed)))
                .sum::<u64>()
        };
        let n: u64 = (0..BUCKETS).map(count).sum();
        if n == 0 {
            return None;
        }
        let rank = (n * self.permille).div_ceil(1000).max(1);
        let mut seen = 0;
        for i in 0..BUCKETS {
            seen += count(i);
            if seen >= rank {
                return Some(middle(i));
            }
        }
        Some(middle(BUCKETS - 1))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{BUCKETS, Latencies, MIN_SAMPLES, WINDOW_SAMPLES, WINDOW_TIME, index, middle};

    #[test]
    fn every_bucket_is_within_a_32nd_of_its_latencies() {
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        let powers = (5..32).map(|k| 1_u64 << k).flat_map(|p| p - 3..p + 3);
        let mut latencies: Vec<u64> = (0..100_000).chain(powers).collect();
        latencies.sort_unstable();
        let mut previous = 0;
        for micros in latencies {
            let i = index(micros);
            assert!(i >= previous, "buckets follow the latencies");
            previous = i;
            let (m, v) = (middle(i) as f64, micros as f64);
            assert!(
                (m - v).abs() <= v / 32.0,
                "{micros} µs: bucket {i} says {m}"
            );
        }
        // Exact below 16 µs.
        for micros in 0..16 {
            assert_eq!(middle(index(micros)), micros);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_percentile_before_twenty_samples_then_the_rank_of_ceil_n_p() {
        let latencies = Latencies::new(95.0);
        let now = Instant::now();
        for k in 1..MIN_SAMPLES {
            latencies.record(Duration::from_millis(u64::from(k)), now);
            assert_eq!(latencies.percentile(), None);
        }
        latencies.record(Duration::from_millis(20), now);
        // Rank ⌈20 × 0.95⌉ = 19: 19 ms.
        let p = latencies.percentile().unwrap();
        let error = p.abs_diff(Duration::from_millis(19)).as_secs_f64() / 0.019;
        assert!(error <= 1.0 / 32.0, "{p:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_percentile_follows_recent_latencies() {
        let latencies = Latencies::new(50.0);
        let now = Instant::now();
        for _ in 0..WINDOW_SAMPLES {
            latencies.record(Duration::from_millis(100), now);
        }
        // The full window became the older one; when the new one is full, the 100 ms samples leave.
        for _ in 0..WINDOW_SAMPLES {
            latencies.record(Duration::from_millis(1), now);
        }
        assert_eq!(latencies.samples(), WINDOW_SAMPLES);
        let p = latencies.percentile().unwrap();
        assert!(p.abs_diff(Duration::from_millis(1)) <= Duration::from_millis(1) / 32);
        // Time: a window older than 10 s with at least 20 samples is retired, and the one before
        // it (the 1 ms samples) leaves.
        for _ in 0..MIN_SAMPLES {
            latencies.record(Duration::from_millis(300), now + WINDOW_TIME);
        }
        assert_eq!(latencies.samples(), MIN_SAMPLES);
        let p = latencies.percentile().unwrap();
        assert!(p.abs_diff(Duration::from_millis(300)) <= Duration::from_millis(300) / 32);
    }
}
