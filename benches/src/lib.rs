//! Shared pieces of the benchmarks in `benches/`: the measured bodies, an error type, and the
//! hand-written equivalents that each group measures beside `reliability` and its peers.
//!
//! Run them with `cargo bench -p benches`; the figures and how to read them are in BENCHMARKS.md.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The error of every measured function.
#[derive(Debug)]
pub enum BenchError {
    /// The body failed.
    Service,
    /// A policy failed the call (timeout, open circuit).
    Reliability(reliability::Error),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Service => f.write_str("the service failed"),
            BenchError::Reliability(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BenchError {}

impl From<reliability::Error> for BenchError {
    fn from(e: reliability::Error) -> Self {
        BenchError::Reliability(e)
    }
}

/// The result of every measured function.
pub type BenchResult = Result<u64, BenchError>;

/// A body that is ready at once and succeeds: the floor every group is measured against.
pub async fn work(x: u64) -> BenchResult {
    Ok(x.wrapping_add(1))
}

/// A body that is ready at once and always fails.
pub async fn down(_x: u64) -> BenchResult {
    Err(BenchError::Service)
}

thread_local! {
    static FLAKY_CALLS: Cell<u64> = const { Cell::new(0) };
}

/// A body that fails every other call on this thread: called twice per measured call (one failure,
/// then success), it stays in step across benchmarks.
pub async fn flaky(x: u64) -> BenchResult {
    let n = FLAKY_CALLS.get();
    FLAKY_CALLS.set(n.wrapping_add(1));
    if n.is_multiple_of(2) {
        Err(BenchError::Service)
    } else {
        Ok(x.wrapping_add(1))
    }
}

/// A future that returns `Pending` once (waking itself at once), then `Ready`.
#[derive(Debug, Default)]
pub struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// A body that is pending once before it succeeds, so a timeout around it must arm its timer.
pub async fn slow(x: u64) -> BenchResult {
    YieldOnce::default().await;
    Ok(x.wrapping_add(1))
}

/// The fallback target of the fallback groups.
pub async fn alt(x: u64) -> BenchResult {
    Ok(x.wrapping_sub(1))
}

/// A retry loop written by hand: up to `max` attempts, exponential delays from `delay` (none when
/// zero), the last error returned.
pub async fn hand_retry<F, Fut>(max: u32, delay: Duration, mut attempt: F) -> BenchResult
where
    F: FnMut() -> Fut,
    Fut: Future<Output = BenchResult>,
{
    let mut n = 1;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if n >= max => return Err(e),
            Err(_) => {
                let wait = delay.saturating_mul(1 << (n - 1).min(16));
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                n += 1;
            }
        }
    }
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;

/// A minimal circuit breaker written by hand with atomics: consecutive failures open it, the
/// cooldown closes it again (no half-open trials).
#[derive(Debug)]
pub struct HandBreaker {
    state: AtomicU8,
    failures: AtomicU32,
    open_until: AtomicU64,
    epoch: Instant,
    threshold: u32,
    cooldown: Duration,
}

impl HandBreaker {
    /// A closed breaker.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        HandBreaker {
            state: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            epoch: Instant::now(),
            threshold,
            cooldown,
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Runs `fut` unless the breaker is open.
    pub async fn call<F: Future<Output = BenchResult>>(&self, fut: F) -> BenchResult {
        if self.state.load(Ordering::Acquire) == OPEN {
            if self.now() < self.open_until.load(Ordering::Acquire) {
                return Err(BenchError::Reliability(reliability::Error::Timeout {
                    after: Duration::ZERO,
                }));
            }
            self.state.store(CLOSED, Ordering::Release);
        }
        let out = fut.await;
        if out.is_ok() {
            if self.failures.load(Ordering::Relaxed) != 0 {
                self.failures.store(0, Ordering::Relaxed);
            }
        } else if self.failures.fetch_add(1, Ordering::AcqRel) + 1 >= self.threshold {
            let cooldown = u64::try_from(self.cooldown.as_nanos()).unwrap_or(u64::MAX);
            self.open_until
                .store(self.now().saturating_add(cooldown), Ordering::Release);
            self.failures.store(0, Ordering::Relaxed);
            self.state.store(OPEN, Ordering::Release);
        }
        out
    }
}

/// tower's retry policy for the benchmarks: `max` attempts in all, retried at once.
#[derive(Debug, Clone, Copy)]
pub struct Attempts(pub usize);

impl<E> tower::retry::Policy<u64, u64, E> for Attempts {
    type Future = std::future::Ready<()>;

