//! Cancellation at every await point: each layer alone and the full recommended stack are polled
//! `k` times and dropped, for every `k` until the call completes; afterwards the breaker's slots,
//! the cache (no half-inserted or stuck entry: a later call for the key runs) and the registry
//! counters are consistent.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::Poll;
use std::time::Duration;

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

const MS: Duration = Duration::from_millis(1);

/// Polls `fut` at most `k` times, letting 1 ms of paused time pass after each pending poll (so
/// timers below fire), then drops it. `Some(output)` if it completed.
async fn poll_then_drop<F: Future>(fut: F, k: usize) -> Option<F::Output> {
    let mut fut = pin!(fut);
    for _ in 0..k {
        if let Poll::Ready(out) = futures::poll!(fut.as_mut()) {
            return Some(out);
        }
        tokio::time::sleep(MS).await;
    }
    None
}

/// A service with several await points: it yields, waits, yields again. The first call of each
/// `attempt % fail_every == 0` fails.
async fn service(runs: &AtomicU32, fail_every: u32) -> Result<String, AppError> {
    let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::task::yield_now().await;
    tokio::time::sleep(2 * MS).await;
    tokio::task::yield_now().await;
    if fail_every != 0 && run.is_multiple_of(fail_every) {
        Err(AppError::Down)
    } else {
        Ok(format!("run {run}"))
    }
}

fn stats(get: impl Fn(&reliability::Snapshot) -> Option<&PolicyStats>) -> PolicyStats {
    get(&registry().snapshot()).cloned().expect("registered")
}

/// Calls that reached a layer and ended with no outcome recorded: dropped (or panicked) inside it.
/// Each layer's outcomes are as `PolicyStats` documents them.
fn unfinished(p: &PolicyStats) -> u64 {
    use reliability::PolicyKind::*;
    let (reached, outcomes) = match p.kind {
        Retry => (p.calls, p.successes + p.failures),
        Timeout => (p.calls, p.successes + p.failures + p.timeouts),
        CircuitBreaker => (p.calls, p.successes + p.failures + p.rejections),
        Fallback => (p.calls, p.successes + p.failures + p.fallbacks_served()),
        Cache => {
            assert_eq!(p.calls, p.hits + p.misses + p.coalesced, "{p}");
            (p.misses, p.successes + p.failures)
        }
        _ => unreachable!(),
    };
    reached
        .checked_sub(outcomes)
        .unwrap_or_else(|| panic!("more outcomes than calls: {p}"))
}

/// Drives `call(k)` for k = 0, 1, 2, … until it completes, each time polling it `k` times and
/// dropping it, then running `after(k, finished)`. Returns the number of calls dropped unfinished
/// after at least one poll.
async fn every_k<F, Fut>(mut call: F, mut after: impl AsyncFnMut(usize, bool)) -> u64
where
    F: FnMut(usize) -> Fut,
    Fut: Future,
{
    let mut dropped = 0;
    for k in 0..1_000 {
        let done = poll_then_drop(call(k), k).await.is_some();
        if !done && k > 0 {
            dropped += 1;
        }
        after(k, done).await;
        if done {
            assert!(
                k > 2,
                "the call completed at once: no await point was tested"
            );
            return dropped;
        }
    }
    panic!("the call never completed");
}

// The breaker alone: a half-open trial cancelled at every await point frees its slot.

