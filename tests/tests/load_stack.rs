//! The load layers as attributes, and how they cooperate with the rest of the stack: a retry above
//! a rate limit waits exactly the `retry_after` it reports, a breaker above never counts a load
//! rejection, a retry honours the service's `Retry-After`, its deadline and its budget, and a breaker
//! can trip on a failure rate.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{AppError, Runs, ms, secs};
use reliability::{CircuitState, bulkhead, circuit_breaker, rate_limit, registry, retry, timeout};
use tokio::time::Instant;

static LIMITED: Runs = Runs::new();

#[retry(
    max = 3,
    backoff = "fixed",
    delay = "10s",
    max_delay = "30s",
    jitter = "none"
)]
#[rate_limit(rate = 1, per = "2s", name = "load.limited")]
async fn limited() -> Result<u32, AppError> {
    Ok(LIMITED.bump())
}

#[tokio::test(start_paused = true)]
async fn a_retry_above_a_rate_limit_waits_exactly_the_limiters_retry_after() {
    let start = Instant::now();
    assert_eq!(limited().await.unwrap(), 1);
    assert_eq!(
        limited().await.unwrap(),
        2,
        "the retry waited for the permit"
    );
    assert_eq!(
        start.elapsed(),
        secs(2),
        "the limiter's 2 s, not the backoff's 10 s"
    );
    let stats = registry().snapshot();
    let r = stats.rate_limit("load.limited").unwrap();
    assert_eq!((r.calls, r.rejections), (3, 1));
    let retry = stats.retry("load_stack::limited").unwrap();
    assert_eq!(retry.retries, 1);
}

static SHED: Runs = Runs::new();

#[circuit_breaker(name = "load.breaker_above", failure_threshold = 1)]
#[rate_limit(rate = 1, per = "1m")]
async fn shed_below_a_breaker() -> Result<u32, AppError> {
    Ok(SHED.bump())
}

#[tokio::test(start_paused = true)]
async fn a_breaker_never_counts_load_rejections_from_below() {
    shed_below_a_breaker().await.unwrap();
    for _ in 0..5 {
        let err = shed_below_a_breaker().await.unwrap_err();
        assert!(
            matches!(err, AppError::Reliability(ref e) if e.is_rate_limited()),
            "{err:?}"
        );
    }
    let breaker = registry().circuit_breaker("load.breaker_above").unwrap();
    assert_eq!(
        breaker.state(),
        CircuitState::Closed,
        "load shedding is not a failure"
    );
    let stats = registry().snapshot();
    let b = stats.circuit_breaker("load.breaker_above").unwrap();
    assert_eq!((b.calls, b.successes, b.failures), (6, 1, 0));
}

static RUNNING: AtomicU32 = AtomicU32::new(0);

#[circuit_breaker(name = "load.bulkhead_breaker", failure_threshold = 1)]
#[bulkhead(max = 1, name = "load.bulkhead")]
async fn one_at_a_time() -> Result<(), AppError> {
    assert_eq!(
        RUNNING.fetch_add(1, Ordering::SeqCst),
        0,
        "never two at once"
    );
    tokio::time::sleep(ms(100)).await;
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_bulkhead_rejects_at_once_and_its_rejections_are_not_failures() {
    let (first, second) = tokio::join!(one_at_a_time(), one_at_a_time());
    first.unwrap();
    let err = second.unwrap_err();
    assert!(
        matches!(err, AppError::Reliability(ref e) if e.is_bulkhead_full()),
        "{err:?}"
    );
    one_at_a_time().await.unwrap();
    let breaker = registry().circuit_breaker("load.bulkhead_breaker").unwrap();
    assert_eq!(breaker.state(), CircuitState::Closed);
    let stats = registry().snapshot();
    assert_eq!(stats.bulkhead("load.bulkhead").unwrap().rejections, 1);
}

/// A service error that says how long to wait.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error("429, retry after {0:?}")]
    TooMany(Duration),
    #[error("503")]
    Unavailable,
    #[error(transparent)]
    Reliability(#[from] reliability::Error),
}

impl ApiError {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::TooMany(d) => Some(*d),
            _ => None,
        }
    }
}

