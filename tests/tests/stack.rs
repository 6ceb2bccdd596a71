//! Stacked attributes: an open breaker's rejection is not retried, and the full recommended stack
//! (cached > fallback > retry > circuit_breaker > timeout) against a service that fails, hangs and
//! recovers.

mod common;

use std::future::pending;
use std::sync::Mutex;
use std::time::Duration;

use common::{AppError, Runs, secs};
use reliability::{CircuitState, cached, circuit_breaker, fallback, registry, retry, timeout};
use tokio::time::{Instant, advance};

#[retry(max = 5, backoff = "fixed", delay = "1s", jitter = "none")]
#[circuit_breaker(name = "stack.no_retry", failure_threshold = 2, cooldown = 60)]
async fn rejected_not_retried(runs: &Runs) -> Result<u32, AppError> {
    runs.bump();
    Err(AppError::Status(503))
}

#[tokio::test(start_paused = true)]
async fn a_rejection_of_an_open_breaker_is_not_retried() {
    let runs = Runs::new();
    let start = Instant::now();
    let err = rejected_not_retried(&runs).await.unwrap_err();
    // Attempt 1 fails, wait, attempt 2 fails and opens the breaker, wait, attempt 3 is rejected:
    // the retry stops there instead of waiting for attempts 4 and 5.
    assert!(err.is_circuit_open(), "{err:?}");
    assert_eq!(runs.get(), 2);
    assert_eq!(start.elapsed(), secs(2));

    let start = Instant::now();
    let err = rejected_not_retried(&runs).await.unwrap_err();
    assert!(err.is_circuit_open());
    assert_eq!(runs.get(), 2, "the body did not run");
    assert_eq!(start.elapsed(), Duration::ZERO, "one attempt, no wait");

    let stats = registry().snapshot();
    let r = stats.retry("stack::rejected_not_retried").unwrap();
    assert_eq!((r.calls, r.retries, r.rejections, r.failures), (2, 2, 2, 2));
    let cb = stats.circuit_breaker("stack.no_retry").unwrap();
    assert_eq!((cb.calls, cb.failures, cb.rejections), (4, 2, 2));
}

#[fallback(degraded)]
#[retry(max = 5, backoff = "fixed", delay = "1s", jitter = "none")]
#[circuit_breaker(
    name = "stack.fallback_takes_over",
    failure_threshold = 1,
    cooldown = 60
)]
async fn falls_back_on_rejection(runs: &Runs) -> Result<String, AppError> {
    runs.bump();
    Err(AppError::Status(503))
}

async fn degraded(_runs: &Runs) -> Result<String, AppError> {
    Ok("degraded".to_owned())
}

#[tokio::test(start_paused = true)]
async fn a_fallback_above_takes_over_a_rejection() {
    let runs = Runs::new();
    let start = Instant::now();
    assert_eq!(falls_back_on_rejection(&runs).await.unwrap(), "degraded");
    assert_eq!(
        runs.get(),
        1,
        "the first failure opened the breaker; the retry was rejected"
    );
    assert_eq!(start.elapsed(), secs(1));

    let start = Instant::now();
    assert_eq!(falls_back_on_rejection(&runs).await.unwrap(), "degraded");
    assert_eq!(runs.get(), 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
    let stats = registry().snapshot();
    let f = stats.fallback("stack::falls_back_on_rejection").unwrap();
    assert_eq!(f.fallbacks, [("degraded".to_owned(), 2)]);
}

/// What the fake service does on its next call.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Healthy,
    Failing,
    Hanging,
}

/// A fake model service.
struct Service {
    mode: Mutex<Mode>,
    primary: Runs,
    backup: Runs,
}

impl Service {
    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap()
    }
}

