//! Retry, timeout, circuit breaker, cache and fallback for async Rust — as attributes on an
//! `async fn`, or as plain types that wrap any future.
//!
//! ```
//! use reliability::{cached, circuit_breaker, fallback, retry, timeout};
//!
//! #[derive(Debug, thiserror::Error)]
//! enum LlmError {
//!     #[error("service answered {0}")]
//!     Status(u16),
//!     #[error(transparent)]
//!     Reliability(#[from] reliability::Error),
//! }
//!
//! #[cached(ttl = 3600, key = query.trim().to_lowercase())] // 1. a hit answers at once
//! #[fallback(gpt35, canned)]                                // 2. degrade when all below fail
//! #[retry(max = 3, backoff = "exponential")]                // 3. transient failures
//! #[circuit_breaker(name = "gpt4")]                         // 4. fail fast while the service is down
//! #[timeout(secs = 30)]                                     // 5. per-attempt bound, counted by the breaker
//! async fn gpt4(query: String) -> Result<String, LlmError> {
//!     Err(LlmError::Status(503))
//! }
//!
//! async fn gpt35(query: String) -> Result<String, LlmError> {
//!     Err(LlmError::Status(429))
//! }
//!
//! async fn canned(query: String) -> String {
//!     format!("Sorry, I can't answer \"{query}\" right now.")
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let answer = gpt4("What is Rust?".into()).await.unwrap();
//! assert_eq!(answer, "Sorry, I can't answer \"What is Rust?\" right now.");
//! # }
//! ```
//!
//! The attribute written first is the outermost layer. Each attribute's page lists its options:
//! [`retry`], [`timeout`], [`circuit_breaker`], [`cached`], [`fallback`]. The same policies without
//! macros: [`Retry`], [`Timeout`], [`CircuitBreaker`], [`Cache`], [`Fallback`]; for load and
//! quotas, [`RateLimiter`] and [`Bulkhead`]; to cut the tail of a slow service's latency, [`Hedge`].
//! [`http`] classifies HTTP failures for a retry.
//!
//! Every policy counts its calls in the [`registry()`], and every retry, timeout, breaker transition,
//! rejection, fallback and cache hit or miss is a [`tracing`] event with target `reliability`.
//!
//! Feature `metrics`: `reliability::metrics::export()` exports every counter, the breakers'
//! states and the call durations through the `metrics` facade. Feature `tower`:
//! `reliability::tower` has a `Layer` for each policy, sharing names, counters and events with the
//! attributes.
//!
//! All waits, deadlines and cooldowns use `tokio::time`, so `#[tokio::test(start_paused = true)]`
//! makes tests of them instant and exact.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod backoff;
mod bulkhead;
mod cache;
mod call;
mod circuit_breaker;
mod circuit_state;
mod error;
mod fallback;
mod hedge;
pub mod http;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
mod per_thread;
mod predicate;
mod rate_limit;
mod registry;
mod retry;
#[cfg(feature = "redis")]
pub mod shared;
mod show;
mod site;
mod slot;
mod snapshot;
mod stats;
mod sync;
#[cfg(feature = "testing")]
pub mod testing;
mod time;
mod timeout;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;
mod values;

#[doc(hidden)]
pub mod __private;

pub use backoff::{Backoff, Jitter, Schedule};
pub use bulkhead::{Bulkhead, BulkheadBuilder, BulkheadConfig, BulkheadPermit};
pub use cache::{Cache, CacheBuilder, CacheConfig, CacheHandle};
pub use circuit_breaker::{
    BreakerConfig, CircuitBreaker, CircuitBreakerBuilder, CircuitState, SlidingWindow, TripRule,
};
pub use error::{ConfigError, Error};
pub use fallback::Fallback;
pub use hedge::{Hedge, HedgeAfter, HedgeBuilder, HedgeConfig};
pub use rate_limit::{RateLimitConfig, RateLimiter, RateLimiterBuilder};
pub use registry::{Registry, registry};
pub use retry::{
    AnyError, NoRetryAfter, Retry, RetryBudget, RetryOn, RetryPolicy, RetryPolicyBuilder,
};
pub use snapshot::{PolicyStats, Snapshot};
pub use stats::PolicyKind;
pub use timeout::Timeout;

pub use reliability_macros::{
    bulkhead, cached, circuit_breaker, fallback, hedge, rate_limit, retry, timeout,
};

/// Runs the README's examples as doctests, so they keep compiling and passing.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
