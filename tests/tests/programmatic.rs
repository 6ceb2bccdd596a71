//! The policies as plain types, without macros: `Retry`, `Timeout`, `CircuitBreaker`, `Cache` and
//! `Fallback`, their builders' validation, and a stack composed by hand.

mod common;

use std::future::pending;
use std::time::Duration;

use common::{AppError, Attempts, Runs, ms, secs};
use reliability::{
    Backoff, Cache, CircuitBreaker, CircuitState, ConfigError, Error, Fallback, Jitter, Retry,
    RetryPolicy, Timeout, registry,
};
use tokio::time::{Instant, advance};

fn fixed(max: u32, delay: Duration) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(max)
        .backoff(Backoff::Fixed)
        .delay(delay)
        .jitter(Jitter::None)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn retry_runs_attempts_on_its_schedule() {
    let retry = Retry::new("prog.retry", fixed(3, ms(100)));
    let log = Attempts::new();
    let out: Result<(), u32> = retry.run(|| async { Err(log.record() as u32) }).await;
    assert_eq!(out, Err(3), "the last error");
    assert_eq!(log.starts(), [ms(0), ms(100), ms(200)]);

    let log = Attempts::new();
    let out: Result<(), u32> = retry
        .run_when(|e: &u32| *e < 2, || async { Err(log.record() as u32) })
        .await;
    assert_eq!(out, Err(2), "2 is not retryable");
    assert_eq!(log.starts().len(), 2);

    let r = registry().snapshot();
    let r = r.retry("prog.retry").unwrap();
    assert_eq!((r.calls, r.retries, r.failures), (2, 3, 2));
}