#[cached(ttl = 3600, key = query.trim().to_lowercase())]
#[fallback(backup_model, canned)]
#[retry(max = 3, backoff = "fixed", delay = "1s", jitter = "none")]
#[circuit_breaker(
    name = "stack.model",
    failure_threshold = 3,
    success_threshold = 2,
    cooldown = 60
)]
#[timeout(secs = 5)]
async fn model(service: &Service, query: String) -> Result<String, AppError> {
    service.primary.bump();
    match service.mode() {
        Mode::Healthy => Ok(format!("model: {}", query.trim())),
        Mode::Failing => Err(AppError::Status(503)),
        Mode::Hanging => pending().await,
    }
}

async fn backup_model(service: &Service, _query: String) -> Result<String, AppError> {
    service.backup.bump();
    Err(AppError::Status(429))
}

async fn canned(_service: &Service, query: String) -> String {
    format!("cannot answer {:?} now", query.trim())
}

const NAME: &str = "stack::model";

/// The counters of every layer: (cache hits, misses), (retry calls, retries), (breaker failures,
/// rejections, openings, state), (timeouts), (served by canned).
#[derive(Debug, PartialEq)]
struct Counters {
    cache: (u64, u64),
    retry: (u64, u64),
    breaker: (u64, u64, u64, Option<CircuitState>),
    timeouts: u64,
    canned: u64,
}

fn counters() -> Counters {
    let s = registry().snapshot();
    let cache = s.cache(NAME).unwrap();
    let retry = s.retry(NAME).unwrap();
    let breaker = s.circuit_breaker("stack.model").unwrap();
    let fallback = s.fallback(NAME).unwrap();
    assert_eq!(
        fallback.fallbacks[0],
        ("backup_model".to_owned(), 0),
        "the backup never serves"
    );
    Counters {
        cache: (cache.hits, cache.misses),
        retry: (retry.calls, retry.retries),
        breaker: (
            breaker.failures,
            breaker.rejections,
            breaker.openings,
            breaker.state,
        ),
        timeouts: s.timeout(NAME).map_or(0, |t| t.timeouts),
        canned: fallback.fallbacks[1].1,
    }
}

