//! Counters kept by every policy: each thread writes its own copy, readers add them up.
//!
//! A call moves a counter with a plain load and store on memory that only the calling thread
//! writes: no read-modify-write instruction and no cache line shared between threads on the hot
//! path. A snapshot sums the copies of every thread that ever used the policy (a thread's copy
//! outlives it and is reused by the next thread that gets its index, see `per_thread`).

use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::per_thread::{self, PerThread};

/// The kind of a policy in the [`Registry`](crate::Registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PolicyKind {
    /// `#[retry]` or [`Retry`](crate::Retry).
    Retry,
    /// `#[timeout]` or [`Timeout`](crate::Timeout).
    Timeout,
    /// `#[circuit_breaker]` or [`CircuitBreaker`](crate::CircuitBreaker).
    CircuitBreaker,
    /// `#[fallback]` or [`Fallback`](crate::Fallback).
    Fallback,
    /// `#[cached]` or [`Cache`](crate::Cache).
    Cache,
    /// `#[rate_limit]` or [`RateLimiter`](crate::RateLimiter).
    RateLimit,
    /// `#[bulkhead]` or [`Bulkhead`](crate::Bulkhead).
    Bulkhead,
    /// `#[hedge]` or [`Hedge`](crate::Hedge).
    Hedge,
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyKind::Retry => "retry",
            PolicyKind::Timeout => "timeout",
            PolicyKind::CircuitBreaker => "circuit_breaker",
            PolicyKind::Fallback => "fallback",
            PolicyKind::Cache => "cached",
            PolicyKind::RateLimit => "rate_limit",
            PolicyKind::Bulkhead => "bulkhead",
            PolicyKind::Hedge => "hedge",
        })
    }
}

/// Locks `m`, ignoring poisoning: the data behind every lock of this crate stays consistent when a
/// holder panics (each critical section is a single update).
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One slot per [`Field`]; the last variant is the highest.
const FIELDS: usize = Field::StoreErrors as usize + 1;

/// One thread's counters, on cache lines of their own (128 bytes: the adjacent-line prefetcher of
/// x86 pairs lines).
#[repr(align(128))]
#[derive(Default, Debug)]
struct Local([AtomicU64; FIELDS]);

impl Local {
    /// Adds one to `field`, from the thread that owns this copy: only it writes here, so a load
    /// and a store cannot lose an update; readers on other threads see either value.
    #[inline]
    fn bump(&self, field: Field) {
        let counter = &self.0[field as usize];
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }
}

/// Where a thread's copy of a policy's counters is, kept by a call between two counts
/// ([`Stats::add_keep`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kept<'a>(Option<(usize, &'a Local)>);

/// The counters a policy can move. Not every policy moves every counter.
#[derive(Clone, Copy, Debug)]
#[repr(usize)]
pub(crate) enum Field {
    Calls = 0,
    Successes,
    Failures,
    Retries,
    Timeouts,
    Rejections,
    Hits,
    Misses,
    Openings,
    /// Calls dropped before they ended (retry, timeout), so that their `calls` can be counted as the
    /// sum of how calls ended: one counter write per call instead of two.
    Cancelled,
    /// Cache: misses that received a concurrent call's value.
    Coalesced,
    /// Cache: misses answered with an expired entry because the layer below failed, or only a
    /// fallback below answered (`stale_if_error`).
    StaleServed,
    /// Rate limit and bulkhead: calls that waited for a permit or a slot.
    Waited,
    /// Retry: calls that gave up because the retry budget was spent.
    BudgetExhausted,
    /// Retry: calls that gave up because the next attempt would start past the deadline.
    DeadlineExceeded,
    /// Circuit breaker: calls slower than `slow_call`.
    SlowCalls,
    /// Circuit breaker: `isolate()` calls that isolated it.
    Isolations,
    /// Circuit breaker: `reset()` calls.
    Resets,
    /// Hedge: extra attempts started.
    Hedges,
    /// Hedge: calls answered by an extra attempt.
    HedgesWon,
    /// Shared policies (feature `redis`): store operations that failed, timed out or were skipped
    /// after a recent failure, so that the policy used its local state.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    StoreErrors,
}

impl Field {
    /// How a call of a policy whose `calls` is a sum can end.
    const ENDS: [Field; 4] = [
        Field::Successes,
        Field::Failures,
        Field::Timeouts,
        Field::Cancelled,
    ];
}

