//! Retry: run the call again after a failure, waiting a growing, jittered delay between attempts.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::backoff::{Backoff, Jitter, Schedule};

use crate::error::ConfigError;
use crate::registry::registry;
use crate::stats::{Call, Field, PolicyKind, Stats};

pub(crate) mod expand;

/// How many attempts to make and how long to wait between them.
///
/// ```
/// use std::time::Duration;
/// use reliability::{Backoff, Jitter, RetryPolicy};
///
/// let policy = RetryPolicy::builder()
///     .max_attempts(4)
///     .backoff(Backoff::Exponential { multiplier: 2.0 })
///     .delay(Duration::from_millis(100))
///     .jitter(Jitter::None)
///     .build()
///     .unwrap();
/// let waits: Vec<_> = (1..4).map(|retry| policy.schedule().base_delay(retry)).collect();
/// assert_eq!(waits, [Duration::from_millis(100), Duration::from_millis(200), Duration::from_millis(400)]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    max_attempts: u32,
    schedule: Schedule,
}

impl RetryPolicy {
    /// 3 attempts, exponential backoff ×2 from 1 s capped at 30 s, full jitter.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        schedule: Schedule {
            backoff: Backoff::Exponential { multiplier: 2.0 },
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            jitter: Jitter::Full,
        },
    };

    /// Starts from [`RetryPolicy::DEFAULT`].
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder {
            policy: Self::DEFAULT,
        }
    }

    /// Settings already validated (by the attribute macro).
    pub(crate) const fn checked(max_attempts: u32, schedule: Schedule) -> Self {
        RetryPolicy {
            max_attempts,
            schedule,
        }
    }

    /// Total attempts, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Builds a [`RetryPolicy`]; [`build`](Self::build) validates every setting.
#[derive(Debug, Clone)]
#[must_use]
pub struct RetryPolicyBuilder {
    policy: RetryPolicy,
}

impl RetryPolicyBuilder {
    /// Total attempts, the first included (>= 1; default 3).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.policy.max_attempts = n;
        self
    }

    /// Delay growth (default exponential ×2).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.policy.schedule.backoff = backoff;
        self
    }

    /// First delay (default 1 s; zero retries at once).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.policy.schedule.delay = delay;
        self
    }

    /// Cap on any single delay (> 0 and >= `delay`; default 30 s).
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.policy.schedule.max_delay = max_delay;
        self
    }

    /// Randomisation of each delay (default full).
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.policy.schedule.jitter = jitter;
        self
    }

    /// Validates the settings.
    pub fn build(self) -> Result<RetryPolicy, ConfigError> {
        let p = self.policy;
        if p.max_attempts == 0 {
            return Err(ConfigError::new(
                "max_attempts",
                "must be at least 1 (the first attempt counts)",
            ));
        }
        if let Backoff::Exponential { multiplier } = p.schedule.backoff
            && !(multiplier.is_finite() && multiplier > 1.0)
        {
            return Err(ConfigError::new(
                "multiplier",
                format!("must be a finite number above 1.0, not {multiplier}"),
            ));
        }
        if p.schedule.max_delay.is_zero() {
            return Err(ConfigError::new("max_delay", "must be longer than zero"));
        }
        if p.schedule.delay > p.schedule.max_delay {
            return Err(ConfigError::new(
                "delay",
                format!(
                    "{:?} is above max_delay ({:?})",
                    p.schedule.delay, p.schedule.max_delay
                ),
            ));
        }
        Ok(p)
    }
}

/// A named retry policy whose counters are in the [`registry`](crate::registry()).
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use reliability::{Jitter, Retry, RetryPolicy};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let retry = Retry::new("flaky", RetryPolicy::builder().jitter(Jitter::None).build().unwrap());
/// let calls = AtomicU32::new(0);
/// let out = retry
///     .run(|| async {
///         if calls.fetch_add(1, Ordering::SeqCst) < 2 { Err("busy") } else { Ok("done") }
///     })
///     .await;
/// assert_eq!(out, Ok("done"));
/// assert_eq!(calls.load(Ordering::SeqCst), 3);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Retry {
    policy: RetryPolicy,
    name: Arc<str>,
    stats: Arc<Stats>,
}

