//! What the attribute macros expand into. Not public API: no semver guarantee.
//!
//! Each attribute keeps the function's body in place and wraps it in calls to the items here; the
//! `static` slots hold a layer's configuration (checked by the macro) and build the named policy on
//! first use.

use std::future::{Future, IntoFuture};
use std::hash::Hash;
use std::marker::PhantomData;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll};

pub use crate::backoff::{Backoff, Jitter};
pub use crate::cache::CacheConfig;
pub use crate::circuit_breaker::{BreakerConfig, SlidingWindow};
pub use crate::retry::RetryPolicy;
pub use core::time::Duration;

use crate::cache::Cache;
use crate::circuit_breaker::{Caller, CircuitBreaker, Permit};
use crate::error::Error;
use crate::fallback::Fallback;
use crate::registry::registry;
use crate::retry::{Attempts, Next, Retry};
use crate::timeout::Timeout;

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

/// A cache key.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a cache key: it must be `Hash + Eq + Clone + Send + Sync + 'static`",
    label = "the `#[cached]` key",
    note = "choose the key with `#[cached(key = ...)]`, e.g. `key = query.to_string()`"
)]
pub trait CacheKey: Hash + Eq + Clone + Send + Sync + 'static {}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> CacheKey for K {}

/// A cached value.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached: it must be `Clone + Send + Sync + 'static`",
    label = "the value `#[cached]` stores",
    note = "wrap it in `Arc` to share it without `Clone`"
)]
pub trait CacheValue: Clone + Send + Sync + 'static {}

impl<V: Clone + Send + Sync + 'static> CacheValue for V {}

/// Types a `when = ...` predicate against the error type.
#[inline(always)]
pub fn predicate<E, P: Fn(&E) -> bool>(p: P) -> P {
    p
}

/// The predicate used when no `when` is given: every error.
#[inline(always)]
pub fn always<E>(_: &E) -> bool {
    true
}

/// The function computing a layer's default registry name, called once when the layer is first used.
pub type NameFn<'a> = &'a (dyn Fn() -> String + Send + Sync);

/// The default registry name of a free function.
pub fn fn_name(module: &str, function: &str) -> String {
    format!("{module}::{function}")
}

/// The default registry name of a method.
pub fn method_name<S: ?Sized>(function: &str) -> String {
    format!("{}::{function}", std::any::type_name::<S>())
}

/// State shared by the layers of one call: the attempt running now, and whether the breaker just
/// rejected it (so a retry above does not retry a rejection).
#[derive(Debug, Default)]
pub struct StackCtx {
    attempt: AtomicU32,
    rejected: AtomicBool,
    /// A fallback served this call: its answer is not cached.
    degraded: AtomicBool,
}

impl StackCtx {
    /// A fresh context: first attempt.
    #[inline]
    pub fn new() -> Self {
        StackCtx {
            attempt: AtomicU32::new(1),
            rejected: AtomicBool::new(false),
            degraded: AtomicBool::new(false),
        }
    }

    #[inline]
    fn attempt(&self) -> u32 {
        self.attempt.load(Ordering::Relaxed)
    }
}

/// A `static` holding one retry layer.
#[derive(Debug)]
pub struct RetrySlot {
    policy: RetryPolicy,
    built: OnceLock<Retry>,
}

impl RetrySlot {
    /// A slot with a policy the macro checked.
    pub const fn new(policy: RetryPolicy) -> Self {
        RetrySlot {
            policy,
            built: OnceLock::new(),
        }
    }

    /// The policy, registered under `name()` on first use.
    #[inline]
    pub fn get(&self, name: NameFn<'_>) -> &Retry {
        self.built.get_or_init(|| Retry::new(&name(), self.policy))
    }
}

