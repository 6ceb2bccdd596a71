//! `#[circuit_breaker]`: opening, rejecting without running the body, the exact cooldown, bounded
//! half-open trials, closing and re-opening, `when`, cancelled trials, sharing by name, the registry.

mod common;

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use common::{AppError, Gate, Runs, ms, secs};
use futures::future::join_all;
use futures::poll;
use proptest::prelude::*;
use reliability::{
    CircuitBreaker, CircuitBreakerBuilder, CircuitState, SlidingWindow, TripRule, circuit_breaker,
    registry,
};
use tokio::time::{Instant, advance};

fn state(name: &str) -> CircuitState {
    registry()
        .circuit_breaker(name)
        .expect("the breaker is registered")
        .state()
}

fn answer(runs: &Runs, status: Option<u16>) -> Result<u32, AppError> {
    let n = runs.bump();
    match status {
        Some(s) => Err(AppError::Status(s)),
        None => Ok(n),
    }
}

#[circuit_breaker(name = "cb.opens", failure_threshold = 3, cooldown = 10)]
async fn opens(runs: &Runs, status: Option<u16>) -> Result<u32, AppError> {
    answer(runs, status)
}

#[tokio::test(start_paused = true)]
async fn opens_after_the_threshold_and_rejects_without_running_the_body() {
    let runs = Runs::new();
    assert!(
        registry().circuit_breaker("cb.opens").is_none(),
        "not used yet"
    );
    for _ in 0..2 {
        opens(&runs, Some(503)).await.unwrap_err();
    }
    assert_eq!(
        state("cb.opens"),
        CircuitState::Closed,
        "two failures of three"
    );
    opens(&runs, Some(503)).await.unwrap_err();
    assert_eq!(state("cb.opens"), CircuitState::Open);
    assert_eq!(runs.get(), 3);

    let start = Instant::now();
    let err = opens(&runs, None).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO, "rejected at once");
    assert_eq!(runs.get(), 3, "the body did not run");
    match err {
        AppError::Reliability(reliability::Error::CircuitOpen { name, retry_after }) => {
            assert_eq!(&*name, "cb.opens");
            assert_eq!(retry_after, secs(10));
        }
        other => panic!("expected CircuitOpen, got {other:?}"),
    }
    let stats = registry().snapshot();
    let cb = stats.circuit_breaker("cb.opens").unwrap();
    assert_eq!(
        (cb.calls, cb.failures, cb.rejections, cb.openings),
        (4, 3, 1, 1)
    );
    assert_eq!(cb.state, Some(CircuitState::Open));
}

#[circuit_breaker(
    name = "cb.cooldown",
    failure_threshold = 1,
    success_threshold = 1,
    cooldown = 10
)]
async fn cooldown(runs: &Runs, status: Option<u16>) -> Result<u32, AppError> {
    answer(runs, status)
}

#[tokio::test(start_paused = true)]
async fn half_opens_exactly_after_the_cooldown() {
    let runs = Runs::new();
    cooldown(&runs, Some(503)).await.unwrap_err();
    assert_eq!(state("cb.cooldown"), CircuitState::Open);

    advance(ms(9_999)).await;
    let err = cooldown(&runs, None).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(ms(1)), "one millisecond left");
    assert_eq!(runs.get(), 1);

    advance(ms(1)).await;
    assert_eq!(cooldown(&runs, None).await.unwrap(), 2, "a trial call runs");
    assert_eq!(
        state("cb.cooldown"),
        CircuitState::Closed,
        "success_threshold = 1"
    );
}

#[circuit_breaker(
    name = "cb.trials",
    failure_threshold = 1,
    success_threshold = 2,
    cooldown = 5
)]
async fn trials(runs: &Runs, gate: &Gate, status: Option<u16>) -> Result<u32, AppError> {
    if status.is_none() {
        runs.bump();
        gate.pass().await;
        return Ok(0);
    }
    answer(runs, status)
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_at_most_success_threshold_concurrent_trials() {
    let (runs, gate) = (Runs::new(), Gate::new());
    trials(&runs, &gate, Some(503)).await.unwrap_err();
    advance(secs(5)).await;
    let before = runs.get();

    let calls = join_all((0..5).map(|_| trials(&runs, &gate, None)));
    let release = async {
        // Every call has been polled once: the admitted ones wait at the gate.
        tokio::task::yield_now().await;
        assert_eq!(gate.waiting(), 2, "two trial calls run");
        assert_eq!(state("cb.trials"), CircuitState::HalfOpen);
        gate.open(2);
    };
    let (results, ()) = tokio::join!(calls, release);
    assert_eq!(runs.get() - before, 2, "only the trials ran their body");
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let rejected: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| e.retry_after())
        .collect();
    assert_eq!(ok, 2);
    assert_eq!(
        rejected,
        [Some(Duration::ZERO); 3],
        "all slots taken: rejected as if open"
    );
    assert_eq!(
        state("cb.trials"),
        CircuitState::Closed,
        "two trial successes close it"
    );
}

#[circuit_breaker(
    name = "cb.closes",
    failure_threshold = 2,
    success_threshold = 3,
    cooldown = 1
)]
async fn closes(runs: &Runs, status: Option<u16>) -> Result<u32, AppError> {
    answer(runs, status)
}

