//! What the attribute macros expand into. Not public API: no semver guarantee.
//!
//! Each attribute keeps the function's body in place and wraps it in calls to the items here. Each
//! policy's part lives next to the policy (`retry/expand.rs`, `timeout/expand.rs`, …) and is
//! re-exported below; this file holds what the layers share: the stack's context, the function's
//! registry name, and the checks of the function's types.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

pub use crate::backoff::{Backoff, Jitter};
pub use core::time::Duration;

pub use crate::site::Site;

pub use crate::bulkhead::expand::{BulkheadSlot, bulkhead};
pub use crate::cache::expand::{
    CacheKey, CacheSlot, CacheValue, OkValues, Returns, StoresOk, StoresValue, Values,
};
pub use crate::circuit_breaker::SlidingWindow;
pub use crate::circuit_breaker::expand::{
    BreakerCall, BreakerSlot, circuit_breaker, consecutive_breaker, rate_breaker,
};
pub use crate::fallback::expand::{
    Chain, FallbackCall, FallbackSlot, Fallible, LastFallback, fallback_call, fallible,
    last_fallback,
};
pub use crate::hedge::expand::{HedgeAfter, HedgeSlot, hedge};
pub use crate::rate_limit::expand::{Cost, RateLimitSlot, cost, rate_limit};
pub use crate::retry::expand::{Decision, RetryLoop, RetrySlot};
pub use crate::timeout::expand::{TimeoutSlot, timeout};

use crate::error::Error;

/// Fixes the output type of the async block that holds a layer, so `?` and `return` in the body
/// infer against the function's return type.
#[inline(always)]
pub fn stack<R, F: Future<Output = R>>(f: F) -> F {
    f
}

/// `Result<T, E>`'s parts, named through the function's return type.
#[diagnostic::on_unimplemented(
    message = "this attribute needs a function returning `Result<T, E>`, not `{Self}`",
    label = "not a `Result`",
    note = "`#[retry]`, `#[timeout]`, `#[circuit_breaker]` and `#[fallback]` act on `Err`; only `#[cached]` takes a plain return type"
)]
pub trait IsResult {
    /// The success type.
    type Ok;
    /// The error type.
    type Err;
}

impl<T, E> IsResult for Result<T, E> {
    type Ok = T;
    type Err = E;
}

/// The error type of a stack that can time out or be rejected.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot carry a `reliability::Error`",
    label = "`#[timeout]` and `#[circuit_breaker]` return `Err(E::from(reliability::Error))`, so this error type needs `impl From<reliability::Error>`",
    note = "with thiserror, add a variant: `#[error(transparent)] Reliability(#[from] reliability::Error)`; `anyhow::Error` works as is"
)]
pub trait FromReliabilityError {
    /// `E::from(error)`.
    fn from_reliability(error: Error) -> Self;
}

impl<E: From<Error>> FromReliabilityError for E {
    #[inline(always)]
    fn from_reliability(error: Error) -> Self {
        E::from(error)
    }
}

/// The conversion of a stack's error type from [`Error`]; the generated code names it at the
/// function's return type, so a missing `From<reliability::Error>` is reported there, once.
pub type Convert<E> = fn(Error) -> E;

/// An argument that is passed to the body more than once.
#[diagnostic::on_unimplemented(
    message = "`{Self}` must be `Clone`: `#[retry]` and `#[fallback]` hand each argument to more than one call",
    label = "cloned for every attempt and every fallback",
    note = "derive or implement `Clone`, or take the argument by reference"
)]
pub trait CloneArg: Clone {}

impl<T: Clone> CloneArg for T {}

/// A copy of an argument for one more call.
#[inline(always)]
pub fn clone_arg<T: CloneArg>(arg: &T) -> T {
    arg.clone()
}

/// Types a `when = ...` predicate against the error type.
#[inline(always)]
pub fn predicate<E, P: Fn(&E) -> bool>(p: P) -> P {
    p
}

/// Types a `retry_after = ...` function against the error type.
#[inline(always)]
pub fn retry_after_fn<E, A: Fn(&E) -> Option<Duration>>(a: A) -> A {
    a
}

/// The `retry_after` used when none is given: the service never asks.
#[inline(always)]
pub fn never_asks<E>(_: &E) -> Option<Duration> {
    None
}

/// The predicate used when no `when` is given: every error.
#[inline(always)]
pub fn always<E>(_: &E) -> bool {
    true
}

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