/// The attempt loop of one call.
#[derive(Debug)]
pub struct RetryLoop<'a> {
    attempts: Attempts<'a>,
    ctx: &'a StackCtx,
    /// The timer of the waits between attempts, made at the first wait and reset for the others.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<'a> RetryLoop<'a> {
    /// Starts the loop.
    #[inline]
    pub fn new(retry: &'a Retry, ctx: &'a StackCtx) -> Self {
        ctx.attempt.store(1, Ordering::Relaxed);
        RetryLoop {
            attempts: retry.attempts(),
            ctx,
            sleep: None,
        }
    }

    /// Ends with `out`, or waits and asks for another attempt.
    ///
    /// Decides at once; the future only waits the delay before another attempt, so a success costs
    /// no more than a counter.
    #[inline]
    pub fn settle<T, E, P>(&mut self, out: Result<T, E>, retryable: &P) -> Settle<'_, T, E>
    where
        P: Fn(&E) -> bool,
    {
        match out {
            Ok(value) => Settle {
                flow: Some(ControlFlow::Break(Ok(self.attempts.next_ok(value)))),
                sleep: None,
            },
            Err(error) => self.failed(error, retryable),
        }
    }

    #[cold]
    fn failed<T, E, P>(&mut self, error: E, retryable: &P) -> Settle<'_, T, E>
    where
        P: Fn(&E) -> bool,
    {
        // A load first: no read-modify-write unless a breaker below did reject.
        let rejected = self.ctx.rejected.load(Ordering::Relaxed);
        if rejected {
            self.ctx.rejected.store(false, Ordering::Relaxed);
        }
        match self.attempts.next(Err(error), retryable, rejected) {
            Next::Done(out) => Settle {
                flow: Some(ControlFlow::Break(out)),
                sleep: None,
            },
            Next::Again(wait) => {
                self.ctx
                    .attempt
                    .store(self.attempts.attempt(), Ordering::Relaxed);
                let sleep = if wait.is_zero() {
                    None
                } else {
                    let now = tokio::time::Instant::now();
                    // As `tokio::time::sleep` does: a wait too long to add sleeps for 30 years.
                    let deadline = now
                        .checked_add(wait)
                        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30));
                    Some(match &mut self.sleep {
                        Some(sleep) => {
                            sleep.as_mut().reset(deadline);
                            sleep
                        }
                        none => none.insert(Box::pin(tokio::time::sleep_until(deadline))),
                    })
                };
                Settle {
                    flow: Some(ControlFlow::Continue(())),
                    sleep,
                }
            }
        }
    }
}

/// What [`RetryLoop::settle`] decided, once the delay before another attempt (if any) has passed.
#[derive(Debug)]
#[must_use = "a future does nothing unless awaited"]
pub struct Settle<'a, T, E> {
    flow: Option<ControlFlow<Result<T, E>>>,
    sleep: Option<&'a mut Pin<Box<tokio::time::Sleep>>>,
}

// Never pinned structurally: the result is moved out by value, the timer is boxed.
impl<T, E> Unpin for Settle<'_, T, E> {}

impl<T, E> Future for Settle<'_, T, E> {
    type Output = ControlFlow<Result<T, E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(sleep) = &mut this.sleep {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        Poll::Ready(this.flow.take().unwrap_or(ControlFlow::Continue(())))
    }
}

/// A `static` holding one timeout layer.
#[derive(Debug)]
pub struct TimeoutSlot {
    after: Duration,
    built: OnceLock<Timeout>,
}

impl TimeoutSlot {
    /// A slot with a deadline the macro checked (> 0).
    pub const fn new(after: Duration) -> Self {
        TimeoutSlot {
            after,
            built: OnceLock::new(),
        }
    }

    /// The policy, registered under `name()` on first use.
    #[inline]
    pub fn get(&self, name: NameFn<'_>) -> &Timeout {
        self.built
            .get_or_init(|| Timeout::checked(&name(), self.after))
    }
}

/// Runs `fut` under `timeout`; the future is the policy's own, which polls `fut` in place.
#[inline]
pub fn timeout<'a, T, E, F>(
    timeout: &'a Timeout,
    ctx: &StackCtx,
    convert: Convert<E>,
    fut: F,
) -> impl Future<Output = Result<T, E>> + use<'a, T, E, F>
where
    F: Future<Output = Result<T, E>>,
{
    // The attempt is known when the future is made: the retry loop above numbers it first.
    timeout.run_attempt(fut, ctx.attempt(), convert)
}

/// The consecutive rule's settings, checked by the macro.
pub const fn consecutive_breaker(
    failure_threshold: u32,
    success_threshold: u32,
    cooldown: Duration,
) -> BreakerConfig {
    BreakerConfig::consecutive(failure_threshold, success_threshold, cooldown)
}

/// The rate rule's settings, checked by the macro; `None` takes the default (`min_calls`: the
/// smaller of 100 and a count window's size; `slow_call_rate`: `failure_rate`).
pub const fn rate_breaker(
    failure_rate: f64,
    window: SlidingWindow,
    min_calls: Option<u32>,
    slow_call: Option<Duration>,
    slow_call_rate: Option<f64>,
    success_threshold: u32,
    cooldown: Duration,
) -> BreakerConfig {
    BreakerConfig::rate(
        failure_rate,
        window,
        min_calls,
        slow_call,
        slow_call_rate,
        success_threshold,
        cooldown,
    )
}

