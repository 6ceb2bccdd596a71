//! The errors the policies produce.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// An error produced by a policy rather than by the protected call.
///
/// A function whose stack contains `#[timeout]`, `#[circuit_breaker]`, `#[rate_limit]` or
/// `#[bulkhead]` converts this into its own error type through `From<reliability::Error>`:
///
/// ```
/// #[derive(Debug, thiserror::Error)]
/// enum LlmError {
///     #[error("the service answered {0}")]
///     Status(u16),
///     #[error(transparent)]
///     Reliability(#[from] reliability::Error),
/// }
/// # let _ = LlmError::Status(500);
/// ```
///
/// `anyhow::Error` works as is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The layer below did not finish within its deadline; it was dropped.
    Timeout {
        /// The deadline that expired.
        after: Duration,
    },
    /// The circuit breaker rejected the call without running it.
    CircuitOpen {
        /// The breaker's registry name.
        name: Arc<str>,
        /// How long until the breaker lets trial calls through (zero when it is half-open and all
        /// trial slots are taken).
        retry_after: Duration,
    },
    /// The rate limiter had no permit for the call in time; the call did not run.
    ///
    /// Load shedding, not a failure of the service: a `#[retry]` above waits exactly
    /// `retry_after` before the next attempt.
    RateLimited {
        /// The limiter's registry name.
        name: Arc<str>,
        /// How long until the permits this call asked for will be free (zero when they are free
        /// now but another caller may take them first). For a call that asks for more permits
        /// than the burst, they never will be: `Duration::MAX`.
        retry_after: Duration,
    },
    /// The bulkhead had no free slot, and no room in its queue or no slot within the queue's wait;
    /// the call did not run.
    BulkheadFull {
        /// The bulkhead's registry name.
        name: Arc<str>,
        /// Calls it lets run at once.
        max: u32,
        /// Calls it lets wait for a slot.
        queue: u32,
    },
}

impl Error {
    /// `true` for [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// `true` for [`Error::CircuitOpen`].
    pub fn is_circuit_open(&self) -> bool {
        matches!(self, Error::CircuitOpen { .. })
    }

    /// `true` for [`Error::RateLimited`].
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, Error::RateLimited { .. })
    }

    /// `true` for [`Error::BulkheadFull`].
    pub fn is_bulkhead_full(&self) -> bool {
        matches!(self, Error::BulkheadFull { .. })
    }

    /// `true` for the rejections of the load layers, [`Error::RateLimited`] and
    /// [`Error::BulkheadFull`]: load shedding, not a failure of the service, so a circuit breaker
    /// above them should not count them.
    ///
    /// ```
    /// use reliability::{CircuitBreaker, Error, RateLimiter};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let breaker = CircuitBreaker::builder("doc.shed").failure_threshold(1).build().unwrap();
    /// let limiter = RateLimiter::builder("doc.shed", 1).build().unwrap();
    /// for _ in 0..3 {
    ///     let _ = breaker
    ///         .call_when(|e: &Error| !e.is_load_shedding(), limiter.run(async { Ok::<_, Error>(()) }))
    ///         .await;
    /// }
    /// assert_eq!(breaker.state(), reliability::CircuitState::Closed, "two rejections, not counted");
    /// # }
    /// ```
    pub fn is_load_shedding(&self) -> bool {
        matches!(self, Error::RateLimited { .. } | Error::BulkheadFull { .. })
    }

    /// How long the policy asks the caller to wait before trying again: `Some` for
    /// [`Error::RateLimited`] and [`Error::CircuitOpen`], `None` otherwise.
    ///
    /// It fits the `retry_after` setting of a retry whose error type is this one:
    ///
    /// ```
    /// use std::time::Duration;
    /// use reliability::Error;
    ///
    /// let limited = Error::RateLimited { name: "api".into(), retry_after: Duration::from_millis(250) };
    /// assert_eq!(limited.retry_after(), Some(Duration::from_millis(250)));
    /// assert_eq!(Error::Timeout { after: Duration::from_secs(1) }.retry_after(), None);
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } | Error::CircuitOpen { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout { after } => write!(f, "timed out after {after:?}"),
            Error::CircuitOpen { name, retry_after } => {
                write!(
                    f,
                    "circuit breaker `{name}` is open; trial calls in {retry_after:?}"
                )
            }
            Error::RateLimited { name, retry_after } if *retry_after == Duration::MAX => {
                write!(
                    f,
                    "rate limit `{name}`: the call asks for more permits than the burst allows"
                )
            }
            Error::RateLimited { name, retry_after } => {
                write!(
                    f,
                    "rate limit `{name}` reached; a permit is free in {retry_after:?}"
                )
            }
            Error::BulkheadFull { name, max, queue } => {
                write!(
                    f,
                    "bulkhead `{name}` is full: {max} calls running and {queue} waiting"
                )
            }
        }
    }
}

impl std::error::Error for Error {}

/// A setting rejected by a builder of the programmatic API.
///
/// ```
/// let err = reliability::RetryPolicy::builder().max_attempts(0).build().unwrap_err();
/// assert_eq!(err.setting(), "max_attempts");
/// assert_eq!(err.to_string(), "invalid `max_attempts`: must be at least 1 (the first attempt counts)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    setting: &'static str,
    reason: String,
}

impl ConfigError {
    pub(crate) fn new(setting: &'static str, reason: impl Into<String>) -> Self {
        Self {
            setting,
            reason: reason.into(),
        }
    }

    /// The name of the rejected setting, as the builder method names it.
    pub fn setting(&self) -> &'static str {
        self.setting
    }

    /// Why the value was rejected.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}`: {}", self.setting, self.reason)
    }
}

impl std::error::Error for ConfigError {}
