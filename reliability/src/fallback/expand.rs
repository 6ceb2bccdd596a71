//! What `#[fallback]` expands into: a `static` slot holding the chain, the chain's counting
//! steps, and the checks that make a target's mistakes compile errors at the target.

use std::future::IntoFuture;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;

use crate::__private::IsResult;
use crate::call::StackCtx;
use crate::fallback::Fallback;
use crate::site::Site;
use crate::slot::Slot;
use crate::stats::Kept;

/// A `static` holding one fallback layer.
#[derive(Debug)]
pub struct FallbackSlot {
    targets: &'static [&'static str],
    slot: Slot<Fallback>,
}

impl FallbackSlot {
    /// A slot for the target names, in order.
    pub const fn new(targets: &'static [&'static str]) -> Self {
        FallbackSlot {
            targets,
            slot: Slot::new(),
        }
    }

    /// The chain of this instantiation, registered under the site's name on first use.
    #[inline]
    pub fn get(&'static self, site: Site) -> Chain {
        Chain(self.slot.get(
            site.instance(),
            site,
            |_| true,
            |site| Fallback::new(&site.name(), self.targets),
        ))
    }
}

/// The steps of one call through a fallback chain, each counted and logged.
#[derive(Debug, Clone, Copy)]
pub struct Chain(&'static Fallback);

impl Chain {
    /// A call of the chain starts.
    #[inline]
    pub fn enter(self) -> Entered {
        Entered(self.0.enter())
    }

    /// The layer below succeeded, in the call `entered`.
    #[inline]
    pub fn primary_ok<T>(self, entered: Entered, value: T) -> T {
        self.0.primary_ok(entered.0, value)
    }

    /// The layer below failed; `applies` says whether the chain takes over.
    #[inline]
    pub fn primary_failed(self, applies: bool) -> bool {
        self.0.primary_failed(applies)
    }

    /// Target `index` answered: counted, and the call marked degraded so that the cache above does
    /// not store the answer.
    #[inline]
    pub fn served_below_cache<T>(self, ctx: &StackCtx, index: usize, value: T) -> T {
        ctx.degraded.store(true, Ordering::Relaxed);
        self.0.served(index, value)
    }

    /// Target `index` answered, with no cache above: counted.
    #[inline]
    pub fn served<T>(self, index: usize, value: T) -> T {
        self.0.served(index, value)
    }

    /// Target `index` failed too.
    #[inline]
    pub fn target_failed(self, index: usize) {
        self.0.target_failed(index);
    }

    /// Every target failed; `error` is the last one's.
    #[inline]
    pub fn all_failed<E>(self, error: E) -> E {
        self.0.all_failed(error)
    }
}

/// A call of a fallback chain that started: where the calling thread counts it.
#[derive(Debug, Clone, Copy)]
pub struct Entered(Kept<'static>);

/// A fallback target, called with the arguments of the function it stands in for (a tuple, the
/// receiver first for a method). Called through this trait rather than directly, so that a target
/// taking other arguments is one error that shows both signatures, at the target.
#[diagnostic::on_unimplemented(
    message = "this fallback cannot stand in for the function: it is `{Self}`, and the function passes `{Args}`",
    label = "takes other arguments than the function",
    note = "a fallback takes the function's arguments, of the same types, in the same order (for a method: the same receiver first)"
)]
pub trait FallbackFn<Args> {
    /// What calling the target gives (a future).
    type Output;
    /// Calls the target with `args`.
    fn call_with(self, args: Args) -> Self::Output;
}

macro_rules! fallback_fn {
    ($($arg:ident),*) => {
        impl<F, R, $($arg),*> FallbackFn<($($arg,)*)> for F
        where
            F: FnOnce($($arg),*) -> R,
        {
            type Output = R;

            #[inline(always)]
            #[allow(non_snake_case)]
            fn call_with(self, ($($arg,)*): ($($arg,)*)) -> R {
                self($($arg),*)
            }
        }
    };
}