#[test]
fn schedules_compute_every_backoff_and_jitter_bound() {
    let policy = |backoff, jitter| {
        RetryPolicy::builder()
            .backoff(backoff)
            .delay(ms(100))
            .max_delay(ms(1000))
            .jitter(jitter)
            .build()
            .unwrap()
    };
    let base = |backoff| -> Vec<Duration> {
        let p = policy(backoff, Jitter::None);
        (1..=6).map(|n| p.schedule().base_delay(n)).collect()
    };
    assert_eq!(base(Backoff::Fixed), [ms(100); 6]);
    assert_eq!(
        base(Backoff::Linear),
        [100, 200, 300, 400, 500, 600].map(ms)
    );
    assert_eq!(
        base(Backoff::Exponential { multiplier: 2.0 }),
        [100, 200, 400, 800, 1000, 1000].map(ms)
    );
    let exp = Backoff::Exponential { multiplier: 2.0 };
    let lowest = 0.0;
    let highest = 1.0 - f64::EPSILON;
    let full = policy(exp, Jitter::Full);
    assert_eq!(
        full.schedule().delay_with(3, Duration::ZERO, lowest),
        Duration::ZERO
    );
    assert!(full.schedule().delay_with(3, Duration::ZERO, highest) <= ms(400));
    let equal = policy(exp, Jitter::Equal);
    assert_eq!(
        equal.schedule().delay_with(3, Duration::ZERO, lowest),
        ms(200)
    );
    assert!(equal.schedule().delay_with(3, Duration::ZERO, highest) <= ms(400));
    let decorrelated = policy(exp, Jitter::Decorrelated);
    let s = decorrelated.schedule();
    assert_eq!(s.delay_with(1, Duration::ZERO, lowest), ms(100));
    assert!(s.delay_with(1, Duration::ZERO, highest) <= ms(300));
    assert!(s.delay_with(2, ms(250), highest) <= ms(750));
    assert!(s.delay_with(2, ms(250), highest) > ms(700));
    let capped = s.delay_with(5, ms(900), highest);
    assert!(
        ms(990) < capped && capped <= ms(1000),
        "capped at max_delay: {capped:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_bounds_a_future() {
    let timeout = Timeout::new("prog.timeout", ms(300)).unwrap();
    let start = Instant::now();
    let out: Result<(), Error> = timeout.run(pending()).await;
    assert_eq!(out, Err(Error::Timeout { after: ms(300) }));
    assert_eq!(start.elapsed(), ms(300));
    let out: Result<u32, AppError> = timeout
        .run(async {
            tokio::time::sleep(ms(299)).await;
            Ok(7)
        })
        .await;
    assert_eq!(out.unwrap(), 7);
}

#[tokio::test(start_paused = true)]
async fn circuit_breaker_opens_rejects_and_recovers() {
    let breaker = CircuitBreaker::builder("prog.breaker")
        .failure_threshold(2)
        .success_threshold(1)
        .cooldown(secs(10))
        .build()
        .unwrap();
    let runs = Runs::new();
    let fail = || async {
        runs.bump();
        Err::<(), AppError>(AppError::Status(500))
    };
    breaker.call(fail()).await.unwrap_err();
    breaker.call(fail()).await.unwrap_err();
    assert_eq!(breaker.state(), CircuitState::Open);
    let err = breaker.call(fail()).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(secs(10)));
    assert_eq!(runs.get(), 2, "the rejected future was not polled");

    let same = registry()
        .circuit_breaker("prog.breaker")
        .expect("registered by build");
    assert_eq!(same.state(), CircuitState::Open);
    let rebuilt = CircuitBreaker::builder("prog.breaker").build().unwrap();
    assert_eq!(rebuilt.state(), CircuitState::Open, "one breaker per name");
    assert_eq!(
        rebuilt.config().failure_threshold(),
        Some(2),
        "the first configuration wins"
    );

    advance(secs(10)).await;
    let out = breaker.call(async { Ok::<_, AppError>(1) }).await.unwrap();
    assert_eq!(out, 1);
    assert_eq!(breaker.state(), CircuitState::Closed);

    // `call_when`: errors it does not count leave the breaker closed.
    for _ in 0..5 {
        let out = breaker
            .call_when(|e: &AppError| e.status() != Some(404), async {
                Err::<(), _>(AppError::Status(404))
            })
            .await;
        assert_eq!(out.unwrap_err().status(), Some(404));
    }
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn cache_stores_successes_and_expires_on_the_tokio_clock() {
    let cache: Cache<String, u32> = Cache::builder("prog.cache").ttl(secs(5)).build().unwrap();
    let runs = Runs::new();
    let load = |v: u32| async move { Ok::<_, AppError>(v) };
    assert_eq!(
        cache.get_or_try_insert("a".into(), load(1)).await.unwrap(),
        1
    );
    assert_eq!(
        cache.get_or_try_insert("a".into(), load(2)).await.unwrap(),
        1
    );
    let failed = cache
        .get_or_try_insert("b".into(), async {
            runs.bump();
            Err::<u32, _>(AppError::Status(500))
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(runs.get(), 1);
    assert_eq!(cache.get(&"b".into()).await, None, "errors are not stored");

    advance(secs(5)).await;
    assert_eq!(cache.get(&"a".into()).await, None, "expired at the ttl");
    assert_eq!(
        cache.get_or_try_insert("a".into(), load(3)).await.unwrap(),
        3
    );
    cache.invalidate(&"a".into()).await;
    assert_eq!(cache.get_or_insert("a".into(), async { 4 }).await, 4);

    let c = registry().snapshot();
    let c = c.cache("prog.cache").unwrap();
    assert_eq!((c.hits, c.misses, c.failures), (1, 4, 1));
}

#[tokio::test]
async fn fallback_runs_the_alternative_on_failure() {
    let fallback = Fallback::new("prog.fallback", &["spare"]);
    let ok: Result<u32, AppError> = fallback.run(async { Ok(1) }, |_| async { Ok(2) }).await;
    assert_eq!(ok.unwrap(), 1);
    let spared: Result<u32, AppError> = fallback
        .run(async { Err(AppError::Status(503)) }, |e| async move {
            Ok(u32::from(e.status().unwrap()))
        })
        .await;
    assert_eq!(spared.unwrap(), 503, "the alternative receives the error");
    let both: Result<u32, AppError> = fallback
        .run(async { Err(AppError::Status(503)) }, |_| async {
            Err(AppError::Status(429))
        })
        .await;
    assert_eq!(both.unwrap_err().status(), Some(429), "the last error");
    let f = registry().snapshot();
    let f = f.fallback("prog.fallback").unwrap();
    assert_eq!((f.calls, f.successes, f.failures), (3, 1, 1));
    assert_eq!(f.fallbacks, [("spare".to_owned(), 1)]);
}

#[tokio::test(start_paused = true)]
async fn a_stack_composed_by_hand() {
    let retry = Retry::new("prog.stack", fixed(4, secs(1)));
    let breaker = CircuitBreaker::builder("prog.stack")
        .failure_threshold(2)
        .build()
        .unwrap();
    let timeout = Timeout::new("prog.stack", secs(2)).unwrap();
    let runs = Runs::new();
    let start = Instant::now();
    // Without the macros nothing tells the retry about rejections: `run_when` says it.
    let out: Result<(), AppError> = retry
        .run_when(
            |e: &AppError| !e.is_circuit_open(),
            || {
                breaker.call(timeout.run(async {
                    runs.bump();
                    pending().await
                }))
            },
        )
        .await;
    assert!(out.unwrap_err().is_circuit_open());
    assert_eq!(runs.get(), 2);
    assert_eq!(start.elapsed(), secs(2 + 1 + 2 + 1));
}

#[test]
fn builders_reject_bad_settings_naming_the_setting() {
    fn setting<T: std::fmt::Debug>(r: Result<T, ConfigError>) -> &'static str {
        let err = r.unwrap_err();
        assert!(err.to_string().contains(err.setting()), "{err}");
        assert!(!err.reason().is_empty());
        err.setting()
    }
    let retry = RetryPolicy::builder;
    assert_eq!(setting(retry().max_attempts(0).build()), "max_attempts");
    let flat = Backoff::Exponential { multiplier: 1.0 };
    assert_eq!(setting(retry().backoff(flat).build()), "multiplier");
    let nan = Backoff::Exponential {
        multiplier: f64::NAN,
    };
    assert_eq!(setting(retry().backoff(nan).build()), "multiplier");
    let too_long = retry().delay(secs(10)).max_delay(secs(5)).build();
    assert_eq!(setting(too_long), "delay");
    assert_eq!(
        setting(retry().max_delay(Duration::ZERO).build()),
        "max_delay"
    );
    assert!(retry().max_attempts(1).build().is_ok());

    assert_eq!(setting(Timeout::new("prog.bad", Duration::ZERO)), "after");

    let breaker = || CircuitBreaker::builder("prog.bad");
    assert_eq!(
        setting(breaker().cooldown(Duration::ZERO).build()),
        "cooldown"
    );
    assert_eq!(
        setting(breaker().failure_threshold(0).build()),
        "failure_threshold"
    );
    assert_eq!(
        setting(breaker().success_threshold(0).build()),
        "success_threshold"
    );
    assert!(
        registry().circuit_breaker("prog.bad").is_none(),
        "a rejected configuration registers nothing"
    );

    let cache = || Cache::builder("prog.bad");
    assert_eq!(setting(cache().max_size(0).build::<u32, u32>()), "max_size");
    assert_eq!(
        setting(cache().ttl(Duration::ZERO).build::<u32, u32>()),
        "ttl"
    );
    assert_eq!(
        setting(cache().tti(Duration::ZERO).build::<u32, u32>()),
        "tti"
    );
}