#[tokio::test(start_paused = true)]
async fn breaker_trial_cancelled_anywhere_frees_its_slot() {
    let runs = AtomicU32::new(0);
    let mut dropped = 0;
    for k in 0.. {
        let breaker = CircuitBreaker::builder(format!("cancellation.trial.{k}"))
            .failure_threshold(1)
            .success_threshold(2)
            .cooldown(Duration::from_secs(1))
            .build()
            .unwrap();
        let _ = breaker.call(async { Err::<(), _>(AppError::Down) }).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let done = poll_then_drop(breaker.call(service(&runs, 0)), k)
            .await
            .is_some();
        let p = stats(|s| s.circuit_breaker(breaker.name()));
        assert_eq!(p.calls, 1 + u64::from(k > 0), "{p}");
        assert_eq!(p.successes, u64::from(done), "{p}");
        assert_eq!(p.failures, 1, "{p}");
        assert_eq!(unfinished(&p), u64::from(k > 0 && !done), "{p}");
        if k > 0 {
            assert_eq!(breaker.state(), CircuitState::HalfOpen);
        }
        // Both slots are free: two trials run at once, a third is rejected.
        let gate = tokio::sync::Notify::new();
        let held = || {
            breaker.call(async {
                gate.notified().await;
                Ok::<_, AppError>(())
            })
        };
        let (mut first, mut second) = (pin!(held()), pin!(held()));
        assert!(futures::poll!(first.as_mut()).is_pending());
        assert!(futures::poll!(second.as_mut()).is_pending());
        let third = breaker.call(async { Ok::<_, AppError>(()) }).await;
        assert!(
            matches!(third, Err(AppError::Reliability(reliability::Error::CircuitOpen { retry_after, .. })) if retry_after.is_zero())
        );
        gate.notify_waiters();
        first.await.unwrap();
        second.await.unwrap();
        assert_eq!(breaker.state(), CircuitState::Closed);
        if done {
            assert!(k > 2);
            break;
        }
        dropped += u64::from(k > 0);
    }
    assert!(dropped >= 3);
}

// Each layer alone, through the attributes.

static RETRY_RUNS: AtomicU32 = AtomicU32::new(0);

#[retry(max = 3, delay = "5ms", jitter = "none")]
async fn retried(_k: usize) -> Result<String, AppError> {
    service(&RETRY_RUNS, 2).await?;
    service(&RETRY_RUNS, 0).await
}

#[tokio::test(start_paused = true)]
async fn retry_cancelled_anywhere_counts_exactly() {
    let dropped = every_k(retried, async |k, _| {
        if k == 0 {
            return; // never polled: not registered yet
        }
        let p = stats(|s| s.retry("cancellation::retried"));
        assert_eq!(p.failures, 0, "{p}");
        assert!(p.successes <= 1);
    })
    .await;
    let p = stats(|s| s.retry("cancellation::retried"));
    assert_eq!(unfinished(&p), dropped, "{p}");
    assert!(retried(0).await.is_ok());
}

static TIMEOUT_RUNS: AtomicU32 = AtomicU32::new(0);

#[timeout(ms = 5)]
async fn bounded(k: usize) -> Result<String, AppError> {
    service(&TIMEOUT_RUNS, 0).await?;
    if k.is_multiple_of(2) {
        tokio::time::sleep(10 * MS).await; // expires
    }
    service(&TIMEOUT_RUNS, 0).await
}

#[tokio::test(start_paused = true)]
async fn timeout_cancelled_anywhere_counts_exactly() {
    let dropped = every_k(bounded, async |_, _| {}).await;
    let p = stats(|s| s.timeout("cancellation::bounded"));
    assert_eq!(unfinished(&p), dropped, "{p}");
    assert!(p.timeouts >= 1, "{p}");
}

static BREAKER_RUNS: AtomicU32 = AtomicU32::new(0);

#[circuit_breaker(
    name = "cancellation.breaker",
    failure_threshold = 2,
    success_threshold = 1,
    cooldown = "10ms"
)]
async fn guarded(_k: usize) -> Result<String, AppError> {
    service(&BREAKER_RUNS, 0).await?;
    service(&BREAKER_RUNS, 0).await
}

#[tokio::test(start_paused = true)]
async fn breaker_layer_cancelled_anywhere_counts_exactly() {
    let dropped = every_k(guarded, async |_, _| {
        if let Some(breaker) = registry().circuit_breaker("cancellation.breaker") {
            assert_eq!(breaker.state(), CircuitState::Closed);
        }
    })
    .await;
    let p = stats(|s| s.circuit_breaker("cancellation.breaker"));
    assert_eq!(unfinished(&p), dropped, "{p}");
    assert_eq!((p.failures, p.rejections, p.openings), (0, 0, 0), "{p}");
}

static FALLBACK_RUNS: AtomicU32 = AtomicU32::new(0);

async fn spare(_k: usize) -> Result<String, AppError> {
    service(&FALLBACK_RUNS, 0).await
}

#[fallback(spare)]
async fn degraded(_k: usize) -> Result<String, AppError> {
    service(&FALLBACK_RUNS, 1).await // always fails: the fallback's awaits are tested too
}