fallback_fn!();
fallback_fn!(A1);
fallback_fn!(A1, A2);
fallback_fn!(A1, A2, A3);
fallback_fn!(A1, A2, A3, A4);
fallback_fn!(A1, A2, A3, A4, A5);
fallback_fn!(A1, A2, A3, A4, A5, A6);
fallback_fn!(A1, A2, A3, A4, A5, A6, A7);
fallback_fn!(A1, A2, A3, A4, A5, A6, A7, A8);
fallback_fn!(A1, A2, A3, A4, A5, A6, A7, A8, A9);
fallback_fn!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10);
fallback_fn!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11);
fallback_fn!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12);

/// A fallback target must be called like an `async fn`.
#[diagnostic::on_unimplemented(
    message = "a fallback must be an `async fn`; calling this one gives `{Self}`, which is not a future",
    label = "this fallback is not async",
    note = "declare it `async fn` with the same arguments as the function it stands in for"
)]
pub trait FallbackCall: IntoFuture {}

impl<F: IntoFuture> FallbackCall for F {}

/// What calling a fallback target gave, checked to be a future by method resolution on
/// `call.future()`, the first that applies:
///
/// 1. [`CallIsFuture`] (by value): a future (or `IntoFuture`) is passed on, to be awaited;
/// 2. [`CallNotFuture`] (by reference): anything else is one error of ours ([`FallbackCall`]),
///    and gives a type nothing names, so that rustc does not add "not a future" at the `.await`.
#[derive(Debug)]
pub struct TargetCall<O>(O);

impl<O> TargetCall<O> {
    /// What a target's call gave.
    #[inline(always)]
    pub fn new(call: O) -> Self {
        TargetCall(call)
    }
}

/// Picked for a target whose call is a future.
pub trait CallIsFuture<O> {
    /// The call, to be awaited.
    fn future(self) -> O;
}

impl<O: IntoFuture> CallIsFuture<O> for TargetCall<O> {
    #[inline(always)]
    fn future(self) -> O {
        self.0
    }
}

/// Picked for a target whose call is not a future.
pub trait CallNotFuture<O> {
    /// Never compiles: reached only when `O` is not a future.
    fn future<H: Default>(&self) -> H
    where
        O: FallbackCall;
}

impl<O> CallNotFuture<O> for TargetCall<O> {
    fn future<H: Default>(&self) -> H
    where
        O: FallbackCall,
    {
        H::default()
    }
}

/// Calls a fallback target with the function's arguments, typed `Args`: a target taking others is
/// one error at the target ([`FallbackFn`]); its call is then checked to be a future
/// ([`TargetCall`]).
#[inline(always)]
pub fn fallback_with<Args, F>(target: F, args: Args) -> TargetCall<F::Output>
where
    F: FallbackFn<Args>,
{
    TargetCall(target.call_with(args))
}

/// A method's fallback target `F`, checked to take the method's receiver first by method resolution
/// on `(&&&Target::<F, All, Rest>::new(target)).checked()`, the first that applies (`All`: the
/// receiver's and the arguments' types, `Rest`: the arguments' alone):
///
/// 1. [`TakesAll`]: `F` takes `All`: the target itself;
/// 2. [`TakesNoReceiver`]: `F` takes `Rest`: one compile error of ours ([`TakesReceiver`]), which
///    says to take the receiver, where rustc would only count arguments; it gives a type nothing
///    names, so rustc adds nothing about the call;
/// 3. [`TakesOther`]: the target itself, whose call then shows both signatures ([`FallbackFn`]).
pub struct Target<F, All, Rest>(F, PhantomData<fn(All, Rest)>);

impl<F, All, Rest> Target<F, All, Rest> {
    /// The target `F`.
    #[inline(always)]
    pub fn new(target: F) -> Self {
        Target(target, PhantomData)
    }
}

/// Picked for a target that takes the receiver and the arguments.
pub trait TakesAll<F> {
    /// The target.
    fn checked(&self) -> F;
}