/// The live counters of one named policy.
pub(crate) struct Stats {
    pub(crate) kind: PolicyKind,
    pub(crate) name: Arc<str>,
    local: PerThread<Local>,
    /// The counts of a thread that is ending and holds no copy any more (a thread local's
    /// destructor that calls a policy), moved with read-modify-write instructions.
    shared: Local,
    /// Calls served by each fallback target, in declaration order.
    targets: Mutex<Vec<(String, u64)>>,
    /// A state a snapshot reports (a breaker's), as the policy encodes it; [`NO_STATE`] for none.
    state: AtomicU8,
    /// The histogram of call durations, registered with the `metrics` recorder on first use.
    #[cfg(feature = "metrics")]
    durations: std::sync::OnceLock<::metrics::Histogram>,
}

/// [`Stats::state`] of a policy that has none.
pub(crate) const NO_STATE: u8 = u8::MAX;

impl Stats {
    pub(crate) fn new(kind: PolicyKind, name: Arc<str>) -> Self {
        Self {
            kind,
            name,
            local: PerThread::new(),
            shared: Local::default(),
            targets: Mutex::new(Vec::new()),
            state: AtomicU8::new(NO_STATE),
            #[cfg(feature = "metrics")]
            durations: std::sync::OnceLock::new(),
        }
    }

    /// The histogram of this policy's call durations, registered on first use.
    #[cfg(feature = "metrics")]
    pub(crate) fn durations(&self) -> &::metrics::Histogram {
        self.durations
            .get_or_init(|| crate::metrics::duration_histogram(self.kind, &self.name))
    }

    /// Publishes the policy's state for snapshots (written on transitions only).
    pub(crate) fn set_state(&self, state: u8) {
        self.state.store(state, Ordering::Release);
    }

    /// The state last published, or [`NO_STATE`].
    pub(crate) fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    /// Sets every counter of every thread to zero (for tests: calls in flight may keep a count).
    pub(crate) fn clear(&self) {
        for local in self.local.iter().chain([&self.shared]) {
            for counter in &local.0 {
                counter.store(0, Ordering::Relaxed);
            }
        }
        for (_, served) in lock(&self.targets).iter_mut() {
            *served = 0;
        }
    }

    /// Adds one to `field` for this thread.
    #[inline]
    pub(crate) fn add(&self, field: Field) {
        // What `add_keep` keeps is not needed here; unused, it costs nothing.
        let _ = self.add_keep(field);
    }

