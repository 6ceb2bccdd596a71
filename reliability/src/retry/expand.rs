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
    pub fn get(&'static self, site: Site) -> &'static Retry {
        let instance = if self.name.is_some() {
            ""
        } else {
            site.instance()
        };
        self.slot.get(
            instance,
            site,
            |_| true,
            |site| {
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
    /// The next [`wait`](Self::wait) waits for `sleep` (the delay was not zero).
    waiting: bool,
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
            waiting: false,
        }
    }

    /// The attempt succeeded with `value`: counts the call's success, and gives the call's result.
    ///
    /// The generated loop matches the attempt's `Result` and builds `Ok(value)` here anew rather
    /// than passing the attempt's `Result` on: the layer below writes it field by field, and reading
    /// it back whole (16 bytes at a time) waited for those writes to finish on every call (half of
    /// the loop's time in `perf annotate`); moving the value alone does not.
    #[inline(always)]
    pub fn succeeded<T, E>(&mut self, value: T) -> Result<T, E> {
        Ok(self.attempts.next_ok(value))
    }

    /// Decides what follows the attempt that failed with `error`: `Break` with the call's result
    /// (the loop is over), or `Continue`: wait with [`wait`](Self::wait), then run another attempt.
    ///
    /// Decides at once and keeps nothing of the error for the wait, so that no `Result` is held
    /// across an `await` of the generated loop (a future that holds one copies it at every step).
    /// Out of line: the success path stays small.
    #[cold]
    pub fn decide<T, E, P, A>(
        &mut self,
        error: E,
        retryable: &P,
        retry_after: &A,
        show: ShowFn<E>,
    ) -> ControlFlow<Result<T, E>>
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
            Next::Done(out) => ControlFlow::Break(out),
            Next::Again(wait) => {
                self.ctx.set_attempt(self.attempts.attempt());
                if !wait.is_zero() {
                    let deadline = instant_after(tokio::time::Instant::now(), wait);
                    match &mut self.sleep {
                        Some(sleep) => sleep.as_mut().reset(deadline),
                        none => {
                            none.replace(Box::pin(tokio::time::sleep_until(deadline)));
                        }
                    }
                    self.waiting = true;
                }
                ControlFlow::Continue(())
            }
        }
    }

    /// After [`decide`](Self::decide) said `Continue`: the wait before the next attempt (none when
    /// the delay is zero), then the attempt is counted as a retry.
    #[inline]
    pub fn wait(&mut self) -> Decision<'_, 'a> {
        Decision { attempts: self }
    }
}

/// The future of [`RetryLoop::wait`]: the delay before the next attempt, if there is one.
#[derive(Debug)]
#[must_use = "a future does nothing unless awaited"]
pub struct Decision<'l, 'a> {
    attempts: &'l mut RetryLoop<'a>,
}

impl Future for Decision<'_, '_> {
    type Output = ();

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self.get_mut().attempts;
        if this.waiting {
            if let Some(sleep) = &mut this.sleep
                && sleep.as_mut().poll(cx).is_pending()
            {
                return Poll::Pending;
            }
            this.waiting = false;
        }
        this.attempts.retrying();
        Poll::Ready(())
    }
}
