//! Retry: run the call again after a failure, waiting a growing, jittered delay between attempts,
//! or exactly the delay the service asked for; within a deadline and a retry budget.

mod budget;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::backoff::{Backoff, Jitter, Schedule};

use crate::error::ConfigError;
use crate::registry::registry;
use crate::show::{ShowFn, Shown, show_nothing};
use crate::stats::{Call, Field, PolicyKind, Stats};

pub(crate) mod expand;

pub use budget::RetryBudget;
use budget::{ONE_PPB, ratio_to_ppb};

/// How many attempts to make, how long to wait between them, and when to give up early.
///
/// | setting | meaning | default |
/// |---|---|---|
/// | [`max_attempts`](RetryPolicyBuilder::max_attempts) | total attempts, the first included (>= 1) | 3 |
/// | [`backoff`](RetryPolicyBuilder::backoff) | delay growth between attempts | exponential ×2 |
/// | [`delay`](RetryPolicyBuilder::delay) | first delay | 1 s |
/// | [`max_delay`](RetryPolicyBuilder::max_delay) | cap on any single delay (>= `delay`) | 30 s |
/// | [`jitter`](RetryPolicyBuilder::jitter) | randomisation of each delay | full |
/// | [`deadline`](RetryPolicyBuilder::deadline) | total time for all attempts and waits, from the call's start (> 0) | none |
/// | [`budget`](RetryPolicyBuilder::budget) | retries may add at most this share (0 < F <= 1) of the calls of the last 10 s, plus 10 retries a second, shared by name | none |
///
/// Which errors are retried, and the delay a service asked for (HTTP `Retry-After`), are given per
/// call with [`RetryOn`] to [`Retry::run_with`].
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
    deadline: Option<Duration>,
    /// The budget's share in parts per billion.
    budget_ppb: Option<u32>,
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
        deadline: None,
        budget_ppb: None,
    };

    /// Starts from [`RetryPolicy::DEFAULT`].
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder {
            policy: Self::DEFAULT,
            budget_ratio: None,
        }
    }

    /// Settings already validated (by the attribute macro).
    pub(crate) const fn checked(max_attempts: u32, schedule: Schedule) -> Self {
        RetryPolicy {
            max_attempts,
            schedule,
            deadline: None,
            budget_ppb: None,
        }
    }

    /// With a deadline already validated (by the attribute macro: > 0).
    pub(crate) const fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// With a budget share already validated (by the attribute macro: 0 < ratio <= 1).
    pub(crate) const fn with_budget(mut self, ratio: f64) -> Self {
        self.budget_ppb = Some(ratio_to_ppb(ratio));
        self
    }

    /// Total attempts, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The total time for all attempts and waits of a call, if bounded.
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// The retry budget's share of calls, if any.
    pub fn budget(&self) -> Option<f64> {
        self.budget_ppb
            .map(|ppb| f64::from(ppb) / f64::from(ONE_PPB))
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
    budget_ratio: Option<f64>,
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

    /// Total time for all attempts and waits of a call, from its start (> 0; default none).
    ///
    /// No wait begins, and no attempt starts, that would end at or past the deadline: the last
    /// error is returned at once. A running attempt is not interrupted (put a
    /// [`Timeout`](crate::Timeout) below for that). Each such give-up is counted as
    /// `deadline_exceeded`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reliability::{Backoff, Jitter, Retry, RetryPolicy};
    /// use tokio::time::{Instant, sleep};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let policy = RetryPolicy::builder()
    ///     .max_attempts(10)
    ///     .backoff(Backoff::Fixed)
    ///     .delay(Duration::from_millis(100))
    ///     .jitter(Jitter::None)
    ///     .deadline(Duration::from_secs(1))
    ///     .build()
    ///     .unwrap();
    /// let retry = Retry::new("doc.deadline", policy);
    /// let start = Instant::now();
    /// let out: Result<(), &str> = retry
    ///     .run(|| async {
    ///         sleep(Duration::from_millis(400)).await;
    ///         Err("slow and failing")
    ///     })
    ///     .await;
    /// assert_eq!(out, Err("slow and failing"));
    /// // Attempts at 0 and 500 ms; a wait from 900 ms would end at the deadline: no third.
    /// assert_eq!(start.elapsed(), Duration::from_millis(900));
    /// # }
    /// ```
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.policy.deadline = Some(deadline);
        self
    }

    /// A retry budget (0 < `ratio` <= 1; default none): the retries of every [`Retry`] with this
    /// registry name may add at most `ratio` of the calls made over the last 10 s, plus 10 retries
    /// a second. When it is spent, a failed call returns its error at once, counted as
    /// `budget_exhausted`. It keeps retries from multiplying the load on a service that is down.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reliability::{Retry, RetryPolicy, registry};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let policy = RetryPolicy::builder().max_attempts(2).delay(Duration::ZERO).budget(0.1).build().unwrap();
    /// let retry = Retry::new("doc.budget", policy);
    /// for _ in 0..300 {
    ///     let _ = retry.run(|| async { Err::<(), _>("down") }).await;
    /// }
    /// // 100 retries of the floor, plus a tenth of the 300 calls.
    /// let stats = registry().snapshot();
    /// let stats = stats.retry("doc.budget").unwrap();
    /// assert_eq!(stats.retries, 130);
    /// assert_eq!(stats.budget_exhausted, 170);
    /// # }
    /// ```
    pub fn budget(mut self, ratio: f64) -> Self {
        // NaN and out-of-range values are kept as given and rejected by `build`.
        self.budget_ratio = Some(ratio);
        self
    }

    /// Validates the settings.
    pub fn build(self) -> Result<RetryPolicy, ConfigError> {
        let mut p = self.policy;
        if let Some(deadline) = p.deadline
            && deadline.is_zero()
        {
            return Err(ConfigError::new("deadline", "must be longer than zero"));
        }
        if let Some(ratio) = self.budget_ratio {
            if !(ratio > 0.0 && ratio <= 1.0) {
                return Err(ConfigError::new(
                    "budget",
                    format!("must be a share above 0 and at most 1, not {ratio}"),
                ));
            }
            p.budget_ppb = Some(ratio_to_ppb(ratio));
        }
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

/// Which errors a [`Retry`] retries, and how long the service asked it to wait; given to
/// [`Retry::run_with`].
///
/// | setting | meaning | default |
/// |---|---|---|
/// | [`errors`](Self::errors) / [`any_error`](Self::any_error) | `Fn(&E) -> bool`: retry only errors for which it is true | every error |
/// | [`retry_after`](Self::retry_after) | `Fn(&E) -> Option<Duration>`: a delay the service asked for (HTTP `Retry-After`) | none |
///
/// A delay the service asked for replaces the backoff's wait for that attempt, exactly, without
/// jitter; when it is above `max_delay`, the retry gives up at once and returns that error (the
/// service asked for longer than the caller allows). [`http::parse_retry_after`](crate::http::parse_retry_after)
/// reads the HTTP headers; [`Error::retry_after`](crate::Error::retry_after) reads the policies'
/// own errors.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use reliability::{Retry, RetryOn, RetryPolicy};
/// use tokio::time::Instant;
///
/// #[derive(Debug, PartialEq)]
/// struct ApiError { status: u16, retry_after: Option<Duration> }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let retry = Retry::new("doc.retry_on", RetryPolicy::default());
/// let calls = AtomicU32::new(0);
/// let start = Instant::now();
/// let out = retry
///     .run_with(
///         RetryOn::errors(|e: &ApiError| reliability::http::is_transient_status(e.status))
///             .retry_after(|e: &ApiError| e.retry_after),
///         || async {
///             match calls.fetch_add(1, Ordering::SeqCst) {
///                 0 => Err(ApiError { status: 429, retry_after: Some(Duration::from_secs(2)) }),
///                 _ => Ok("answer"),
///             }
///         },
///     )
///     .await;
/// assert_eq!(out, Ok("answer"));
/// assert_eq!(start.elapsed(), Duration::from_secs(2), "exactly the delay the service asked for");
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RetryOn<W, A> {
    when: W,
    retry_after: A,
}

/// The `when` of [`RetryOn::any_error`].
pub type AnyError<E> = fn(&E) -> bool;
/// The `retry_after` of a [`RetryOn`] that has none.
pub type NoRetryAfter<E> = fn(&E) -> Option<Duration>;

impl<E> RetryOn<AnyError<E>, NoRetryAfter<E>> {
    /// Every error is retried, with the backoff's waits.
    pub fn any_error() -> Self {
        RetryOn {
            when: |_| true,
            retry_after: |_| None,
        }
    }
}

impl<E, W: Fn(&E) -> bool> RetryOn<W, NoRetryAfter<E>> {
    /// Only errors for which `when` is true are retried; others are returned at once.
    pub fn errors(when: W) -> Self {
        RetryOn {
            when,
            retry_after: |_| None,
        }
    }
}

impl<W, A> RetryOn<W, A> {
    /// The delay the service asked for after an error, if it did: it replaces the backoff's wait.
    pub fn retry_after<E, A2: Fn(&E) -> Option<Duration>>(self, retry_after: A2) -> RetryOn<W, A2> {
        RetryOn {
            when: self.when,
            retry_after,
        }
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
    /// Shared by every retry of this name whose policy has a budget.
    budget: Option<Arc<RetryBudget>>,
}

impl Retry {
    /// A retry policy registered as `name`. With a budget, it shares the budget registered under
    /// `name` (the first policy to register it sets its share).
    pub fn new(name: &str, policy: RetryPolicy) -> Self {
        Retry {
            policy,
            name: name.into(),
            stats: registry().stats(PolicyKind::Retry, name),
            budget: policy.budget_ppb.map(|ppb| RetryBudget::shared(name, ppb)),
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

    /// The budget this retry draws on, if its policy has one.
    pub fn budget(&self) -> Option<&RetryBudget> {
        self.budget.as_deref()
    }

    /// Runs `attempt` until it succeeds or attempts run out; returns the last error unchanged.
    pub async fn run<T, E, F, Fut>(&self, attempt: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_with(RetryOn::any_error(), attempt).await
    }

    /// Like [`run`](Self::run), retrying only errors for which `retryable` is true.
    pub async fn run_when<T, E, F, Fut, P>(&self, retryable: P, attempt: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        P: Fn(&E) -> bool,
    {
        self.run_with(RetryOn::errors(retryable), attempt).await
    }

    /// Like [`run`](Self::run), retrying the errors `on` accepts and waiting the delays the service
    /// asks for; see [`RetryOn`].
    pub async fn run_with<T, E, F, Fut, W, A>(
        &self,
        on: RetryOn<W, A>,
        mut attempt: F,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        W: Fn(&E) -> bool,
        A: Fn(&E) -> Option<Duration>,
    {
        let mut attempts = self.attempts();
        loop {
            let out = attempt().await;
            match attempts.next(out, &on.when, &on.retry_after, Below::NOTHING, show_nothing) {
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

    /// The state of one call's attempt loop: counts the call, deposits it in the budget and starts
    /// the deadline's clock.
    #[inline]
    pub(crate) fn attempts(&self) -> Attempts<'_> {
        if let Some(budget) = &self.budget {
            budget.deposit();
        }
        Attempts {
            retry: self,
            attempt: 1,
            previous: Duration::ZERO,
            deadline: self
                .policy
                .deadline
                .map(|d| crate::time::instant_after(Instant::now(), d)),
            call: Call::new(&self.stats),
        }
    }
}

/// What the layers below a retry reported about the attempt that just failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Below {
    /// A circuit breaker below rejected the attempt without running it: not retried.
    pub(crate) rejected: bool,
    /// A layer below (a rate limiter) rejected the attempt and said when to try again: that wait
    /// replaces the backoff's, exactly as a `retry_after` of the error would.
    pub(crate) retry_after: Option<Duration>,
}

impl Below {
    /// Nothing reported.
    pub(crate) const NOTHING: Below = Below {
        rejected: false,
        retry_after: None,
    };
}

/// The attempt loop of one call: after each attempt, [`next`](Self::next) decides whether to wait and
/// go again.
#[derive(Debug)]
pub(crate) struct Attempts<'a> {
    retry: &'a Retry,
    attempt: u32,
    previous: Duration,
    /// When the call's deadline passes, if it has one.
    deadline: Option<Instant>,
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
    ///
    /// An error is retried when `retryable` accepts it, attempts remain, no breaker below rejected
    /// it, the wait fits the deadline and the budget has a retry left. The wait is the first of:
    /// `retry_after(&error)`, `below.retry_after`, the backoff's.
    #[inline]
    pub(crate) fn next<T, E, P, A>(
        &mut self,
        out: Result<T, E>,
        retryable: &P,
        retry_after: &A,
        below: Below,
        show: ShowFn<E>,
    ) -> Next<T, E>
    where
        P: Fn(&E) -> bool,
        A: Fn(&E) -> Option<Duration>,
    {
        match out {
            Ok(value) => Next::Done(Ok(self.next_ok(value))),
            Err(error) => self.failed(error, retryable, retry_after, below, show),
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
    fn failed<T, E, P, A>(
        &mut self,
        error: E,
        retryable: &P,
        retry_after: &A,
        below: Below,
        show: ShowFn<E>,
    ) -> Next<T, E>
    where
        P: Fn(&E) -> bool,
        A: Fn(&E) -> Option<Duration>,
    {
        let retry = self.retry;
        let attempt = self.attempt;
        if below.rejected {
            retry.stats.add(Field::Rejections);
            self.call.end(Field::Failures);
            tracing::debug!(target: "reliability", function = %retry.name, attempt, error = %Shown(&error, show), "not retrying: the circuit breaker is open");
            return Next::Done(Err(error));
        }
        if !retryable(&error) {
            self.call.end(Field::Failures);
            tracing::debug!(target: "reliability", function = %retry.name, attempt, error = %Shown(&error, show), "not retrying: `when` rejected the error");
            return Next::Done(Err(error));
        }
        if attempt >= retry.policy.max_attempts {
            self.call.end(Field::Failures);
            tracing::warn!(target: "reliability", function = %retry.name, attempt, error = %Shown(&error, show), "retries exhausted");
            return Next::Done(Err(error));
        }
        let asked = retry_after(&error).or(below.retry_after);
        let wait = match asked {
            Some(asked) if asked > retry.policy.schedule.max_delay => {
                self.call.end(Field::Failures);
                tracing::warn!(
                    target: "reliability",
                    function = %retry.name,
                    attempt,
                    error = %Shown(&error, show),
                    retry_after = ?asked,
                    max_delay = ?retry.policy.schedule.max_delay,
                    "not retrying: the service asked for a wait above max_delay"
                );
                return Next::Done(Err(error));
            }
            Some(asked) => asked,
            None => retry.policy.schedule.delay(attempt, self.previous),
        };
        if let Some(deadline) = self.deadline
            && Instant::now()
                .checked_add(wait)
                .is_none_or(|end| end >= deadline)
        {
            retry.stats.add(Field::DeadlineExceeded);
            self.call.end(Field::Failures);
            tracing::warn!(
                target: "reliability",
                function = %retry.name,
                attempt,
                error = %Shown(&error, show),
                delay = ?wait,
                "giving up: the next attempt would start past the deadline"
            );
            return Next::Done(Err(error));
        }
        if let Some(budget) = &retry.budget
            && !budget.withdraw()
        {
            retry.stats.add(Field::BudgetExhausted);
            self.call.end(Field::Failures);
            tracing::warn!(
                target: "reliability",
                function = %retry.name,
                attempt,
                error = %Shown(&error, show),
                "giving up: the retry budget is spent"
            );
            return Next::Done(Err(error));
        }
        self.previous = wait;
        self.attempt += 1;
        tracing::warn!(
            target: "reliability",
            function = %retry.name,
            attempt,
            error = %Shown(&error, show),
            next_attempt = attempt + 1,
            delay = ?wait,
            server_directed = asked.is_some(),
            "attempt failed; retrying"
        );
        drop(error);
        Next::Again(wait)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Below, Next, Retry, RetryPolicy};
    use crate::show::show_nothing;

    fn no_delay_asked(_: &u32) -> Option<Duration> {
        None
    }

    /// A layer below (a rate limiter) reports the delay through `Below`; the error itself says
    /// nothing a generic retry could read.
    #[tokio::test(start_paused = true)]
    async fn a_delay_reported_below_replaces_the_backoff() {
        let retry = Retry::new("retry.unit.below", RetryPolicy::default());
        let mut attempts = retry.attempts();
        let below = Below {
            rejected: false,
            retry_after: Some(Duration::from_millis(1234)),
        };
        match attempts.next(
            Err::<(), u32>(429),
            &|_: &u32| true,
            &no_delay_asked,
            below,
            show_nothing,
        ) {
            Next::Again(wait) => assert_eq!(wait, Duration::from_millis(1234)),
            Next::Done(_) => panic!("should retry"),
        }
        // The error's own delay comes first.
        match attempts.next(
            Err::<(), u32>(429),
            &|_: &u32| true,
            &|_: &u32| Some(Duration::from_secs(2)),
            below,
            show_nothing,
        ) {
            Next::Again(wait) => assert_eq!(wait, Duration::from_secs(2)),
            Next::Done(_) => panic!("should retry"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_delay_reported_below_above_max_delay_ends_the_loop() {
        let retry = Retry::new("retry.unit.too_long", RetryPolicy::default());
        let mut attempts = retry.attempts();
        let below = Below {
            rejected: false,
            retry_after: Some(Duration::from_secs(31)),
        };
        match attempts.next(
            Err::<(), u32>(429),
            &|_: &u32| true,
            &no_delay_asked,
            below,
            show_nothing,
        ) {
            Next::Done(out) => assert_eq!(out, Err(429)),
            Next::Again(_) => panic!("31 s is above the 30 s max_delay"),
        }
    }
}
