//! `#[retry]`: attempt counts, backoff schedules, jitter bounds, `when` predicates and defaults.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{AppError, Attempts, Runs, ms, secs};
use reliability::retry;
use tokio::time::Instant;

/// Fails with `Status(500 + attempt)` until attempt `ok_at` (never when 0).
fn outcome(attempt: usize, ok_at: usize) -> Result<usize, AppError> {
    if ok_at != 0 && attempt >= ok_at {
        Ok(attempt)
    } else {
        Err(AppError::Status(500 + attempt as u16))
    }
}

#[retry(max = 4, backoff = "fixed", delay = "100ms", jitter = "none")]
async fn fixed(log: &Attempts) -> Result<usize, AppError> {
    outcome(log.record(), 0)
}

#[retry(max = 4, backoff = "linear", delay = "100ms", jitter = "none")]
async fn linear(log: &Attempts) -> Result<usize, AppError> {
    outcome(log.record(), 0)
}

#[retry(max = 5, backoff = "exponential", delay = "100ms", jitter = "none")]
async fn exponential(log: &Attempts) -> Result<usize, AppError> {
    outcome(log.record(), 0)
}

#[retry(
    max = 4,
    backoff = "exponential",
    delay = "100ms",
    multiplier = 3,
    jitter = "none"
)]
async fn tripling(log: &Attempts) -> Result<usize, AppError> {
    outcome(log.record(), 0)
}

#[retry(
    max = 6,
    backoff = "exponential",
    delay = "100ms",
    max_delay = "500ms",
    jitter = "none"
)]
async fn capped_exponential(log: &Attempts) -> Result<usize, AppError> {
    outcome(log.record(), 0)
}

#[retry(
    max = 5,
    backoff = "linear",
    delay = "100ms",
    max_delay = "250ms",
    jitter = "none"
)]
async fn capped_linear(log: &Attempts) -> Result<usize, AppError> {
    outcome(log.record(), 0)
}

#[tokio::test(start_paused = true)]
async fn fixed_backoff_waits_the_same_delay() {
    let log = Attempts::new();
    let start = Instant::now();
    let err = fixed(&log).await.unwrap_err();
    assert_eq!(err.status(), Some(504), "the last error, unchanged");
    assert_eq!(log.waits(), [ms(100), ms(100), ms(100)]);
    assert_eq!(start.elapsed(), ms(300));
}

#[tokio::test(start_paused = true)]
async fn linear_backoff_grows_by_the_delay() {
    let log = Attempts::new();
    let start = Instant::now();
    linear(&log).await.unwrap_err();
    assert_eq!(log.waits(), [ms(100), ms(200), ms(300)]);
    assert_eq!(start.elapsed(), ms(600));
}

#[tokio::test(start_paused = true)]
async fn exponential_backoff_doubles_by_default() {
    let log = Attempts::new();
    let start = Instant::now();
    exponential(&log).await.unwrap_err();
    assert_eq!(log.waits(), [ms(100), ms(200), ms(400), ms(800)]);
    assert_eq!(start.elapsed(), ms(1500));
}

#[tokio::test(start_paused = true)]
async fn exponential_backoff_uses_the_multiplier() {
    let log = Attempts::new();
    tripling(&log).await.unwrap_err();
    assert_eq!(log.waits(), [ms(100), ms(300), ms(900)]);
}

#[tokio::test(start_paused = true)]
async fn max_delay_caps_every_wait() {
    let log = Attempts::new();
    capped_exponential(&log).await.unwrap_err();
    assert_eq!(log.waits(), [ms(100), ms(200), ms(400), ms(500), ms(500)]);

    let log = Attempts::new();
    capped_linear(&log).await.unwrap_err();
    assert_eq!(log.waits(), [ms(100), ms(200), ms(250), ms(250)]);
}

#[retry(max = 1, delay = "1s")]
async fn once(runs: &Runs) -> Result<u32, AppError> {
    Err(AppError::Status(500 + runs.bump() as u16))
}

#[retry(max = 3, backoff = "fixed", delay = "1s", jitter = "none")]
async fn three(log: &Attempts) -> Result<usize, AppError> {
    outcome(log.record(), 0)
}

#[retry(max = 5, backoff = "fixed", delay = "1s", jitter = "none")]
async fn succeeds_third(log: &Attempts) -> Result<usize, AppError> {
    outcome(log.record(), 3)
}

