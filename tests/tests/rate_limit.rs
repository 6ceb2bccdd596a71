//! `RateLimiter`: exact admissions on the paused clock, concurrency on a multi-thread runtime, keys,
//! cost, waiting and cancelled waiters, bounded memory under a flood of keys.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{ms, secs};
use reliability::{Error, RateLimiter, registry};
use tokio::time::{Instant, advance};

fn limited(name: &str, retry_after: Duration) -> Error {
    Error::RateLimited {
        name: name.into(),
        retry_after,
    }
}

#[tokio::test(start_paused = true)]
async fn ten_a_second_admits_ten_at_once_then_ten_each_second_to_64_callers() {
    let limiter = RateLimiter::builder("rl.schedule", 10)
        .per(secs(1))
        .wait(secs(60))
        .build()
        .unwrap();
    let start = Instant::now();
    let callers: Vec<_> = (0..64)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                limiter.acquire(1).await.unwrap();
                start.elapsed()
            })
        })
        .collect();
    let mut admitted = Vec::new();
    for caller in callers {
        admitted.push(caller.await.unwrap());
    }
    admitted.sort();
    // The burst at once, then one every 100 ms: 10 in each second after.
    let expected: Vec<_> = std::iter::repeat_n(ms(0), 10)
        .chain((1..=54).map(|k| ms(100 * k)))
        .collect();
    assert_eq!(admitted, expected);
    for second in 1..=6 {
        let in_second = admitted
            .iter()
            .filter(|&&t| t > secs(second - 1) && t <= secs(second))
            .count();
        assert_eq!(
            in_second,
            if second <= 5 { 10 } else { 4 },
            "second {second}"
        );
    }
    let stats = registry().snapshot();
    let stats = stats.rate_limit("rl.schedule").unwrap();
    assert_eq!((stats.calls, stats.waited, stats.rejections), (64, 54, 0));
}

/// 64 callers on two worker threads race for a burst of 10: exactly 10 win. (The quota refills
/// over an hour, so no permit comes back while they race, whatever the machine's speed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_on_two_workers_get_exactly_the_burst() {
    let limiter = RateLimiter::builder("rl.concurrent", 10)
        .per(secs(3600))
        .build()
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let callers: Vec<_> = (0..64)
        .map(|_| {
            let limiter = limiter.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                limiter.acquire(1).await
            })
        })
        .collect();
    let mut admitted = 0;
    for caller in callers {
        match caller.await.unwrap() {
            Ok(()) => admitted += 1,
            Err(e) => {
                assert!(e.is_rate_limited());
                let retry_after = e.retry_after().unwrap();
                assert!(retry_after > Duration::ZERO && retry_after <= secs(360));
            }
        }
    }
    assert_eq!(admitted, 10);
    let stats = registry().snapshot();
    let stats = stats.rate_limit("rl.concurrent").unwrap();
    assert_eq!((stats.calls, stats.rejections), (64, 54));
}

/// The same schedule on two worker threads and the real clock: no permit is ever early. (The
/// admission times are read after each admission, so they can only be late, never early: the
/// bound holds on any machine, however slow.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_two_workers_no_caller_is_admitted_before_its_permit() {
    let start = Instant::now();
    let limiter = RateLimiter::builder("rl.concurrent_schedule", 10)
        .wait(secs(600))
        .build()
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let callers: Vec<_> = (0..64)
        .map(|_| {
            let limiter = limiter.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                limiter.acquire(1).await.unwrap();
                start.elapsed()
            })
        })
        .collect();
    let mut admitted = Vec::new();
    for caller in callers {
        admitted.push(caller.await.unwrap());
    }
    admitted.sort();
    // The burst of 10, then at most one every 100 ms: admission k (from 0) not before (k - 9) × 100 ms.
    for (k, at) in admitted.iter().enumerate().skip(10) {
        assert!(*at >= ms(100 * (k as u64 - 9)), "admission {k} at {at:?}");
    }
    let stats = registry().snapshot();
    let stats = stats.rate_limit("rl.concurrent_schedule").unwrap();
    assert_eq!((stats.calls, stats.rejections), (64, 0));
}