impl<F: FallbackFn<All> + Copy, All, Rest> TakesAll<F> for &&Target<F, All, Rest> {
    #[inline(always)]
    fn checked(&self) -> F {
        self.0
    }
}

/// A method's fallback takes the receiver first.
#[diagnostic::on_unimplemented(
    message = "a fallback of a method must take the receiver first, like the method it stands in for",
    label = "takes the method's arguments without the receiver",
    note = "declare it `async fn name(&self, ...)` (the same receiver as the method), or call a function without a receiver from a fallback that has one"
)]
pub trait TakesReceiver {}

/// Picked for a target that takes the arguments without the receiver.
pub trait TakesNoReceiver<F> {
    /// Never compiles: reached only when `F` does not take the receiver.
    fn checked<H: Default>(&self) -> H
    where
        F: TakesReceiver;
}

impl<F: FallbackFn<Rest>, All, Rest> TakesNoReceiver<F> for &Target<F, All, Rest> {
    fn checked<H: Default>(&self) -> H
    where
        F: TakesReceiver,
    {
        H::default()
    }
}

/// Picked for a target that takes other arguments.
pub trait TakesOther<F> {
    /// The target.
    fn checked(&self) -> F;
}

impl<F: Copy, All, Rest> TakesOther<F> for Target<F, All, Rest> {
    #[inline(always)]
    fn checked(&self) -> F {
        self.0
    }
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
pub fn fallible<R: IsResult, O: Fallible<R::Ok, R::Err>>(out: O) -> Result<R::Ok, R::Err> {
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
pub fn last_fallback<R: IsResult, O: LastFallback<R::Ok, R::Err>>(out: O) -> Result<R::Ok, R::Err> {
    out.into_result()
}

/// What the last fallback returns when a `#[retry]` is above the `#[fallback]` (without `when`):
/// a `Result`, or the retry could never act.
#[diagnostic::on_unimplemented(
    message = "`#[retry]` above this `#[fallback]` can never retry: its last fallback returns a plain `{Self}`, so the call below the retry never fails",
    label = "never fails",
    note = "put `#[retry]` below `#[fallback]` (retry the primary, then fall back), or make the last fallback return `Result<{T}, {E}>`"
)]
pub trait FailsBelowRetry<T, E> {
    /// The target's result.
    fn into_result(self) -> Result<T, E>;
}

impl<T, E> FailsBelowRetry<T, E> for Result<T, E> {
    #[inline(always)]
    fn into_result(self) -> Result<T, E> {
        self
    }
}

/// [`last_fallback`] with a `#[retry]` above: the last target must be able to fail.
#[inline(always)]
pub fn last_fallback_below_retry<R: IsResult, O: FailsBelowRetry<R::Ok, R::Err>>(
    out: O,
) -> Result<R::Ok, R::Err> {
    out.into_result()
}

/// What the last fallback returns when a `#[circuit_breaker]` is above the `#[fallback]` (without
/// `when`): a `Result`, or the breaker could never open.
#[diagnostic::on_unimplemented(
    message = "`#[circuit_breaker]` above this `#[fallback]` can never open: its last fallback returns a plain `{Self}`, so the call below the breaker never fails",
    label = "never fails",
    note = "put `#[circuit_breaker]` below `#[fallback]` (the breaker guards the primary), or make the last fallback return `Result<{T}, {E}>`"
)]
pub trait FailsBelowBreaker<T, E> {
    /// The target's result.
    fn into_result(self) -> Result<T, E>;
}

impl<T, E> FailsBelowBreaker<T, E> for Result<T, E> {
    #[inline(always)]
    fn into_result(self) -> Result<T, E> {
        self
    }
}

/// [`last_fallback`] with a `#[circuit_breaker]` above: the last target must be able to fail.
#[inline(always)]
pub fn last_fallback_below_breaker<R: IsResult, O: FailsBelowBreaker<R::Ok, R::Err>>(
    out: O,
) -> Result<R::Ok, R::Err> {
    out.into_result()
}
