//! `reliability::tower`: each layer under `tower::ServiceBuilder`, readiness that never leaks a slot
//! or a permit, counters and breakers shared with the programmatic API and the attributes, and a
//! stack of the layers (and a hedge) over a real axum router called with reqwest.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use reliability::tower::{
    BulkheadLayer, CircuitBreakerLayer, HedgeLayer, RateLimitLayer, RetryLayer, TimeoutLayer,
};
use reliability::{
    Backoff, Bulkhead, CircuitBreaker, CircuitState, Error, Hedge, Jitter, RateLimiter, Retry,
    RetryPolicy, Timeout, circuit_breaker, hedge, registry,
};
use tokio::time::Instant;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt, service_fn};

/// The policy error inside a service's error.
fn policy_error(error: &BoxError) -> Option<&Error> {
    error.downcast_ref::<Error>()
}

/// Polls `service` for readiness once.
fn poll_ready_once<S: Service<R>, R>(service: &mut S) -> Poll<Result<(), S::Error>> {
    let waker = std::task::Waker::noop();
    service.poll_ready(&mut std::task::Context::from_waker(waker))
}

fn fixed(max_attempts: u32, delay: Duration) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(max_attempts)
        .backoff(Backoff::Fixed)
        .delay(delay)
        .jitter(Jitter::None)
        .build()
        .unwrap()
}