#[tokio::test(start_paused = true)]
async fn max_counts_every_attempt_the_first_included() {
    let runs = Runs::new();
    let start = Instant::now();
    let err = once(&runs).await.unwrap_err();
    assert_eq!(runs.get(), 1, "max = 1 makes one attempt");
    assert_eq!(err.status(), Some(501));
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "no wait after the only attempt"
    );

    let log = Attempts::new();
    let err = three(&log).await.unwrap_err();
    assert_eq!(
        log.starts(),
        [secs(0), secs(1), secs(2)],
        "max = 3 makes three attempts"
    );
    assert_eq!(
        err.status(),
        Some(503),
        "the last attempt's error is returned"
    );
}

#[tokio::test(start_paused = true)]
async fn stops_at_the_first_success() {
    let log = Attempts::new();
    let start = Instant::now();
    assert_eq!(succeeds_third(&log).await.unwrap(), 3);
    assert_eq!(log.starts().len(), 3);
    assert_eq!(start.elapsed(), secs(2), "no wait after the success");
}

/// The last error is returned as is, even a type without `PartialEq` or `From<reliability::Error>`.
#[derive(Debug)]
struct Opaque {
    attempt: usize,
    detail: String,
}

#[retry(max = 3, delay = "10ms")]
async fn opaque_errors(log: &Attempts) -> Result<(), Opaque> {
    let attempt = log.record();
    Err(Opaque {
        attempt,
        detail: format!("failure #{attempt}"),
    })
}

#[tokio::test(start_paused = true)]
async fn the_last_error_is_returned_unchanged() {
    let log = Attempts::new();
    let err = opaque_errors(&log).await.unwrap_err();
    assert_eq!(err.attempt, 3);
    assert_eq!(err.detail, "failure #3");
}

fn is_transient(error: &AppError) -> bool {
    matches!(error.status(), Some(s) if s >= 500)
}

/// Fails with 503 twice, then with 404.
#[retry(max = 5, delay = "1s", jitter = "none", when = is_transient)]
async fn when_path(log: &Attempts) -> Result<(), AppError> {
    let attempt = log.record();
    Err(AppError::Status(if attempt < 3 { 503 } else { 404 }))
}

#[retry(max = 5, delay = "1s", jitter = "none", when = |e| e.status() == Some(503))]
async fn when_closure(log: &Attempts) -> Result<(), AppError> {
    let attempt = log.record();
    Err(AppError::Status(if attempt < 2 { 503 } else { 502 }))
}

#[retry(max = 3, delay = "1s", when = |e: &AppError| e.status() == Some(503))]
async fn when_never(log: &Attempts) -> Result<(), AppError> {
    log.record();
    Err(AppError::Status(400))
}

#[tokio::test(start_paused = true)]
async fn when_path_retries_only_matching_errors() {
    let log = Attempts::new();
    let err = when_path(&log).await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(404),
        "the non-retryable error ends the loop"
    );
    assert_eq!(log.starts(), [secs(0), secs(1), secs(3)]);
}