/// A `static` holding one circuit breaker layer.
#[derive(Debug)]
pub struct BreakerSlot {
    name: Option<&'static str>,
    config: BreakerConfig,
    built: OnceLock<CircuitBreaker>,
}

impl BreakerSlot {
    /// A slot for a breaker shared under `name`, or of its own (under the default name) for `None`.
    pub const fn new(name: Option<&'static str>, config: BreakerConfig) -> Self {
        BreakerSlot {
            name,
            config,
            built: OnceLock::new(),
        }
    }

    /// The breaker, registered on first use.
    #[inline]
    pub fn get(&self, default_name: NameFn<'_>) -> &CircuitBreaker {
        self.built.get_or_init(|| match self.name {
            Some(name) => registry().shared_breaker(name, self.config),
            None => registry().own_breaker(&default_name(), self.config),
        })
    }
}

/// Runs `fut` through `breaker`, counting errors for which `counts` is true as failures.
#[inline]
pub fn circuit_breaker<'a, T, E, F, P>(
    breaker: &'a CircuitBreaker,
    name: NameFn<'a>,
    ctx: &StackCtx,
    counts: &'a P,
    convert: Convert<E>,
    fut: F,
) -> BreakerCall<'a, T, E, F, P>
where
    F: Future<Output = Result<T, E>>,
    P: Fn(&E) -> bool,
{
    // Asked when the future is made, which is when the layer above awaits it.
    let caller = Caller {
        function: Some(name),
        attempt: ctx.attempt(),
    };
    let (permit, rejected) = match breaker.acquire_for(caller) {
        Ok(permit) => (Some(permit), None),
        Err(rejection) => {
            ctx.rejected.store(true, Ordering::Relaxed);
            (None, Some(convert(rejection)))
        }
    };
    BreakerCall {
        fut,
        permit,
        rejected,
        counts,
        out: PhantomData,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`circuit_breaker`]: the layer below, polled in place under a permit, or the
    /// rejection.
    pub struct BreakerCall<'a, T, E, F, P> {
        #[pin]
        fut: F,
        permit: Option<Permit<'a>>,
        rejected: Option<E>,
        counts: &'a P,
        out: PhantomData<fn() -> T>,
    }
}

impl<T, E, F, P> Future for BreakerCall<'_, T, E, F, P>
where
    F: Future<Output = Result<T, E>>,
    P: Fn(&E) -> bool,
{
    type Output = Result<T, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(rejection) = this.rejected.take() {
            return Poll::Ready(Err(rejection));
        }
        let out = std::task::ready!(this.fut.poll(cx));
        // A permit dropped unrecorded (cancelled, or polled again) counts as neither.
        if let Some(permit) = this.permit.take() {
            match &out {
                Err(e) if (this.counts)(e) => permit.failure(),
                _ => permit.success(),
            }
        }
        Poll::Ready(out)
    }
}

/// A `static` holding one cache layer: one cache per key and value type (so a generic function has
/// one per instantiation).
#[derive(Debug)]
pub struct CacheSlot {
    config: CacheConfig,
    first: OnceLock<&'static (dyn std::any::Any + Send + Sync)>,
    others: Mutex<Vec<&'static (dyn std::any::Any + Send + Sync)>>,
}

impl CacheSlot {
    /// A slot with settings the macro checked.
    pub const fn new(config: CacheConfig) -> Self {
        CacheSlot {
            config,
            first: OnceLock::new(),
            others: Mutex::new(Vec::new()),
        }
    }

    /// The cache for `K → V`, registered under `name()` on first use.
    pub fn get<K, V>(&self, name: NameFn<'_>) -> &Cache<K, V>
    where
        K: CacheKey,
        V: CacheValue,
    {
        let make = || -> &'static (dyn std::any::Any + Send + Sync) {
            Box::leak(Box::new(Cache::<K, V>::checked(&name(), self.config)))
        };
        if let Some(cache) = self.first.get_or_init(make).downcast_ref::<Cache<K, V>>() {
            return cache;
        }
        let mut others = self.others.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cache) = others.iter().find_map(|c| c.downcast_ref::<Cache<K, V>>()) {
            return cache;
        }
        let created = make();
        others.push(created);
        created
            .downcast_ref::<Cache<K, V>>()
            .unwrap_or_else(|| unreachable!("just made with these types"))
    }
}

