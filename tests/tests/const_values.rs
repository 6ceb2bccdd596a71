//! Values given as constants are the values used: a retry's attempts and waits, a timeout's
//! deadline, a cache's time to live, a bulkhead's bound, a breaker's threshold, all from `const`
//! items.

mod common;

use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use common::{AppError, Attempts, Gate, Runs, ms, secs};
use reliability::{bulkhead, cached, circuit_breaker, retry, timeout};
use tokio::time::{Instant, advance};

const MAX_ATTEMPTS: u32 = 4;
const DELAY: Duration = Duration::from_millis(100);
const TIMEOUT_SECS: u64 = 7;
const TIMEOUT: Duration = Duration::from_millis(1500);
const SLOTS: u32 = 2;
const CACHE_TTL: Duration = Duration::from_secs(10);

mod limits {
    pub(crate) const FAILURES: u32 = 3;
}

#[retry(max = MAX_ATTEMPTS, backoff = "fixed", delay = DELAY, jitter = "none")]
async fn always_fails(attempts: Arc<Attempts>) -> Result<(), AppError> {
    attempts.record();
    Err(AppError::Status(503))
}

#[tokio::test(start_paused = true)]
async fn retry_makes_max_attempts_waiting_delay_between_them() {
    let attempts = Arc::new(Attempts::new());
    assert_eq!(
        always_fails(attempts.clone()).await.unwrap_err().status(),
        Some(503)
    );
    assert_eq!(attempts.starts().len(), MAX_ATTEMPTS as usize);
    assert_eq!(attempts.waits(), vec![ms(100); MAX_ATTEMPTS as usize - 1]);
}

#[retry(max = 2 * 3, delay = 0)]
async fn fails_then_succeeds(runs: &Runs, ok_at: u32) -> Result<u32, AppError> {
    let n = runs.bump();
    if n < ok_at {
        Err(AppError::Status(500))
    } else {
        Ok(n)
    }
}

#[tokio::test(start_paused = true)]
async fn a_const_expression_is_evaluated() {
    let runs = Runs::new();
    assert_eq!(fails_then_succeeds(&runs, 6).await.unwrap(), 6);
    let runs = Runs::new();
    assert!(fails_then_succeeds(&runs, 7).await.is_err());
    assert_eq!(runs.get(), 6);
}

#[timeout(secs = TIMEOUT_SECS)]
async fn hangs_for_secs() -> Result<(), AppError> {
    pending::<()>().await;
    Ok(())
}

#[timeout(secs = TIMEOUT)]
async fn hangs_for_duration() -> Result<(), AppError> {
    pending::<()>().await;
    Ok(())
}

#[timeout(ms = TIMEOUT_SECS * 100)]
async fn hangs_for_ms() -> Result<(), AppError> {
    pending::<()>().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn timeout_fires_at_the_constant() {
    let start = Instant::now();
    assert!(hangs_for_secs().await.unwrap_err().is_timeout());
    assert_eq!(start.elapsed(), secs(TIMEOUT_SECS));

    let start = Instant::now();
    assert!(hangs_for_duration().await.unwrap_err().is_timeout());
    assert_eq!(start.elapsed(), TIMEOUT);

    let start = Instant::now();
    assert!(hangs_for_ms().await.unwrap_err().is_timeout());
    assert_eq!(start.elapsed(), ms(700));
}

#[bulkhead(max = SLOTS)]
async fn held(gate: &Gate) -> Result<(), AppError> {
    gate.pass().await;
    Ok(())
}

#[tokio::test]
async fn bulkhead_admits_the_constant_number_of_calls() {
    let gate = Arc::new(Gate::new());
    let running: Vec<_> = (0..SLOTS)
        .map(|_| {
            let gate = gate.clone();
            tokio::spawn(async move { held(&gate).await })
        })
        .collect();
    while gate.waiting() < SLOTS {
        tokio::task::yield_now().await;
    }
    let err = held(&gate).await.unwrap_err();
    assert!(
        matches!(
            err,
            AppError::Reliability(reliability::Error::BulkheadFull { .. })
        ),
        "{err:?}"
    );
    gate.open(SLOTS as usize);
    for call in running {
        call.await.unwrap().unwrap();
    }
}

#[circuit_breaker(failure_threshold = limits::FAILURES)]
async fn breaks(runs: &Runs) -> Result<(), AppError> {
    runs.bump();
    Err(AppError::Status(500))
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_after_the_constant_number_of_failures() {
    let runs = Runs::new();
    for _ in 0..limits::FAILURES {
        assert_eq!(breaks(&runs).await.unwrap_err().status(), Some(500));
    }
    assert!(breaks(&runs).await.unwrap_err().is_circuit_open());
    assert_eq!(runs.get(), limits::FAILURES);
}

static CACHED_RUNS: Runs = Runs::new();

#[cached(ttl = CACHE_TTL)]
async fn expiring(n: u32) -> Result<u32, AppError> {
    Ok(n * 100 + CACHED_RUNS.bump())
}

#[tokio::test(start_paused = true)]
async fn cache_entries_live_for_the_constant() {
    assert_eq!(expiring(1).await.unwrap(), 101);
    advance(CACHE_TTL - ms(1)).await;
    assert_eq!(
        expiring(1).await.unwrap(),
        101,
        "still fresh just before the ttl"
    );
    advance(ms(1)).await;
    assert_eq!(
        expiring(1).await.unwrap(),
        102,
        "expired at the ttl: the body runs again"
    );
}
