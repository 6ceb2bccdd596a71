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
    with_config(BreakerConfig::consecutive(
        failure_threshold,
        success_threshold,
        COOLDOWN,
    ))
}

fn with_config(config: BreakerConfig) -> CircuitBreaker {
    let stats = Arc::new(Stats::new(PolicyKind::CircuitBreaker, "loom".into()));
    CircuitBreaker {
        inner: Arc::new(Inner::new("loom", config, stats)),
    }
}

/// Opens `breaker` with failures from this thread and lets the cooldown pass: the next call
/// finds it half-open.
fn to_half_open(breaker: &CircuitBreaker) {
    for _ in 0..breaker.config().failure_threshold().unwrap() {
        breaker
            .acquire(1)
            .ok()
            .unwrap()
            .failure(&Caller::anonymous(1));
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    breaker.inner.clock.advance(COOLDOWN);
}

/// One call: acquire, then end as told. Counts the trial calls running at once in `running`
/// and checks that it never goes above the threshold.
fn call(breaker: &CircuitBreaker, running: &AtomicUsize, end: End) -> Seen {
    let Ok(mut permit) = breaker.acquire(1) else {
        return Seen::Rejected;
    };
    let trial = permit.is_trial();
    if trial {
        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
        let limit = breaker.config().success_threshold() as usize;
        assert!(now <= limit, "{now} trial calls at once, limit {limit}");
        running.fetch_sub(1, Ordering::SeqCst);
    }
    match end {
        End::Succeed => permit.success(&Caller::anonymous(1)),
        End::Fail => permit.failure(&Caller::anonymous(1)),
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
        // Isolating and resetting are manual, from any state.
        assert!(
            matches!(
                (state, to),
                (Closed, Open) | (Open, HalfOpen) | (HalfOpen, Open) | (HalfOpen, Closed)
            ) || to == Isolated && state != Isolated
                || to == Closed,
            "{state:?} -> {to:?} in {log:?}"
        );
        state = to;
    }
    assert_eq!(
        core.generation,
        log.len() as u64,
        "one period per transition"
    );
    assert_eq!(state, core.state, "{log:?}");
    let opened = log.iter().filter(|s| **s == CircuitState::Open).count() as u64;
    assert_eq!(openings, opened);
    // A half-open breaker still has all its slots: `success_threshold` trials run, one more waits.
    if core.state == CircuitState::HalfOpen {
        let permits: Vec<_> = (0..inner.config.success_threshold)
            .map(|_| breaker.acquire(1).ok().unwrap())
            .collect();
        assert!(permits.iter().all(|p| p.is_trial()));
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

/// A rate breaker whose window holds the last `size` calls and never opens (the rates are above
/// any share a few calls can reach only when `opens` is false).
fn rate_breaker(size: u32, min_calls: u32, failure_rate: f64) -> CircuitBreaker {
    with_config(BreakerConfig::rate(
        failure_rate,
        SlidingWindow::Calls(size),
        Some(min_calls),
        None,
        None,
        1,
        COOLDOWN,
    ))
}

fn window_counts(breaker: &CircuitBreaker) -> window::Counts {
    if let Some(count) = &breaker.inner.count {
        return count.counts();
    }
    let now = breaker.inner.clock.now();
    breaker.inner.lock().window.as_ref().unwrap().counts(now)
}

/// Concurrent outcomes, cancellations and panics (a panicking call drops its permit unrecorded,
/// as a cancelled one does): the window holds exactly the recorded outcomes, once each.
#[test]
fn loom_rate_window_counts_are_exact() {
    explore(|| {
        let breaker = rate_breaker(4, 4, 1.0);
        let before = snapshot(&breaker);
        let running = Arc::new(AtomicUsize::new(0));
        let ends = [End::Succeed, End::Fail, End::Drop];
        let threads: Vec<_> = ends
            .iter()
            .map(|&end| {
                let (breaker, running) = (breaker.clone(), running.clone());
                thread::spawn(move || call(&breaker, &running, end))
            })
            .collect();
        let mut seen: Vec<Seen> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        seen.push(call(&breaker, &running, End::Fail));
        let counts = window_counts(&breaker);
        assert_eq!((counts.calls, counts.failures), (3, 2), "{seen:?}");
        assert_eq!(breaker.state(), CircuitState::Closed);
        check(&breaker, before, &seen);
    });
}

/// Concurrent failures reaching the rate open the circuit exactly once, and leave an empty window.
#[test]
fn loom_rate_opens_once_and_clears_the_window() {
    explore(|| {
        let breaker = rate_breaker(3, 2, 0.5);
        let before = snapshot(&breaker);
        let running = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = [End::Fail, End::Fail, End::Succeed]
            .iter()
            .map(|&end| {
                let (breaker, running) = (breaker.clone(), running.clone());
                thread::spawn(move || call(&breaker, &running, end))
            })
            .collect();
        let seen: Vec<Seen> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(breaker.state(), CircuitState::Open, "{seen:?}");
        assert_eq!(snapshot(&breaker)[4] - before[4], 1, "opened once");
        assert_eq!(window_counts(&breaker), window::Counts::default());
        check(&breaker, before, &seen);
    });
}

/// A closed-state call whose result arrives after the breaker was isolated and reset counts in
/// neither period: only calls admitted in the final period are in the window or the failure count.
#[test]
fn loom_a_result_of_an_earlier_closed_period_is_ignored() {
    fn model(breaker: fn() -> CircuitBreaker) {
        explore(move || {
            let breaker = breaker();
            let late = {
                let breaker = breaker.clone();
                thread::spawn(move || {
                    // Rejected while isolated: nothing to count.
                    let mut permit = breaker.acquire(1).ok()?;
                    let Some(generation) = permit.admitted.as_call() else {
                        unreachable!("admitted while closed")
                    };
                    permit.failure(&Caller::anonymous(1));
                    Some(generation)
                })
            };
            let operator = {
                let breaker = breaker.clone();
                thread::spawn(move || {
                    breaker.isolate();
                    breaker.reset();
                })
            };
            operator.join().unwrap();
            let admitted_in = late.join().unwrap();
            let current = admitted_in == Some(breaker.inner.lock().generation);
            let counted = match breaker.config().rule() {
                TripRule::Consecutive { .. } => {
                    let word = breaker.inner.failures.load(Ordering::SeqCst);
                    u64::from(word as u32)
                }
                _ => window_counts(&breaker).failures,
            };
            assert_eq!(counted, u64::from(current), "admitted in {admitted_in:?}");
            assert_eq!(breaker.state(), CircuitState::Closed);
        });
    }
    model(|| breaker(5, 1));
    model(|| rate_breaker(4, 4, 1.0));
}

/// A time window under a clock that moves while outcomes are recorded: every outcome is counted
/// once while it is in the window, and none is lost when a bucket is reused ten epochs later.
#[test]
fn loom_time_window_rotation_loses_and_double_counts_nothing() {
    explore(|| {
        let width = Duration::from_secs(1);
        let breaker = with_config(BreakerConfig::rate(
            1.0,
            SlidingWindow::Duration(width * 10),
            Some(100),
            None,
            None,
            1,
            COOLDOWN,
        ));
        let running = Arc::new(AtomicUsize::new(0));
        // One call ends at epoch 0, one after the clock moved ten epochs on: the same bucket.
        let early = {
            let (breaker, running) = (breaker.clone(), running.clone());
            thread::spawn(move || call(&breaker, &running, End::Fail))
        };
        let late = {
            let (breaker, running) = (breaker.clone(), running.clone());
            thread::spawn(move || {
                breaker.inner.clock.advance(width * 10);
                call(&breaker, &running, End::Succeed)
            })
        };
        early.join().unwrap();
        late.join().unwrap();
        let counts = window_counts(&breaker);
        // The late call is always in the window; the early one only if it was recorded after the
        // clock moved (then it counts at the later time), never twice.
        assert!(counts.calls == 1 || counts.calls == 2, "{counts:?}");
        assert_eq!(counts.calls - 1, counts.failures, "{counts:?}");
        breaker.inner.clock.advance(width * 10);
        assert_eq!(window_counts(&breaker), window::Counts::default());
    });
}

/// The lock-free count window alone, with more outcomes at once than it holds (so that calls
/// overtake each other in its ring): every call is counted once, in the order of `head`; every
/// window a call reports is exactly the last N calls in that order; at rest the counts are exact;
/// and a call of an earlier period is never counted.
#[test]
fn loom_the_count_window_is_exact_when_calls_overtake_each_other() {
    use count_window::{CountWindow, Recorded};
    const SIZE: u32 = 1;
    explore(|| {
        let window = Arc::new(CountWindow::new(SIZE, 0));
        let outcomes = [(true, false), (false, true), (true, true)];
        let threads: Vec<_> = outcomes
            .iter()
            .map(|&(failed, slow)| {
                let window = window.clone();
                thread::spawn(move || window.record(0, window::Outcome { failed, slow }))
            })
            .collect();
        let recorded: Vec<Recorded> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        // The order of `head`: call `seq` of the period.
        let mut by_seq = [None; 3];
        for (i, r) in recorded.iter().enumerate() {
            let Recorded::Counted { seq, .. } = *r else {
                panic!("{r:?}: every call is of the current period")
            };
            assert!(
                by_seq[seq as usize].replace(outcomes[i]).is_none(),
                "{recorded:?}"
            );
        }
        let expect = |last: usize| {
            let from = (last + 1).saturating_sub(SIZE as usize);
            let calls = &by_seq[from..=last];
            window::Counts {
                calls: calls.len() as u64,
                failures: calls.iter().filter(|c| c.unwrap().0).count() as u64,
                slow: calls.iter().filter(|c| c.unwrap().1).count() as u64,
            }
        };
        for r in &recorded {
            if let Recorded::Counted {
                seq,
                window: Some(counts),
                ..
            } = *r
            {
                assert_eq!(counts, expect(seq as usize), "{recorded:?}");
            }
        }
        assert_eq!(window.counts(), expect(2));
        window.reset(1);
        assert_eq!(
            window.record(
                0,
                window::Outcome {
                    failed: true,
                    slow: false
                }
            ),
            Recorded::Stale
        );
        assert_eq!(window.counts(), window::Counts::default());
    });
}

/// A reset racing with calls: each call is counted in the period it was admitted to, or not at all.
#[test]
fn loom_a_count_window_reset_races_with_calls() {
    use count_window::{CountWindow, Recorded};
    explore(|| {
        let window = Arc::new(CountWindow::new(2, 0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let window = window.clone();
                thread::spawn(move || {
                    window.record(
                        0,
                        window::Outcome {
                            failed: true,
                            slow: false,
                        },
                    )
                })
            })
            .collect();
        window.reset(1);
        let late = window.record(
            1,
            window::Outcome {
                failed: false,
                slow: true,
            },
        );
        let recorded: Vec<Recorded> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(matches!(late, Recorded::Counted { seq: 0, .. }), "{late:?}");
        // Whatever the earlier period's calls did, the new period holds only its own call.
        assert_eq!(
            window.counts(),
            window::Counts {
                calls: 1,
                failures: 0,
                slow: 1
            },
            "{recorded:?}"
        );
    });
}