/// A service that counts its calls and fails every one.
fn failing(
    calls: Arc<AtomicU32>,
) -> impl Service<u32, Response = u32, Error = BoxError, Future: Send + 'static> + Clone + Send + 'static
{
    service_fn(move |_: u32| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Err::<u32, _>(BoxError::from("503")) }
    })
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_and_rejects_without_calling_the_service() {
    let breaker = CircuitBreaker::builder("tower.breaker.opens")
        .failure_threshold(3)
        .cooldown(Duration::from_secs(10))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let service = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .service(failing(calls.clone()));
    for _ in 0..3 {
        let error = service.clone().oneshot(1).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "503",
            "the service's own error, unchanged"
        );
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    let rejected = service.clone().oneshot(1).await.unwrap_err();
    match policy_error(&rejected) {
        Some(Error::CircuitOpen { name, retry_after }) => {
            assert_eq!(&**name, "tower.breaker.opens");
            assert_eq!(*retry_after, Duration::from_secs(10));
        }
        other => panic!("expected a circuit-open rejection, got {other:?}"),
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the rejected call never ran"
    );

    // After the cooldown a trial goes through to the service.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let _ = service.clone().oneshot(1).await;
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    let snapshot = registry().snapshot();
    let stats = snapshot.circuit_breaker("tower.breaker.opens").unwrap();
    assert_eq!(
        (
            stats.calls,
            stats.failures,
            stats.rejections,
            stats.openings
        ),
        (5, 4, 1, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn a_classifier_decides_which_errors_count() {
    let breaker = CircuitBreaker::builder("tower.breaker.when")
        .failure_threshold(1)
        .build()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(
            CircuitBreakerLayer::new(breaker.clone()).when(|e: &BoxError| e.to_string() != "404"),
        )
        .service(service_fn(|code: u32| async move {
            Err::<(), _>(BoxError::from(code.to_string()))
        }));
    for _ in 0..5 {
        service.clone().oneshot(404).await.unwrap_err();
    }
    assert_eq!(breaker.state(), CircuitState::Closed, "a 404 is an answer");
    service.clone().oneshot(500).await.unwrap_err();
    assert_eq!(breaker.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_breaker_above_the_load_layers_never_counts_their_rejections() {
    let breaker = CircuitBreaker::builder("tower.breaker.shedding")
        .failure_threshold(1)
        .build()
        .unwrap();
    let limiter = RateLimiter::builder("tower.breaker.shedding", 1)
        .per(Duration::from_secs(60))
        .build()
        .unwrap();
    let bulkhead = Bulkhead::builder("tower.breaker.shedding", 1)
        .build()
        .unwrap();
    let ok = service_fn(|n: u32| async move { Ok::<_, BoxError>(n) });

    let limited = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .layer(RateLimitLayer::new(limiter))
        .service(ok);
    assert_eq!(limited.clone().oneshot(1).await.unwrap(), 1);
    for _ in 0..5 {
        let error = limited.clone().oneshot(1).await.unwrap_err();
        assert!(policy_error(&error).is_some_and(Error::is_rate_limited));
    }

    let mut holder = ServiceBuilder::new()
        .layer(BulkheadLayer::new(bulkhead.clone()))
        .service(ok);
    holder.ready().await.unwrap(); // takes the only slot
    let full = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .layer(BulkheadLayer::new(bulkhead))
        .service(ok);
    for _ in 0..5 {
        let error = full.clone().oneshot(1).await.unwrap_err();
        assert!(policy_error(&error).is_some_and(Error::is_bulkhead_full));
    }

    assert_eq!(breaker.state(), CircuitState::Closed);
    let snapshot = registry().snapshot();
    let stats = snapshot.circuit_breaker("tower.breaker.shedding").unwrap();
    assert_eq!((stats.calls, stats.failures, stats.openings), (11, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_ready_bulkhead_service_dropped_without_a_call_frees_its_slot() {
    let bulkhead = Bulkhead::builder("tower.bulkhead.drop", 2).build().unwrap();
    let ok = service_fn(|n: u32| async move { Ok::<_, BoxError>(n) });
    let service = ServiceBuilder::new()
        .layer(BulkheadLayer::new(bulkhead.clone()))
        .service(ok);
    for _ in 0..100 {
        let mut ready = service.clone();
        ready.ready().await.unwrap();
        assert_eq!(bulkhead.available(), 1, "a ready service holds a slot");
        drop(ready);
        assert_eq!(
            bulkhead.available(),
            2,
            "and frees it when dropped uncalled"
        );
    }

    // A clone of a ready service is fresh: it holds no slot and is not ready until polled.
    let mut first = service.clone();
    first.ready().await.unwrap();
    let mut fresh = first.clone();
    assert_eq!(bulkhead.available(), 1);
    fresh.ready().await.unwrap();
    assert_eq!(bulkhead.available(), 0);
    let mut third = service.clone();
    let rejected = third.ready().await.unwrap().call(3).await.unwrap_err();
    assert!(policy_error(&rejected).is_some_and(Error::is_bulkhead_full));

    // A call moves the slot to its response future: freed when it ends, or is dropped.
    let response = first.call(1);
    assert_eq!(bulkhead.available(), 0);
    assert_eq!(response.await.unwrap(), 1);
    assert_eq!(bulkhead.available(), 1);
    drop(fresh.call(2));
    assert_eq!(bulkhead.available(), 2);

    let stats = registry().snapshot();
    let stats = stats.bulkhead("tower.bulkhead.drop").unwrap();
    assert_eq!((stats.calls, stats.rejections), (103, 1));
}

#[tokio::test(start_paused = true)]
async fn poll_ready_queues_for_a_slot_and_a_dropped_waiter_takes_none() {
    let bulkhead = Bulkhead::builder("tower.bulkhead.queue", 1)
        .queue(1)
        .wait(Duration::from_secs(5))
        .build()
        .unwrap();
    let ok = service_fn(|n: u32| async move { Ok::<_, BoxError>(n) });
    let service = ServiceBuilder::new()
        .layer(BulkheadLayer::new(bulkhead.clone()))
        .service(ok);
    let mut holder = service.clone();
    holder.ready().await.unwrap();

    let mut waiter = service.clone();
    assert!(
        poll_ready_once(&mut waiter).is_pending(),
        "queued for the slot"
    );
    // Another caller finds the queue full: ready, and its call is rejected without waiting.
    let mut third = service.clone();
    let rejected = third.ready().await.unwrap().call(3).await.unwrap_err();
    assert!(policy_error(&rejected).is_some_and(Error::is_bulkhead_full));

    drop(holder);
    tokio::task::yield_now().await;
    assert!(
        poll_ready_once(&mut waiter).is_ready(),
        "the freed slot went to the waiter"
    );
    assert_eq!(waiter.call(2).await.unwrap(), 2);
    assert_eq!(bulkhead.available(), 1);

    // A waiter dropped while queued takes no slot.
    let mut holder = service.clone();
    holder.ready().await.unwrap();
    let mut waiter = service.clone();
    assert!(poll_ready_once(&mut waiter).is_pending());
    drop(waiter);
    drop(holder);
    assert_eq!(bulkhead.available(), 1);

    // A waiter whose wait runs out is ready, and its call is rejected.
    let mut holder = service.clone();
    holder.ready().await.unwrap();
    let mut waiter = service.clone();
    let start = Instant::now();
    let rejected = waiter.ready().await.unwrap().call(4).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert!(policy_error(&rejected).is_some_and(Error::is_bulkhead_full));
    drop(holder);
    assert_eq!(bulkhead.available(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_ready_rate_limit_service_dropped_without_a_call_takes_no_permit() {
    let limiter = RateLimiter::builder("tower.rate_limit.drop", 1)
        .per(Duration::from_secs(60))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let service = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter))
        .service(service_fn({
            let calls = calls.clone();
            move |n: u32| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, BoxError>(n) }
            }
        }));
    for _ in 0..10 {
        let mut ready = service.clone();
        ready.ready().await.unwrap();
    }
    assert_eq!(
        service.clone().oneshot(7).await.unwrap(),
        7,
        "the one permit is still there"
    );
    let limited = service.clone().oneshot(8).await.unwrap_err();
    match policy_error(&limited) {
        Some(Error::RateLimited { retry_after, .. }) => {
            assert_eq!(*retry_after, Duration::from_secs(60));
        }
        other => panic!("expected a rate-limit rejection, got {other:?}"),
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the rejected call never ran"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_sends_a_clone_of_the_request_each_attempt() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let retry = Retry::new("tower.retry.clone", fixed(4, Duration::from_millis(100)));
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(retry.clone()))
        .service(service_fn({
            let received = received.clone();
            move |request: String| {
                let mut received = received.lock().unwrap();
                received.push(request.clone());
                let attempt = received.len();
                async move {
                    if attempt < 3 {
                        Err(BoxError::from("busy"))
                    } else {
                        Ok(format!("{request}: answered on attempt {attempt}"))
                    }
                }
            }
        }));
    let start = Instant::now();
    let answer = service.oneshot("ping".to_owned()).await.unwrap();
    assert_eq!(answer, "ping: answered on attempt 3");
    assert_eq!(*received.lock().unwrap(), ["ping", "ping", "ping"]);
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    let stats = registry().snapshot();
    let stats = stats.retry("tower.retry.clone").unwrap();
    assert_eq!((stats.calls, stats.successes, stats.retries), (1, 1, 2));
}

#[tokio::test(start_paused = true)]
async fn retry_returns_an_errors_when_rejects_at_once() {
    let retry = Retry::new("tower.retry.when", fixed(5, Duration::from_secs(1)));
    let calls = Arc::new(AtomicU32::new(0));
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(retry.clone()).when(|e: &BoxError| e.to_string() != "503"))
        .service(failing(calls.clone()));
    assert_eq!(service.oneshot(1).await.unwrap_err().to_string(), "503");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_stops_at_an_open_breaker_below_and_waits_a_rate_limits_retry_after() {
    // An open breaker below: its rejection is returned at once, not retried.
    let retry = Retry::new("tower.retry.breaker", fixed(5, Duration::from_secs(1)));
    let breaker = CircuitBreaker::builder("tower.retry.breaker")
        .failure_threshold(2)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(retry.clone()))
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .service(failing(calls.clone()));
    let start = Instant::now();
    let error = service.oneshot(1).await.unwrap_err();
    assert!(policy_error(&error).is_some_and(Error::is_circuit_open));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(2),
        "two waits, then the rejection"
    );
    let snapshot = registry().snapshot();
    let stats = snapshot.retry("tower.retry.breaker").unwrap();
    assert_eq!((stats.retries, stats.rejections, stats.failures), (2, 1, 1));

    // A rate limit below: the retry waits exactly the `retry_after` it reports.
    let retry = Retry::new("tower.retry.limited", fixed(3, Duration::from_millis(1)));
    let limiter = RateLimiter::builder("tower.retry.limited", 1)
        .per(Duration::from_secs(2))
        .build()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(retry.clone()))
        .layer(RateLimitLayer::new(limiter))
        .service(service_fn(|n: u32| async move { Ok::<_, BoxError>(n) }));
    assert_eq!(service.clone().oneshot(1).await.unwrap(), 1);
    let start = Instant::now();
    assert_eq!(service.oneshot(2).await.unwrap(), 2);
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn timeout_drops_the_inner_future_and_counts_it() {
    let timeout = Timeout::new("tower.timeout", Duration::from_secs(2)).unwrap();
    let service = ServiceBuilder::new()
        .layer(TimeoutLayer::new(timeout.clone()))
        .service(service_fn(|secs: u64| async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            Ok::<_, BoxError>(secs)
        }));
    assert_eq!(service.clone().oneshot(1).await.unwrap(), 1);
    let start = Instant::now();
    let error = service.clone().oneshot(10).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(
        policy_error(&error),
        Some(&Error::Timeout {
            after: Duration::from_secs(2)
        })
    );
    let stats = registry().snapshot();
    let stats = stats.timeout("tower.timeout").unwrap();
    assert_eq!((stats.calls, stats.successes, stats.timeouts), (2, 1, 1));
}

#[circuit_breaker(name = "tower.shared.attribute", failure_threshold = 2)]
async fn annotated(fail: bool) -> Result<u32, Error> {
    if fail {
        Err(Error::Timeout {
            after: Duration::ZERO,
        })
    } else {
        Ok(1)
    }
}

#[tokio::test(start_paused = true)]
async fn layers_share_names_counters_and_breakers_with_the_other_apis() {
    // A timeout layer and a programmatic timeout of one name count into one row.
    let layer_timeout = Timeout::new("tower.shared.timeout", Duration::from_secs(1)).unwrap();
    let service = ServiceBuilder::new()
        .layer(TimeoutLayer::new(layer_timeout))
        .service(service_fn(|n: u32| async move { Ok::<_, BoxError>(n) }));
    service.clone().oneshot(1).await.unwrap();
    service.clone().oneshot(2).await.unwrap();
    let direct = Timeout::new("tower.shared.timeout", Duration::from_secs(1)).unwrap();
    direct.run(async { Ok::<_, Error>(()) }).await.unwrap();
    let snapshot = registry().snapshot();
    assert_eq!(snapshot.timeout("tower.shared.timeout").unwrap().calls, 3);

    // A breaker opened through the layer rejects the programmatic handle's calls, and the reverse.
    let programmatic = CircuitBreaker::builder("tower.shared.breaker")
        .failure_threshold(2)
        .build()
        .unwrap();
    let looked_up = registry().circuit_breaker("tower.shared.breaker").unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let service = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(looked_up))
        .service(failing(calls.clone()));
    for _ in 0..2 {
        service.clone().oneshot(1).await.unwrap_err();
    }
    assert_eq!(programmatic.state(), CircuitState::Open);
    let rejected = programmatic.call(async { Ok::<_, Error>(()) }).await;
    assert!(matches!(rejected, Err(Error::CircuitOpen { .. })));
    programmatic.reset();
    let ok = service_fn(|n: u32| async move { Ok::<_, BoxError>(n) });
    let service = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(programmatic.clone()))
        .service(ok);
    assert_eq!(service.oneshot(5).await.unwrap(), 5);
    let snapshot = registry().snapshot();
    let stats = snapshot.circuit_breaker("tower.shared.breaker").unwrap();
    assert_eq!(
        (
            stats.calls,
            stats.successes,
            stats.failures,
            stats.rejections
        ),
        (4, 1, 2, 1)
    );

    // With an attribute: the layer takes the breaker the annotated function registered.
    annotated(false).await.unwrap();
    let breaker = registry()
        .circuit_breaker("tower.shared.attribute")
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .service(failing(Arc::new(AtomicU32::new(0))));
    for _ in 0..2 {
        service.clone().oneshot(1).await.unwrap_err();
    }
    assert!(matches!(
        annotated(false).await,
        Err(Error::CircuitOpen { .. })
    ));
    let snapshot = registry().snapshot();
    let stats = snapshot.circuit_breaker("tower.shared.attribute").unwrap();
    assert_eq!(
        (
            stats.calls,
            stats.successes,
            stats.failures,
            stats.rejections
        ),
        (4, 1, 2, 1)
    );
}

/// Counts its drops: the attempt future that holds it was dropped.
struct DropGuard(Arc<AtomicU32>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn hedge_polls_its_attempts_in_the_response_future_and_drops_the_loser_at_once() {
    let hedge = Hedge::builder("tower.hedge.inline", Duration::from_millis(100))
        .build()
        .unwrap();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let dropped = Arc::new(AtomicU32::new(0));
    let mut service = ServiceBuilder::new()
        .layer(HedgeLayer::new(hedge))
        .service(service_fn({
            let (sent, dropped) = (sent.clone(), dropped.clone());
            move |request: String| {
                let attempt = {
                    let mut sent = sent.lock().unwrap();
                    sent.push(request.clone());
                    sent.len()
                };
                let guard = DropGuard(dropped.clone());
                async move {
                    let _guard = guard;
                    let took = if attempt == 1 { 10_000 } else { 20 };
                    tokio::time::sleep(Duration::from_millis(took)).await;
                    Ok::<_, BoxError>(format!("{request} from attempt {attempt}"))
                }
            }
        }));
    poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
    let start = Instant::now();
    let mut response = std::pin::pin!(service.call("q".to_owned()));
    // The first attempt was called on the ready service; nothing runs on a task of its own.
    assert_eq!(sent.lock().unwrap().len(), 1);
    let runtime = tokio::runtime::Handle::current().metrics();
    let answer = poll_fn(|cx| {
        assert_eq!(runtime.num_alive_tasks(), 0, "no task spawned");
        response.as_mut().poll(cx)
    })
    .await
    .unwrap();
    assert_eq!(answer, "q from attempt 2");
    assert_eq!(start.elapsed(), Duration::from_millis(120));
    assert_eq!(*sent.lock().unwrap(), ["q", "q"], "a clone of the request");
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        2,
        "the slow attempt was dropped when the other won"
    );
    let stats = registry().snapshot();
    let stats = stats.hedge("tower.hedge.inline").unwrap();
    assert_eq!(
        (stats.calls, stats.successes, stats.hedges, stats.hedges_won),
        (1, 1, 1, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn hedge_is_ready_when_its_service_is_and_readies_a_clone_for_each_hedge() {
    // The inner service's readiness is a bulkhead slot: one per attempt.
    let bulkhead = Bulkhead::builder("tower.hedge.ready", 2)
        .queue(1)
        .wait(Duration::from_secs(60))
        .build()
        .unwrap();
    let hedge = Hedge::builder("tower.hedge.ready", Duration::from_millis(100))
        .build()
        .unwrap();
    let started = Arc::new(AtomicU32::new(0));
    let service = ServiceBuilder::new()
        .layer(HedgeLayer::new(hedge))
        .layer(BulkheadLayer::new(bulkhead.clone()))
        .service(service_fn({
            let started = started.clone();
            move |_: u32| {
                let attempt = started.fetch_add(1, Ordering::SeqCst);
                async move {
                    let took = if attempt.is_multiple_of(2) {
                        10_000
                    } else {
                        20
                    };
                    tokio::time::sleep(Duration::from_millis(took)).await;
                    Ok::<_, BoxError>(attempt)
                }
            }
        }));
    let mut first = service.clone();
    assert!(poll_ready_once(&mut first).is_ready());
    assert_eq!(
        bulkhead.available(),
        1,
        "ready: the inner service holds a slot"
    );
    let mut fresh = first.clone();
    assert_eq!(
        bulkhead.available(),
        1,
        "a clone is not ready, and holds none"
    );
    assert!(poll_ready_once(&mut fresh).is_ready());
    assert_eq!(bulkhead.available(), 0);
    let mut third = service.clone();
    assert!(
        poll_ready_once(&mut third).is_pending(),
        "not ready while the inner service is not"
    );
    drop((fresh, third));
    assert_eq!(bulkhead.available(), 1);

    // The hedge's attempt readies a clone of the inner service: it takes the other slot.
    let start = Instant::now();
    assert_eq!(first.call(7).await.unwrap(), 1);
    assert_eq!(start.elapsed(), Duration::from_millis(120));
    assert_eq!(started.load(Ordering::SeqCst), 2);
    assert_eq!(
        bulkhead.available(),
        2,
        "both slots back: the loser was dropped"
    );

    // With one slot taken elsewhere, the hedge waits for a slot before it calls.
    let mut holder = service.clone();
    holder.ready().await.unwrap();
    let mut caller = service.clone();
    caller.ready().await.unwrap();
    let call = tokio::spawn(caller.call(8));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        started.load(Ordering::SeqCst),
        3,
        "the hedge waits for a slot"
    );
    drop(holder);
    assert_eq!(call.await.unwrap().unwrap(), 3);
    let stats = registry().snapshot();
    let stats = stats.hedge("tower.hedge.ready").unwrap();
    assert_eq!((stats.calls, stats.hedges, stats.hedges_won), (2, 2, 2));
}

#[tokio::test(start_paused = true)]
async fn hedge_starts_no_attempt_after_an_open_breaker_below() {
    let breaker = CircuitBreaker::builder("tower.hedge.breaker")
        .failure_threshold(1)
        .cooldown(Duration::from_secs(60))
        .build()
        .unwrap();
    breaker.isolate();
    let hedge = Hedge::builder("tower.hedge.breaker", Duration::ZERO)
        .max(3)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let service = ServiceBuilder::new()
        .layer(HedgeLayer::new(hedge))
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .service(failing(calls.clone()));
    let error = service.clone().oneshot(1).await.unwrap_err();
    assert!(matches!(
        policy_error(&error),
        Some(Error::CircuitOpen { .. })
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let snapshot = registry().snapshot();
    let stats = snapshot.hedge("tower.hedge.breaker").unwrap();
    assert_eq!(
        (stats.calls, stats.failures, stats.rejections, stats.hedges),
        (1, 1, 1, 0)
    );
    assert_eq!(
        snapshot
            .circuit_breaker("tower.hedge.breaker")
            .unwrap()
            .rejections,
        1,
        "one attempt reached the breaker"
    );

    // An error `when` rejects is returned at once; others start the next attempt at once.
    breaker.reset();
    let hedge = Hedge::builder("tower.hedge.when", Duration::from_secs(60))
        .max(2)
        .build()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(HedgeLayer::new(hedge).when(|e: &BoxError| e.to_string() == "503"))
        .service(failing(calls.clone()));
    let start = Instant::now();
    assert_eq!(service.oneshot(1).await.unwrap_err().to_string(), "503");
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "each failure started the next"
    );
}

/// Requests `/hedged` received: the first of every two hangs.
static HEDGED: AtomicU32 = AtomicU32::new(0);

/// The test server: `/ok`, `/flaky` (503 on every other request), `/slow` (never in time),
/// `/hedged` (every other request never answers, the others at once).
async fn serve() -> (SocketAddr, Arc<AtomicU32>) {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;

    let flaky = Arc::new(AtomicU32::new(0));
    let app = Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route(
            "/flaky",
            get({
                let flaky = flaky.clone();
                move || async move {
                    if flaky.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
                        Err((StatusCode::SERVICE_UNAVAILABLE, "try again"))
                    } else {
                        Ok("recovered")
                    }
                }
            }),
        )
        .route(
            "/hedged",
            get(|| async {
                let n = HEDGED.fetch_add(1, Ordering::SeqCst);
                if n.is_multiple_of(2) {
                    std::future::pending::<()>().await;
                }
                format!("answer {n}")
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "too late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, flaky)
}

/// An HTTP status the client treats as a failure.
#[derive(Debug)]
struct Status(u16);

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the server answered {}", self.0)
    }
}

impl std::error::Error for Status {}

#[tokio::test]
async fn a_stack_of_layers_over_an_axum_router_called_with_reqwest() {
    let (addr, flaky) = serve().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let client = service_fn(move |path: &'static str| {
        let request = http.get(format!("{base}{path}"));
        async move {
            let response = request.send().await?;
            let status = response.status();
            if status.is_server_error() {
                return Err(BoxError::from(Status(status.as_u16())));
            }
            Ok::<_, BoxError>(response.text().await?)
        }
    });
    let retry = Retry::new("tower.http", fixed(3, Duration::from_millis(10)));
    let breaker = CircuitBreaker::builder("tower.http")
        .failure_threshold(5)
        .build()
        .unwrap();
    let bulkhead = Bulkhead::builder("tower.http", 4).build().unwrap();
    let timeout = Timeout::new("tower.http", Duration::from_millis(300)).unwrap();
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new(retry.clone()).when(|e: &BoxError| {
            e.downcast_ref::<Status>().is_some_and(|s| s.0 == 503)
                || e.downcast_ref::<Error>().is_some_and(Error::is_timeout)
        }))
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .layer(BulkheadLayer::new(bulkhead.clone()))
        .layer(TimeoutLayer::new(timeout))
        .service(client);

    assert_eq!(stack.clone().oneshot("/ok").await.unwrap(), "fine");
    // A 503, then the answer: the retry sent the request again.
    assert_eq!(stack.clone().oneshot("/flaky").await.unwrap(), "recovered");
    assert_eq!(flaky.load(Ordering::SeqCst), 2);
    // Never in time: three attempts, each timed out, each a failure for the breaker.
    let error = stack.clone().oneshot("/slow").await.unwrap_err();
    assert!(
        policy_error(&error).is_some_and(Error::is_timeout),
        "{error}"
    );
    // A 404 is not a server error: an answer, not retried.
    assert_eq!(stack.clone().oneshot("/missing").await.unwrap(), "");

    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(bulkhead.available(), 4, "every slot back");
    let snapshot = registry().snapshot();
    let retry_stats = snapshot.retry("tower.http").unwrap();
    assert_eq!(
        (
            retry_stats.calls,
            retry_stats.successes,
            retry_stats.failures,
            retry_stats.retries
        ),
        (4, 3, 1, 3)
    );
    let breaker_stats = snapshot.circuit_breaker("tower.http").unwrap();
    assert_eq!((breaker_stats.calls, breaker_stats.failures), (7, 4));
    let timeout_stats = snapshot.timeout("tower.http").unwrap();
    assert_eq!((timeout_stats.calls, timeout_stats.timeouts), (7, 3));
    assert_eq!(snapshot.bulkhead("tower.http").unwrap().calls, 7);
}

/// The same request through `#[hedge]`: its row in the registry is the layer's below.
#[hedge(after = "50ms")]
async fn hedged_get(http: reqwest::Client, url: String) -> Result<String, BoxError> {
    Ok(http
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?)
}

#[tokio::test]
async fn hedge_over_an_axum_router_called_with_reqwest_shares_its_counters_with_the_attribute() {
    let (addr, _) = serve().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/hedged");

    // The attribute: the first request hangs, the one sent 50 ms later answers.
    assert_eq!(
        hedged_get(http.clone(), url.clone()).await.unwrap(),
        "answer 1"
    );
    let snapshot = registry().snapshot();
    let name = snapshot
        .policies()
        .iter()
        .find(|p| p.kind == reliability::PolicyKind::Hedge && p.name.ends_with("hedged_get"))
        .expect("the attribute's hedge is registered")
        .name
        .clone();

    // The layer of the same name, over reqwest as a tower service.
    let client = service_fn(move |url: String| {
        let request = http.get(url);
        async move { Ok::<_, BoxError>(request.send().await?.error_for_status()?.text().await?) }
    });
    let hedge = Hedge::builder(name.clone(), Duration::from_millis(50))
        .build()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(HedgeLayer::new(hedge))
        .service(client);
    assert_eq!(service.oneshot(url).await.unwrap(), "answer 3");
    assert_eq!(HEDGED.load(Ordering::SeqCst), 4, "two requests per call");

    let snapshot = registry().snapshot();
    let stats = snapshot.hedge(&name).unwrap();
    assert_eq!(
        (stats.calls, stats.successes, stats.hedges, stats.hedges_won),
        (2, 2, 2, 2),
        "one row for the attribute and the layer"
    );
}

/// The response future of a layer stack is `Send`, so a spawned task can drive it.
#[tokio::test]
async fn the_response_futures_are_send() {
    fn assert_send<F: Future + Send>(f: F) -> F {
        f
    }
    let retry = Retry::new("tower.send", fixed(1, Duration::ZERO));
    let hedge = Hedge::builder("tower.send", Duration::from_secs(1))
        .build()
        .unwrap();
    let mut stack = ServiceBuilder::new()
        .layer(RetryLayer::new(retry))
        .layer(HedgeLayer::new(hedge))
        .layer(BulkheadLayer::new(
            Bulkhead::builder("tower.send", 1).build().unwrap(),
        ))
        .service(service_fn(|n: u32| async move { Ok::<_, BoxError>(n) }));
    poll_fn(|cx| stack.poll_ready(cx)).await.unwrap();
    let response = assert_send(stack.call(9));
    assert_eq!(tokio::spawn(response).await.unwrap().unwrap(), 9);
}
