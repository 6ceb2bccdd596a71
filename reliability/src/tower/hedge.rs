//! [`HedgeLayer`]: a [`Hedge`] around a tower service.

use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tower::{BoxError, Layer, Service};

use super::{ResponseFuture, policy_error, take_ready};
use crate::__private::StackCtx;
use crate::hedge::Hedge;

type When = dyn Fn(&BoxError) -> bool + Send + Sync;

/// Hedges calls of the inner service with a [`Hedge`]'s settings, counters and latencies: when
/// the request has not been answered after the hedge's delay, a clone of it is sent again beside
/// the first, and the first `Ok` wins.
///
/// The first attempt goes to the service `poll_ready` made ready; each other attempt goes to a
/// clone of it, which the response future makes ready before it calls it (a clone of a tower
/// service starts not ready). Every attempt is polled inside the response future, by the task that
/// polls it: nothing is spawned, and when one attempt answers the others are dropped at once (for
/// an HTTP client, their requests are cancelled). Attempts start as under `#[hedge]`: after the
/// delay, or at once when an attempt fails with an error [`when`](Self::when) accepts (every
/// error, by default); an error it rejects is returned at once. A
/// [`CircuitOpen`](crate::Error::CircuitOpen) rejection of a breaker below starts no other
/// attempt, and is returned (counted as a rejection) once no attempt is running.
///
/// A layer and a `#[hedge]` of the same name count into the same row of the
/// [`registry`](crate::registry()); its `hedges` and `hedges_won` say how often a hedge started and
/// how often it answered first. Hedge only requests that are safe to send twice.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use reliability::tower::HedgeLayer;
/// use reliability::Hedge;
/// use tower::{BoxError, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), BoxError> {
/// // Kept: its counters live as long as it.
/// let hedge = Hedge::builder("doc.tower.hedge", Duration::from_millis(100)).build()?;
/// let sent = Arc::new(AtomicU32::new(0));
/// let service = ServiceBuilder::new()
///     .layer(HedgeLayer::new(hedge.clone()))
///     .service(service_fn({
///         let sent = sent.clone();
///         move |request: u32| {
///             // The first replica is stuck; the second answers in 20 ms.
///             let stuck = sent.fetch_add(1, Ordering::SeqCst) == 0;
///             async move {
///                 let took = if stuck { Duration::from_secs(10) } else { Duration::from_millis(20) };
///                 tokio::time::sleep(took).await;
///                 Ok::<_, BoxError>(request * 2)
///             }
///         }
///     }));
/// let start = tokio::time::Instant::now();
/// assert_eq!(service.oneshot(21).await?, 42);
/// assert_eq!(start.elapsed(), Duration::from_millis(120));
/// let stats = reliability::registry().snapshot();
/// let stats = stats.hedge("doc.tower.hedge").unwrap();
/// assert_eq!((stats.hedges, stats.hedges_won), (1, 1));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HedgeLayer {
    hedge: Hedge,
    when: Arc<When>,
}

impl fmt::Debug for HedgeLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeLayer")
            .field("hedge", &self.hedge)
            .finish_non_exhaustive()
    }
}

impl HedgeLayer {
    /// Hedges every call with `hedge`; an attempt failing with any error starts the next at once.
    pub fn new(hedge: Hedge) -> Self {
        HedgeLayer {
            hedge,
            when: Arc::new(|_| true),
        }
    }

    /// An attempt failing with an error for which `when` is true starts the next at once; any
    /// other error is returned at once, and the other attempts are dropped.
    pub fn when(mut self, when: impl Fn(&BoxError) -> bool + Send + Sync + 'static) -> Self {
        self.when = Arc::new(when);
        self
    }
}

impl<S> Layer<S> for HedgeLayer {
    type Service = HedgeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HedgeService {
            inner,
            shared: Arc::new(Shared {
                hedge: self.hedge.clone(),
                when: self.when.clone(),
            }),
        }
    }
}

/// What every call of one [`HedgeService`] uses.
struct Shared {
    hedge: Hedge,
    when: Arc<When>,
}

/// The service of a [`HedgeLayer`].
#[derive(Clone)]
pub struct HedgeService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for HedgeService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeService")
            .field("inner", &self.inner)
            .field("hedge", &self.shared.hedge)
            .finish_non_exhaustive()
    }
}

impl<S, Req> Service<Req> for HedgeService<S>
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
        // The first attempt's call, made now as tower expects of a ready service; the others
        // clone the service when they start.
        let mut first = Some(service.call(request.clone()));
        let shared = self.shared.clone();
        Box::pin(async move {
            let Shared { hedge, when } = &*shared;
            let ctx = StackCtx::new();
            let ctx = &ctx;
            let when = |error: &BoxError| when(error);
            let attempt = move || {
                let start = match first.take() {
                    Some(response) => Start::Called(response),
                    None => Start::Fresh(service.clone(), request.clone()),
                };
                async move {
                    let out = match start {
                        Start::Called(response) => response.await.map_err(Into::into),
                        Start::Fresh(mut fresh, request) => {
                            let ready: Result<(), BoxError> =
                                poll_fn(|cx| fresh.poll_ready(cx).map_err(Into::into)).await;
                            match ready {
                                Ok(()) => fresh.call(request).await.map_err(Into::into),
                                Err(error) => Err(error),
                            }
                        }
                    };
                    // Read by the hedge in the poll in which this attempt completes, as under
                    // `#[hedge]`: a breaker below rejected it, so no other attempt starts.
                    if let Err(error) = &out
                        && matches!(policy_error(error), Some(crate::Error::CircuitOpen { .. }))
                    {
                        ctx.rejected.store(true, Ordering::Relaxed);
                    }
                    out
                }
            };
            hedge.call(Some(ctx), when, attempt).await
        })
    }
}

/// How one attempt starts: the first with the call already made on the ready service, each other
/// with a clone of the service (not ready yet) and a clone of the request.
enum Start<S, F, Req> {
    Called(F),
    Fresh(S, Req),
}