#[tokio::test(start_paused = true)]
async fn closes_after_success_threshold_trial_successes() {
    let runs = Runs::new();
    for _ in 0..2 {
        closes(&runs, Some(500)).await.unwrap_err();
    }
    advance(secs(1)).await;
    for i in 1..=2 {
        closes(&runs, None).await.unwrap();
        assert_eq!(
            state("cb.closes"),
            CircuitState::HalfOpen,
            "after {i} trial successes"
        );
    }
    closes(&runs, None).await.unwrap();
    assert_eq!(state("cb.closes"), CircuitState::Closed);
    // Closed again: the failure count starts from zero.
    closes(&runs, Some(500)).await.unwrap_err();
    assert_eq!(state("cb.closes"), CircuitState::Closed);
    closes(&runs, Some(500)).await.unwrap_err();
    assert_eq!(state("cb.closes"), CircuitState::Open);
}

#[circuit_breaker(
    name = "cb.reopens",
    failure_threshold = 2,
    success_threshold = 2,
    cooldown = 30
)]
async fn reopens(runs: &Runs, status: Option<u16>) -> Result<u32, AppError> {
    answer(runs, status)
}

#[tokio::test(start_paused = true)]
async fn one_failure_in_half_open_reopens_for_a_full_cooldown() {
    let runs = Runs::new();
    for _ in 0..2 {
        reopens(&runs, Some(500)).await.unwrap_err();
    }
    advance(secs(30)).await;
    reopens(&runs, None).await.unwrap();
    assert_eq!(state("cb.reopens"), CircuitState::HalfOpen);
    reopens(&runs, Some(500)).await.unwrap_err();
    assert_eq!(
        state("cb.reopens"),
        CircuitState::Open,
        "one failure re-opens it"
    );

    let ran = runs.get();
    advance(ms(29_999)).await;
    let err = reopens(&runs, None).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(ms(1)));
    assert_eq!(runs.get(), ran);
    advance(ms(1)).await;
    reopens(&runs, None).await.unwrap();
    let stats = registry().snapshot();
    assert_eq!(stats.circuit_breaker("cb.reopens").unwrap().openings, 2);
}

#[circuit_breaker(name = "cb.resets", failure_threshold = 3)]
async fn resets(runs: &Runs, status: Option<u16>) -> Result<u32, AppError> {
    answer(runs, status)
}

#[tokio::test(start_paused = true)]
async fn a_success_resets_the_failure_count_while_closed() {
    let runs = Runs::new();
    for status in [Some(500), Some(500), None, Some(500), Some(500)] {
        let _ = resets(&runs, status).await;
    }
    assert_eq!(
        state("cb.resets"),
        CircuitState::Closed,
        "never three in a row"
    );
    resets(&runs, Some(500)).await.unwrap_err();
    assert_eq!(state("cb.resets"), CircuitState::Open);
}

fn server_error(e: &AppError) -> bool {
    matches!(e.status(), Some(s) if s >= 500)
}

#[circuit_breaker(name = "cb.when_path", failure_threshold = 2, when = server_error)]
async fn when_path(runs: &Runs, status: Option<u16>) -> Result<u32, AppError> {
    answer(runs, status)
}

#[circuit_breaker(
    name = "cb.when_closure",
    failure_threshold = 2,
    when = |e| matches!(e.status(), Some(s) if s >= 500)
)]
async fn when_closure(runs: &Runs, status: Option<u16>) -> Result<u32, AppError> {
    answer(runs, status)
}

#[tokio::test(start_paused = true)]
async fn when_filters_the_counted_errors() {
    let runs = Runs::new();
    for _ in 0..10 {
        let err = when_path(&runs, Some(404)).await.unwrap_err();
        assert_eq!(err.status(), Some(404), "the error itself is returned");
    }
    assert_eq!(
        state("cb.when_path"),
        CircuitState::Closed,
        "404s are not counted"
    );
    // An uncounted error is a success for the breaker: it resets the count.
    for status in [503, 404, 503] {
        when_path(&runs, Some(status)).await.unwrap_err();
    }
    assert_eq!(state("cb.when_path"), CircuitState::Closed);
    when_path(&runs, Some(503)).await.unwrap_err();
    assert_eq!(state("cb.when_path"), CircuitState::Open);
    let stats = registry().snapshot();
    let cb = stats.circuit_breaker("cb.when_path").unwrap();
    assert_eq!((cb.successes, cb.failures), (11, 3));

    for status in [404, 500, 400, 502] {
        when_closure(&runs, Some(status)).await.unwrap_err();
    }
    assert_eq!(state("cb.when_closure"), CircuitState::Closed);
    when_closure(&runs, Some(500)).await.unwrap_err();
    assert_eq!(state("cb.when_closure"), CircuitState::Open);
}

#[circuit_breaker(
    name = "cb.cancel",
    failure_threshold = 1,
    success_threshold = 1,
    cooldown = 1
)]
async fn cancel(runs: &Runs, gate: &Gate, wait: bool) -> Result<u32, AppError> {
    let n = runs.bump();
    if wait {
        gate.pass().await;
    }
    if n == 1 {
        return Err(AppError::Status(500));
    }
    Ok(n)
}