    /// [`add`](Self::add), keeping where this thread's copy is, for a second count of the same
    /// call ([`add_kept`](Self::add_kept)).
    #[inline]
    pub(crate) fn add_keep(&self, field: Field) -> Kept<'_> {
        match self.local.get() {
            Some((index, local)) => {
                local.bump(field);
                Kept(Some((index, local)))
            }
            None => {
                self.add_first(field);
                Kept(None)
            }
        }
    }

    /// [`add`](Self::add), in the copy kept by [`add_keep`](Self::add_keep) when the call is still
    /// on a thread at the same index (the copy is then this thread's: an index and its copies pass
    /// to another thread only after the thread that held them ended).
    #[inline]
    pub(crate) fn add_kept(&self, kept: Kept<'_>, field: Field) {
        match kept.0 {
            Some((index, local)) if per_thread::at(index) => local.bump(field),
            _ => self.add(field),
        }
    }

    /// [`add`](Self::add) on this thread's first count, which makes its copy; or, on a thread that
    /// is ending, to the shared counts.
    #[cold]
    fn add_first(&self, field: Field) {
        match self.local.get_or_default() {
            Some(local) => local.bump(field),
            None => {
                self.shared.0[field as usize].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The sum over every thread. Retry, timeout and hedge count a call when it ends ([`Call`]), so their
    /// `calls` is the sum of the ways a call ends, and does not include calls still running; so
    /// does a circuit breaker, whose ends include its rejections (one counter less to move per
    /// call); a cache's `calls` is `hits + misses`.
    pub(crate) fn get(&self, field: Field) -> u64 {
        match (field, self.kind) {
            (Field::Calls, PolicyKind::CircuitBreaker) => Field::ENDS
                .iter()
                .chain([&Field::Rejections])
                .map(|&end| self.sum(end))
                .fold(0, u64::wrapping_add),
            (Field::Calls, PolicyKind::Retry | PolicyKind::Timeout | PolicyKind::Hedge) => {
                Field::ENDS
                    .iter()
                    .map(|&end| self.sum(end))
                    .fold(0, u64::wrapping_add)
            }
            (Field::Calls, PolicyKind::Cache) => [Field::Hits, Field::Misses, Field::Coalesced]
                .iter()
                .map(|&f| self.sum(f))
                .fold(0, u64::wrapping_add),
            _ => self.sum(field),
        }
    }

    fn sum(&self, field: Field) -> u64 {
        self.local
            .iter()
            .chain([&self.shared])
            .map(|l| l.0[field as usize].load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    /// Makes sure every target has a row, so a snapshot lists targets that never served.
    pub(crate) fn declare_targets(&self, names: &[&str]) {
        let mut targets = lock(&self.targets);
        for name in names {
            if !targets.iter().any(|(n, _)| n == name) {
                targets.push(((*name).to_owned(), 0));
            }
        }
    }

    pub(crate) fn served_by(&self, target: &str) {
        let mut targets = lock(&self.targets);
        match targets.iter_mut().find(|(n, _)| n == target) {
            Some((_, count)) => *count += 1,
            None => targets.push((target.to_owned(), 1)),
        }
    }

    pub(crate) fn targets(&self) -> Vec<(String, u64)> {
        lock(&self.targets).clone()
    }
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The start of a call whose duration goes to the `metrics` facade: with the feature `metrics`,
/// and once `metrics::export` has run, the clock when the call started; otherwise nothing (a
/// zero-sized value without the feature, and no clock read).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Timer {
    #[cfg(feature = "metrics")]
    started: Option<tokio::time::Instant>,
}

impl Timer {
    /// Starts timing a call, if durations are recorded.
    #[inline]
    pub(crate) fn start() -> Self {
        Timer {
            #[cfg(feature = "metrics")]
            started: crate::metrics::recording().then(tokio::time::Instant::now),
        }
    }

    /// Records the time since [`start`](Self::start) in the call durations of `stats`.
    #[inline]
    pub(crate) fn stop(self, stats: &Stats) {
        #[cfg(feature = "metrics")]
        if let Some(started) = self.started {
            stats.durations().record(started.elapsed().as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = stats;
    }
}

/// One call of a policy that counts a call when it ends: [`end`](Self::end) counts how it ended;
/// dropped while running without that (cancelled, or unwound by a panic), it counts as cancelled.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    stats: &'a Stats,
    state: CallState,
    timer: Timer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// Made but not yet polled: dropping it counts nothing.
    Idle,
    Running,
    Ended,
}

impl<'a> Call<'a> {
    /// A call that is running already.
    #[inline]
    pub(crate) fn new(stats: &'a Stats) -> Self {
        Call {
            stats,
            state: CallState::Running,
            timer: Timer::start(),
        }
    }

    /// A call that counts only once [`run`](Self::run) says it started.
    #[inline]
    pub(crate) fn idle(stats: &'a Stats) -> Self {
        Call {
            stats,
            state: CallState::Idle,
            timer: Timer::default(),
        }
    }

    /// Marks the call started (its future was polled).
    #[inline]
    pub(crate) fn run(&mut self) {
        if self.state == CallState::Idle {
            self.state = CallState::Running;
            self.timer = Timer::start();
        }
    }

    /// Counts the end of the call as `how`.
    #[inline]
    pub(crate) fn end(&mut self, how: Field) {
        self.state = CallState::Ended;
        self.stats.add(how);
        self.timer.stop(self.stats);
    }
}

impl Drop for Call<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.state == CallState::Running {
            self.stats.add(Field::Cancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_copy_counts_on_the_thread_that_kept_it_and_nowhere_else() {
        let stats = Stats::new(PolicyKind::Fallback, "kept".into());
        // Kept and counted again on the same thread.
        let kept = stats.add_keep(Field::Calls);
        stats.add_kept(kept, Field::Successes);
        // Kept on one thread, counted again on another (a task moved by the scheduler): the
        // second count goes to the other thread's copy, never into a copy it does not own.
        let kept = stats.add_keep(Field::Calls);
        std::thread::scope(|s| {
            s.spawn(|| stats.add_kept(kept, Field::Successes));
        });
        // Kept on a thread that ended: a thread that now holds its index owns its copy.
        let kept = std::thread::scope(|s| s.spawn(|| stats.add_keep(Field::Calls)).join());
        let kept = kept.unwrap_or_else(|_| panic!("the counting thread panicked"));
        std::thread::scope(|s| {
            s.spawn(|| stats.add_kept(kept, Field::Successes));
        });
        assert_eq!(stats.get(Field::Calls), 3);
        assert_eq!(stats.get(Field::Successes), 3);
        let here = stats.local.get().map(|(_, l)| {
            [Field::Calls, Field::Successes].map(|f| l.0[f as usize].load(Ordering::Relaxed))
        });
        assert_eq!(
            here,
            Some([2, 1]),
            "the moved call counted its success on its own thread"
        );
    }
}
