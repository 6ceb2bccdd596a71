//! [`RateLimitLayer`]: a [`RateLimiter`] in front of a tower service.

use std::task::{Context, Poll};

use tower::{BoxError, Layer, Service};

use super::{ResponseFuture, take_ready};
use crate::rate_limit::RateLimiter;

/// Takes one permit of a [`RateLimiter`] for each call of the inner service, waiting for it up to
/// the limiter's `wait`; a call that gets none in time fails with a boxed
/// [`Error::RateLimited`](crate::Error::RateLimited), whose `retry_after` a [`RetryLayer`]
/// above waits, and the inner service is not called.
///
/// The permit is taken when the response future first runs, not in `poll_ready`: a permit cannot
/// be given back to the limiter, so one taken by a service dropped before `call` would be lost.
/// The service is ready when the inner service is.
///
/// ```
/// use reliability::tower::RateLimitLayer;
/// use reliability::RateLimiter;
/// use tower::{BoxError, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), BoxError> {
/// let limiter = RateLimiter::builder("doc.tower.rate_limit", 2).build()?; // 2 a second
/// let service = ServiceBuilder::new()
///     .layer(RateLimitLayer::new(limiter))
///     .service(service_fn(|n: u32| async move { Ok::<_, BoxError>(n) }));
/// assert_eq!(service.clone().oneshot(1).await?, 1);
/// assert_eq!(service.clone().oneshot(2).await?, 2);
/// let limited = service.oneshot(3).await.unwrap_err();
/// assert!(limited.downcast_ref::<reliability::Error>().is_some_and(|e| e.is_rate_limited()));
/// # Ok(()) }
/// ```
///
/// [`RetryLayer`]: super::RetryLayer
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    limiter: RateLimiter,
}

impl RateLimitLayer {
    /// One permit of `limiter` per call.
    pub fn new(limiter: RateLimiter) -> Self {
        RateLimitLayer { limiter }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            limiter: self.limiter.clone(),
        }
    }
}

/// The service of a [`RateLimitLayer`].
#[derive(Debug, Clone)]
pub struct RateLimitService<S> {
    inner: S,
    limiter: RateLimiter,
}

impl<S, Req> Service<Req> for RateLimitService<S>
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
        let limiter = self.limiter.clone();
        Box::pin(async move {
            limiter.acquire(1).await?;
            service.call(request).await.map_err(Into::into)
        })
    }
}