#[tokio::test(start_paused = true)]
async fn a_dropped_trial_frees_its_slot() {
    let (runs, gate) = (Runs::new(), Gate::new());
    cancel(&runs, &gate, false).await.unwrap_err();
    advance(secs(1)).await;

    {
        let mut trial = pin!(cancel(&runs, &gate, true));
        assert!(
            poll!(trial.as_mut()).is_pending(),
            "the trial waits at the gate"
        );
        assert_eq!(gate.waiting(), 1);
        let err = cancel(&runs, &gate, false).await.unwrap_err();
        assert!(err.is_circuit_open(), "the only trial slot is taken");
    } // the trial is dropped here, unfinished
    assert_eq!(
        state("cb.cancel"),
        CircuitState::HalfOpen,
        "a cancelled trial counts as nothing"
    );

    assert_eq!(
        cancel(&runs, &gate, false).await.unwrap(),
        3,
        "the freed slot admits a new trial"
    );
    assert_eq!(state("cb.cancel"), CircuitState::Closed);
}

#[circuit_breaker(name = "cb.shared", failure_threshold = 2, cooldown = 60)]
async fn shared_a(runs: &Runs) -> Result<u32, AppError> {
    answer(runs, Some(500))
}

#[circuit_breaker(name = "cb.shared", failure_threshold = 2, cooldown = 60)]
async fn shared_b(runs: &Runs) -> Result<u32, AppError> {
    answer(runs, None)
}

#[tokio::test(start_paused = true)]
async fn functions_with_one_name_share_one_breaker() {
    let (a, b) = (Runs::new(), Runs::new());
    assert_eq!(shared_b(&b).await.unwrap(), 1);
    shared_a(&a).await.unwrap_err();
    shared_a(&a).await.unwrap_err();
    let err = shared_b(&b).await.unwrap_err();
    assert!(err.is_circuit_open(), "{err:?}");
    assert_eq!(b.get(), 1, "b's body did not run");
    let stats = registry().snapshot();
    let cb = stats.circuit_breaker("cb.shared").unwrap();
    assert_eq!(
        (cb.calls, cb.successes, cb.failures, cb.rejections),
        (4, 1, 2, 1)
    );
}

#[circuit_breaker(
    name = "cb.panic",
    failure_threshold = 1,
    success_threshold = 1,
    cooldown = 1
)]
async fn panics(runs: &Runs, panic: bool) -> Result<u32, AppError> {
    let n = runs.bump();
    if panic {
        panic!("the trial panics");
    }
    if n == 1 {
        return Err(AppError::Status(500));
    }
    Ok(n)
}

#[tokio::test(start_paused = true)]
async fn a_panicking_trial_frees_its_slot() {
    use futures::FutureExt;
    use std::panic::AssertUnwindSafe;

    let runs = Runs::new();
    panics(&runs, false).await.unwrap_err();
    advance(secs(1)).await;
    let panicked = AssertUnwindSafe(panics(&runs, true)).catch_unwind().await;
    assert!(panicked.is_err());
    assert_eq!(state("cb.panic"), CircuitState::HalfOpen);
    assert_eq!(panics(&runs, false).await.unwrap(), 3, "the slot was freed");
    assert_eq!(state("cb.panic"), CircuitState::Closed);
}

#[circuit_breaker(failure_threshold = 1, success_threshold = 1, cooldown = 2)]
async fn default_named(runs: &Runs, gate: &Gate, status: Option<u16>) -> Result<u32, AppError> {
    gate.pass().await;
    answer(runs, status)
}

#[tokio::test(start_paused = true)]
async fn the_registry_reports_the_state_under_the_default_name() {
    let name = "circuit_breaker::default_named";
    assert!(
        registry().circuit_breaker(name).is_none(),
        "None before first use"
    );
    let (runs, gate) = (Runs::new(), Gate::new());
    gate.open(2);
    default_named(&runs, &gate, None).await.unwrap();
    let breaker = registry()
        .circuit_breaker(name)
        .expect("registered on first use");
    assert_eq!(breaker.state(), CircuitState::Closed);
    default_named(&runs, &gate, Some(500)).await.unwrap_err();
    assert_eq!(breaker.state(), CircuitState::Open);

    advance(secs(2)).await;
    let mut trial = pin!(default_named(&runs, &gate, None));
    assert!(
        poll!(trial.as_mut()).is_pending(),
        "the trial waits at the gate"
    );
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    gate.open(1);
    trial.await.unwrap();
    assert_eq!(breaker.state(), CircuitState::Closed);
    let stats = registry().snapshot();
    let cb = stats.circuit_breaker(name).unwrap();
    assert_eq!(
        (cb.calls, cb.successes, cb.failures, cb.openings),
        (3, 2, 1, 1)
    );
    assert_eq!(cb.state, Some(CircuitState::Closed));
}

/// Generic: each instantiation has its own breaker (and its own name in the registry).
#[circuit_breaker(failure_threshold = 1, cooldown = 60)]
async fn per_type<T>(fail: bool) -> Result<&'static str, AppError> {
    if fail {
        Err(AppError::Status(503))
    } else {
        Ok(std::any::type_name::<T>())
    }
}

#[tokio::test(start_paused = true)]
async fn each_instantiation_of_a_generic_function_has_its_own_breaker() {
    per_type::<u8>(true).await.unwrap_err();
    assert!(per_type::<u8>(false).await.unwrap_err().is_circuit_open());
    assert_eq!(
        per_type::<u16>(false).await.unwrap(),
        "u16",
        "u16's breaker is closed"
    );
    let u8_breaker = registry()
        .circuit_breaker("circuit_breaker::per_type::<u8>")
        .unwrap();
    let u16_breaker = registry()
        .circuit_breaker("circuit_breaker::per_type::<u16>")
        .unwrap();
    assert_eq!(u8_breaker.state(), CircuitState::Open);
    assert_eq!(u16_breaker.state(), CircuitState::Closed);
}

