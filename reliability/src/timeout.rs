//! Timeout: bound the time of the layer below and drop it when the deadline passes.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use crate::error::{ConfigError, Error};
use crate::registry::{PolicyKind, registry};
use crate::stats::{Call, Field, Stats};

/// A named deadline whose counters are in the [`registry`](crate::registry()).
///
/// No timer is armed while the inner future completes on its first poll; the deadline counts from
/// the first poll.
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
    pub(crate) async fn run_attempt<T, E, F>(
        &self,
        fut: F,
        attempt: u32,
        convert: impl FnOnce(Error) -> E,
    ) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        let mut call = Call::new(&self.stats);
        let mut fut = pin!(fut);
        // No timer while the inner future completes on its first poll: most calls never pay for one.
        let out = match poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
            Poll::Ready(out) => out,
            Poll::Pending => match self.armed(fut).await {
                Some(out) => out,
                None => {
                    call.end(Field::Timeouts);
                    tracing::warn!(target: "reliability", function = %self.name, attempt, after = ?self.after, "call timed out");
                    return Err(convert(Error::Timeout { after: self.after }));
                }
            },
        };
        call.end(if out.is_ok() {
            Field::Successes
        } else {
            Field::Failures
        });
        out
    }

    /// Waits for `fut`, which has just returned `Pending` once, for at most `after`; `None` when the
    /// deadline passed first.
    ///
    /// Each poll looks at the timer before the inner future, so an inner future that uses up the
    /// task's cooperative budget cannot keep the deadline from being seen; when both are ready the
    /// inner future's output wins. The inner future is not polled again in the poll that armed
    /// the timer (it has just said `Pending`).
    async fn armed<O, F>(&self, mut fut: Pin<&mut F>) -> Option<O>
    where
        F: Future<Output = O>,
    {
        // Boxed: the timer is made only for calls that wait, and a call that does not wait should not
        // carry (and move through every layer above) room for one.
        let mut sleep = Box::pin(tokio::time::sleep(self.after));
        let mut armed_now = true;
        poll_fn(|cx| {
            let expired = sleep.as_mut().poll(cx).is_ready();
            if std::mem::take(&mut armed_now) && !expired {
                return Poll::Pending;
            }
            match fut.as_mut().poll(cx) {
                Poll::Ready(out) => Poll::Ready(Some(out)),
                Poll::Pending if expired => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }
}
