//! No heap allocation per call on the happy path of every policy and of the recommended stack
//! without a cache, counted exactly by a counting global allocator.
//!
//! This file is a test binary of its own with a single test, so nothing else allocates while it
//! counts. The first call of a policy registers it (that allocates), so each case is warmed up
//! before counting.

use std::future::Future;
use std::time::Duration;

use reliability::{circuit_breaker, fallback, retry, timeout};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// The policies' own error serves as the functions' error type.
type AppError = reliability::Error;

async fn body(x: u64) -> Result<u64, AppError> {
    Ok(x + 1)
}

async fn canned(x: u64) -> Result<u64, AppError> {
    Ok(x)
}

#[retry(max = 3)]
async fn with_retry(x: u64) -> Result<u64, AppError> {
    body(x).await
}

#[timeout(secs = 30)]
async fn with_timeout(x: u64) -> Result<u64, AppError> {
    body(x).await
}

#[circuit_breaker(name = "alloc.breaker")]
async fn with_breaker(x: u64) -> Result<u64, AppError> {
    body(x).await
}

#[circuit_breaker(name = "alloc.breaker.rate", failure_rate = 0.5, window = 100)]
async fn with_rate_breaker(x: u64) -> Result<u64, AppError> {
    body(x).await
}

#[fallback(canned)]
async fn with_fallback(x: u64) -> Result<u64, AppError> {
    body(x).await
}

#[fallback(canned)]
#[retry(max = 3)]
#[circuit_breaker(name = "alloc.stack")]
#[timeout(secs = 30)]
async fn full_stack(x: u64) -> Result<u64, AppError> {
    body(x).await
}

/// Heap allocations made by `calls` calls of `f`, after ten calls to warm it up: the fewest of
/// three rounds. The allocator counts the whole process, and on a loaded machine the test
/// harness's own threads have been seen to allocate a few times during a round; an allocation per
/// call shows in every round (at least `calls` of them), such noise not.
async fn allocations<F, Fut>(calls: u64, mut f: F) -> usize
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<u64, AppError>>,
{
    for x in 0..10 {
        assert_eq!(f(x).await.ok(), Some(x + 1), "the happy path must succeed");
    }
    let mut fewest = usize::MAX;
    for _ in 0..3 {
        let region = Region::new(GLOBAL);
        for x in 0..calls {
            std::hint::black_box(f(x).await).ok();
        }
        let change = region.change();
        fewest = fewest.min(change.allocations + change.reallocations);
    }
    fewest
}

#[test]
fn the_happy_path_does_not_allocate() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        // The counter counts: one boxed value is one allocation.
        let region = Region::new(GLOBAL);
        std::hint::black_box(Box::new(7_u64));
        assert_eq!(region.change().allocations, 1);

        let retry = reliability::Retry::new("alloc.retry.type", Default::default());
        let timeout =
            reliability::Timeout::new("alloc.timeout.type", Duration::from_secs(30)).unwrap();
        let breaker = reliability::CircuitBreaker::builder("alloc.breaker.type")
            .build()
            .unwrap();
        let fallback = reliability::Fallback::new("alloc.fallback.type", &["canned"]);
        // Permits and slots are always free here: the happy path of each.
        let limiter = reliability::RateLimiter::builder("alloc.rate_limit.type", 1_000_000)
            .build()
            .unwrap();
        let bulkhead = reliability::Bulkhead::builder("alloc.bulkhead.type", 4)
            .build()
            .unwrap();
        let deadline = reliability::Retry::new(
            "alloc.retry.limits",
            reliability::RetryPolicy::builder()
                .deadline(Duration::from_secs(60))
                .budget(0.1)
                .build()
                .unwrap(),
        );
        let rate_calls = reliability::CircuitBreaker::builder("alloc.breaker.rate.calls")
            .window_calls(100)
            .slow_call(Duration::from_secs(1))
            .build()
            .unwrap();
        let rate_time = reliability::CircuitBreaker::builder("alloc.breaker.rate.time")
            .window_duration(Duration::from_secs(10))
            .build()
            .unwrap();

        let hedge = reliability::Hedge::builder("alloc.hedge.type", Duration::from_millis(100))
            .max(5)
            .build()
            .unwrap();
        let hedge_p95 = reliability::Hedge::builder(
            "alloc.hedge.p95",
            reliability::HedgeAfter::Percentile(95.0),
        )
        .build()
        .unwrap();

        let counts = [
            ("#[retry]", allocations(1000, with_retry).await),
            ("#[timeout]", allocations(1000, with_timeout).await),
            ("#[circuit_breaker]", allocations(1000, with_breaker).await),
            (
                "#[circuit_breaker], rate rule over the last 100 calls",
                allocations(1000, with_rate_breaker).await,
            ),
            ("#[fallback]", allocations(1000, with_fallback).await),
            ("full stack", allocations(1000, full_stack).await),
            (
                "Retry::run",
                allocations(1000, |x| retry.run(move || body(x))).await,
            ),
            (
                "Timeout::run",
                allocations(1000, |x| timeout.run(body(x))).await,
            ),
            (
                "CircuitBreaker::call",
                allocations(1000, |x| breaker.call(body(x))).await,
            ),
            (
                "CircuitBreaker::call, count window",
                allocations(1000, |x| rate_calls.call(body(x))).await,
            ),
            (
                "CircuitBreaker::call, time window",
                allocations(1000, |x| rate_time.call(body(x))).await,
            ),
            (
                "Fallback::run",
                allocations(1000, |x| fallback.run(body(x), move |_| canned(x))).await,
            ),
            (
                "RateLimiter::run",
                allocations(1000, |x| limiter.run(body(x))).await,
            ),
            (
                "Bulkhead::run",
                allocations(1000, |x| bulkhead.run(body(x))).await,
            ),
            (
                "Hedge::run, no hedge started",
                allocations(1000, |x| hedge.run(move || body(x))).await,
            ),
            (
                "Hedge::run, waiting once with its timer armed",
                allocations(1000, |x| {
                    hedge.run(move || async move {
                        tokio::task::yield_now().await;
                        body(x).await
                    })
                })
                .await,
            ),
            (
                "Hedge::run at a percentile, recording latencies",
                allocations(1000, |x| hedge_p95.run(move || body(x))).await,
            ),
            (
                "Retry::run with deadline and budget",
                allocations(1000, |x| deadline.run(move || body(x))).await,
            ),
        ];
        for (what, count) in counts {
            assert_eq!(count, 0, "{what} allocated {count} times in 1000 calls");
        }

        // A keyed limiter reads its keys from a moka cache, whose reads allocate nothing but
        // whose housekeeping, run every so many reads, does now and then.
        let keyed = allocations(1000, |x| {
            let limiter = &limiter;
            async move {
                limiter.acquire_key(&(x % 4), 1).await?;
                body(x).await
            }
        })
        .await;
        assert!(
            keyed <= 50,
            "RateLimiter::acquire_key allocated {keyed} times in 1000 calls"
        );
    });
}