struct Gateway;

trait Chat {
    async fn ask(&self, fail: bool) -> Result<(), AppError>;
}

trait Embed {
    async fn ask(&self, fail: bool) -> Result<(), AppError>;
}

impl Chat for Gateway {
    #[circuit_breaker(failure_threshold = 1, cooldown = 60)]
    async fn ask(&self, fail: bool) -> Result<(), AppError> {
        if fail {
            Err(AppError::Status(503))
        } else {
            Ok(())
        }
    }
}

impl Embed for Gateway {
    #[circuit_breaker(failure_threshold = 1, cooldown = 60)]
    async fn ask(&self, fail: bool) -> Result<(), AppError> {
        if fail {
            Err(AppError::Status(503))
        } else {
            Ok(())
        }
    }
}

/// Two trait impls of one method on one type: two breakers, two names, counters kept apart.
#[tokio::test(start_paused = true)]
async fn two_trait_impls_of_one_method_have_their_own_breakers() {
    Chat::ask(&Gateway, true).await.unwrap_err();
    Embed::ask(&Gateway, false).await.unwrap();
    let chat = "<circuit_breaker::Gateway as circuit_breaker::Chat>::ask";
    let embed = "<circuit_breaker::Gateway as circuit_breaker::Embed>::ask";
    assert_eq!(
        registry().circuit_breaker(chat).unwrap().state(),
        CircuitState::Open
    );
    assert_eq!(
        registry().circuit_breaker(embed).unwrap().state(),
        CircuitState::Closed
    );
    let stats = registry().snapshot();
    assert_eq!(stats.circuit_breaker(chat).unwrap().failures, 1);
    assert_eq!(stats.circuit_breaker(embed).unwrap().successes, 1);
}

// ---------------------------------------------------------------------------------------------
// The runtime breaker: trip rules, late results, manual control (programmatic API).
// ---------------------------------------------------------------------------------------------

/// A call of the fake service: answers after `after` on the tokio clock, with `status` as error.
async fn service(after: Duration, status: Option<u16>) -> Result<(), AppError> {
    tokio::time::sleep(after).await;
    match status {
        Some(s) => Err(AppError::Status(s)),
        None => Ok(()),
    }
}

/// 256 calls in flight together: every tenth fails at once, the others succeed after 1 to 3 ms.
async fn cold_start_burst(breaker: &CircuitBreaker) -> Vec<Result<(), AppError>> {
    let start = Arc::new(tokio::sync::Barrier::new(256));
    let calls: Vec<_> = (0..256u64)
        .map(|i| {
            let (breaker, start) = (breaker.clone(), start.clone());
            tokio::spawn(async move {
                let (after, status) = if i % 10 == 0 {
                    (Duration::ZERO, Some(503))
                } else {
                    (ms(1 + i % 3), None)
                };
                // Admitted first, then all start together: 256 calls in flight at once.
                let call = async {
                    start.wait().await;
                    service(after, status).await
                };
                breaker.call(call).await
            })
        })
        .collect();
    let mut out = Vec::new();
    for call in calls {
        out.push(call.await.unwrap());
    }
    out
}

/// The documented trap of the consecutive rule: under concurrent traffic the fast failures end
/// first, so 26 instant errors among 256 calls open a breaker with `failure_threshold = 5` although
/// 90% of the calls succeed. The rate rule with its defaults keeps the circuit closed. (On paused
/// time, so that every failure ends before the first success, as it does on a real service.)
#[tokio::test(start_paused = true)]
async fn a_cold_start_burst_opens_a_consecutive_breaker_but_not_a_rate_breaker() {
    let consecutive = CircuitBreaker::builder("cb.burst.consecutive")
        .failure_threshold(5)
        .build()
        .unwrap();
    let out = cold_start_burst(&consecutive).await;
    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 256 - 26);
    // The successes that ended after the opening belong to the closed period: ignored.
    assert_eq!(consecutive.state(), CircuitState::Open, "the trap");
    let next = consecutive.call(service(Duration::ZERO, None)).await;
    assert!(
        next.unwrap_err().is_circuit_open(),
        "the traffic that follows is rejected"
    );

    let rate = CircuitBreaker::builder("cb.burst.rate.paused")
        .failure_rate(0.5)
        .build()
        .unwrap();
    cold_start_burst(&rate).await;
    assert_eq!(rate.state(), CircuitState::Closed);
}

/// The same burst on a multi-thread runtime, in whatever order the calls end: a rate breaker with
/// defaults never sees half of its window fail, so it stays closed and rejects nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cold_start_burst_on_many_threads_leaves_a_rate_breaker_closed() {
    let rate = CircuitBreaker::builder("cb.burst.rate")
        .failure_rate(0.5)
        .build()
        .unwrap();
    let out = cold_start_burst(&rate).await;
    assert_eq!(rate.state(), CircuitState::Closed);
    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 256 - 26);
    let stats = registry().snapshot();
    let stats = stats.circuit_breaker("cb.burst.rate").unwrap();
    assert_eq!(
        (
            stats.calls,
            stats.failures,
            stats.rejections,
            stats.openings
        ),
        (256, 26, 0, 0)
    );
}