#[tokio::test(start_paused = true)]
async fn a_rejection_says_when_a_permit_is_free() {
    let limiter = RateLimiter::builder("rl.retry_after", 4)
        .per(secs(2))
        .burst(2)
        .build()
        .unwrap();
    assert_eq!(limiter.acquire(2).await, Ok(()));
    assert_eq!(
        limiter.acquire(1).await,
        Err(limited("rl.retry_after", ms(500)))
    );
    // Two permits take two intervals to come back.
    assert_eq!(
        limiter.acquire(2).await,
        Err(limited("rl.retry_after", ms(1000)))
    );
    advance(ms(500)).await;
    assert_eq!(limiter.acquire(1).await, Ok(()));
    assert_eq!(
        limiter.acquire(0).await,
        Ok(()),
        "a cost of zero takes nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn a_caller_waits_for_its_permit_within_the_wait() {
    let limiter = RateLimiter::builder("rl.wait", 1)
        .burst(2)
        .wait(ms(1500))
        .build()
        .unwrap();
    let start = Instant::now();
    limiter.acquire(1).await.unwrap();
    limiter.acquire(1).await.unwrap();
    limiter.acquire(1).await.unwrap();
    assert_eq!(
        start.elapsed(),
        secs(1),
        "admitted the moment the permit came back"
    );
    // Two permits are 2 s away, beyond the wait: rejected at once, not after waiting.
    let two = limiter.acquire(2).await;
    assert_eq!(two, Err(limited("rl.wait", secs(2))));
    assert_eq!(start.elapsed(), secs(1));
    let stats = registry().snapshot();
    let stats = stats.rate_limit("rl.wait").unwrap();
    assert_eq!((stats.calls, stats.waited, stats.rejections), (4, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_cost_above_the_burst_is_rejected_at_once_even_with_a_wait() {
    let limiter = RateLimiter::builder("rl.too_costly", 100)
        .per(secs(60))
        .burst(10)
        .wait(secs(3600))
        .build()
        .unwrap();
    let start = Instant::now();
    let err = limiter.acquire(11).await.unwrap_err();
    assert_eq!(err, limited("rl.too_costly", Duration::MAX));
    assert!(err.to_string().contains("more permits than the burst"));
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(limiter.acquire(10).await, Ok(()), "nothing was taken");
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_waiter_takes_no_permit() {
    let limiter = RateLimiter::builder("rl.cancelled", 1)
        .wait(secs(10))
        .build()
        .unwrap();
    limiter.acquire(1).await.unwrap();
    let waiter = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.acquire(1).await }
    });
    tokio::task::yield_now().await;
    advance(ms(500)).await;
    waiter.abort();
    assert!(waiter.await.unwrap_err().is_cancelled());
    advance(ms(500)).await;
    // The permit that came back at 1 s is still there for a caller that does not wait.
    let now = RateLimiter::builder("rl.cancelled", 1)
        .wait(secs(10))
        .build()
        .unwrap();
    assert_eq!(now.config().wait(), secs(10), "one name, one limiter");
    let mut free = std::pin::pin!(limiter.acquire(1));
    assert_eq!(
        futures::poll!(free.as_mut()),
        std::task::Poll::Ready(Ok(()))
    );
    let stats = registry().snapshot();
    let stats = stats.rate_limit("rl.cancelled").unwrap();
    assert_eq!((stats.calls, stats.waited, stats.rejections), (3, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn keys_have_independent_quotas() {
    let limiter = RateLimiter::builder("rl.keys", 3).build().unwrap();
    for _ in 0..3 {
        limiter.acquire_key("tenant-a", 1).await.unwrap();
    }
    assert!(limiter.acquire_key("tenant-a", 1).await.is_err());
    for _ in 0..3 {
        limiter.acquire_key("tenant-b", 1).await.unwrap();
    }
    assert_eq!(limiter.acquire_key(&42_u64, 3).await, Ok(()));
    assert_eq!(
        limiter.acquire(3).await,
        Ok(()),
        "the unkeyed quota is its own"
    );
    assert_eq!(limiter.key_count(), 3);
    advance(ms(334)).await;
    assert_eq!(limiter.acquire_key("tenant-a", 1).await, Ok(()));
}

/// A flood of a million distinct keys: the limiter keeps at most `max_keys` of them.
#[tokio::test(start_paused = true)]
async fn a_million_distinct_keys_keep_memory_bounded() {
    const MAX_KEYS: u64 = 10_000;
    // A quota refilled over an hour: keys are dropped for the bound, not for idling.
    let limiter = RateLimiter::builder("rl.flood", 5)
        .per(secs(3600))
        .max_keys(MAX_KEYS)
        .build()
        .unwrap();
    let mut most = 0;
    for key in 0..1_000_000_u64 {
        limiter.acquire_key(&key, 1).await.unwrap();
        if key % 50_000 == 49_999 {
            let count = limiter.key_count();
            most = most.max(count);
            assert!(count <= MAX_KEYS, "{count} keys kept after {key}");
        }
    }
    assert!(most > MAX_KEYS / 2, "keys are kept up to the bound: {most}");
    // A key dropped under the flood comes back with a full burst.
    for _ in 0..5 {
        limiter.acquire_key(&0_u64, 1).await.unwrap();
    }
}

#[test]
fn the_builder_validates_every_setting() {
    let setting = |b: reliability::RateLimiterBuilder| b.build().unwrap_err().setting();
    assert_eq!(setting(RateLimiter::builder("rl.bad", 0)), "rate");
    assert_eq!(
        setting(RateLimiter::builder("rl.bad", 1).per(Duration::ZERO)),
        "per"
    );
    assert_eq!(
        setting(RateLimiter::builder("rl.bad", 10).per(Duration::from_nanos(5))),
        "rate"
    );
    assert_eq!(setting(RateLimiter::builder("rl.bad", 1).burst(0)), "burst");
    assert_eq!(
        setting(RateLimiter::builder("rl.bad", 1).max_keys(0)),
        "max_keys"
    );
    assert!(registry().rate_limiter("rl.bad").is_none());
}

/// The futures of the load layers can be spawned on a multi-thread runtime, and a key's future does
/// not borrow the key.
#[test]
fn acquiring_futures_are_send() {
    fn send<T: Send>(_: T) {}
    let limiter = RateLimiter::builder("rl.send", 1).build().unwrap();
    let bulkhead = reliability::Bulkhead::builder("rl.send", 1)
        .build()
        .unwrap();
    send(limiter.acquire(1));
    let acquire = {
        let key = String::from("tenant");
        limiter.acquire_key(&key, 1)
    };
    send(acquire);
    send(bulkhead.acquire());
    send(limiter.run(async { Ok::<(), Error>(()) }));
}
