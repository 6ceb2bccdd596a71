//! Properties of the retry schedules: for every backoff and jitter mode each wait is within its
//! bound and never above `max_delay`; without jitter the schedule is exactly the documented one,
//! and the retry layer waits exactly that long between attempts.

use std::sync::Mutex;
use std::time::Duration;

use proptest::prelude::*;
use reliability::{Backoff, Jitter, Retry, RetryPolicy};

const MS: u64 = 1_000_000;

fn backoff() -> impl Strategy<Value = Backoff> {
    prop_oneof![
        Just(Backoff::Fixed),
        Just(Backoff::Linear),
        (1.000_001f64..10.0).prop_map(|multiplier| Backoff::Exponential { multiplier }),
        Just(Backoff::Exponential { multiplier: 2.0 }),
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

/// `(delay, max_delay)` with `delay <= max_delay`, `max_delay > 0`, up to a day.
fn delays() -> impl Strategy<Value = (Duration, Duration)> {
    (0u64..86_400_000 * MS, 1u64..86_400_000 * MS).prop_map(|(a, b)| {
        let (delay, max) = if a <= b { (a, b) } else { (b, a) };
        (
            Duration::from_nanos(delay),
            Duration::from_nanos(max.max(1)),
        )
    })
}

fn policy(
    max_attempts: u32,
    backoff: Backoff,
    (delay, max_delay): (Duration, Duration),
    jitter: Jitter,
) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(max_attempts)
        .backoff(backoff)
        .delay(delay)
        .max_delay(max_delay)
        .jitter(jitter)
        .build()
        .unwrap()
}

/// The documented un-jittered wait before retry `n` (1-based), before the cap.
fn documented(backoff: Backoff, delay: Duration, n: u32) -> Duration {
    match backoff {
        Backoff::Fixed => delay,
        Backoff::Linear => delay.saturating_mul(n),
        // ×2 in integers: d·2^(n-1).
        Backoff::Exponential { multiplier: 2.0 } => match 1u32.checked_shl(n - 1) {
            Some(factor) if n <= 32 => delay.saturating_mul(factor),
            _ if delay.is_zero() => Duration::ZERO,
            _ => Duration::MAX,
        },
        Backoff::Exponential { multiplier } => {
            let secs = delay.as_secs_f64() * multiplier.powi(n as i32 - 1);
            if secs.is_finite() && secs < 1e15 {
                Duration::from_secs_f64(secs)
            } else {
                Duration::MAX
            }
        }
    }
}

fn close(a: Duration, b: Duration) -> bool {
    let (a, b) = (a.as_nanos() as f64, b.as_nanos() as f64);
    (a - b).abs() <= 1.0 + 1e-9 * a.max(b)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Each wait stays within its mode's bound, and never above `max_delay`.
    #[test]
    fn every_wait_is_within_its_bound(
        backoff in backoff(),
        delays in delays(),
        jitter in jitter(),
        randoms in prop::collection::vec(0.0f64..1.0, 1..40),
    ) {
        let (delay, max_delay) = delays;
        let policy = policy(100, backoff, delays, jitter);
        let schedule = policy.schedule();
        let mut previous = Duration::ZERO;
        for (i, random) in randoms.into_iter().enumerate() {
            let retry = i as u32 + 1;
            let base = schedule.base_delay(retry);
            prop_assert!(base <= max_delay);
            let wait = schedule.delay_with(retry, previous, random);
            prop_assert!(wait <= max_delay, "{wait:?} > {max_delay:?}");
            match jitter {
                Jitter::None => prop_assert_eq!(wait, base),
                Jitter::Full => prop_assert!(wait <= base),
                Jitter::Equal => prop_assert!(wait >= base / 2 && wait <= base),
                Jitter::Decorrelated => {
                    let high = previous.max(delay).saturating_mul(3).min(max_delay);
                    prop_assert!(wait >= delay.min(high) && wait <= high.max(delay));
                }
            }
            // The same bound holds with fresh randomness.
            let fresh = schedule.delay(retry, previous);
            prop_assert!(fresh <= max_delay);
            previous = wait;
        }
    }

    /// Without jitter the waits are exactly fixed d, d, d…; linear d, 2d, 3d…; exponential
    /// d, d·m, d·m²…; each capped at `max_delay`.
    #[test]
    fn without_jitter_the_schedule_is_the_documented_one(
        backoff in backoff(),
        delays in delays(),
        retries in 1u32..200,
    ) {
        let (delay, max_delay) = delays;
        let policy = policy(100, backoff, delays, Jitter::None);
        let schedule = policy.schedule();
        for n in 1..=retries {
            let expected = documented(backoff, delay, n).min(max_delay);
            let got = schedule.delay(n, Duration::ZERO);
            match backoff {
                Backoff::Exponential { .. } => prop_assert!(close(got, expected), "retry {n}: {got:?} != {expected:?}"),
                _ => prop_assert_eq!(got, expected, "retry {}", n),
            }
        }
    }

    /// Randomness outside `[0, 1)` (or NaN) given to `delay_with` is no reason to panic, and the
    /// cap still holds.
    #[test]
    fn any_random_input_keeps_the_cap(
        backoff in backoff(),
        delays in delays(),
        jitter in jitter(),
        random in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(-1.0), Just(1.0), any::<f64>()],
        previous in any::<u64>().prop_map(Duration::from_nanos),
        retry in any::<u32>(),
    ) {
        let policy = policy(3, backoff, delays, jitter);
        let wait = policy.schedule().delay_with(retry, previous, random);
        prop_assert!(wait <= delays.1);
    }

    /// The retry layer sleeps exactly the schedule: with paused time, the attempts of an
    /// always-failing call start at the running sums of the documented waits.
    #[test]
    fn the_retry_layer_waits_exactly_the_schedule(
        // Whole milliseconds, the resolution of tokio's timer.
        backoff in prop_oneof![
            Just(Backoff::Fixed),
            Just(Backoff::Linear),
            Just(Backoff::Exponential { multiplier: 2.0 }),
            Just(Backoff::Exponential { multiplier: 3.0 }),
        ],
        delay_ms in 0u64..5_000,
        max_ms in 1u64..60_000,
        attempts in 1u32..8,
    ) {
        let delays = (Duration::from_millis(delay_ms.min(max_ms)), Duration::from_millis(max_ms));
        let policy = policy(attempts, backoff, delays, Jitter::None);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let starts = Mutex::new(Vec::new());
        runtime.block_on(async {
            let retry = Retry::new("retry_schedules.retry", policy);
            let begin = tokio::time::Instant::now();
            let out: Result<(), ()> = retry
                .run(|| async {
                    starts.lock().unwrap().push(begin.elapsed());
                    Err(())
                })
                .await;
            assert_eq!(out, Err(()));
        });
        let starts = starts.into_inner().unwrap();
        prop_assert_eq!(starts.len(), attempts as usize);
        let mut expected = Duration::ZERO;
        for (i, start) in starts.iter().enumerate() {
            prop_assert_eq!(*start, expected, "attempt {}", i + 1);
            expected += policy.schedule().delay(i as u32 + 1, Duration::ZERO);
        }
    }
}
