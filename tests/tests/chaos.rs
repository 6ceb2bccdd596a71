//! Chaos soak: 50,000 calls at concurrency 256 through the full recommended stack, against a service
//! that fails, slows down, hangs and panics, with callers that give up early. Every call ends by its
//! deadline, every call is accounted for in the registry, no task leaks, the cache stays within
//! `max_size`, and the breaker recovers once the faults stop. Paused time keeps it to seconds.

mod common;

use std::sync::Arc;
use std::time::Duration;

use reliability::testing::FaultInjector;
use reliability::{
    Cache, CircuitState, PolicyKind, PolicyStats, circuit_breaker, fallback, registry, retry,
    timeout,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum AppError {
    #[error("service down")]
    Down,
    #[error(transparent)]
    Reliability(#[from] reliability::Error),
}

const CALLS: u64 = 50_000;
const CONCURRENCY: usize = 256;
const KEYS: u64 = 1 << 20;
const MAX_SIZE: u64 = 256;
const MS: Duration = Duration::from_millis(1);
/// The deadline of every call. One run of the stack takes at most about 85 ms (3 attempts of 20 ms,
/// 2 waits of 10 ms, each rounded up to tokio's 1 ms tick, and an immediate fallback); a caller that
/// waits for another caller's run of the same key, which is cancelled or panics, then runs its own.
const DEADLINE: Duration = Duration::from_secs(1);

async fn canned(_service: FaultInjector<AppError>, key: u64) -> String {
    format!("canned {key}")
}

#[fallback(canned)]
#[retry(max = 3, delay = "2ms", max_delay = "10ms", jitter = "full")]
#[circuit_breaker(
    name = "chaos",
    failure_threshold = 10,
    success_threshold = 2,
    cooldown = "20ms"
)]
#[timeout(ms = 20)]
async fn call_service(service: FaultInjector<AppError>, key: u64) -> Result<String, AppError> {
    service.inject().await?;
    tokio::task::yield_now().await;
    Ok(format!("value {key}"))
}

/// How one caller's call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum End {
    Ok,
    Err,
    /// The caller gave up (dropped the call) before it finished.
    Cancelled,
    Panicked,
    /// Still running at its deadline.
    Late,
}

fn stats(kind: PolicyKind, name: &str) -> PolicyStats {
    registry()
        .snapshot()
        .get(kind, name)
        .cloned()
        .expect("registered")
}

/// Calls that reached a layer and ended without an outcome (dropped or panicked inside it).
fn unfinished(p: &PolicyStats) -> u64 {
    let outcomes = match p.kind {
        PolicyKind::Retry => p.successes + p.failures,
        PolicyKind::Timeout => p.successes + p.failures + p.timeouts,
        PolicyKind::CircuitBreaker => p.successes + p.failures + p.rejections,
        PolicyKind::Fallback => p.successes + p.failures + p.fallbacks_served(),
        PolicyKind::Cache => {
            assert_eq!(p.calls, p.hits + p.misses + p.coalesced, "{p}");
            return p.misses - (p.successes + p.failures);
        }
        _ => unreachable!(),
    };
    p.calls - outcomes
}

/// A small deterministic generator for the callers' choices.
fn mix(n: u64) -> u64 {
    let mut state = n;
    common::splitmix(&mut state)
}