    fn retry(&mut self, _req: &mut u64, result: &mut Result<u64, E>) -> Option<Self::Future> {
        match result {
            Ok(_) => None,
            Err(_) if self.0 > 1 => {
                self.0 -= 1;
                Some(std::future::ready(()))
            }
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

/// tower's hedge policy for the benchmarks: every request may be hedged.
#[derive(Debug, Clone, Copy)]
pub struct HedgeAll;

impl tower::hedge::Policy<u64> for HedgeAll {
    fn clone_request(&self, req: &u64) -> Option<u64> {
        Some(*req)
    }

    fn can_retry(&self, _req: &u64) -> bool {
        true
    }
}

/// A current-thread tokio runtime with the timer on, as each benchmark thread uses.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"))
}

/// recloser's breaker as the groups set it up: `open_wait` open, opening on a ring of `closed_len`
/// calls (recloser's default ring when `None`).
pub fn recloser_breaker(closed_len: Option<usize>, open_wait: Duration) -> recloser::AsyncRecloser {
    let builder = recloser::Recloser::custom().open_wait(open_wait);
    let builder = match closed_len {
        Some(len) => builder.closed_len(len),
        None => builder,
    };
    recloser::AsyncRecloser::from(builder.build())
}

/// failsafe's breaker: opens after `failures` consecutive failures, for `open_for`.
pub fn failsafe_breaker(
    failures: u32,
    open_for: Duration,
) -> failsafe::StateMachine<
    failsafe::failure_policy::ConsecutiveFailures<failsafe::backoff::Constant>,
    (),
> {
    failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(
            failures,
            failsafe::backoff::constant(open_for),
        ))
        .build()
}

/// tower's retry policy with a retry budget, as tower's `budget` module shows it: a success
/// deposits, a retry withdraws (and is not made when the budget is spent); `max` attempts in all.
#[derive(Debug, Clone)]
pub struct BudgetAttempts {
    /// Attempts left, the first included.
    pub attempts: usize,
    /// The budget shared by every clone of the policy.
    pub budget: std::sync::Arc<tower::retry::budget::TpsBudget>,
}

impl<E> tower::retry::Policy<u64, u64, E> for BudgetAttempts {
    type Future = std::future::Ready<()>;

    fn retry(&mut self, _req: &mut u64, result: &mut Result<u64, E>) -> Option<Self::Future> {
        use tower::retry::budget::Budget;
        match result {
            Ok(_) => {
                self.budget.deposit();
                None
            }
            Err(_) if self.attempts > 1 && self.budget.withdraw() => {
                self.attempts -= 1;
                Some(std::future::ready(()))
            }
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

/// failsafe's rate breaker: opens when the success rate over `window` falls under
/// `1 - failure_rate`, once `min_calls` calls were made in it, for `open_for`.
pub fn failsafe_rate_breaker(
    failure_rate: f64,
    min_calls: u32,
    window: Duration,
    open_for: Duration,
) -> failsafe::StateMachine<
    failsafe::failure_policy::SuccessRateOverTimeWindow<failsafe::backoff::Constant>,
    (),
> {
    failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::success_rate_over_time_window(
            1.0 - failure_rate,
            min_calls,
            window,
            failsafe::backoff::constant(open_for),
        ))
        .build()
}