#[tokio::test(start_paused = true)]
async fn when_closure_retries_only_matching_errors() {
    let log = Attempts::new();
    let err = when_closure(&log).await.unwrap_err();
    assert_eq!(err.status(), Some(502));
    assert_eq!(log.starts(), [secs(0), secs(1)]);

    let log = Attempts::new();
    let start = Instant::now();
    let err = when_never(&log).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(log.starts().len(), 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[retry]
async fn defaults(log: &Attempts) -> Result<usize, AppError> {
    outcome(log.record(), 0)
}

#[tokio::test(start_paused = true)]
async fn defaults_are_three_attempts_exponential_from_one_second_with_full_jitter() {
    let mut first = BTreeSet::new();
    let mut second = BTreeSet::new();
    for _ in 0..40 {
        let log = Attempts::new();
        let err = defaults(&log).await.unwrap_err();
        assert_eq!(err.status(), Some(503));
        let waits = log.waits();
        assert_eq!(waits.len(), 2, "three attempts");
        assert!(waits[0] <= secs(1), "first wait {:?} above 1 s", waits[0]);
        assert!(waits[1] <= secs(2), "second wait {:?} above 2 s", waits[1]);
        first.insert(waits[0]);
        second.insert(waits[1]);
    }
    assert!(first.len() > 10, "full jitter varies the waits: {first:?}");
    // Full jitter over [0, 2 s] sometimes waits above 1 s: the base delay doubled.
    assert!(second.iter().any(|w| *w > secs(1)), "{second:?}");
}

#[retry(max = 4, backoff = "exponential", delay = "100ms", jitter = "full")]
async fn full_jitter(log: &Attempts) -> Result<usize, AppError> {
    outcome(log.record(), 0)
}

#[retry(max = 4, backoff = "exponential", delay = "100ms", jitter = "equal")]
async fn equal_jitter(log: &Attempts) -> Result<usize, AppError> {
    outcome(log.record(), 0)
}

#[retry(max = 5, delay = "100ms", max_delay = "1s", jitter = "decorrelated")]
async fn decorrelated_jitter(log: &Attempts) -> Result<usize, AppError> {
    outcome(log.record(), 0)
}

// Paused time advances to whole milliseconds, so a jittered wait is observed rounded up to the
// millisecond; every bound below is a whole number of milliseconds, so the bounds hold exactly.

const CALLS: usize = 60;

#[tokio::test(start_paused = true)]
async fn full_jitter_stays_within_zero_and_the_delay() {
    let bases = [ms(100), ms(200), ms(400)];
    let mut seen = vec![BTreeSet::new(); 3];
    for _ in 0..CALLS {
        let log = Attempts::new();
        full_jitter(&log).await.unwrap_err();
        let waits = log.waits();
        assert_eq!(waits.len(), 3);
        for (i, wait) in waits.into_iter().enumerate() {
            assert!(wait <= bases[i], "wait {i} = {wait:?} above {:?}", bases[i]);
            seen[i].insert(wait);
        }
    }
    for (i, set) in seen.iter().enumerate() {
        assert!(set.len() > 10, "wait {i} does not vary: {set:?}");
    }
    assert!(
        seen[0].iter().any(|w| *w < ms(50)),
        "full jitter reaches the lower half"
    );
}

#[tokio::test(start_paused = true)]
async fn equal_jitter_stays_within_half_and_the_delay() {
    let bases = [ms(100), ms(200), ms(400)];
    let mut seen = vec![BTreeSet::new(); 3];
    for _ in 0..CALLS {
        let log = Attempts::new();
        equal_jitter(&log).await.unwrap_err();
        for (i, wait) in log.waits().into_iter().enumerate() {
            assert!(
                bases[i] / 2 <= wait && wait <= bases[i],
                "wait {i} = {wait:?} outside [{:?}, {:?}]",
                bases[i] / 2,
                bases[i]
            );
            seen[i].insert(wait);
        }
    }
    for (i, set) in seen.iter().enumerate() {
        assert!(set.len() > 10, "wait {i} does not vary: {set:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn decorrelated_jitter_stays_within_the_delay_and_three_times_the_last_wait() {
    let (delay, max_delay) = (ms(100), secs(1));
    let mut seen = BTreeSet::new();
    let mut reached_cap_region = false;
    for _ in 0..CALLS {
        let log = Attempts::new();
        decorrelated_jitter(&log).await.unwrap_err();
        let waits = log.waits();
        assert_eq!(waits.len(), 4);
        let mut previous = delay;
        for wait in waits {
            let high = (previous * 3).min(max_delay);
            assert!(
                delay <= wait && wait <= high,
                "wait {wait:?} outside [{delay:?}, {high:?}]"
            );
            reached_cap_region |= wait > ms(300);
            seen.insert(wait);
            previous = wait;
        }
    }
    assert!(seen.len() > 20, "decorrelated jitter varies: {seen:?}");
    assert!(reached_cap_region, "waits grow beyond 3 × delay: {seen:?}");
}

#[derive(Debug, Default)]
struct Retries {
    counted: Runs,
}

#[retry(max = 3, delay = "1s", jitter = "none")]
async fn flaky(state: &Retries) -> Result<u32, AppError> {
    match state.counted.bump() {
        n @ 3.. => Ok(n),
        _ => Err(AppError::Status(503)),
    }
}

#[tokio::test(start_paused = true)]
async fn counters_in_the_registry() {
    let state = Retries::default();
    assert_eq!(flaky(&state).await.unwrap(), 3);
    let stats = reliability::registry().snapshot();
    let retry = stats
        .retry("retry::flaky")
        .expect("registered under module path and name");
    assert_eq!((retry.calls, retry.successes, retry.failures), (1, 1, 0));
    assert_eq!(retry.retries, 2);
}