/// At a sustained 60% failure rate, a rate breaker with defaults (window and minimum 100 calls)
/// stays closed until the window holds 100 calls, and opens at the 100th.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sustained_failure_rate_opens_a_rate_breaker_within_the_window() {
    let breaker = CircuitBreaker::builder("cb.rate.sustained")
        .failure_rate(0.5)
        .build()
        .unwrap();
    for batch in 0..10 {
        assert_eq!(breaker.state(), CircuitState::Closed, "{batch} batches");
        // Ten concurrent calls, six failing at once, four succeeding a little later.
        let calls = (0..10u64).map(|i| {
            let breaker = breaker.clone();
            tokio::spawn(async move {
                let status = (i < 6).then_some(500);
                breaker.call(service(ms(i % 3), status)).await
            })
        });
        for call in calls.collect::<Vec<_>>() {
            let out = call.await.unwrap();
            assert!(!matches!(out, Err(e) if e.is_circuit_open()));
        }
    }
    assert_eq!(breaker.state(), CircuitState::Open, "60 failures of 100");
    let rejected = breaker.call(service(Duration::ZERO, None)).await;
    assert!(rejected.unwrap_err().is_circuit_open());
}

/// Calls that answer in 5 s against `slow_call = 2 s` open the breaker at the configured slow
/// share although every call succeeds; below that share it stays closed.
#[tokio::test(start_paused = true)]
async fn slow_calls_open_a_rate_breaker_although_every_call_succeeds() {
    let slow_breaker = |name: &str| {
        CircuitBreaker::builder(name)
            .window_calls(10)
            .min_calls(10)
            .slow_call(secs(2))
            .slow_call_rate(0.5)
            .build()
            .unwrap()
    };
    // Ten concurrent calls, `slow` of which answer in 5 s and the others at once.
    async fn round(breaker: &CircuitBreaker, slow: usize) {
        let calls = (0..10).map(|i| {
            let after = if i < slow { secs(5) } else { Duration::ZERO };
            breaker.call(service(after, None))
        });
        for out in join_all(calls).await {
            out.unwrap();
        }
    }
    let below = slow_breaker("cb.slow.below");
    let start = Instant::now();
    round(&below, 4).await;
    assert_eq!(start.elapsed(), secs(5));
    assert_eq!(below.state(), CircuitState::Closed, "4 slow of 10");

    let at = slow_breaker("cb.slow.at");
    round(&at, 5).await;
    assert_eq!(at.state(), CircuitState::Open, "5 slow of 10");
    let stats = registry().snapshot();
    let stats = stats.circuit_breaker("cb.slow.at").unwrap();
    assert_eq!(
        (
            stats.successes,
            stats.failures,
            stats.slow_calls,
            stats.openings
        ),
        (10, 0, 5, 1)
    );

    // Exactly at the limit is not slow: only longer is.
    let limit = slow_breaker("cb.slow.limit");
    let calls = (0..10).map(|_| limit.call(service(secs(2), None)));
    join_all(calls).await;
    assert_eq!(limit.state(), CircuitState::Closed);
}

