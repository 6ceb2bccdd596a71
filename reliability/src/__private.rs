//! What the attribute macros expand into. Not public API: no semver guarantee.
//!
//! Each attribute keeps the function's body in place and wraps it in calls to the items here. Each
//! policy's part lives next to the policy (`retry/expand.rs`, `timeout/expand.rs`, …) and is
//! re-exported below; this file holds what the layers share: the stack's context, the function's
//! registry name, and the checks of the function's types.

use std::future::Future;

pub use crate::backoff::{Backoff, Jitter};
pub use core::time::Duration;

pub use crate::call::{Convert, StackCtx};
pub use crate::show::{Show, ShowDebug, ShowDisplay, ShowFn, ShowNothing};
pub use crate::site::Site;

#[cfg(feature = "redis")]
pub use crate::shared::expand::{
    SharedKey, SharedValue, circuit_breaker_shared, rate_limit_shared,
};
// Without the feature, `shared` is a compile error (`needs_redis`); these keep it the only one.
#[cfg(not(feature = "redis"))]
pub use crate::circuit_breaker::expand::circuit_breaker as circuit_breaker_shared;
#[cfg(not(feature = "redis"))]
pub use crate::rate_limit::expand::rate_limit as rate_limit_shared;

/// Implemented when the `redis` feature is on.
#[diagnostic::on_unimplemented(
    message = "`shared` needs the `redis` feature of `reliability`",
    label = "state shared by replicas lives in Redis",
    note = "enable it: `reliability = {{ version = \"...\", features = [\"redis\"] }}`, and install a store at start-up with `reliability::shared::install`"
)]
pub trait RedisFeature {}

#[cfg(feature = "redis")]
impl RedisFeature for () {}

/// Checks that the `redis` feature is on, for an attribute marked `shared`.
#[inline(always)]
pub fn needs_redis<T: RedisFeature>() {}

pub use crate::bulkhead::expand::{BulkheadSlot, bulkhead};
pub use crate::cache::expand::{
    CacheKey, CacheSlot, CacheValue, KeyButClone, KeyButSend, KeyButSync, KeyClone, KeyEq, KeyHash,
    KeyPart, KeySend, KeySync, NotStored, OkNotStored, OkValues, PartIsKey, PartNotClone,
    PartNotEq, PartNotHash, PartNotSend, PartNotSync, Returns, StoresOk, StoresValue, Values,
    store_all,
};
pub use crate::circuit_breaker::SlidingWindow;
pub use crate::circuit_breaker::expand::{
    BreakerCall, BreakerSlot, circuit_breaker, consecutive_breaker, rate_breaker,
};
pub use crate::fallback::expand::{
    CallIsFuture, CallNotFuture, Chain, Entered, FailsBelowBreaker, FailsBelowRetry, FallbackCall,
    FallbackFn, FallbackSlot, Fallible, LastFallback, TakesAll, TakesNoReceiver, TakesOther,
    TakesReceiver, Target, TargetCall, fallback_with, fallible, last_fallback,
    last_fallback_below_breaker, last_fallback_below_retry,
};
pub use crate::hedge::expand::{HedgeAfter, HedgeSlot, hedge};
pub use crate::rate_limit::expand::{Cost, RateLimitSlot, cost, rate_limit};
pub use crate::retry::expand::{Decision, RetryLoop, RetrySlot};
pub use crate::timeout::expand::{TimeoutSlot, timeout};

use crate::error::Error;

/// Fixes the output type of the async block that holds a layer, so `?` and `return` in the body
/// infer against the function's return type.
#[inline(always)]
pub fn layer<R, F: Future<Output = R>>(f: F) -> F {
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
    label = "`#[timeout]`, `#[circuit_breaker]`, `#[rate_limit]` and `#[bulkhead]` return `Err(E::from(reliability::Error))`, so this error type needs `impl From<reliability::Error>`",
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

pub use crate::predicate::{
    Checked, ErrorPredicate, ErrorRetryAfter, always, never_asks, predicate, retry_after_fn,
};

pub use crate::values::{
    DurationType, DurationValue, NotADuration, NotAWindow, WindowType, WindowValue, above_one,
    at_least, count_u32, count_u64, min_calls_within, not_shorter, per_for_rate, refill_at_most,
    share, sum_at_most,
};

/// The traits the expansions pick by method resolution (autoref), brought into scope at once by
/// `use ::reliability::__private::autoref::*;`. Each is implemented only for a marker type of this
/// crate, so a user's own method calls (in a `key = ...`) never see them.
pub mod autoref {
    pub use crate::cache::expand::{
        NotStored as _, OkNotStored as _, PartIsKey as _, PartNotClone as _, PartNotEq as _,
        PartNotHash as _, PartNotSend as _, PartNotSync as _, StoresOk as _, StoresValue as _,
    };
    pub use crate::fallback::expand::{
        CallIsFuture as _, CallNotFuture as _, TakesAll as _, TakesNoReceiver as _, TakesOther as _,
    };
    pub use crate::show::{ShowDebug as _, ShowDisplay as _, ShowNothing as _};
    pub use crate::values::{NotADuration as _, NotAWindow as _};
}
