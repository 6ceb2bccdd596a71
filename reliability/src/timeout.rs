//! Timeout: bound the time of the layer below and drop it when the deadline passes.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use crate::error::{ConfigError, Error};
use crate::registry::{PolicyKind, registry};
use crate::stats::{Field, Stats};

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
        self.run_attempt(fut, 1).await
    }

    pub(crate) async fn run_attempt<T, E, F>(&self, fut: F, attempt: u32) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: From<Error>,
    {
        self.stats.add(Field::Calls);
        let mut fut = pin!(fut);
        let first = poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
        let out = match first {
            Poll::Ready(out) => out,
            Poll::Pending => match tokio::time::timeout(self.after, fut).await {
                Ok(out) => out,
                Err(_) => {
                    self.stats.add(Field::Timeouts);
                    tracing::warn!(target: "reliability", function = %self.name, attempt, after = ?self.after, "call timed out");
                    return Err(E::from(Error::Timeout { after: self.after }));
                }
            },
        };
        self.stats.add(if out.is_ok() {
            Field::Successes
        } else {
            Field::Failures
        });
        out
    }
}