/// In half-open a slow trial is a failed trial: it re-opens the circuit for a full cooldown.
#[tokio::test(start_paused = true)]
async fn a_slow_trial_reopens_the_circuit() {
    let breaker = CircuitBreaker::builder("cb.slow.trial")
        .window_calls(2)
        .slow_call(secs(2))
        .success_threshold(1)
        .cooldown(secs(10))
        .build()
        .unwrap();
    for _ in 0..2 {
        breaker.call(service(secs(3), None)).await.unwrap();
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    advance(secs(10)).await;
    breaker.call(service(secs(3), None)).await.unwrap();
    assert_eq!(breaker.state(), CircuitState::Open, "the slow trial failed");
    let err = breaker
        .call(service(Duration::ZERO, None))
        .await
        .unwrap_err();
    assert_eq!(
        err.retry_after(),
        Some(secs(10)),
        "a full cooldown from its end"
    );
    advance(secs(10)).await;
    breaker.call(service(secs(1), None)).await.unwrap();
    assert_eq!(breaker.state(), CircuitState::Closed);
}

/// The known bug this guards against: a slow call admitted before an opening, whose failure
/// arrives after the recovery, must not count toward the new closed period. Both rules.
#[tokio::test(start_paused = true)]
async fn a_slow_call_admitted_before_an_opening_does_not_count_after_the_recovery() {
    let consecutive = CircuitBreaker::builder("cb.late.consecutive")
        .failure_threshold(2)
        .success_threshold(1)
        .cooldown(secs(10))
        .build()
        .unwrap();
    let rate = CircuitBreaker::builder("cb.late.rate")
        .window_calls(2)
        .success_threshold(1)
        .cooldown(secs(10))
        .build()
        .unwrap();
    for breaker in [consecutive, rate] {
        // Admitted while closed; fails after 30 s.
        let mut late = pin!(breaker.call(service(secs(30), Some(503))));
        assert!(poll!(late.as_mut()).is_pending());
        for _ in 0..2 {
            breaker
                .call(service(Duration::ZERO, Some(503)))
                .await
                .unwrap_err();
        }
        assert_eq!(breaker.state(), CircuitState::Open, "{}", breaker.name());
        advance(secs(10)).await;
        breaker.call(service(Duration::ZERO, None)).await.unwrap();
        assert_eq!(breaker.state(), CircuitState::Closed);
        // One failure in the new period: one short of opening under either rule (the rate
        // breaker's window holds it and needs two calls).
        breaker
            .call(service(Duration::ZERO, Some(503)))
            .await
            .unwrap_err();
        assert_eq!(breaker.state(), CircuitState::Closed);
        late.await.unwrap_err();
        assert_eq!(
            breaker.state(),
            CircuitState::Closed,
            "{}: the late failure was ignored",
            breaker.name()
        );
        // The new period still counts its own failures.
        breaker
            .call(service(Duration::ZERO, Some(503)))
            .await
            .unwrap_err();
        assert_eq!(breaker.state(), CircuitState::Open, "{}", breaker.name());
    }
}

/// `isolate()` rejects every call, whatever the cooldown, until `reset()`, also when called from
/// another thread through the registry; the snapshot shows the state and counts both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolate_rejects_every_call_until_reset_from_another_thread() {
    let breaker = CircuitBreaker::builder("cb.isolate")
        .failure_threshold(1)
        .cooldown(ms(1))
        .build()
        .unwrap();
    let runs = Arc::new(Runs::new());
    let call = |status: Option<u16>| {
        let (breaker, runs) = (breaker.clone(), runs.clone());
        async move {
            breaker
                .call(async move {
                    runs.bump();
                    status.map_or(Ok(()), |s| Err(AppError::Status(s)))
                })
                .await
        }
    };
    call(None).await.unwrap();
    // A call admitted before the isolation, failing after it: ignored.
    let gate = Arc::new(Gate::new());
    let in_flight = {
        let (breaker, gate) = (breaker.clone(), gate.clone());
        tokio::spawn(async move {
            breaker
                .call(async move {
                    gate.pass().await;
                    Err::<(), _>(AppError::Status(503))
                })
                .await
        })
    };
    while gate.waiting() == 0 {
        tokio::task::yield_now().await;
    }
    std::thread::spawn(|| registry().circuit_breaker("cb.isolate").unwrap().isolate())
        .join()
        .unwrap();
    assert_eq!(breaker.state(), CircuitState::Isolated);
    gate.open(1);
    in_flight.await.unwrap().unwrap_err();
    assert_eq!(breaker.state(), CircuitState::Isolated);
    let ran = runs.get();
    for _ in 0..3 {
        let err = call(None).await.unwrap_err();
        assert!(err.is_circuit_open());
        tokio::time::sleep(ms(2)).await; // longer than the cooldown: no trial call
    }
    assert_eq!(runs.get(), ran, "no body ran while isolated");
    let stats = registry().snapshot();
    let stats = stats.circuit_breaker("cb.isolate").unwrap();
    assert_eq!(stats.state, Some(CircuitState::Isolated));
    assert_eq!(
        (
            stats.isolations,
            stats.resets,
            stats.rejections,
            stats.openings
        ),
        (1, 0, 3, 0)
    );

    std::thread::spawn(|| registry().circuit_breaker("cb.isolate").unwrap().reset())
        .join()
        .unwrap();
    assert_eq!(breaker.state(), CircuitState::Closed);
    call(None).await.unwrap();
    assert_eq!(runs.get(), ran + 1);
    let stats = registry().snapshot();
    let stats = stats.circuit_breaker("cb.isolate").unwrap();
    assert_eq!(stats.state, Some(CircuitState::Closed));
    assert_eq!((stats.isolations, stats.resets), (1, 1));
}

