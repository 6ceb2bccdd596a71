//! `#[circuit_breaker]`: opening, rejecting without running the body, the exact cooldown, bounded
//! half-open trials, closing and re-opening, `when`, cancelled trials, sharing by name, the registry.

mod common;

use std::pin::pin;
use std::time::Duration;

use common::{AppError, Gate, Runs, ms, secs};
use futures::future::join_all;
use futures::poll;
use reliability::{CircuitState, circuit_breaker, registry};
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