/// Answers a `Result`-returning stack from `slot`, storing `Ok` values.
/// Answers from `slot`, storing `Ok` values, except answers a fallback below served (`ctx` says so).
pub async fn cached_result<K, V, E, F>(
    slot: &CacheSlot,
    name: NameFn<'_>,
    ctx: &StackCtx,
    key: K,
    fut: F,
) -> Result<V, E>
where
    K: CacheKey,
    V: CacheValue,
    F: Future<Output = Result<V, E>>,
{
    let keep = || !ctx.degraded.load(Ordering::Relaxed);
    slot.get::<K, V>(name).get_or_run(key, fut, &keep).await
}

/// Answers a stack with a plain return type from `slot`, except answers a fallback below served.
pub async fn cached_value<K, V, F>(
    slot: &CacheSlot,
    name: NameFn<'_>,
    ctx: &StackCtx,
    key: K,
    fut: F,
) -> V
where
    K: CacheKey,
    V: CacheValue,
    F: Future<Output = V>,
{
    let keep = || !ctx.degraded.load(Ordering::Relaxed);
    let fut = async { Ok::<V, std::convert::Infallible>(fut.await) };
    match slot.get::<K, V>(name).get_or_run(key, fut, &keep).await {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

/// Counts an answer served by fallback target `index`, and marks the call degraded so that a cache
/// above does not store it.
#[inline]
pub fn served<T>(fallback: &Fallback, ctx: &StackCtx, index: usize, value: T) -> T {
    ctx.degraded.store(true, Ordering::Relaxed);
    fallback.served(index, value)
}

/// A `static` holding one fallback layer.
#[derive(Debug)]
pub struct FallbackSlot {
    targets: &'static [&'static str],
    built: OnceLock<Fallback>,
}

impl FallbackSlot {
    /// A slot for the target names, in order.
    pub const fn new(targets: &'static [&'static str]) -> Self {
        FallbackSlot {
            targets,
            built: OnceLock::new(),
        }
    }

    /// The policy, registered under `name()` on first use.
    #[inline]
    pub fn get(&self, name: NameFn<'_>) -> &Fallback {
        self.built
            .get_or_init(|| Fallback::new(&name(), self.targets))
    }
}

/// A fallback target must be called like an `async fn`.
#[diagnostic::on_unimplemented(
    message = "a fallback must be an `async fn`; calling this one gives `{Self}`, which is not a future",
    label = "this fallback is not async",
    note = "declare it `async fn` with the same arguments as the function it stands in for"
)]
pub trait FallbackCall: IntoFuture {}

impl<F: IntoFuture> FallbackCall for F {}

/// Checks that a fallback target's call is a future.
#[inline(always)]
pub fn fallback_call<F: FallbackCall>(call: F) -> F {
    call
}

/// What a fallback that is not the last returns.
#[diagnostic::on_unimplemented(
    message = "a fallback before the last must return `Result<{T}, {E}>`, but this one returns `{Self}`",
    label = "returns `{Self}`",
    note = "a fallback returning a plain `{T}` never fails, so it must come last in `#[fallback(...)]`"
)]
pub trait Fallible<T, E> {
    /// The target's result.
    fn into_result(self) -> Result<T, E>;
}

impl<T, E> Fallible<T, E> for Result<T, E> {
    #[inline(always)]
    fn into_result(self) -> Result<T, E> {
        self
    }
}

/// Converts what a non-last fallback returned.
#[inline(always)]
pub fn fallible<T, E, O: Fallible<T, E>>(out: O) -> Result<T, E> {
    out.into_result()
}

/// What the last fallback returns: `Result<T, E>`, or a plain `T` (it cannot fail).
#[diagnostic::on_unimplemented(
    message = "a fallback must return `Result<{T}, {E}>` or `{T}`, but this one returns `{Self}`",
    label = "returns `{Self}`"
)]
pub trait LastFallback<T, E> {
    /// The target's result.
    fn into_result(self) -> Result<T, E>;
}

impl<T, E> LastFallback<T, E> for Result<T, E> {
    #[inline(always)]
    fn into_result(self) -> Result<T, E> {
        self
    }
}

impl<T, E> LastFallback<T, E> for T {
    #[inline(always)]
    fn into_result(self) -> Result<T, E> {
        Ok(self)
    }
}

/// Converts what the last fallback returned.
#[inline(always)]
pub fn last_fallback<T, E, O: LastFallback<T, E>>(out: O) -> Result<T, E> {
    out.into_result()
}