/// `reset()` closes an open breaker at once and clears its counts: the failures before it do
/// not add up with the ones after.
#[tokio::test(start_paused = true)]
async fn reset_closes_and_clears_the_counts() {
    let breaker = CircuitBreaker::builder("cb.reset")
        .window_calls(4)
        .build()
        .unwrap();
    for _ in 0..4 {
        breaker
            .call(service(Duration::ZERO, Some(500)))
            .await
            .unwrap_err();
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    breaker.reset();
    assert_eq!(breaker.state(), CircuitState::Closed);
    for _ in 0..3 {
        breaker
            .call(service(Duration::ZERO, Some(500)))
            .await
            .unwrap_err();
    }
    assert_eq!(breaker.state(), CircuitState::Closed, "3 calls of min 4");
    breaker.call(service(Duration::ZERO, None)).await.unwrap();
    assert_eq!(breaker.state(), CircuitState::Open, "3 failures of 4");
}

/// A time window forgets a call between 0.9 and 1 window after it ended.
#[tokio::test(start_paused = true)]
async fn a_time_window_forgets_old_failures() {
    let breaker = CircuitBreaker::builder("cb.time")
        .window_duration(secs(10))
        .min_calls(4)
        .build()
        .unwrap();
    for _ in 0..3 {
        breaker
            .call(service(Duration::ZERO, Some(500)))
            .await
            .unwrap_err();
    }
    advance(secs(10)).await;
    breaker
        .call(service(Duration::ZERO, Some(500)))
        .await
        .unwrap_err();
    assert_eq!(
        breaker.state(),
        CircuitState::Closed,
        "the first three left"
    );
    for _ in 0..3 {
        breaker.call(service(Duration::ZERO, None)).await.unwrap();
    }
    assert_eq!(breaker.state(), CircuitState::Closed, "1 failure of 4");
    // 9 s later the last four are still in the window.
    advance(secs(9)).await;
    breaker
        .call(service(Duration::ZERO, Some(500)))
        .await
        .unwrap_err();
    assert_eq!(breaker.state(), CircuitState::Closed, "2 failures of 5");
    breaker
        .call(service(Duration::ZERO, Some(500)))
        .await
        .unwrap_err();
    assert_eq!(breaker.state(), CircuitState::Open, "3 failures of 6");
}

#[test]
fn rate_settings_are_validated() {
    let err = |b: CircuitBreakerBuilder| b.build().unwrap_err();
    let b = || CircuitBreaker::builder("cb.invalid");
    let mixed = err(b().failure_threshold(3).failure_rate(0.5));
    assert_eq!(mixed.setting(), "failure_threshold");
    assert!(
        mixed.to_string().contains("pick the consecutive rule"),
        "{mixed}"
    );
    assert_eq!(err(b().failure_rate(0.0)).setting(), "failure_rate");
    assert_eq!(err(b().failure_rate(1.5)).setting(), "failure_rate");
    assert_eq!(err(b().failure_rate(f64::NAN)).setting(), "failure_rate");
    assert_eq!(err(b().slow_call_rate(-0.1)).setting(), "slow_call_rate");
    assert_eq!(err(b().window_calls(0)).setting(), "window_calls");
    assert_eq!(err(b().window_calls(2_000_000)).setting(), "window_calls");
    assert_eq!(
        err(b().window_calls(10).window_duration(secs(1))).setting(),
        "window_duration"
    );
    assert_eq!(
        err(b().window_duration(Duration::from_nanos(9))).setting(),
        "window_duration"
    );
    let above = err(b().window_calls(10).min_calls(11));
    assert_eq!(above.setting(), "min_calls");
    assert!(above.to_string().contains("10 calls"), "{above}");
    assert_eq!(err(b().min_calls(0)).setting(), "min_calls");
    assert_eq!(err(b().slow_call(Duration::ZERO)).setting(), "slow_call");
    assert!(registry().circuit_breaker("cb.invalid").is_none());

    // Defaults of the rate rule.
    let breaker = CircuitBreaker::builder("cb.defaults")
        .window_calls(20)
        .build()
        .unwrap();
    let config = breaker.config();
    assert_eq!(config.failure_threshold(), None);
    match config.rule() {
        TripRule::Rate {
            failure_rate,
            window,
            min_calls,
            slow_call,
            slow_call_rate,
            ..
        } => {
            assert_eq!(failure_rate, 0.5);
            assert_eq!(window, SlidingWindow::Calls(20));
            assert_eq!(min_calls, 20, "the smaller of 100 and the window");
            assert_eq!(slow_call, None);
            assert_eq!(slow_call_rate, 0.5);
        }
        other => panic!("expected the rate rule, got {other:?}"),
    }
    let default = CircuitBreaker::builder("cb.defaults.time")
        .window_duration(secs(30))
        .slow_call(secs(1))
        .failure_rate(0.2)
        .build()
        .unwrap();
    assert!(matches!(
        default.config().rule(),
        TripRule::Rate {
            min_calls: 100,
            slow_call_rate: 0.2,
            ..
        }
    ));
}

// ---------------------------------------------------------------------------------------------
// Properties: for any sequence of outcomes, the breaker opens exactly when a plain reference model
// of the rule says so.
// ---------------------------------------------------------------------------------------------

/// One call of a generated sequence: how long it takes, whether it fails.
#[derive(Debug, Clone, Copy)]
struct Step {
    took_ms: u64,
    failed: bool,
}

/// The rate rule, written plainly: the calls that ended in the window, oldest first, as
/// `(end in ms, failed, slow)`.
struct Reference {
    window: SlidingWindow,
    failure_rate: f64,
    slow_call_rate: f64,
    min_calls: usize,
    slow_ms: u64,
    calls: Vec<(u64, bool, bool)>,
}

impl Reference {
    /// Records a call that ended at `end` and says whether the circuit opens.
    fn record(&mut self, end: u64, step: Step) -> bool {
        self.calls
            .push((end, step.failed, step.took_ms > self.slow_ms));
        match self.window {
            SlidingWindow::Calls(n) => {
                let n = n as usize;
                if self.calls.len() > n {
                    self.calls.drain(..self.calls.len() - n);
                }
            }
            SlidingWindow::Duration(d) => {
                // Ten buckets of d/10: a call is in the window while its bucket is one of the
                // last ten, the current one included.
                let width = d.as_millis() as u64 / 10;
                self.calls.retain(|(e, _, _)| end / width - e / width < 10);
            }
            _ => unreachable!(),
        }
        let n = self.calls.len();
        let failures = self.calls.iter().filter(|c| c.1).count();
        let slow = self.calls.iter().filter(|c| c.2).count();
        n >= self.min_calls
            && (failures as f64 >= self.failure_rate * n as f64
                || slow as f64 >= self.slow_call_rate * n as f64)
    }
}

static PROP_CASE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Runs `steps` one after the other through a fresh breaker on paused time; returns the index of
/// the call after which it opened, and the reference's.
fn first_opening(
    window: SlidingWindow,
    failure_rate: f64,
    slow_call_rate: f64,
    min_calls: u32,
    steps: &[Step],
) -> (Option<usize>, Option<usize>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let case = PROP_CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let builder = CircuitBreaker::builder(format!("cb.prop.{case}"))
            .failure_rate(failure_rate)
            .slow_call_rate(slow_call_rate)
            .min_calls(min_calls)
            .slow_call(ms(20));
        let builder = match window {
            SlidingWindow::Calls(n) => builder.window_calls(n),
            SlidingWindow::Duration(d) => builder.window_duration(d),
            _ => unreachable!(),
        };
        let breaker = builder.build().unwrap();
        let mut reference = Reference {
            window,
            failure_rate,
            slow_call_rate,
            min_calls: min_calls as usize,
            slow_ms: 20,
            calls: Vec::new(),
        };
        let start = Instant::now();
        let (mut actual, mut expected) = (None, None);
        for (i, step) in steps.iter().enumerate() {
            let status = step.failed.then_some(500);
            let _ = breaker.call(service(ms(step.took_ms), status)).await;
            let end = start.elapsed().as_millis() as u64;
            if expected.is_none() && reference.record(end, *step) {
                expected = Some(i);
            }
            if actual.is_none() && breaker.state() == CircuitState::Open {
                actual = Some(i);
            }
            if actual.is_some() || expected.is_some() {
                break;
            }
        }
        (actual, expected)
    })
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (
            prop_oneof![0..15u64, 15..40u64, Just(20u64), Just(21u64)],
            any::<bool>(),
        )
            .prop_map(|(took_ms, failed)| Step { took_ms, failed }),
        0..60,
    )
}

