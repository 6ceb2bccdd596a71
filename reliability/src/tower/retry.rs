//! [`RetryLayer`]: a [`Retry`] around a tower service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tower::{BoxError, Layer, Service};

use super::{ResponseFuture, policy_error, take_ready};
use crate::retry::{Below, Next, Retry};

type When = dyn Fn(&BoxError) -> bool + Send + Sync;
type RetryAfter = dyn Fn(&BoxError) -> Option<Duration> + Send + Sync;

/// Retries failed calls of the inner service with a [`Retry`]'s policy, counters and budget.
///
/// Every `Err` is retried, unless [`when`](Self::when) says otherwise, with these exceptions: a
/// [`CircuitOpen`](crate::Error::CircuitOpen) rejection of a breaker below is returned at once
/// (counted as a rejection, as under `#[retry]`), and the `retry_after` of a
/// [`RateLimited`](crate::Error::RateLimited) rejection below replaces the backoff's wait. Each
/// attempt sends a clone of the request to the inner service once it is ready again; the response
/// of the last attempt, or its error, is returned.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use reliability::tower::RetryLayer;
/// use reliability::{Jitter, Retry, RetryPolicy};
/// use tower::{BoxError, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), BoxError> {
/// let policy = RetryPolicy::builder().delay(Duration::from_millis(100)).jitter(Jitter::None).build()?;
/// let sent = Arc::new(AtomicU32::new(0));
/// let retry = Retry::new("doc.tower.retry", policy); // kept: its counters live as long as it
/// let service = ServiceBuilder::new()
///     .layer(RetryLayer::new(retry.clone()).when(|e: &BoxError| e.to_string() == "busy"))
///     .service(service_fn({
///         let sent = sent.clone();
///         move |request: u32| {
///             let attempt = sent.fetch_add(1, Ordering::SeqCst);
///             async move { if attempt < 2 { Err(BoxError::from("busy")) } else { Ok(request * 2) } }
///         }
///     }));
/// assert_eq!(service.oneshot(21).await?, 42);
/// assert_eq!(sent.load(Ordering::SeqCst), 3);
/// assert_eq!(reliability::registry().snapshot().retry("doc.tower.retry").unwrap().retries, 2);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RetryLayer {
    retry: Retry,
    when: Arc<When>,
    retry_after: Arc<RetryAfter>,
}

/// What every call of one [`RetryService`] uses.
struct Shared {
    retry: Retry,
    when: Arc<When>,
    retry_after: Arc<RetryAfter>,
}

impl fmt::Debug for RetryLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl RetryLayer {
    /// Retries every error with `retry`'s policy.
    pub fn new(retry: Retry) -> Self {
        RetryLayer {
            retry,
            when: Arc::new(|_| true),
            retry_after: Arc::new(|_| None),
        }
    }

    /// Retries only the errors for which `when` is true; others are returned at once.
    pub fn when(mut self, when: impl Fn(&BoxError) -> bool + Send + Sync + 'static) -> Self {
        self.when = Arc::new(when);
        self
    }

    /// The delay the service asked for after an error, if it did (e.g. an HTTP `Retry-After` your
    /// client service put in its error): it replaces the backoff's wait, as under `#[retry]`.
    pub fn retry_after(
        mut self,
        retry_after: impl Fn(&BoxError) -> Option<Duration> + Send + Sync + 'static,
    ) -> Self {
        self.retry_after = Arc::new(retry_after);
        self
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = RetryService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService {
            inner,
            shared: Arc::new(Shared {
                retry: self.retry.clone(),
                when: self.when.clone(),
                retry_after: self.retry_after.clone(),
            }),
        }
    }
}

/// The service of a [`RetryLayer`].
#[derive(Clone)]
pub struct RetryService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for RetryService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryService")
            .field("inner", &self.inner)
            .field("retry", &self.shared.retry)
            .finish_non_exhaustive()
    }
}

impl<S, Req> Service<Req> for RetryService<S>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    S::Response: Send + 'static,
    Req: Clone + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let mut service = take_ready(&mut self.inner);
        let shared = self.shared.clone();
        Box::pin(async move {
            let Shared {
                retry,
                when,
                retry_after,
            } = &*shared;
            let when = |error: &BoxError| when(error);
            let retry_after = |error: &BoxError| retry_after(error);
            let mut attempts = retry.attempts();
            let mut ready = true;
            loop {
                let out = if ready {
                    service.call(request.clone()).await.map_err(Into::into)
                } else {
                    let ready: Result<(), BoxError> =
                        std::future::poll_fn(|cx| service.poll_ready(cx).map_err(Into::into)).await;
                    match ready {
                        Ok(()) => service.call(request.clone()).await.map_err(Into::into),
                        Err(error) => Err(error),
                    }
                };
                ready = false;
                let below = match &out {
                    Err(error) => below(error),
                    Ok(_) => Below::NOTHING,
                };
                match attempts.next(
                    out,
                    &when,
                    &retry_after,
                    below,
                    <BoxError as fmt::Display>::fmt,
                ) {
                    Next::Done(out) => return out,
                    Next::Again(wait) => {
                        if !wait.is_zero() {
                            tokio::time::sleep(wait).await;
                        }
                        attempts.retrying();
                    }
                }
            }
        })
    }
}

/// What a policy below reported in `error`: a breaker's rejection, or a rate limit's wait.
fn below(error: &BoxError) -> Below {
    match policy_error(error) {
        Some(crate::Error::CircuitOpen { .. }) => Below {
            rejected: true,
            retry_after: None,
        },
        Some(crate::Error::RateLimited { retry_after, .. }) => Below {
            rejected: false,
            retry_after: Some(*retry_after),
        },
        _ => Below::NOTHING,
    }
}
