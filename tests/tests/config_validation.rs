//! Bad settings at run time: every builder of the programmatic API, fed any value, returns a policy
//! or a typed `ConfigError` naming the setting and saying why; none panics, and whatever it accepts
//! works.

use std::time::Duration;

use proptest::prelude::*;
use reliability::testing::FaultInjector;
use reliability::{
    Backoff, Cache, CircuitBreaker, CircuitState, ConfigError, Error, Jitter, RetryPolicy, Timeout,
};

/// Durations from zero to `Duration::MAX`, with the edges likely.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        Just(Duration::from_nanos(1)),
        Just(THOUSAND_YEARS),
        Just(THOUSAND_YEARS + Duration::from_nanos(1)),
        (0u64..10_000_000_000).prop_map(Duration::from_nanos),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

/// Any `f64`, with NaN, the infinities and the edges of the valid ranges likely.
fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(1.0),
        Just(-0.0),
        Just(f64::MIN_POSITIVE),
        Just(f64::MAX),
        -2.0..3.0f64,
        any::<f64>(),
    ]
}

fn backoff() -> impl Strategy<Value = Backoff> {
    prop_oneof![
        Just(Backoff::Fixed),
        Just(Backoff::Linear),
        float().prop_map(|multiplier| Backoff::Exponential { multiplier }),
    ]
}

fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated),
    ]
}

const THOUSAND_YEARS: Duration = Duration::from_secs(1000 * 365 * 86_400);

