//! What `#[retry]` expands into: a `static` slot holding the policy, and the attempt loop of one
//! call, written into the function as a `loop` around the layer below.

use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::backoff::{Backoff, Jitter, Schedule};
use crate::call::StackCtx;
use crate::retry::{Attempts, Below, Next, Retry, RetryPolicy};
use crate::show::ShowFn;
use crate::site::Site;
use crate::slot::Slot;
use crate::time::instant_after;

/// A `static` holding one retry layer: its settings, checked by the macro, and its policy per
/// instantiation of the function.
#[derive(Debug)]
pub struct RetrySlot {
    name: Option<&'static str>,
    policy: RetryPolicy,
    slot: Slot<Retry>,
}

impl RetrySlot {
    /// A slot for settings the macro checked.
    pub const fn new(
        max_attempts: u32,
        backoff: Backoff,
        delay: Duration,
        max_delay: Duration,
        jitter: Jitter,
    ) -> Self {
        RetrySlot {
            name: None,
            policy: RetryPolicy::checked(
                max_attempts,
                Schedule {
                    backoff,
                    delay,
                    max_delay,
                    jitter,
                },
            ),
            slot: Slot::new(),
        }
    }

    /// Registered as `name`, one for every instantiation, sharing its budget with every retry of
    /// that name.
    pub const fn named(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// With a deadline the macro checked (> 0).
    pub const fn deadline(mut self, deadline: Duration) -> Self {
        self.policy = self.policy.with_deadline(deadline);
        self
    }

    /// With a budget the macro checked (0 < ratio <= 1).
    pub const fn budget(mut self, ratio: f64) -> Self {
        self.policy = self.policy.with_budget(ratio);
        self
    }

    /// The policy of this instantiation, registered on first use. A retry named explicitly is one
    /// for every instantiation (and shares its budget with every retry of that name).
    #[inline]
    pub fn get(&self, site: &Site) -> &'static Retry {
        let instance = if self.name.is_some() {
            ""
        } else {
            site.instance()
        };
        self.slot.get(
            instance,
            |_| true,
            || {
                let name = self.name.map_or_else(|| site.name(), str::to_owned);
                Retry::new(&name, self.policy)
            },
        )
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
        ctx.set_attempt(1);
        RetryLoop {
            attempts: retry.attempts(),
            ctx,
            sleep: None,
        }
    }

    /// The attempt succeeded: counts the call's success. The generated loop returns the value
    /// itself, where it lies (moving a `Result` through [`decide`](Self::decide) and a
    /// [`Decision`] on the common path cost more than the rest of the loop).
    #[inline]
    pub fn succeeded(&mut self) {
        self.attempts.next_ok(());
    }

    /// Decides what follows the attempt that gave `out`: the end of the loop, or (once the delay
    /// has passed) another attempt.
    ///
    /// Decides at once; the future only waits the delay before another attempt.
    #[inline]
    pub fn decide<T, E, P, A>(
        &mut self,
        out: Result<T, E>,
        retryable: &P,
        retry_after: &A,
        show: ShowFn<E>,
    ) -> Decision<'_, 'a, T, E>
    where
        P: Fn(&E) -> bool,
        A: Fn(&E) -> Option<Duration>,
    {
        match out {
            Ok(value) => Decision {
                flow: Some(ControlFlow::Break(Ok(self.attempts.next_ok(value)))),
                sleep: None,
                attempts: None,
            },
            Err(error) => self.failed(error, retryable, retry_after, show),
        }
    }

    #[cold]
    fn failed<T, E, P, A>(
        &mut self,
        error: E,
        retryable: &P,
        retry_after: &A,
        show: ShowFn<E>,
    ) -> Decision<'_, 'a, T, E>
    where
        P: Fn(&E) -> bool,
        A: Fn(&E) -> Option<Duration>,
    {
        // A load first: no read-modify-write unless a breaker below did reject.
        let rejected = self.ctx.rejected.load(Ordering::Relaxed);
        if rejected {
            self.ctx.rejected.store(false, Ordering::Relaxed);
        }
        let below = Below {
            rejected,
            retry_after: self.ctx.take_shed().flatten(),
        };
        match self
            .attempts
            .next(Err(error), retryable, retry_after, below, show)
        {
            Next::Done(out) => Decision {
                flow: Some(ControlFlow::Break(out)),
                sleep: None,
                attempts: None,
            },
            Next::Again(wait) => {
                self.ctx.set_attempt(self.attempts.attempt());
                let sleep = if wait.is_zero() {
                    None
                } else {
                    let deadline = instant_after(tokio::time::Instant::now(), wait);
                    Some(match &mut self.sleep {
                        Some(sleep) => {
                            sleep.as_mut().reset(deadline);
                            sleep
                        }
                        none => none.insert(Box::pin(tokio::time::sleep_until(deadline))),
                    })
                };
                Decision {
                    flow: Some(ControlFlow::Continue(())),
                    sleep,
                    attempts: Some(&mut self.attempts),
                }
            }
        }
    }
}

/// What [`RetryLoop::decide`] decided, once the delay before another attempt (if any) has passed.
#[derive(Debug)]
#[must_use = "a future does nothing unless awaited"]
pub struct Decision<'l, 'a, T, E> {
    flow: Option<ControlFlow<Result<T, E>>>,
    sleep: Option<&'l mut Pin<Box<tokio::time::Sleep>>>,
    /// Set when another attempt follows: it is counted as a retry once the wait is over, so that a
    /// wait cut short (a timeout above, a cancelled caller) is not a retry.
    attempts: Option<&'l mut Attempts<'a>>,
}

// Never pinned structurally: the result is moved out by value, the timer is boxed.
impl<T, E> Unpin for Decision<'_, '_, T, E> {}

impl<T, E> Future for Decision<'_, '_, T, E> {
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
        if let Some(attempts) = this.attempts.take() {
            attempts.retrying();
        }
        Poll::Ready(this.flow.take().unwrap_or(ControlFlow::Continue(())))
    }
}