#[tokio::test(start_paused = true)]
async fn the_recommended_stack_through_failure_hang_and_recovery() {
    let service = Service {
        mode: Mutex::new(Mode::Healthy),
        primary: Runs::new(),
        backup: Runs::new(),
    };
    let ask = |q: &str| model(&service, q.to_owned());

    // 1. Healthy: the model answers; an equal query (after normalisation) is a cache hit.
    assert_eq!(ask("Hello").await.unwrap(), "model: Hello");
    assert_eq!(ask(" hello ").await.unwrap(), "model: Hello");
    assert_eq!(service.primary.get(), 1);
    assert_eq!(
        counters(),
        Counters {
            cache: (1, 1),
            retry: (1, 0),
            breaker: (0, 0, 0, Some(CircuitState::Closed)),
            timeouts: 0,
            canned: 0
        }
    );

    // 2. Failing: three attempts (waits 1 s, 1 s) fail and open the breaker; the backup fails too;
    //    the canned answer serves.
    service.set(Mode::Failing);
    let start = Instant::now();
    assert_eq!(ask("outage").await.unwrap(), "cannot answer \"outage\" now");
    assert_eq!(start.elapsed(), secs(2));
    assert_eq!((service.primary.get(), service.backup.get()), (4, 1));
    assert_eq!(
        counters(),
        Counters {
            cache: (1, 2),
            retry: (2, 2),
            breaker: (3, 0, 1, Some(CircuitState::Open)),
            timeouts: 0,
            canned: 1
        }
    );

    // 3. Open: a new query is rejected at once, not retried, and degrades without touching the model.
    let start = Instant::now();
    assert_eq!(
        ask("while open").await.unwrap(),
        "cannot answer \"while open\" now"
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!((service.primary.get(), service.backup.get()), (4, 2));
    assert_eq!(
        counters(),
        Counters {
            cache: (1, 3),
            retry: (3, 2),
            breaker: (3, 1, 1, Some(CircuitState::Open)),
            timeouts: 0,
            canned: 2
        }
    );
    // The canned answer is an `Ok`, but a fallback served it: the cache above does not store it, so
    // the same question asks again (rejected at once again) instead of freezing the outage answer
    // for the whole ttl.
    assert_eq!(
        ask("While open").await.unwrap(),
        "cannot answer \"While open\" now"
    );
    assert_eq!((service.primary.get(), service.backup.get()), (4, 3));
    assert_eq!(counters().cache, (1, 4));

    // 4. After the cooldown the service hangs: the trial times out after 5 s, which counts as a
    //    failure and re-opens the breaker; the retry's next attempt is rejected, not waited for.
    advance(secs(60)).await;
    service.set(Mode::Hanging);
    let start = Instant::now();
    assert_eq!(ask("hang").await.unwrap(), "cannot answer \"hang\" now");
    assert_eq!(start.elapsed(), secs(5 + 1));
    assert_eq!(service.primary.get(), 5);
    assert_eq!(
        counters(),
        Counters {
            cache: (1, 5),
            retry: (5, 3),
            breaker: (4, 3, 2, Some(CircuitState::Open)),
            timeouts: 1,
            canned: 4
        }
    );

    // 5. Recovered: after the cooldown two trial successes close the breaker.
    advance(secs(60)).await;
    service.set(Mode::Healthy);
    assert_eq!(ask("back").await.unwrap(), "model: back");
    assert_eq!(counters().breaker.3, Some(CircuitState::HalfOpen));
    assert_eq!(ask("again").await.unwrap(), "model: again");
    assert_eq!(
        ask("AGAIN").await.unwrap(),
        "model: again",
        "served from the cache"
    );
    assert_eq!(service.primary.get(), 7);
    assert_eq!(
        counters(),
        Counters {
            cache: (2, 7),
            retry: (7, 3),
            breaker: (4, 3, 2, Some(CircuitState::Closed)),
            timeouts: 1,
            canned: 4
        }
    );
}

static BEHIND_CACHE: Runs = Runs::new();

#[cached]
#[circuit_breaker(name = "stack.behind_cache", failure_threshold = 1, cooldown = 60)]
async fn behind_cache(key: u32) -> Result<u32, AppError> {
    if BEHIND_CACHE.bump() == 2 {
        return Err(AppError::Status(503));
    }
    Ok(key)
}

/// A hit never reaches the layer below: the breaker under a cache counts only the calls that ran,
/// and an open breaker neither rejects hits nor lets them hold a trial slot.
#[tokio::test(start_paused = true)]
async fn cache_hits_are_not_calls_of_the_breaker_below() {
    for _ in 0..10 {
        assert_eq!(behind_cache(1).await.unwrap(), 1);
    }
    let breaker_calls = |s: &reliability::Snapshot| {
        let b = s.circuit_breaker("stack.behind_cache").unwrap();
        (b.calls, b.rejections)
    };
    assert_eq!(
        breaker_calls(&registry().snapshot()),
        (1, 0),
        "one miss, nine hits"
    );

    // Key 2 fails and opens the breaker; key 1's hits still answer, and are not rejections.
    behind_cache(2).await.unwrap_err();
    let breaker = registry().circuit_breaker("stack.behind_cache").unwrap();
    assert_eq!(breaker.state(), CircuitState::Open);
    for _ in 0..5 {
        assert_eq!(behind_cache(1).await.unwrap(), 1);
    }
    assert_eq!(breaker_calls(&registry().snapshot()), (2, 0));

    // After the cooldown, hits do not move the breaker to half-open or take its trial slot.
    advance(secs(60)).await;
    assert_eq!(behind_cache(1).await.unwrap(), 1);
    assert_eq!(
        breaker.state(),
        CircuitState::Open,
        "a hit is not a trial call"
    );
    assert_eq!(behind_cache(3).await.unwrap(), 3, "the trial slot is free");
    assert_eq!(BEHIND_CACHE.get(), 3);
}
