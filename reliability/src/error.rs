//! The errors the policies produce.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// An error produced by a policy rather than by the protected call.
///
/// A function whose stack contains `#[timeout]` or `#[circuit_breaker]` converts this into its own
/// error type through `From<reliability::Error>`:
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