static ASKED: Runs = Runs::new();

#[retry(max = 3, delay = "1s", max_delay = "30s", retry_after = ApiError::retry_after)]
async fn asks_to_wait(wait: Duration) -> Result<u32, ApiError> {
    if ASKED.bump() == 1 {
        return Err(ApiError::TooMany(wait));
    }
    Ok(ASKED.get())
}

#[tokio::test(start_paused = true)]
async fn the_services_retry_after_is_waited_exactly_and_one_above_max_delay_ends_the_retry() {
    let start = Instant::now();
    assert_eq!(asks_to_wait(secs(2)).await.unwrap(), 2);
    assert_eq!(
        start.elapsed(),
        secs(2),
        "exactly the 2 s asked for, no jitter"
    );

    ASKED.reset();
    let start = Instant::now();
    let err = asks_to_wait(secs(40)).await.unwrap_err();
    assert!(matches!(err, ApiError::TooMany(_)));
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "40 s is above max_delay: given up at once"
    );
    assert_eq!(ASKED.get(), 1);
}

static SLOW_ATTEMPTS: Runs = Runs::new();

#[retry(
    max = 10,
    backoff = "fixed",
    delay = "100ms",
    jitter = "none",
    deadline = "1s"
)]
async fn slow_and_failing() -> Result<(), ApiError> {
    SLOW_ATTEMPTS.bump();
    tokio::time::sleep(ms(400)).await;
    Err(ApiError::Unavailable)
}

#[tokio::test(start_paused = true)]
async fn a_deadline_stops_the_retry_without_a_trailing_wait() {
    let start = Instant::now();
    slow_and_failing().await.unwrap_err();
    // Attempts at 0 and 500 ms; after the second (at 900 ms) a wait would end at 1 s: no more.
    assert_eq!(SLOW_ATTEMPTS.get(), 2);
    assert_eq!(start.elapsed(), ms(900));
    let stats = registry().snapshot();
    assert_eq!(
        stats
            .retry("load_stack::slow_and_failing")
            .unwrap()
            .deadline_exceeded,
        1
    );
}

#[retry(max = 3, delay = 0, budget = 0.1, name = "load.budgeted")]
async fn always_failing() -> Result<(), ApiError> {
    Err(ApiError::Unavailable)
}

#[tokio::test(start_paused = true)]
async fn a_retry_budget_bounds_the_retries_added() {
    for _ in 0..100 {
        always_failing().await.unwrap_err();
    }
    let stats = registry().snapshot();
    let r = stats.retry("load.budgeted").unwrap();
    // 100 calls at once: 10% of them, plus the floor of 10 retries a second over the 10 s window.
    assert_eq!(r.retries, 10 + 100, "{r}");
    assert!(r.budget_exhausted > 0);
    assert!(registry().retry_budget("load.budgeted").is_some());
}

static RATED: Runs = Runs::new();

#[circuit_breaker(name = "load.rate_rule", failure_rate = 0.5, window = 10)]
async fn half_failing() -> Result<(), AppError> {
    if RATED.bump().is_multiple_of(2) {
        Err(AppError::Status(503))
    } else {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_breaker_on_the_rate_rule_opens_at_the_failure_rate() {
    for _ in 0..9 {
        let _ = half_failing().await;
    }
    let breaker = registry().circuit_breaker("load.rate_rule").unwrap();
    assert_eq!(
        breaker.state(),
        CircuitState::Closed,
        "9 calls: below min_calls (10)"
    );
    let _ = half_failing().await;
    assert_eq!(
        breaker.state(),
        CircuitState::Open,
        "5 failures of 10 calls"
    );
}

#[timeout(secs = 5)]
#[rate_limit(rate = 1, per = "10s", wait = "2s")]
async fn waits_under_a_timeout() -> Result<(), AppError> {
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_wait_for_a_permit_shorter_than_the_timeout_above_is_allowed() {
    waits_under_a_timeout().await.unwrap();
    let err = waits_under_a_timeout().await.unwrap_err();
    assert!(
        matches!(err, AppError::Reliability(ref e) if e.is_rate_limited()),
        "{err:?}"
    );
}
