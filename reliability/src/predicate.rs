//! The `when = ...` and `retry_after = ...` functions of the attributes: typed against the
//! function's error type where they are made, and the defaults used when none is given.
//! Re-exported by `__private`.

use std::fmt;
use std::time::Duration;

/// A `when = ...` predicate: `Fn(&E) -> bool`. A trait of its own, so that a function of the wrong
/// shape (the error taken by value) is one error; rustc still reads the closure's argument type
/// from the `Fn` supertrait.
pub trait ErrorPredicate<E>: Fn(&E) -> bool {}

impl<E, P: Fn(&E) -> bool> ErrorPredicate<E> for P {}

/// A `retry_after = ...` function: `Fn(&E) -> Option<Duration>`, like [`ErrorPredicate`].
pub trait ErrorRetryAfter<E>: Fn(&E) -> Option<Duration> {}

impl<E, A: Fn(&E) -> Option<Duration>> ErrorRetryAfter<E> for A {}

/// A `when = ...` or `retry_after = ...` function `P` of the error `E`, made where its shape was
/// checked: [`call`](Self::call) asks nothing more of `P`, so no use checks it again (an opaque
/// `impl Fn` would carry the check to every use, and report a wrong shape at each). The expansion
/// calls it from a closure of its own, which the policies take as their `Fn(&E)`.
pub struct Checked<P, E, R> {
    value: P,
    call: fn(&P, &E) -> R,
}

impl<P, E, R> Checked<P, E, R> {
    /// The function's answer for `error`. Only called on a failure.
    #[inline(always)]
    pub fn call(&self, error: &E) -> R {
        (self.call)(&self.value, error)
    }
}

impl<P, E, R> fmt::Debug for Checked<P, E, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checked").finish_non_exhaustive()
    }
}

/// Types a `when = ...` predicate against the error type: a predicate of the wrong shape (the
/// error taken by value) is reported here, once.
#[inline(always)]
pub fn predicate<E, P: ErrorPredicate<E>>(p: P) -> Checked<P, E, bool> {
    Checked {
        value: p,
        call: |p, e| p(e),
    }
}

/// Types a `retry_after = ...` function against the error type, like [`predicate`].
#[inline(always)]
pub fn retry_after_fn<E, A: ErrorRetryAfter<E>>(a: A) -> Checked<A, E, Option<Duration>> {
    Checked {
        value: a,
        call: |a, e| a(e),
    }
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