#[tokio::test(start_paused = true)]
async fn chaos_soak() {
    // The injected panics are expected: keep them out of the output.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.to_string().contains("injected panic") {
            report(info);
        }
    }));
    let baseline = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let service = FaultInjector::builder(|| AppError::Down)
        .seed(2024)
        .error_rate(0.1)
        .latency(0.2, 5 * MS)
        .hang_rate(0.01)
        .panic_rate(0.002)
        .build()
        .unwrap();
    let cache: Arc<Cache<u64, String>> =
        Arc::new(Cache::builder("chaos").max_size(MAX_SIZE).build().unwrap());
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    let mut ends = std::collections::HashMap::<End, u64>::new();
    let mut longest = Duration::ZERO;
    let mut reap = |result: Result<(End, Duration), tokio::task::JoinError>| {
        let end = match result {
            Ok((end, took)) => {
                longest = longest.max(took);
                end
            }
            Err(error) => {
                assert!(error.is_panic(), "{error}");
                End::Panicked
            }
        };
        *ends.entry(end).or_default() += 1;
    };
    for n in 0..CALLS {
        let permit = slots.clone().acquire_owned().await.unwrap();
        // An outage now and then: the next 20 calls to the service fail.
        if n % 10_000 == 5_000 {
            service.fail_next(20);
        }
        let (service, cache) = (service.clone(), cache.clone());
        let key = mix(n) % KEYS;
        // One caller in 20 gives up after 0 to 39 ms.
        let patience = mix(n ^ 0xCA11)
            .is_multiple_of(20)
            .then(|| MS * (mix(n ^ 0x7) % 40) as u32);
        // Callers arrive spread over time (with paused time, all would arrive at one instant).
        let think = MS * (mix(n ^ 0x71) % 40) as u32;
        tasks.spawn(async move {
            tokio::time::sleep(think).await;
            let start = tokio::time::Instant::now();
            let call = cache.get_or_try_insert(key, call_service(service.clone(), key));
            let end = match patience {
                None => match tokio::time::timeout(DEADLINE, call).await {
                    Ok(Ok(_)) => End::Ok,
                    Ok(Err(_)) => End::Err,
                    Err(_) => End::Late,
                },
                Some(patience) => match tokio::time::timeout(patience, call).await {
                    Ok(Ok(_)) => End::Ok,
                    Ok(Err(_)) => End::Err,
                    Err(_) => End::Cancelled,
                },
            };
            drop(permit);
            (end, start.elapsed())
        });
        while let Some(result) = tasks.try_join_next() {
            reap(result);
        }
    }
    while let Some(result) = tasks.join_next().await {
        reap(result);
    }
    let count = |end: End| ends.get(&end).copied().unwrap_or(0);

    // Every call ended, by its deadline, and is accounted for.
    assert_eq!(count(End::Late), 0);
    assert!(longest <= DEADLINE);
    println!("{ends:?}; longest call {longest:?}");
    assert_eq!(ends.values().sum::<u64>(), CALLS);
    let injected = service.injected();
    assert!(
        count(End::Panicked) > 0 && count(End::Cancelled) > 0 && injected.hangs > 0,
        "{ends:?} {injected:?}"
    );
    let gone = count(End::Panicked) + count(End::Cancelled);
    let cache_stats = stats(PolicyKind::Cache, "chaos");
    assert_eq!(cache_stats.calls, CALLS, "{cache_stats}");
    assert_eq!(unfinished(&cache_stats), gone, "{cache_stats}");
    assert_eq!(
        cache_stats.hits + cache_stats.coalesced + cache_stats.successes,
        count(End::Ok),
        "{cache_stats}"
    );
    assert_eq!(cache_stats.failures, 0, "{cache_stats}");
    let fallback = stats(PolicyKind::Fallback, "chaos::call_service");
    let retry = stats(PolicyKind::Retry, "chaos::call_service");
    let breaker = stats(PolicyKind::CircuitBreaker, "chaos");
    let timeout = stats(PolicyKind::Timeout, "chaos::call_service");
    // The fallback serves every failure: callers see errors only when they gave up.
    assert_eq!(fallback.failures, 0, "{fallback}");
    assert_eq!(count(End::Err), 0);
    assert!(fallback.calls <= cache_stats.misses, "{fallback}");
    println!("{cache_stats}\n{fallback}\n{retry}\n{breaker}\n{timeout}\n{injected:?}");
    for p in [&fallback, &retry, &breaker, &timeout] {
        assert!(unfinished(p) <= gone, "{p}");
    }
    // Each attempt below the retry reached the breaker; each admitted one reached the timeout.
    let attempts = retry.calls + retry.retries;
    assert!(
        breaker.calls <= attempts && breaker.calls + gone >= attempts,
        "{breaker} / {retry}"
    );
    assert_eq!(
        timeout.calls,
        breaker.calls - breaker.rejections,
        "{timeout} / {breaker}"
    );
    assert!(breaker.openings > 0 && breaker.rejections > 0, "{breaker}");
    assert!(
        timeout.timeouts >= injected.hangs.saturating_sub(gone),
        "{timeout}"
    );

    // No task leaked.
    assert_eq!(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
        baseline
    );

    // Memory stays bounded.
    cache.run_pending_tasks().await;
    assert!(
        cache.entry_count() <= MAX_SIZE,
        "{} entries",
        cache.entry_count()
    );

    // Once the faults stop, the breaker recovers.
    service.heal();
    tokio::time::sleep(Duration::from_millis(20)).await;
    for key in 0..10 {
        assert_eq!(
            call_service(service.clone(), KEYS + key).await,
            Ok(format!("value {}", KEYS + key))
        );
    }
    let breaker = registry().circuit_breaker("chaos").unwrap();
    assert_eq!(breaker.state(), CircuitState::Closed);
}
