//! `Retry` within limits: delays the service asked for, a deadline, and a retry budget shared by
//! name; all on the paused tokio clock, so every wait is exact.

mod common;

use std::time::Duration;

use common::{Attempts, ms, secs};
use reliability::{
    Backoff, ConfigError, Error, Jitter, RateLimiter, Retry, RetryOn, RetryPolicy, registry,
};
use tokio::time::{Instant, advance, sleep};

/// An error of a fake HTTP service: a status and the `Retry-After` it sent.
#[derive(Debug, Clone, PartialEq)]
struct HttpError {
    status: u16,
    retry_after: Option<Duration>,
}

fn too_many(retry_after: Duration) -> HttpError {
    HttpError {
        status: 429,
        retry_after: Some(retry_after),
    }
}

/// Reads the delay the fake service asked for.
fn asked(e: &HttpError) -> Option<Duration> {
    e.retry_after
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_of_two_seconds_is_waited_exactly_once() {
    // Full jitter and a 1 s exponential backoff: any of them showing would move the second start.
    let retry = Retry::new("limits.retry_after", RetryPolicy::default());
    let log = Attempts::new();
    let out = retry
        .run_with(RetryOn::any_error().retry_after(asked), || async {
            match log.record() {
                1 => Err(too_many(secs(2))),
                n => Ok(n),
            }
        })
        .await;
    assert_eq!(out, Ok(2));
    assert_eq!(log.starts(), [ms(0), secs(2)], "one wait, exactly 2 s");

    // Without a delay asked for, the backoff applies again.
    let log = Attempts::new();
    let out = retry
        .run_with(RetryOn::any_error().retry_after(asked), || async {
            match log.record() {
                1 => Err(too_many(secs(2))),
                2 => Err(HttpError {
                    status: 503,
                    retry_after: None,
                }),
                n => Ok(n),
            }
        })
        .await;
    assert_eq!(out, Ok(3));
    let waits = log.waits();
    assert_eq!(waits[0], secs(2));
    assert!(
        waits[1] <= secs(2),
        "full jitter of the second backoff delay (2 s)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_above_max_delay_gives_up_at_once() {
    let retry = Retry::new("limits.too_long", RetryPolicy::default());
    let log = Attempts::new();
    let start = Instant::now();
    let out: Result<(), HttpError> = retry
        .run_with(RetryOn::any_error().retry_after(asked), || async {
            log.record();
            Err(too_many(secs(40)))
        })
        .await;
    assert_eq!(out, Err(too_many(secs(40))), "that error, unchanged");
    assert_eq!(start.elapsed(), Duration::ZERO, "no wait at all");
    assert_eq!(log.starts().len(), 1);
    let stats = registry().snapshot();
    let stats = stats.retry("limits.too_long").unwrap();
    assert_eq!((stats.calls, stats.failures, stats.retries), (1, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_is_used_only_for_errors_when_accepts() {
    let retry = Retry::new("limits.not_retryable", RetryPolicy::default());
    let log = Attempts::new();
    let out: Result<(), HttpError> = retry
        .run_with(
            RetryOn::errors(|e: &HttpError| e.status != 429).retry_after(asked),
            || async {
                log.record();
                Err(too_many(secs(1)))
            },
        )
        .await;
    assert!(out.is_err());
    assert_eq!(log.starts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_stops_after_the_attempt_that_cannot_be_followed() {
    let policy = RetryPolicy::builder()
        .max_attempts(10)
        .backoff(Backoff::Fixed)
        .delay(ms(100))
        .jitter(Jitter::None)
        .deadline(secs(1))
        .build()
        .unwrap();
    let retry = Retry::new("limits.deadline", policy);
    let log = Attempts::new();
    let start = Instant::now();
    let out: Result<(), usize> = retry
        .run(|| async {
            let n = log.record();
            sleep(ms(400)).await;
            Err(n)
        })
        .await;
    // Attempts at 0 and 500 ms; after the second (at 900 ms) a wait would end at 1 s: the deadline.
    assert_eq!(out, Err(2), "the last error");
    assert_eq!(log.starts(), [ms(0), ms(500)]);
    assert_eq!(start.elapsed(), ms(900), "no trailing sleep");
    let stats = registry().snapshot();
    let stats = stats.retry("limits.deadline").unwrap();
    assert_eq!(
        (stats.calls, stats.retries, stats.deadline_exceeded),
        (1, 1, 1)
    );
    assert!(stats.to_string().contains("deadline_exceeded=1"));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_counts_from_the_start_of_the_call_and_applies_to_asked_delays() {
    let policy = RetryPolicy::builder()
        .max_attempts(10)
        .delay(Duration::ZERO)
        .deadline(secs(5))
        .build()
        .unwrap();
    let retry = Retry::new("limits.deadline_asked", policy);
    // A delay asked for that would end past the deadline is not waited.
    let log = Attempts::new();
    let start = Instant::now();
    let out: Result<(), HttpError> = retry
        .run_with(RetryOn::any_error().retry_after(asked), || async {
            log.record();
            sleep(secs(1)).await;
            Err(too_many(secs(3)))
        })
        .await;
    assert!(out.is_err());
    // 0..1 s, wait to 4 s, 4..5 s: a wait of 3 s from 5 s is past the deadline.
    assert_eq!(log.starts(), [ms(0), secs(4)]);
    assert_eq!(start.elapsed(), secs(5));

    // Each call has its own deadline.
    advance(secs(60)).await;
    let log = Attempts::new();
    let out = retry
        .run(|| async {
            match log.record() {
                1 => Err(1),
                n => Ok(n),
            }
        })
        .await;
    assert_eq!(out, Ok(2));
}

#[tokio::test(start_paused = true)]
async fn a_budget_of_a_tenth_lets_through_a_tenth_of_the_calls_plus_the_floor() {
    let policy = RetryPolicy::builder()
        .max_attempts(2)
        .delay(Duration::ZERO)
        .budget(0.1)
        .build()
        .unwrap();
    let retry = Retry::new("limits.budget", policy);
    let start = Instant::now();
    let mut attempts = 0_u64;
    // A service that always fails, called every 10 ms for 10 s.
    for call in 0..1000 {
        if call > 0 {
            sleep(ms(10)).await;
        }
        let _ = retry
            .run(|| {
                attempts += 1;
                async { Err::<(), _>(503) }
            })
            .await;
    }
    assert_eq!(
        start.elapsed(),
        ms(9990),
        "every call within one 10 s window"
    );
    let stats = registry().snapshot();
    let stats = stats.retry("limits.budget").unwrap();
    // At most 10 % of the 1000 calls, plus 10 retries a second over the 10 s window; and, since
    // every call's retry was wanted, exactly that.
    assert_eq!(stats.calls, 1000);
    assert_eq!(stats.retries, 1000 / 10 + 10 * 10);
    assert_eq!(attempts, 1000 + stats.retries);
    assert_eq!(stats.budget_exhausted, 1000 - stats.retries);
    assert!(stats.to_string().contains("budget_exhausted=800"));
    let budget = registry().retry_budget("limits.budget").unwrap();
    assert_eq!(budget.available(), 0);

    // Ten seconds later the window is empty again: the floor is back.
    sleep(secs(10)).await;
    assert_eq!(budget.available(), 100);
}

#[tokio::test(start_paused = true)]
async fn retries_with_one_name_share_one_budget() {
    let policy = RetryPolicy::builder()
        .max_attempts(2)
        .delay(Duration::ZERO)
        .budget(0.5)
        .build()
        .unwrap();
    let first = Retry::new("limits.shared_budget", policy);
    let second = Retry::new("limits.shared_budget", policy);
    for _ in 0..100 {
        let _ = first.run(|| async { Err::<(), _>(503) }).await;
    }
    // 100 calls: the floor (100) plus half of them (50) allows 150 retries; 100 are spent.
    let budget = second.budget().unwrap();
    assert_eq!(budget.available(), 50);
    for _ in 0..100 {
        let _ = second.run(|| async { Err::<(), _>(503) }).await;
    }
    // 200 calls allow 200 retries: the second retry drew on the same budget.
    let stats = registry().snapshot();
    let stats = stats.retry("limits.shared_budget").unwrap();
    assert_eq!((stats.calls, stats.retries), (200, 200));
    assert_eq!(budget.available(), 0);
}

#[test]
fn the_builder_validates_deadline_and_budget() {
    let err = |b: reliability::RetryPolicyBuilder| -> ConfigError { b.build().unwrap_err() };
    assert_eq!(
        err(RetryPolicy::builder().deadline(Duration::ZERO)).setting(),
        "deadline"
    );
    for bad in [0.0, -0.5, 1.01, f64::NAN, f64::INFINITY] {
        assert_eq!(
            err(RetryPolicy::builder().budget(bad)).setting(),
            "budget",
            "{bad}"
        );
    }
    let ok = RetryPolicy::builder()
        .budget(1.0)
        .deadline(ms(1))
        .build()
        .unwrap();
    assert_eq!(ok.budget(), Some(1.0));
    assert_eq!(ok.deadline(), Some(ms(1)));
}

/// A retry above a rate limiter, composed by hand: the rejection's `retry_after` is waited exactly.
#[tokio::test(start_paused = true)]
async fn a_retry_above_a_rate_limiter_waits_the_delay_it_reports() {
    let limiter = RateLimiter::builder("limits.limiter", 2).build().unwrap();
    let retry = Retry::new("limits.above_limiter", RetryPolicy::default());
    let start = Instant::now();
    let mut admitted = Vec::new();
    for _ in 0..4 {
        let out = retry
            .run_with(RetryOn::any_error().retry_after(Error::retry_after), || {
                limiter.run(async { Ok::<_, Error>(start.elapsed()) })
            })
            .await;
        admitted.push(out.unwrap());
    }
    // A burst of 2, then one permit every 500 ms, each taken the moment it is free.
    assert_eq!(admitted, [ms(0), ms(0), ms(500), ms(1000)]);
}