impl Retry {
    /// A retry policy registered as `name`.
    pub fn new(name: &str, policy: RetryPolicy) -> Self {
        Retry {
            policy,
            name: name.into(),
            stats: registry().stats(PolicyKind::Retry, name),
        }
    }

    /// The registry name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Runs `attempt` until it succeeds or attempts run out; returns the last error unchanged.
    pub async fn run<T, E, F, Fut>(&self, attempt: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_when(|_: &E| true, attempt).await
    }

    /// Like [`run`](Self::run), retrying only errors for which `retryable` is true.
    pub async fn run_when<T, E, F, Fut, P>(&self, retryable: P, mut attempt: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        P: Fn(&E) -> bool,
    {
        let mut attempts = self.attempts();
        loop {
            let out = attempt().await;
            match attempts.next(out, &retryable, false) {
                Next::Done(out) => return out,
                Next::Again(wait) => {
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    attempts.retrying();
                }
            }
        }
    }

    /// The state of one call's attempt loop.
    #[inline]
    pub(crate) fn attempts(&self) -> Attempts<'_> {
        Attempts {
            retry: self,
            attempt: 1,
            previous: Duration::ZERO,
            call: Call::new(&self.stats),
        }
    }
}

/// The attempt loop of one call: after each attempt, [`next`](Self::next) decides whether to wait and
/// go again.
#[derive(Debug)]
pub(crate) struct Attempts<'a> {
    retry: &'a Retry,
    attempt: u32,
    previous: Duration,
    /// Counts the call as cancelled if the loop is dropped before it ends.
    call: Call<'a>,
}

/// What follows an attempt.
pub(crate) enum Next<T, E> {
    /// The loop is over.
    Done(Result<T, E>),
    /// Attempt again after the delay.
    Again(Duration),
}

impl Attempts<'_> {
    /// The number of the attempt running now (1 for the first).
    #[inline]
    pub(crate) fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Decides what follows `out`, counting it; the caller waits the delay of [`Next::Again`].
    #[inline]
    pub(crate) fn next<T, E, P>(
        &mut self,
        out: Result<T, E>,
        retryable: &P,
        rejected: bool,
    ) -> Next<T, E>
    where
        P: Fn(&E) -> bool,
    {
        match out {
            Ok(value) => Next::Done(Ok(self.next_ok(value))),
            Err(error) => self.failed(error, retryable, rejected),
        }
    }

    /// Counts a retry: the wait after a failed attempt is over and the next attempt starts.
    #[inline]
    pub(crate) fn retrying(&mut self) {
        self.retry.stats.add(Field::Retries);
    }

    /// Counts the success that ends the loop.
    #[inline]
    pub(crate) fn next_ok<T>(&mut self, value: T) -> T {
        self.call.end(Field::Successes);
        value
    }

    /// The slow path of [`next`](Self::next), kept out of line so that the success path stays small.
    #[cold]
    fn failed<T, E, P>(&mut self, error: E, retryable: &P, rejected: bool) -> Next<T, E>
    where
        P: Fn(&E) -> bool,
    {
        let retry = self.retry;
        let attempt = self.attempt;
        if rejected {
            retry.stats.add(Field::Rejections);
            self.call.end(Field::Failures);
            tracing::debug!(target: "reliability", function = %retry.name, attempt, "not retrying: the circuit breaker is open");
            return Next::Done(Err(error));
        }
        if !retryable(&error) {
            self.call.end(Field::Failures);
            tracing::debug!(target: "reliability", function = %retry.name, attempt, "not retrying: `when` rejected the error");
            return Next::Done(Err(error));
        }
        if attempt >= retry.policy.max_attempts {
            self.call.end(Field::Failures);
            tracing::warn!(target: "reliability", function = %retry.name, attempt, "retries exhausted");
            return Next::Done(Err(error));
        }
        drop(error);
        let wait = retry.policy.schedule.delay(attempt, self.previous);
        self.previous = wait;
        self.attempt += 1;
        tracing::warn!(
            target: "reliability",
            function = %retry.name,
            attempt,
            next_attempt = attempt + 1,
            delay = ?wait,
            "attempt failed; retrying"
        );
        Next::Again(wait)
    }
}
