//! Timeout: bound the time of the layer below and drop it when the deadline passes.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::task::coop;

use crate::error::{ConfigError, Error};
use crate::registry::registry;
use crate::stats::{Call, Field, PolicyKind, Stats};
use crate::time::instant_after;

pub(crate) mod expand;

/// A named deadline whose counters are in the [`registry`](crate::registry()).
///
/// The deadline counts from the first poll, including any work the inner future does before its
/// first wait; no timer is armed while the inner future completes on its first poll.
///
/// ```
/// use std::time::Duration;
/// use reliability::{Error, Timeout};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let timeout = Timeout::new("slow", Duration::from_secs(2)).unwrap();
/// let out: Result<(), Error> = timeout.run(std::future::pending()).await;
/// assert_eq!(out, Err(Error::Timeout { after: Duration::from_secs(2) }));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Timeout {
    after: Duration,
    name: Arc<str>,
    stats: Arc<Stats>,
}

impl Timeout {
    /// A deadline of `after` (> 0), registered as `name`.
    pub fn new(name: &str, after: Duration) -> Result<Self, ConfigError> {
        if after.is_zero() {
            return Err(ConfigError::new("after", "must be longer than zero"));
        }
        Ok(Self::checked(name, after))
    }

    pub(crate) fn checked(name: &str, after: Duration) -> Self {
        Timeout {
            after,
            name: name.into(),
            stats: registry().stats(PolicyKind::Timeout, name),
        }
    }

    /// The registry name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The deadline.
    pub fn after(&self) -> Duration {
        self.after
    }

    /// Runs `fut`; if it has not finished after the deadline it is dropped and
    /// `Err(E::from(Error::Timeout { .. }))` is returned.
    pub async fn run<T, E, F>(&self, fut: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: From<Error>,
    {
        self.run_attempt(fut, 1, E::from).await
    }

    /// Runs attempt number `attempt` of a call; `convert` makes the error of an expired deadline.
    #[inline]
    pub(crate) fn run_attempt<T, E, F, C>(
        &self,
        fut: F,
        attempt: u32,
        convert: C,
    ) -> TimeoutCall<'_, F, C>
    where
        F: Future<Output = Result<T, E>>,
        C: FnOnce(Error) -> E,
    {
        TimeoutCall {
            fut,
            started: None,
            sleep: None,
            // Counted from its first poll: a future made but never polled (an open breaker above
            // rejected the call) is not a call of this layer.
            call: Call::idle(&self.stats),
            timeout: self,
            attempt,
            convert: Some(convert),
        }
    }

    #[cold]
    fn expired(&self, attempt: u32, call: &mut Call<'_>) -> Error {
        call.end(Field::Timeouts);
        tracing::warn!(target: "reliability", function = %self.name, attempt, after = ?self.after, "call timed out");
        Error::Timeout { after: self.after }
    }
}

pin_project_lite::pin_project! {
    /// The future of one call under a [`Timeout`]: the inner future is polled in place, and no
    /// timer exists until it first returns `Pending`.
    pub(crate) struct TimeoutCall<'a, F, C> {
        #[pin]
        fut: F,
        // When the first poll began: the deadline is `after` from here.
        started: Option<tokio::time::Instant>,
        // Boxed: made only for calls that wait, so a call that does not wait does not carry (and
        // move through every layer above) room for one.
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
        call: Call<'a>,
        timeout: &'a Timeout,
        attempt: u32,
        convert: Option<C>,
    }
}

impl<T, E, F, C> Future for TimeoutCall<'_, F, C>
where
    F: Future<Output = Result<T, E>>,
    C: FnOnce(Error) -> E,
{
    type Output = Result<T, E>;

    /// The inner future first, then the timer, armed at the first `Pending`; when both are ready
    /// the inner future's output wins. An inner future that uses up the task's cooperative budget
    /// cannot keep the deadline from being seen: the timer is then polled unconstrained.
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if this.started.is_none() {
            *this.started = Some(tokio::time::Instant::now());
            this.call.run();
        }
        // Only an armed call can have a deadline to miss, so only it looks at the task's budget.
        let armed = this.sleep.is_some();
        let had_budget = armed && coop::has_budget_remaining();
        match this.fut.poll(cx) {
            // Taken apart before counting and rebuilt from its fields, not kept whole across the
            // count and moved (see the module `call`).
            Poll::Ready(Ok(value)) => {
                this.call.end(Field::Successes);
                return Poll::Ready(Ok(value));
            }
            Poll::Ready(Err(error)) => {
                this.call.end(Field::Failures);
                return Poll::Ready(Err(error));
            }
            Poll::Pending => {
                // The first `Pending` arms the timer, for `after` from the first poll.
                let sleep = match this.sleep {
                    Some(sleep) => sleep,
                    none => {
                        let after = this.timeout.after;
                        let started = this.started.unwrap_or_else(tokio::time::Instant::now);
                        let deadline = instant_after(started, after);
                        none.insert(Box::pin(tokio::time::sleep_until(deadline)))
                    }
                };
                let pending = if had_budget && !coop::has_budget_remaining() {
                    // The inner future used up the task's budget: look at the timer all the same,
                    // as tokio's own timeout does, or a busy inner future would never time out.
                    pin!(coop::unconstrained(sleep.as_mut()))
                        .poll(cx)
                        .is_pending()
                } else {
                    sleep.as_mut().poll(cx).is_pending()
                };
                if pending {
                    return Poll::Pending;
                }
            }
        }
        let error = this.timeout.expired(*this.attempt, this.call);
        match this.convert.take() {
            Some(convert) => Poll::Ready(Err(convert(error))),
            // Polled again after it finished.
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::Timeout;
    use crate::error::Error;

    /// An inner future that uses up the task's cooperative budget on every poll must still time
    /// out: the timer is then polled without the budget.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn an_inner_future_that_exhausts_the_budget_still_times_out() {
        let timeout = Timeout::new("timeout.busy", Duration::from_secs(1)).unwrap();
        let gave_up = Arc::new(AtomicBool::new(false));
        // Moves the paused clock while the busy task yields; gives up (and so fails the test rather
        // than hanging it) after ten seconds.
        let advancer = tokio::spawn({
            let gave_up = gave_up.clone();
            async move {
                for _ in 0..100 {
                    tokio::time::advance(Duration::from_millis(100)).await;
                }
                gave_up.store(true, Ordering::SeqCst);
            }
        });
        let busy = async {
            while !gave_up.load(Ordering::SeqCst) {
                tokio::task::coop::consume_budget().await;
            }
            Ok::<(), Error>(())
        };
        let out = timeout.run(busy).await;
        assert_eq!(
            out,
            Err(Error::Timeout {
                after: Duration::from_secs(1)
            })
        );
        advancer.abort();
    }
}
