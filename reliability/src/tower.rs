//! [tower](https://docs.rs/tower) layers of the policies (feature `tower`): the same [`Retry`],
//! [`Timeout`], [`CircuitBreaker`], [`RateLimiter`], [`Bulkhead`] and [`Hedge`] as the attributes
//! and the programmatic API, so a layer and an attribute (or a programmatic policy) of one name
//! share their counters, their breaker, limiter, bulkhead or hedge latencies, and their `tracing`
//! events.
//!
//! | layer | built from | the inner service must be | `Req` must be |
//! |---|---|---|---|
//! | [`RetryLayer`] | [`Retry`] | `Clone` (each attempt waits until it is ready again) | `Clone` (one clone per attempt) |
//! | [`TimeoutLayer`] | [`Timeout`] | — | — |
//! | [`CircuitBreakerLayer`] | [`CircuitBreaker`] | `Clone` | — |
//! | [`RateLimitLayer`] | [`RateLimiter`] | `Clone` | — |
//! | [`BulkheadLayer`] | [`Bulkhead`] | — | — |
//! | [`HedgeLayer`] | [`Hedge`] | `Clone` (each extra attempt calls a clone, made ready first) | `Clone` (one clone per attempt) |
//!
//! # Errors
//!
//! Every service of this module returns [`BoxError`](::tower::BoxError) (`Box<dyn Error + Send +
//! Sync>`), as tower's own middleware does, and accepts any inner service whose error is
//! `Into<BoxError>`: `reqwest::Error`, `hyper::Error`, `std::io::Error`, your own error type, or a
//! `BoxError` from another tower layer. A rejection or an expired deadline is a boxed
//! [`reliability::Error`](crate::Error); find it with `error.downcast_ref::<reliability::Error>()`.
//! On the server side, axum's `HandleErrorLayer` turns a `BoxError` into a response.
//!
//! The layers read each other's errors that way: a circuit breaker never counts a
//! [load-shedding](crate::Error::is_load_shedding) rejection of a rate limit or bulkhead below it;
//! a retry does not retry [`Error::CircuitOpen`](crate::Error::CircuitOpen) of a breaker below it,
//! and waits exactly the `retry_after` of an [`Error::RateLimited`](crate::Error::RateLimited); a
//! hedge starts no other attempt after such a rejection.
//!
//! # Readiness
//!
//! - [`BulkheadService`] takes its slot in `poll_ready` (waiting in the bulkhead's queue if it
//!   must): a ready service holds a slot, and frees it when it is dropped (or a call's response
//!   future is) without calling. A rejection is not an error of `poll_ready` (tower reads that as
//!   a broken service): `poll_ready` is ready, and `call` returns the rejection without calling
//!   the inner service.
//! - [`RateLimitService`] takes its permit when the call's future first runs, not in `poll_ready`:
//!   a GCRA permit cannot be given back, so one taken by a service dropped before `call` would be
//!   lost. It is ready when the inner service is.
//! - The other services are ready when the inner service is. A clone of any of them is a fresh
//!   service, not ready until polled.
//!
//! - [`HedgeService`] is ready when the inner service is; its first attempt is called on that
//!   ready service, each extra attempt on a clone that the response future polls ready first.
//!
//! No service spawns a task: a hedge's attempts run inside its response future. Each `call` boxes its future (one allocation): the futures borrow
//! their policy, which tower's associated `Future` type cannot name.
//!
//! # A client stack
//!
//! The order the project recommends (see the crate's README): retry, circuit breaker, rate limit,
//! bulkhead, timeout, the outermost first, as `ServiceBuilder` lists them.
//!
//! ```
//! use std::time::Duration;
//! use reliability::tower::{
//!     BulkheadLayer, CircuitBreakerLayer, RateLimitLayer, RetryLayer, TimeoutLayer,
//! };
//! use reliability::{Bulkhead, CircuitBreaker, Jitter, RateLimiter, Retry, RetryPolicy, Timeout};
//! use tower::{BoxError, Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), BoxError> {
//! let retry = Retry::new("doc.client", RetryPolicy::builder().jitter(Jitter::None).build()?);
//! let mut client = ServiceBuilder::new()
//!     .layer(RetryLayer::new(retry))
//!     .layer(CircuitBreakerLayer::new(CircuitBreaker::builder("doc.client").build()?))
//!     .layer(RateLimitLayer::new(RateLimiter::builder("doc.client", 100).build()?))
//!     .layer(BulkheadLayer::new(Bulkhead::builder("doc.client", 10).build()?))
//!     .layer(TimeoutLayer::new(Timeout::new("doc.client", Duration::from_secs(5))?))
//!     .service(service_fn(|name: String| async move {
//!         Ok::<_, std::io::Error>(format!("hello, {name}"))
//!     }));
//! let answer = client.ready().await?.call("tower".to_owned()).await?;
//! assert_eq!(answer, "hello, tower");
//! let stats = reliability::registry().snapshot();
//! assert_eq!(stats.circuit_breaker("doc.client").unwrap().successes, 1);
//! # Ok(()) }
//! ```
//!
//! [`Retry`]: crate::Retry
//! [`Timeout`]: crate::Timeout
//! [`CircuitBreaker`]: crate::CircuitBreaker
//! [`RateLimiter`]: crate::RateLimiter
//! [`Bulkhead`]: crate::Bulkhead
//! [`Hedge`]: crate::Hedge

use std::future::Future;
use std::pin::Pin;

mod bulkhead;
mod circuit_breaker;
mod hedge;
mod rate_limit;
mod retry;
mod timeout;

pub use bulkhead::{BulkheadLayer, BulkheadService};
pub use circuit_breaker::{CircuitBreakerLayer, CircuitBreakerService};
pub use hedge::{HedgeLayer, HedgeService};
pub use rate_limit::{RateLimitLayer, RateLimitService};
pub use retry::{RetryLayer, RetryService};
pub use timeout::{TimeoutLayer, TimeoutService};

/// The response future of every service of this module.
pub type ResponseFuture<T> =
    Pin<Box<dyn Future<Output = Result<T, ::tower::BoxError>> + Send + 'static>>;

/// Takes the ready inner service out of `slot` for one call, leaving a clone (not ready) in its
/// place: the call's future then owns the service that was made ready, with whatever it reserved.
fn take_ready<S: Clone>(slot: &mut S) -> S {
    let fresh = slot.clone();
    std::mem::replace(slot, fresh)
}

/// The policy error inside a boxed error, if it is one.
fn policy_error(error: &::tower::BoxError) -> Option<&crate::Error> {
    error.downcast_ref::<crate::Error>()
}