#[tokio::test(start_paused = true)]
async fn fallback_cancelled_anywhere_counts_exactly() {
    let dropped = every_k(degraded, async |_, _| {}).await;
    let p = stats(|s| s.fallback("cancellation::degraded"));
    assert_eq!(unfinished(&p), dropped, "{p}");
    assert_eq!(p.fallbacks_served(), 1, "{p}");
}

static CACHE_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(max_size = 100)]
async fn remembered(k: usize) -> Result<String, AppError> {
    service(&CACHE_RUNS, 0).await?;
    Ok(format!("value {k}"))
}

/// Two callers of one key: the one that runs is dropped at every await point; the other, waiting
/// for it, must not stick: it completes with the value, and the key is cached afterwards.
#[tokio::test(start_paused = true)]
async fn cache_cancelled_anywhere_leaves_no_stuck_entry() {
    let mut dropped = 0;
    for k in 0..1_000 {
        let key = 1_000 + k;
        // Boxed, so that dropping it drops the call.
        let mut runner = Box::pin(remembered(key));
        let mut waiter = Box::pin(remembered(key));
        let mut done = false;
        for _ in 0..k {
            if futures::poll!(runner.as_mut()).is_ready() {
                done = true;
                break;
            }
            let _ = futures::poll!(waiter.as_mut());
            tokio::time::sleep(MS).await;
        }
        drop(runner);
        dropped += u64::from(!done && k > 0);
        let before = CACHE_RUNS.load(Ordering::SeqCst);
        let waited = tokio::time::timeout(Duration::from_secs(1), waiter).await;
        assert_eq!(
            waited.unwrap_or_else(|_| panic!("k = {k}: the waiter is stuck")),
            Ok(format!("value {key}"))
        );
        if !done {
            assert!(
                CACHE_RUNS.load(Ordering::SeqCst) > before,
                "the waiter ran its own call"
            );
        }
        // Stored once, whole: the next call is a hit and runs nothing.
        let runs = CACHE_RUNS.load(Ordering::SeqCst);
        assert_eq!(remembered(key).await, Ok(format!("value {key}")));
        assert_eq!(CACHE_RUNS.load(Ordering::SeqCst), runs);
        if done {
            break;
        }
    }
    assert!(dropped >= 3);
    let p = stats(|s| s.cache("cancellation::remembered"));
    assert_eq!(unfinished(&p), dropped, "{p}");
}

// The full recommended stack.

static STACK_RUNS: AtomicU32 = AtomicU32::new(0);

async fn canned(k: usize) -> String {
    format!("canned {k}")
}

#[cached(max_size = 1_000)]
#[fallback(canned)]
#[retry(max = 3, delay = "3ms", jitter = "none")]
#[circuit_breaker(name = "cancellation.stack", failure_threshold = 5, cooldown = "20ms")]
#[timeout(ms = 20)]
async fn stack(k: usize) -> Result<String, AppError> {
    service(&STACK_RUNS, 2).await?;
    Ok(format!("stack {k}"))
}

#[tokio::test(start_paused = true)]
async fn full_stack_cancelled_anywhere_stays_consistent() {
    let dropped = every_k(stack, async |k, done| {
        // Nothing stuck: the same key, called again, completes and is then cached.
        let out = tokio::time::timeout(Duration::from_secs(1), stack(k)).await;
        let out = out.expect("a later call of the key completes").unwrap();
        assert!(
            out == format!("stack {k}") || out == format!("canned {k}"),
            "{out}"
        );
        let runs = STACK_RUNS.load(Ordering::SeqCst);
        if out.starts_with("stack") {
            assert_eq!(stack(k).await.unwrap(), out);
            assert_eq!(STACK_RUNS.load(Ordering::SeqCst), runs, "cached");
        }
        let _ = done;
    })
    .await;
    assert!(dropped >= 3);
    let cache = stats(|s| s.cache("cancellation::stack"));
    assert_eq!(unfinished(&cache), dropped, "{cache}");
    for inner in [
        stats(|s| s.fallback("cancellation::stack")),
        stats(|s| s.retry("cancellation::stack")),
        stats(|s| s.circuit_breaker("cancellation.stack")),
        stats(|s| s.timeout("cancellation::stack")),
    ] {
        assert!(unfinished(&inner) <= dropped, "{inner}");
    }
    let breaker = registry().circuit_breaker("cancellation.stack").unwrap();
    assert_eq!(breaker.state(), CircuitState::Closed);
}
