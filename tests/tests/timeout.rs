//! `#[timeout]`: the deadline, the error it returns, dropping the inner future, and how it composes
//! with `#[retry]`.

mod common;

use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{AppError, Attempts, DropFlag, ms, secs};
use reliability::{retry, timeout};
use tokio::time::{Instant, sleep};

#[timeout(secs = 2)]
async fn hangs(dropped: Arc<AtomicBool>) -> Result<u32, AppError> {
    let _guard = DropFlag(dropped);
    pending::<()>().await;
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn fires_at_the_deadline_and_drops_the_inner_future() {
    let dropped = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let err = hangs(dropped.clone()).await.unwrap_err();
    assert_eq!(start.elapsed(), secs(2));
    assert!(
        matches!(
            err,
            AppError::Reliability(reliability::Error::Timeout { after }) if after == secs(2)
        ),
        "{err:?}"
    );
    assert!(dropped.load(Ordering::SeqCst), "the body was dropped");
    let stats = reliability::registry().snapshot();
    let t = stats.timeout("timeout::hangs").unwrap();
    assert_eq!((t.calls, t.timeouts, t.successes, t.failures), (1, 1, 0, 0));
}

#[timeout(secs = 2)]
async fn takes(d: Duration) -> Result<Duration, AppError> {
    sleep(d).await;
    Ok(d)
}

#[tokio::test(start_paused = true)]
async fn a_call_that_finishes_in_time_is_untouched() {
    let start = Instant::now();
    assert_eq!(takes(ms(1999)).await.unwrap(), ms(1999));
    assert_eq!(start.elapsed(), ms(1999));

    let start = Instant::now();
    assert!(takes(ms(2001)).await.unwrap_err().is_timeout());
    assert_eq!(start.elapsed(), secs(2));
}

#[timeout(secs = 1)]
async fn fails_fast() -> Result<(), AppError> {
    Err(AppError::Status(500))
}

#[tokio::test(start_paused = true)]
async fn errors_of_the_body_pass_through() {
    let err = fails_fast().await.unwrap_err();
    assert_eq!(err.status(), Some(500));
}

#[timeout(secs = 0.25)]
async fn fractional_secs() -> Result<(), AppError> {
    pending().await
}

#[timeout(secs = "250ms")]
async fn string_secs() -> Result<(), AppError> {
    pending().await
}

#[timeout(ms = 250)]
async fn millis() -> Result<(), AppError> {
    pending().await
}

#[timeout(secs = "1m30s")]
async fn compound() -> Result<(), AppError> {
    pending().await
}

#[tokio::test(start_paused = true)]
async fn every_way_of_writing_the_deadline() {
    for (form, call) in [
        (
            "secs = 0.25",
            Box::pin(fractional_secs()) as std::pin::Pin<Box<dyn Future<Output = _>>>,
        ),
        ("secs = \"250ms\"", Box::pin(string_secs())),
        ("ms = 250", Box::pin(millis())),
    ] {
        let start = Instant::now();
        let err = call.await.unwrap_err();
        assert!(err.is_timeout(), "{form}: {err:?}");
        assert_eq!(start.elapsed(), ms(250), "{form}");
    }
    let start = Instant::now();
    assert!(compound().await.unwrap_err().is_timeout());
    assert_eq!(start.elapsed(), secs(90));
}

/// The deadline is on the tokio clock, so `anyhow::Error` works as the error type too.
#[timeout(ms = 100)]
async fn anyhow_hangs() -> anyhow::Result<()> {
    pending().await
}

#[tokio::test(start_paused = true)]
async fn anyhow_error_carries_the_timeout() {
    let err = anyhow_hangs().await.unwrap_err();
    let inner = err
        .downcast_ref::<reliability::Error>()
        .expect("a reliability::Error");
    assert_eq!(*inner, reliability::Error::Timeout { after: ms(100) });
}

#[retry(max = 3, backoff = "fixed", delay = "100ms", jitter = "none")]
#[timeout(ms = 250)]
async fn retry_over_timeout(log: &Attempts) -> Result<(), AppError> {
    log.record();
    pending().await
}

#[tokio::test(start_paused = true)]
async fn retry_over_timeout_bounds_each_attempt() {
    let log = Attempts::new();
    let start = Instant::now();
    let err = retry_over_timeout(&log).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    // Attempts at 0, 250 + 100, 2 × 250 + 2 × 100.
    assert_eq!(log.starts(), [ms(0), ms(350), ms(700)]);
    assert_eq!(start.elapsed(), ms(3 * 250 + 2 * 100));
    let stats = reliability::registry().snapshot();
    let t = stats.timeout("timeout::retry_over_timeout").unwrap();
    assert_eq!((t.calls, t.timeouts), (3, 3));
    let r = stats.retry("timeout::retry_over_timeout").unwrap();
    assert_eq!((r.calls, r.retries, r.failures), (1, 2, 1));
}

#[timeout(secs = 1)]
#[retry(max = 10, backoff = "fixed", delay = "300ms", jitter = "none")]
async fn timeout_over_retry(log: &Attempts, dropped: Arc<AtomicBool>) -> Result<(), AppError> {
    let _guard = DropFlag(dropped);
    log.record();
    Err(AppError::Status(503))
}

#[tokio::test(start_paused = true)]
async fn timeout_over_retry_bounds_the_whole_call() {
    let log = Attempts::new();
    let dropped = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let err = timeout_over_retry(&log, dropped.clone()).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(start.elapsed(), secs(1));
    assert_eq!(log.starts(), [ms(0), ms(300), ms(600), ms(900)]);
    assert!(dropped.load(Ordering::SeqCst));
    // Four attempts are three retries: the wait the deadline cut short began no fourth retry.
    let stats = reliability::registry().snapshot();
    let r = stats.retry("timeout::timeout_over_retry").unwrap();
    assert_eq!(r.retries, 3, "{r}");
}

#[timeout(ms = 100)]
async fn busy_then_waits() -> Result<&'static str, AppError> {
    // Work before the first wait (encoding a request, a blocking lookup): 150 ms on the real clock.
    std::thread::sleep(ms(150));
    tokio::time::sleep(ms(10)).await;
    Ok("answered")
}

/// The deadline counts from the first poll, as `tokio::time::timeout`'s does: work the body does
/// before its first wait is inside it. (Real time: this test only passes or fails on a decision,
/// never on a measured speed; a slower machine only makes the work longer.)
#[tokio::test]
async fn the_deadline_counts_work_done_before_the_first_wait() {
    let err = busy_then_waits().await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
}
