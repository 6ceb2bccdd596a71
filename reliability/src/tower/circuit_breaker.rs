//! [`CircuitBreakerLayer`]: a [`CircuitBreaker`] around a tower service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{BoxError, Layer, Service};

use super::{ResponseFuture, policy_error, take_ready};
use crate::circuit_breaker::CircuitBreaker;

type Counts = dyn Fn(&BoxError) -> bool + Send + Sync;

/// Runs each call of the inner service through a [`CircuitBreaker`]: while it is open, a call
/// fails at once with a boxed [`Error::CircuitOpen`](crate::Error::CircuitOpen) and the inner
/// service is not called.
///
/// Every `Err` counts as a failure, unless [`when`](Self::when) says otherwise, but a
/// [load-shedding](crate::Error::is_load_shedding) rejection of a rate limit or bulkhead below
/// never does (the service did not fail: it was not called). An error that does not count is a
/// success for the breaker, as under `#[circuit_breaker]`. `poll_ready` is the inner service's:
/// an open breaker rejects in `call`, so a ready inner service (and what it reserved, such as a
/// bulkhead slot) is dropped with the rejected call's future.
///
/// ```
/// use reliability::tower::CircuitBreakerLayer;
/// use reliability::{CircuitBreaker, CircuitState};
/// use tower::{BoxError, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let breaker = CircuitBreaker::builder("doc.tower.breaker").failure_threshold(2).build().unwrap();
/// let service = ServiceBuilder::new()
///     .layer(CircuitBreakerLayer::new(breaker.clone()))
///     .service(service_fn(|_: ()| async { Err::<(), _>(BoxError::from("503")) }));
/// for _ in 0..2 {
///     assert_eq!(service.clone().oneshot(()).await.unwrap_err().to_string(), "503");
/// }
/// assert_eq!(breaker.state(), CircuitState::Open);
/// let rejected = service.oneshot(()).await.unwrap_err();
/// assert!(rejected.downcast_ref::<reliability::Error>().is_some_and(|e| e.is_circuit_open()));
/// # }
/// ```
#[derive(Clone)]
pub struct CircuitBreakerLayer {
    breaker: CircuitBreaker,
    counts: Arc<Counts>,
}

impl fmt::Debug for CircuitBreakerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl CircuitBreakerLayer {
    /// Counts every `Err` but load shedding as a failure of `breaker`.
    pub fn new(breaker: CircuitBreaker) -> Self {
        CircuitBreakerLayer {
            breaker,
            counts: Arc::new(|_| true),
        }
    }

    /// Counts as failures only the errors for which `counts` is true (and which are not load
    /// shedding); the others are successes for the breaker.
    pub fn when(mut self, counts: impl Fn(&BoxError) -> bool + Send + Sync + 'static) -> Self {
        self.counts = Arc::new(counts);
        self
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreakerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            breaker: self.breaker.clone(),
            counts: self.counts.clone(),
        }
    }
}

/// The service of a [`CircuitBreakerLayer`].
#[derive(Clone)]
pub struct CircuitBreakerService<S> {
    inner: S,
    breaker: CircuitBreaker,
    counts: Arc<Counts>,
}

impl<S: fmt::Debug> fmt::Debug for CircuitBreakerService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerService")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl<S, Req> Service<Req> for CircuitBreakerService<S>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    S::Response: Send + 'static,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let mut service = take_ready(&mut self.inner);
        let breaker = self.breaker.clone();
        let counts = self.counts.clone();
        Box::pin(async move {
            let counts = |error: &BoxError| {
                !policy_error(error).is_some_and(crate::Error::is_load_shedding) && counts(error)
            };
            // The inner service is called only once the breaker has admitted the call.
            breaker
                .call_when(counts, async move {
                    service.call(request).await.map_err(Into::into)
                })
                .await
        })
    }
}
