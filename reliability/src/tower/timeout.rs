//! [`TimeoutLayer`]: a [`Timeout`] around a tower service.

use std::task::{Context, Poll};

use tower::{BoxError, Layer, Service};

use super::ResponseFuture;
use crate::timeout::Timeout;

/// Bounds each call of the inner service with a [`Timeout`]: when the deadline passes, the inner
/// future is dropped and the call fails with a boxed [`Error::Timeout`](crate::Error::Timeout).
/// The deadline counts from the response future's first poll, as under `#[timeout]`; `poll_ready`
/// is not bounded.
///
/// ```
/// use std::time::Duration;
/// use reliability::tower::TimeoutLayer;
/// use reliability::Timeout;
/// use tower::{BoxError, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), BoxError> {
/// let service = ServiceBuilder::new()
///     .layer(TimeoutLayer::new(Timeout::new("doc.tower.timeout", Duration::from_secs(1))?))
///     .service(service_fn(|wait: u64| async move {
///         tokio::time::sleep(Duration::from_secs(wait)).await;
///         Ok::<_, BoxError>(wait)
///     }));
/// assert_eq!(service.clone().oneshot(0).await?, 0);
/// let error = service.oneshot(5).await.unwrap_err();
/// assert!(error.downcast_ref::<reliability::Error>().is_some_and(|e| e.is_timeout()));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    timeout: Timeout,
}

impl TimeoutLayer {
    /// Bounds each call with `timeout`.
    pub fn new(timeout: Timeout) -> Self {
        TimeoutLayer { timeout }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = TimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService {
            inner,
            timeout: self.timeout.clone(),
        }
    }
}

/// The service of a [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub struct TimeoutService<S> {
    inner: S,
    timeout: Timeout,
}

impl<S, Req> Service<Req> for TimeoutService<S>
where
    S: Service<Req>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let response = self.inner.call(request);
        let timeout = self.timeout.clone();
        Box::pin(async move {
            timeout
                .run(async move { response.await.map_err(Into::into) })
                .await
        })
    }
}