/// A rejection names a setting the builder has and gives a reason.
fn names(error: &ConfigError, settings: &[&str]) {
    assert!(
        settings.contains(&error.setting()),
        "unexpected setting in {error}"
    );
    assert!(!error.reason().is_empty());
    assert!(error.to_string().contains(error.setting()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn retry_policy_builder_accepts_or_names_the_setting(
        max in any::<u32>(),
        backoff in backoff(),
        delay in duration(),
        max_delay in duration(),
        jitter in jitter(),
        retries in prop::collection::vec(any::<u32>(), 4),
    ) {
        let built = RetryPolicy::builder()
            .max_attempts(max)
            .backoff(backoff)
            .delay(delay)
            .max_delay(max_delay)
            .jitter(jitter)
            .build();
        let valid_multiplier = match backoff {
            Backoff::Exponential { multiplier } => multiplier.is_finite() && multiplier > 1.0,
            _ => true,
        };
        let valid = max >= 1 && valid_multiplier && !max_delay.is_zero() && delay <= max_delay;
        match built {
            Ok(policy) => {
                prop_assert!(valid);
                // Whatever it accepted computes every delay without panicking, within the cap.
                let mut previous = Duration::ZERO;
                for retry in retries.into_iter().chain([1, 2, u32::MAX]) {
                    let wait = policy.schedule().delay(retry, previous);
                    prop_assert!(wait <= max_delay);
                    prop_assert!(policy.schedule().base_delay(retry) <= max_delay);
                    previous = wait;
                }
            }
            Err(error) => {
                prop_assert!(!valid);
                names(&error, &["max_attempts", "multiplier", "max_delay", "delay"]);
            }
        }
    }

    #[test]
    fn circuit_breaker_builder_accepts_or_names_the_setting(
        failure_threshold in any::<u32>(),
        success_threshold in any::<u32>(),
        cooldown in duration(),
        empty_name in any::<bool>(),
    ) {
        let name = if empty_name { String::new() } else { "config_validation.breaker".to_owned() };
        let built = CircuitBreaker::builder(name)
            .failure_threshold(failure_threshold)
            .success_threshold(success_threshold)
            .cooldown(cooldown)
            .build();
        let valid = !empty_name && failure_threshold >= 1 && success_threshold >= 1 && !cooldown.is_zero();
        match built {
            Ok(_) => prop_assert!(valid),
            Err(error) => {
                prop_assert!(!valid);
                names(&error, &["name", "failure_threshold", "success_threshold", "cooldown"]);
            }
        }
    }

    #[test]
    fn cache_builder_accepts_or_names_the_setting(
        ttl in prop::option::of(duration()),
        tti in prop::option::of(duration()),
        max_size in prop_oneof![Just(0u64), Just(1), Just(u64::MAX), any::<u64>()],
    ) {
        let mut builder = Cache::builder("config_validation.cache").max_size(max_size);
        if let Some(ttl) = ttl {
            builder = builder.ttl(ttl);
        }
        if let Some(tti) = tti {
            builder = builder.tti(tti);
        }
        // Expiry times are documented to be longer than zero and at most 1000 years.
        let expiry = |d: Option<Duration>| d.is_none_or(|d| !d.is_zero() && d <= THOUSAND_YEARS);
        let valid = max_size >= 1 && expiry(ttl) && expiry(tti);
        match builder.build::<u32, u32>() {
            Ok(cache) => {
                prop_assert!(valid);
                prop_assert_eq!(cache.config().max_size(), max_size);
            }
            Err(error) => {
                prop_assert!(!valid);
                names(&error, &["name", "ttl", "tti", "max_size"]);
            }
        }
    }

    #[test]
    fn timeout_accepts_any_positive_deadline(after in duration()) {
        match Timeout::new("config_validation.timeout", after) {
            Ok(timeout) => {
                prop_assert!(!after.is_zero());
                prop_assert_eq!(timeout.after(), after);
            }
            Err(error) => {
                prop_assert!(after.is_zero());
                names(&error, &["after"]);
            }
        }
    }

    #[test]
    fn fault_injector_builder_accepts_or_names_the_setting(
        error_rate in float(),
        latency_rate in float(),
        hang_rate in float(),
        panic_rate in float(),
        delay in duration(),
    ) {
        let built = FaultInjector::builder(|| ())
            .error_rate(error_rate)
            .latency(latency_rate, delay)
            .hang_rate(hang_rate)
            .panic_rate(panic_rate)
            .build();
        let share = |x: f64| (0.0..=1.0).contains(&x);
        let valid = share(error_rate) && share(latency_rate) && share(hang_rate) && share(panic_rate)
            && error_rate + hang_rate + panic_rate <= 1.0;
        match built {
            Ok(_) => prop_assert!(valid),
            Err(error) => {
                prop_assert!(!valid);
                names(&error, &["error_rate", "latency", "hang_rate", "panic_rate"]);
            }
        }
    }
}

/// The longest settings accepted are usable: nothing overflows when the breaker opens for
/// `Duration::MAX`, a timeout of `Duration::MAX` runs, and a cache lives for as long as moka allows.
#[tokio::test(start_paused = true)]
async fn the_longest_accepted_settings_work() {
    let breaker = CircuitBreaker::builder("config_validation.longest")
        .failure_threshold(1)
        .cooldown(Duration::MAX)
        .build()
        .unwrap();
    let _ = breaker
        .call(async {
            Err::<(), Error>(Error::Timeout {
                after: Duration::ZERO,
            })
        })
        .await;
    assert_eq!(breaker.state(), CircuitState::Open);
    let rejected = breaker.call(async { Ok::<_, Error>(()) }).await;
    assert!(
        matches!(rejected, Err(Error::CircuitOpen { retry_after, .. }) if retry_after > Duration::from_secs(500 * 365 * 86_400))
    );

    let timeout = Timeout::new("config_validation.longest", Duration::MAX).unwrap();
    assert_eq!(timeout.run(async { Ok::<_, Error>(7) }).await, Ok(7));
    let slow = timeout.run(async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok::<_, Error>(8)
    });
    assert_eq!(slow.await, Ok(8));

    let cache: Cache<u8, u8> = Cache::builder("config_validation.longest")
        .ttl(Duration::from_secs(365 * 86_400))
        .build()
        .unwrap();
    assert_eq!(
        cache.get_or_try_insert(1, async { Ok::<_, ()>(2) }).await,
        Ok(2)
    );
}

/// A fresh registry name for each case: limiters and bulkheads are shared by name.
fn fresh(kind: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("hardening.config.{kind}.{n}")
}

/// A current-thread runtime on a paused clock, for running what a builder accepted.
fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

const HUNDRED_YEARS: Duration = Duration::from_secs(100 * 365 * 86_400);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn retry_limits_are_accepted_or_name_the_setting(
        deadline in prop::option::of(duration()),
        budget in prop::option::of(float()),
    ) {
        let mut builder = RetryPolicy::builder().delay(Duration::ZERO);
        if let Some(deadline) = deadline {
            builder = builder.deadline(deadline);
        }
        if let Some(budget) = budget {
            builder = builder.budget(budget);
        }
        let valid = deadline.is_none_or(|d| !d.is_zero())
            && budget.is_none_or(|b| b > 0.0 && b <= 1.0);
        match builder.build() {
            Ok(policy) => {
                prop_assert!(valid);
                // Whatever it accepted runs: two attempts, the second succeeding.
                let retry = reliability::Retry::new(&fresh("retry"), policy);
                let mut calls = 0;
                let out = paused().block_on(retry.run(|| {
                    calls += 1;
                    let n = calls;
                    async move { if n == 1 { Err(n) } else { Ok(n) } }
                }));
                prop_assert_eq!(out, Ok(2));
            }
            Err(error) => {
                prop_assert!(!valid);
                names(&error, &["deadline", "budget"]);
            }
        }
    }

    #[test]
    fn rate_limiter_builder_accepts_or_names_the_setting(
        rate in prop_oneof![Just(0u32), Just(1), Just(u32::MAX), any::<u32>()],
        per in duration(),
        burst in prop::option::of(prop_oneof![Just(0u32), Just(1), Just(u32::MAX), any::<u32>()]),
        wait in duration(),
        max_keys in prop_oneof![Just(0u64), Just(1), Just(u64::MAX), any::<u64>()],
        cost in prop_oneof![Just(0u32), Just(1), Just(u32::MAX), any::<u32>()],
    ) {
        let mut builder = reliability::RateLimiter::builder(fresh("rate_limit"), rate)
            .per(per)
            .wait(wait)
            .max_keys(max_keys);
        if let Some(burst) = burst {
            builder = builder.burst(burst);
        }
        let burst = burst.unwrap_or(rate);
        let interval = if rate == 0 { Duration::ZERO } else { per / rate };
        let valid = rate >= 1
            && !interval.is_zero()
            && burst >= 1
            && max_keys >= 1
            && interval.checked_mul(burst).is_some_and(|refill| refill <= HUNDRED_YEARS);
        match builder.build() {
            Ok(limiter) => {
                prop_assert!(valid);
                // Whatever it accepted admits or rejects any cost, with or without a key, and a
                // second call either waits (polled once) or is rejected.
                paused().block_on(async {
                    let first = limiter.acquire(cost).await;
                    prop_assert_eq!(first.is_ok(), cost <= burst);
                    let keyed = limiter.acquire_key("k", cost).await;
                    prop_assert_eq!(keyed.is_ok(), cost <= burst);
                    let mut second = std::pin::pin!(limiter.acquire(cost.max(1)));
                    let _ = futures::poll!(second.as_mut());
                    Ok(())
                })?;
            }
            Err(error) => {
                prop_assert!(!valid);
                names(&error, &["rate", "per", "burst", "max_keys"]);
            }
        }
    }

    #[test]
    fn bulkhead_builder_accepts_or_names_the_setting(
        max in prop_oneof![Just(0u32), Just(1), Just(u32::MAX), any::<u32>()],
        queue in prop_oneof![Just(0u32), Just(1), Just(u32::MAX), any::<u32>()],
        wait in duration(),
    ) {
        let built = reliability::Bulkhead::builder(fresh("bulkhead"), max)
            .queue(queue)
            .wait(wait)
            .build();
        let valid = (1..=reliability::Bulkhead::MAX).contains(&max);
        match built {
            Ok(bulkhead) => {
                prop_assert!(valid);
                paused().block_on(async {
                    let slots: Vec<_> = futures::future::join_all(
                        (0..max.min(3)).map(|_| bulkhead.acquire()),
                    )
                    .await;
                    prop_assert!(slots.iter().all(Result::is_ok));
                    // One more call queues (polled once) or is rejected.
                    let mut more = std::pin::pin!(bulkhead.acquire());
                    let _ = futures::poll!(more.as_mut());
                    Ok(())
                })?;
            }
            Err(error) => {
                prop_assert!(!valid);
                names(&error, &["max"]);
            }
        }
    }
}