fn rates() -> impl Strategy<Value = (f64, f64)> {
    let rate = prop_oneof![Just(0.5), Just(1.0), Just(0.25), Just(0.1), 0.05..=1.0f64];
    (rate.clone(), rate)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_count_window_opens_exactly_when_the_rule_says(
        size in 1..12u32,
        min in 1..12u32,
        (failure_rate, slow_call_rate) in rates(),
        steps in steps(),
    ) {
        let min_calls = min.min(size);
        let (actual, expected) =
            first_opening(SlidingWindow::Calls(size), failure_rate, slow_call_rate, min_calls, &steps);
        prop_assert_eq!(actual, expected);
    }

    #[test]
    fn a_time_window_opens_exactly_when_the_rule_says(
        tenths_ms in 1..30u64,
        min_calls in 1..12u32,
        (failure_rate, slow_call_rate) in rates(),
        steps in steps(),
    ) {
        let window = SlidingWindow::Duration(ms(tenths_ms * 10));
        let (actual, expected) =
            first_opening(window, failure_rate, slow_call_rate, min_calls, &steps);
        prop_assert_eq!(actual, expected);
    }
}

// --- `name = EXPR`: one breaker per value (per region, per host), looked up at each call ---

struct RegionClient {
    region: String,
    runs: Runs,
}

impl RegionClient {
    #[circuit_breaker(name = self.region, failure_threshold = 2, cooldown = 30)]
    async fn ask(&self, fail: bool) -> Result<u32, AppError> {
        self.runs.bump();
        if fail {
            Err(AppError::Status(503))
        } else {
            Ok(1)
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_name_expression_gives_each_value_its_own_breaker() {
    let eu = RegionClient {
        region: "cb.region.eu".into(),
        runs: Runs::new(),
    };
    let us = RegionClient {
        region: "cb.region.us".into(),
        runs: Runs::new(),
    };
    let eu_again = RegionClient {
        region: "cb.region.eu".into(),
        runs: Runs::new(),
    };
    for _ in 0..2 {
        assert!(eu.ask(true).await.is_err());
    }
    // eu is open, for every client of that region; us is not.
    assert!(eu.ask(false).await.unwrap_err().is_circuit_open());
    assert!(eu_again.ask(false).await.unwrap_err().is_circuit_open());
    assert_eq!(us.ask(false).await.unwrap(), 1);
    assert_eq!(
        (eu.runs.get(), eu_again.runs.get(), us.runs.get()),
        (2, 0, 1)
    );
    assert_eq!(
        registry()
            .circuit_breaker("cb.region.eu")
            .map(|b| b.state()),
        Some(CircuitState::Open)
    );
    assert_eq!(
        registry()
            .circuit_breaker("cb.region.us")
            .map(|b| b.state()),
        Some(CircuitState::Closed)
    );
    // After the cooldown, eu's trial runs and closes it.
    advance(secs(30)).await;
    assert_eq!(eu.ask(false).await.unwrap(), 1);
}

#[circuit_breaker(name = format!("cb.host.{host}"))]
async fn per_host(host: u32) -> Result<u32, AppError> {
    Ok(host)
}

#[tokio::test]
async fn name_expressions_keep_a_bounded_number_of_breakers_alive() {
    for host in 0..3_000 {
        assert_eq!(per_host(host).await.unwrap(), host);
    }
    let alive = registry()
        .snapshot()
        .policies()
        .iter()
        .filter(|p| p.name.starts_with("cb.host."))
        .count();
    // The layer keeps the 1 024 names used last (moka may hold a few more until it next evicts);
    // the others are dropped from the registry with their last handle.
    assert!((1_000..=1_300).contains(&alive), "{alive} breakers alive");
    // A name used lately is still the same breaker: its calls add up.
    per_host(2_999).await.unwrap();
    let last = registry().snapshot();
    let breaker = last.get(reliability::PolicyKind::CircuitBreaker, "cb.host.2999");
    assert_eq!(breaker.unwrap().calls, 2);
}
