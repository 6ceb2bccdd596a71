//! The real breaker's threads under loom, which runs every interleaving of their atomic operations
//! and lock acquisitions. Run with
//! `RUSTFLAGS="--cfg reliability_loom" cargo test -p reliability --lib --release loom`.

use loom::sync::atomic::AtomicUsize;
use loom::thread;

use super::*;

const COOLDOWN: Duration = Duration::from_secs(10);

/// What a thread does with its permit.
#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    Succeed,
    Fail,
    /// Dropped unrecorded: cancelled, or the call panicked.
    Drop,
}

/// What happened to one thread's call.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Seen {
    Rejected,
    Ran(End),
}

/// Every interleaving with at most `LOOM_MAX_PREEMPTIONS` (default 3) forced thread switches.
fn explore(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

fn breaker(failure_threshold: u32, success_threshold: u32) -> CircuitBreaker {
    let config = BreakerConfig::checked(failure_threshold, success_threshold, COOLDOWN);
    let stats = Arc::new(Stats::new(PolicyKind::CircuitBreaker, "loom".into()));
    CircuitBreaker {
        inner: Arc::new(Inner::new("loom", config, stats)),
    }
}

/// Opens `breaker` with failures from this thread and lets the cooldown pass: the next call
/// finds it half-open.
fn to_half_open(breaker: &CircuitBreaker) {
    for _ in 0..breaker.config().failure_threshold() {
        breaker.acquire(1).ok().unwrap().failure();
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    breaker.inner.clock.advance(COOLDOWN);
}

/// One call: acquire, then end as told. Counts the trial calls running at once in `running`
/// and checks that it never goes above the threshold.
fn call(breaker: &CircuitBreaker, running: &AtomicUsize, end: End) -> Seen {
    let Ok(permit) = breaker.acquire(1) else {
        return Seen::Rejected;
    };
    let trial = permit.trial.is_some();
    if trial {
        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
        let limit = breaker.config().success_threshold() as usize;
        assert!(now <= limit, "{now} trial calls at once, limit {limit}");
        running.fetch_sub(1, Ordering::SeqCst);
    }
    match end {
        End::Succeed => permit.success(),
        End::Fail => permit.failure(),
        End::Drop => drop(permit),
    }
    Seen::Ran(end)
}

/// Runs one call per entry of `ends` on its own thread, after `setup`, and checks what must
/// hold once every call has ended.
fn model(
    failure_threshold: u32,
    success_threshold: u32,
    setup: fn(&CircuitBreaker),
    ends: &'static [End],
) {
    explore(move || {
        let breaker = breaker(failure_threshold, success_threshold);
        setup(&breaker);
        let before = snapshot(&breaker);
        let running = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = ends
            .iter()
            .map(|&end| {
                let breaker = breaker.clone();
                let running = running.clone();
                thread::spawn(move || call(&breaker, &running, end))
            })
            .collect();
        let seen: Vec<Seen> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        check(&breaker, before, &seen);
    });
}

/// `(calls, successes, failures, rejections, openings)`.
fn snapshot(breaker: &CircuitBreaker) -> [u64; 5] {
    let stats = &breaker.inner.stats;
    [
        Field::Calls,
        Field::Successes,
        Field::Failures,
        Field::Rejections,
        Field::Openings,
    ]
    .map(|field| stats.get(field))
}

fn check(breaker: &CircuitBreaker, before: [u64; 5], seen: &[Seen]) {
    let inner = &breaker.inner;
    let core = inner.lock().clone();
    let [calls, successes, failures, rejections, openings] = snapshot(breaker);
    let count = |s: Seen| seen.iter().filter(|x| **x == s).count() as u64;
    // Counters are exact: every call is counted once, as what happened to it.
    assert_eq!(calls - before[0], seen.len() as u64);
    assert_eq!(successes - before[1], count(Seen::Ran(End::Succeed)));
    assert_eq!(failures - before[2], count(Seen::Ran(End::Fail)));
    assert_eq!(rejections - before[3], count(Seen::Rejected));
    // No trial slot is lost or counted twice: with every call ended, none is taken.
    assert_eq!(core.trials, 0, "{core:?} after {seen:?}");
    if core.state == CircuitState::HalfOpen {
        assert!(core.trial_successes < inner.config.success_threshold);
    } else {
        assert_eq!(core.trial_successes, 0);
    }
    // The mirrors agree with the core.
    assert_eq!(breaker.state(), core.state);
    if core.state == CircuitState::Open {
        assert_eq!(inner.open_until.load(Ordering::SeqCst), core.open_until);
    }
    // Transitions: along the machine's edges, none skipped or repeated, each opening counted.
    let log = inner.transitions.lock().unwrap().clone();
    let mut state = CircuitState::Closed;
    for &to in &log {
        use CircuitState::*;
        assert!(
            matches!(
                (state, to),
                (Closed, Open) | (Open, HalfOpen) | (HalfOpen, Open) | (HalfOpen, Closed)
            ),
            "{state:?} -> {to:?} in {log:?}"
        );
        state = to;
    }
    assert_eq!(state, core.state, "{log:?}");
    let opened = log.iter().filter(|s| **s == CircuitState::Open).count() as u64;
    assert_eq!(openings, opened);
    // A half-open breaker still has all its slots: `success_threshold` trials run, one more waits.
    if core.state == CircuitState::HalfOpen {
        let permits: Vec<_> = (0..inner.config.success_threshold)
            .map(|_| breaker.acquire(1).ok().unwrap())
            .collect();
        assert!(permits.iter().all(|p| p.trial.is_some()));
        assert!(breaker.acquire(1).is_err());
    }
}

fn closed(_: &CircuitBreaker) {}

#[test]
fn loom_half_open_trials_succeed_fail_and_drop() {
    use End::*;
    model(1, 2, to_half_open, &[Succeed, Succeed, Drop]);
    model(1, 2, to_half_open, &[Succeed, Fail, Drop]);
}

#[test]
fn loom_half_open_never_admits_more_than_the_threshold() {
    use End::*;
    model(1, 1, to_half_open, &[Drop, Succeed, Drop]);
    model(2, 2, to_half_open, &[Succeed, Succeed, Succeed]);
}

#[test]
fn loom_closed_failures_open_once() {
    use End::*;
    model(2, 1, closed, &[Fail, Fail, Fail]);
    model(2, 1, closed, &[Fail, Succeed, Fail]);
}

#[test]
fn loom_a_trial_of_an_earlier_period_frees_no_slot_of_a_later_one() {
    explore(|| {
        let breaker = breaker(1, 1);
        to_half_open(&breaker);
        let before = snapshot(&breaker);
        let running = Arc::new(AtomicUsize::new(0));
        // A trial that fails re-opens the circuit; the cooldown passes; a new trial runs.
        let failing = {
            let (breaker, running) = (breaker.clone(), running.clone());
            thread::spawn(move || {
                let seen = call(&breaker, &running, End::Fail);
                breaker.inner.clock.advance(COOLDOWN);
                seen
            })
        };
        // A trial held across that, dropped late.
        let late = {
            let (breaker, running) = (breaker.clone(), running.clone());
            thread::spawn(move || call(&breaker, &running, End::Drop))
        };
        let mut seen = vec![failing.join().unwrap(), late.join().unwrap()];
        seen.push(call(&breaker, &running, End::Succeed));
        check(&breaker, before, &seen);
    });
}
