//! What the layers of one call share: the call's context (attempt number, a breaker's rejection,
//! a fallback's answer, a load layer's rejection) and the conversion of `reliability::Error` into the
//! function's error type. Used by each policy's `expand` module; re-exported by `__private`.
//!
//! How a layer's future hands the inner `Result` on: it takes it apart as soon as the layer below
//! answers (`match` on `Ok(value)` / `Err(error)`), does its own work (counting, recording the
//! outcome), and returns `Ok(value)` or `Err(error)` rebuilt from the part. The layer below wrote
//! the `Result` field by field; kept whole across the layer's work, it is spilled and read back 8 or
//! 16 bytes at a time, which on x86 waits for those writes to finish (`perf annotate` put 40 % of a
//! `#[timeout]` or a rate-rule breaker call on that one load). The outermost layer of a function the
//! macro writes does the same `match`, written out in the expansion.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::error::Error;

/// The conversion of a stack's error type from [`Error`]; the generated code names it at the
/// function's return type, so a missing `From<reliability::Error>` is reported there, once.
pub type Convert<E> = fn(Error) -> E;

/// State shared by the layers of one call: the attempt running now, and whether the breaker just
/// rejected it (so a retry above does not retry a rejection).
#[derive(Debug, Default)]
pub struct StackCtx {
    attempt: AtomicU32,
    /// A breaker below rejected the attempt: a retry above does not retry it.
    pub(crate) rejected: AtomicBool,
    /// A fallback served this call: its answer is not cached.
    pub(crate) degraded: AtomicBool,
    /// A rate limiter or bulkhead below rejected the attempt (load shedding): a breaker above does
    /// not count it.
    pub(crate) shed: AtomicBool,
    /// The wait a rate limiter below asked for when it rejected the attempt, in nanoseconds
    /// ([`NO_HINT`] for none): a retry above waits exactly that.
    retry_hint: AtomicU64,
}

/// [`StackCtx::retry_hint`] when there is none.
const NO_HINT: u64 = u64::MAX;

impl StackCtx {
    /// A fresh context: first attempt.
    #[inline]
    pub fn new() -> Self {
        StackCtx {
            attempt: AtomicU32::new(1),
            rejected: AtomicBool::new(false),
            degraded: AtomicBool::new(false),
            shed: AtomicBool::new(false),
            retry_hint: AtomicU64::new(NO_HINT),
        }
    }

    /// The attempt running now (1 for the first).
    #[inline]
    pub(crate) fn attempt(&self) -> u32 {
        self.attempt.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn set_attempt(&self, attempt: u32) {
        self.attempt.store(attempt, Ordering::Relaxed);
    }

    /// A layer below shed the attempt's load, and asked for `retry_after` (if it knows).
    #[cold]
    pub(crate) fn shed(&self, retry_after: Option<Duration>) {
        self.shed.store(true, Ordering::Relaxed);
        let nanos = retry_after.map_or(NO_HINT, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(NO_HINT - 1)
        });
        self.retry_hint.store(nanos, Ordering::Relaxed);
    }

    /// Whether a layer below shed the attempt, and the wait it asked for; cleared.
    #[inline]
    pub(crate) fn take_shed(&self) -> Option<Option<Duration>> {
        if !self.shed.load(Ordering::Relaxed) {
            return None;
        }
        self.shed.store(false, Ordering::Relaxed);
        let nanos = self.retry_hint.swap(NO_HINT, Ordering::Relaxed);
        Some((nanos != NO_HINT).then(|| Duration::from_nanos(nanos)))
    }
}
