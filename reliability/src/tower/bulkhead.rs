//! [`BulkheadLayer`]: a [`Bulkhead`] in front of a tower service.

use std::fmt;
use std::sync::Mutex;
use std::task::{Context, Poll, ready};

use tower::{BoxError, Layer, Service};

use super::ResponseFuture;
use crate::bulkhead::{Bulkhead, OwnedSlot, SlotWait};
use crate::error::Error;
use crate::stats::lock;

/// Bounds the calls of the inner service running at once with a [`Bulkhead`].
///
/// `poll_ready` takes a slot (queueing for it, within the bulkhead's `queue` and `wait`, when none
/// is free), then waits for the inner service to be ready. The slot is held by the ready service,
/// then by the call's response future, and freed when either is dropped: a caller that polls
/// ready and drops the service without calling it frees its slot. When the bulkhead rejects the
/// caller, `poll_ready` is ready all the same (an `Err` would mark the service broken) and `call`
/// returns the boxed [`Error::BulkheadFull`](crate::Error::BulkheadFull) without calling the
/// inner service. A clone is a fresh service, without a slot.
///
/// ```
/// use reliability::tower::BulkheadLayer;
/// use reliability::Bulkhead;
/// use tower::{BoxError, Service, ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), BoxError> {
/// let bulkhead = Bulkhead::builder("doc.tower.bulkhead", 1).build()?;
/// let mut service = ServiceBuilder::new()
///     .layer(BulkheadLayer::new(bulkhead.clone()))
///     .service(service_fn(|n: u32| async move { Ok::<_, BoxError>(n) }));
/// let mut other = service.clone();
/// service.ready().await?; // holds the only slot
/// assert_eq!(bulkhead.available(), 0);
/// let full = other.ready().await?.call(1).await.unwrap_err();
/// assert!(full.downcast_ref::<reliability::Error>().is_some_and(|e| e.is_bulkhead_full()));
/// drop(service); // never called: the slot is freed
/// assert_eq!(bulkhead.available(), 1);
/// assert_eq!(other.ready().await?.call(2).await?, 2);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct BulkheadLayer {
    bulkhead: Bulkhead,
}

impl BulkheadLayer {
    /// One slot of `bulkhead` per call.
    pub fn new(bulkhead: Bulkhead) -> Self {
        BulkheadLayer { bulkhead }
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = BulkheadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService {
            inner,
            bulkhead: self.bulkhead.clone(),
            state: State::Idle,
        }
    }
}

/// The service of a [`BulkheadLayer`].
pub struct BulkheadService<S> {
    inner: S,
    bulkhead: Bulkhead,
    state: State,
}

/// Where a [`BulkheadService`] is between `poll_ready` and `call`.
enum State {
    /// No slot asked for.
    Idle,
    /// Queued for a slot. (In a mutex only to keep the service `Sync`; never contended.)
    Waiting(Mutex<SlotWait>),
    /// Holding a slot.
    Slot(OwnedSlot),
    /// Rejected by the bulkhead: the next call returns this.
    Rejected(Error),
}

impl<S: Clone> Clone for BulkheadService<S> {
    /// A fresh service, without a slot.
    fn clone(&self) -> Self {
        BulkheadService {
            inner: self.inner.clone(),
            bulkhead: self.bulkhead.clone(),
            state: State::Idle,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for BulkheadService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Idle => "idle",
            State::Waiting(_) => "waiting for a slot",
            State::Slot(_) => "holding a slot",
            State::Rejected(_) => "rejected",
        };
        f.debug_struct("BulkheadService")
            .field("inner", &self.inner)
            .field("bulkhead", &self.bulkhead)
            .field("state", &state)
            .finish()
    }
}

impl<S, Req> Service<Req> for BulkheadService<S>
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
        loop {
            self.state = match &mut self.state {
                State::Idle => match self.bulkhead.acquire_owned() {
                    Ok(slot) => State::Slot(slot),
                    Err(wait) => State::Waiting(Mutex::new(wait)),
                },
                State::Waiting(wait) => match ready!(lock(wait).as_mut().poll(cx)) {
                    Ok(slot) => State::Slot(slot),
                    Err(rejection) => State::Rejected(rejection),
                },
                State::Slot(_) => return self.inner.poll_ready(cx).map_err(Into::into),
                State::Rejected(_) => return Poll::Ready(Ok(())),
            };
        }
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Slot(slot) => {
                let response = self.inner.call(request);
                Box::pin(async move {
                    let out = response.await.map_err(Into::into);
                    drop(slot);
                    out
                })
            }
            State::Rejected(rejection) => Box::pin(std::future::ready(Err(rejection.into()))),
            state @ (State::Idle | State::Waiting(_)) => {
                self.state = state;
                Box::pin(std::future::ready(Err(BoxError::from(
                    "BulkheadService::call before poll_ready returned Ready",
                ))))
            }
        }
    }
}
