//! Panic safety: a panic in the body reaches the caller as a panic, through every layer, and leaves
//! the breaker, the cache and the counters consistent; the next call works.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::FutureExt;
use reliability::{
    CircuitBreaker, CircuitState, PolicyStats, cached, circuit_breaker, fallback, registry, retry,
    timeout,
};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum AppError {
    #[error("service down")]
    Down,
    #[error(transparent)]
    Reliability(#[from] reliability::Error),
}

fn stats(get: impl Fn(&reliability::Snapshot) -> Option<&PolicyStats>) -> PolicyStats {
    get(&registry().snapshot()).cloned().expect("registered")
}

/// The message of a caught panic.
fn message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn a_panicking_trial_frees_its_slot_and_counts_nothing() {
    let breaker = CircuitBreaker::builder("panic_safety.trial")
        .failure_threshold(1)
        .success_threshold(1)
        .cooldown(Duration::from_secs(1))
        .build()
        .unwrap();
    let _ = breaker.call(async { Err::<(), _>(AppError::Down) }).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let caught = AssertUnwindSafe(breaker.call(async {
        tokio::task::yield_now().await;
        panic!("boom in a trial");
        #[allow(unreachable_code)]
        Ok::<(), AppError>(())
    }))
    .catch_unwind()
    .await;
    assert_eq!(message(caught.unwrap_err()), "boom in a trial");
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    let p = stats(|s| s.circuit_breaker("panic_safety.trial"));
    assert_eq!(
        (p.calls, p.successes, p.failures, p.rejections),
        (2, 0, 1, 0),
        "{p}"
    );
    // The one slot is free: the next trial runs and closes the circuit.
    breaker.call(async { Ok::<_, AppError>(()) }).await.unwrap();
    assert_eq!(breaker.state(), CircuitState::Closed);
}

static RETRY_RUNS: AtomicU32 = AtomicU32::new(0);

#[retry(max = 3, delay = 0)]
async fn retried() -> Result<u32, AppError> {
    if RETRY_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
        panic!("boom in an attempt");
    }
    Ok(1)
}

/// A panic is not an error to retry: it propagates at once.
#[tokio::test]
async fn retry_does_not_retry_a_panic() {
    let caught = AssertUnwindSafe(retried()).catch_unwind().await;
    assert_eq!(message(caught.unwrap_err()), "boom in an attempt");
    assert_eq!(RETRY_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(retried().await, Ok(1));
    let p = stats(|s| s.retry("panic_safety::retried"));
    assert_eq!(
        (p.calls, p.successes, p.failures, p.retries),
        (2, 1, 0, 0),
        "{p}"
    );
}

static FALLBACK_RUNS: AtomicU32 = AtomicU32::new(0);

async fn spare(_explode: bool) -> Result<u32, AppError> {
    FALLBACK_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(2)
}

#[fallback(spare)]
async fn primary(explode: bool) -> Result<u32, AppError> {
    if explode {
        panic!("boom in the primary");
    }
    Err(AppError::Down)
}

/// A fallback stands in for errors, not for panics.
#[tokio::test]
async fn fallback_does_not_swallow_a_panic() {
    let caught = AssertUnwindSafe(primary(true)).catch_unwind().await;
    assert_eq!(message(caught.unwrap_err()), "boom in the primary");
    assert_eq!(FALLBACK_RUNS.load(Ordering::SeqCst), 0);
    assert_eq!(primary(false).await, Ok(2));
}

static CACHE_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached]
async fn remembered(key: u32) -> Result<String, AppError> {
    let run = CACHE_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(5)).await;
    if run == 0 {
        panic!("boom in the cached body");
    }
    Ok(format!("value {key}"))
}

/// Two callers of one key; the one that runs panics. It gets the panic; the other, waiting for it,
/// runs the body itself and gets the value; the key is cached afterwards.
#[tokio::test(start_paused = true)]
async fn a_panicking_cache_fill_leaves_no_stuck_entry() {
    let runner = tokio::spawn(remembered(7));
    tokio::task::yield_now().await;
    let waiter = tokio::spawn(remembered(7));
    let runner = runner.await.unwrap_err();
    assert!(runner.is_panic());
    assert_eq!(message(runner.into_panic()), "boom in the cached body");
    let waited = tokio::time::timeout(Duration::from_secs(1), waiter).await;
    assert_eq!(
        waited.expect("not stuck").unwrap(),
        Ok("value 7".to_owned())
    );
    assert_eq!(CACHE_RUNS.load(Ordering::SeqCst), 2);
    assert_eq!(remembered(7).await, Ok("value 7".to_owned()));
    assert_eq!(CACHE_RUNS.load(Ordering::SeqCst), 2, "a hit");
    let p = stats(|s| s.cache("panic_safety::remembered"));
    assert_eq!(
        (p.calls, p.hits, p.misses, p.successes, p.failures),
        (3, 1, 2, 1, 0),
        "{p}"
    );
}

// The full recommended stack.

static STACK_RUNS: AtomicU32 = AtomicU32::new(0);

async fn canned(_key: u32) -> String {
    "canned".to_owned()
}

#[cached(max_size = 100)]
#[fallback(canned)]
#[retry(max = 3, delay = "10ms")]
#[circuit_breaker(
    name = "panic_safety.stack",
    failure_threshold = 2,
    success_threshold = 1,
    cooldown = 1
)]
#[timeout(secs = 1)]
async fn stack(key: u32) -> Result<String, AppError> {
    let run = STACK_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    match run {
        0 => Err(AppError::Down),
        1 => panic!("boom in the stack"),
        _ => Ok(format!("value {key}")),
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_through_the_full_stack_reaches_the_caller() {
    // First call: one failed attempt (counted by the breaker), then a panic on the retry.
    let caught = tokio::spawn(stack(1)).await.unwrap_err();
    assert_eq!(message(caught.into_panic()), "boom in the stack");
    let breaker = registry().circuit_breaker("panic_safety.stack").unwrap();
    assert_eq!(
        breaker.state(),
        CircuitState::Closed,
        "one failure is below the threshold"
    );
    let b = stats(|s| s.circuit_breaker("panic_safety.stack"));
    assert_eq!(
        (b.calls, b.successes, b.failures),
        (2, 0, 1),
        "the panicking attempt counts as nothing: {b}"
    );
    // The next call works, and is cached.
    assert_eq!(stack(1).await, Ok("value 1".to_owned()));
    assert_eq!(stack(1).await, Ok("value 1".to_owned()));
    assert_eq!(STACK_RUNS.load(Ordering::SeqCst), 3);
    let cache = stats(|s| s.cache("panic_safety::stack"));
    assert_eq!(
        (cache.calls, cache.hits, cache.misses, cache.successes),
        (3, 1, 2, 1),
        "{cache}"
    );
    let fallback = stats(|s| s.fallback("panic_safety::stack"));
    assert_eq!(
        (
            fallback.calls,
            fallback.successes,
            fallback.fallbacks_served()
        ),
        (2, 1, 0),
        "{fallback}"
    );
    let retry = stats(|s| s.retry("panic_safety::stack"));
    assert_eq!(
        (retry.calls, retry.successes, retry.retries),
        (2, 1, 1),
        "{retry}"
    );
    let timeout = stats(|s| s.timeout("panic_safety::stack"));
    assert_eq!(
        (timeout.calls, timeout.successes, timeout.failures),
        (3, 1, 1),
        "{timeout}"
    );
}
