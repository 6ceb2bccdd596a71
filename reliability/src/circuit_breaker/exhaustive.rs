//! Every reachable state of the state machine, with a few concurrent callers, checked against the
//! breaker's rules, for both trip rules. (The loom model checks the real breaker's threads; this
//! checks the rules.) The rate rule is checked against a plain reference: the list of the current
//! closed period's last N outcomes.

use std::collections::{HashSet, VecDeque};

use super::config::SlidingWindow;
use super::core::trips;
use super::window::Counts;
use super::*;

const COOLDOWN: u64 = 10;
const CALLERS: usize = 3;

/// The breaker's core, the consecutive rule's tagged failure count, the rate rule's count window,
/// the time, the permit each caller holds, and the reference of the count window.
#[derive(Debug, Clone)]
struct World {
    core: Core,
    count: Option<CountWindow>,
    /// `(generation tag, count)`, as `Inner::failures`.
    failures: (u64, u32),
    now: u64,
    held: [Option<Admission>; CALLERS],
    /// Rate rule: `(failed, slow)` of the current closed period's last N calls, oldest first.
    reference: VecDeque<(bool, bool)>,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Admit(usize),
    /// The caller's call ends: counted failure or not, slow or not.
    End {
        caller: usize,
        failed: bool,
        slow: bool,
    },
    Abandon(usize),
    /// Time passes until the cooldown is over.
    Wait,
    Isolate,
    Reset,
}

impl World {
    /// The state up to what cannot change behaviour: generations and time relative to now.
    fn key(&self) -> impl Eq + std::hash::Hash + use<> {
        let generation = self.core.generation;
        let current = |g: u64| u64::from(g == generation);
        let held = self.held.map(|h| match h {
            Some(Admission::Trial(g)) => Some(Admission::Trial(current(g))),
            Some(Admission::Call(g)) => Some(Admission::Call(current(g))),
            other => other,
        });
        let mut core = self.core.clone();
        // The count window by its content (asserted equal to the reference), not its ring's layout.
        core.generation = 0;
        core.open_until = core.open_until.saturating_sub(self.now);
        let failures = (current(self.failures.0), self.failures.1);
        (core, failures, held, self.reference.clone())
    }

    fn trials_held(&self) -> u32 {
        let current = Some(Admission::Trial(self.core.generation));
        self.held.iter().filter(|h| **h == current).count() as u32
    }
}

fn legal(from: CircuitState, to: CircuitState, step: Step) -> bool {
    use CircuitState::*;
    match step {
        Step::Isolate => from != Isolated && to == Isolated,
        Step::Reset => to == Closed,
        _ => matches!(
            (from, to),
            (Closed, Open) | (Open, HalfOpen) | (HalfOpen, Open) | (HalfOpen, Closed)
        ),
    }
}

/// Applies `step` as `Inner` and `Permit` do, asserting the rules; `None` if the step is not
/// possible in `world`.
fn step(config: &BreakerConfig, world: &World, step: Step) -> Option<World> {
    let mut next = world.clone();
    let before = world.core.state;
    let generation = world.core.generation;
    let moved = match step {
        Step::Admit(i) => {
            world.held[i].is_none().then_some(())?;
            let (admission, moved) = next.core.admit(config, world.now);
            let expected = match before {
                CircuitState::Closed => Admission::Call(generation),
                CircuitState::Open if world.now < world.core.open_until => {
                    Admission::Reject(world.core.open_until - world.now)
                }
                // Half-open is a new period.
                CircuitState::Open => Admission::Trial(generation + 1),
                CircuitState::HalfOpen if world.core.trials < config.success_threshold => {
                    Admission::Trial(generation)
                }
                CircuitState::HalfOpen => Admission::Reject(0),
                CircuitState::Isolated => Admission::Reject(COOLDOWN),
            };
            assert_eq!(admission, expected, "admission in {world:?}");
            if !matches!(admission, Admission::Reject(_)) {
                next.held[i] = Some(admission);
            }
            moved
        }
        Step::End {
            caller,
            failed,
            slow,
        } => {
            let admission = next.held[caller].take()?;
            let rate = matches!(config.rule, TripRule::Rate { .. });
            // Slow calls exist only in rate mode.
            (rate || !slow).then_some(())?;
            let moved = match admission {
                Admission::Call(g) => end_call(config, world, &mut next, g, failed, slow),
                Admission::Trial(g) => {
                    let current = before == CircuitState::HalfOpen && g == generation;
                    if failed || slow {
                        let moved = next.core.trial_failed(config, g, world.now);
                        assert_eq!(moved.is_some(), current, "trial failure in {world:?}");
                        moved
                    } else {
                        let moved = next.core.trial_succeeded(config, g);
                        let closes =
                            current && world.core.trial_successes + 1 == config.success_threshold;
                        assert_eq!(moved.is_some(), closes, "trial success in {world:?}");
                        moved
                    }
                }
                Admission::Reject(_) => unreachable!(),
            };
            let live = match admission {
                Admission::Call(g) => before == CircuitState::Closed && g == generation,
                Admission::Trial(g) => before == CircuitState::HalfOpen && g == generation,
                Admission::Reject(_) => false,
            };
            if !live {
                // A result from an earlier period changes nothing, and a failure while open
                // does not restart the cooldown.
                assert_eq!(next.core, world.core, "late result {step:?} in {world:?}");
            }
            moved
        }
        Step::Abandon(i) => {
            if let Admission::Trial(g) = next.held[i].take()? {
                next.core.trial_abandoned(g);
            }
            None
        }
        Step::Wait => {
            (world.core.state == CircuitState::Open && world.now < world.core.open_until)
                .then_some(())?;
            next.now = world.core.open_until;
            None
        }
        Step::Isolate => {
            let moved = next.core.isolate();
            assert_eq!(moved.is_some(), before != CircuitState::Isolated);
            moved
        }
        Step::Reset => Some(next.core.reset()),
    };
    let after = next.core.state;
    assert_eq!(
        moved.is_some(),
        before != after || matches!(step, Step::Reset),
        "{step:?} in {world:?}"
    );
    if let Some(to) = moved {
        // Transitions: only along the machine's edges, each a new period with nothing carried over.
        assert_eq!(to, after);
        assert!(legal(before, after, step), "{before:?} -> {after:?}");
        assert_eq!(next.core.generation, generation + 1);
        if to == CircuitState::Open {
            assert_eq!(next.core.open_until, world.now + COOLDOWN);
        }
        // As `Inner::publish` does.
        next.failures = (next.core.generation, 0);
        if let Some(count) = &next.count {
            count.reset(next.core.generation);
        }
        next.reference.clear();
    }
    // The window holds exactly the reference's outcomes.
    if let Some(window) = &next.count {
        let expected = reference_counts(&next.reference);
        assert_eq!(window.counts(), expected, "after {step:?} from {world:?}");
    }
    // Trial slots: exactly the trials held of this period, never more than the threshold.
    let core = &next.core;
    if core.state == CircuitState::HalfOpen {
        assert_eq!(
            core.trials,
            next.trials_held(),
            "slots after {step:?} from {world:?}"
        );
        assert!(core.trials <= config.success_threshold);
        assert!(core.trial_successes < config.success_threshold);
    } else {
        assert_eq!((core.trials, core.trial_successes), (0, 0));
    }
    Some(next)
}

/// A closed-state call of generation `g` ends, as `Permit` records it; asserts when it opens.
fn end_call(
    config: &BreakerConfig,
    world: &World,
    next: &mut World,
    g: u64,
    failed: bool,
    slow: bool,
) -> Option<CircuitState> {
    let current = world.core.state == CircuitState::Closed && g == world.core.generation;
    match config.rule {
        TripRule::Consecutive { failure_threshold } => {
            let (tag, count) = world.failures;
            if tag != g {
                return None; // the tagged count refuses results of other periods
            }
            if !failed {
                next.failures.1 = 0;
                return None;
            }
            next.failures.1 = count + 1;
            let moved = if count + 1 >= failure_threshold {
                next.core.failures_reached(config, g, world.now)
            } else {
                None
            };
            assert_eq!(
                moved.is_some(),
                current && count + 1 >= failure_threshold,
                "failure in {world:?}"
            );
            moved
        }
        TripRule::Rate {
            failure_rate,
            window: SlidingWindow::Calls(size),
            min_calls,
            slow_call_rate,
            ..
        } => {
            let recorded = next.count.as_ref()?.record(g, Outcome { failed, slow });
            if !current {
                assert_eq!(
                    recorded,
                    count_window::Recorded::Stale,
                    "late result in {world:?}"
                );
                return None;
            }
            next.reference.push_back((failed, slow));
            if next.reference.len() > size as usize {
                next.reference.pop_front();
            }
            let count_window::Recorded::Counted {
                window: Some(counts),
                full,
                ..
            } = recorded
            else {
                panic!("{recorded:?}: one caller at a time always sees its window")
            };
            assert_eq!(counts, reference_counts(&next.reference));
            // As `Inner::record`: a call neither failed nor slow decides only while the window
            // fills (the reference below checks that this skips no opening).
            let can_open = failed || slow || !full;
            let moved = if can_open && trips(&config.rule, counts) {
                next.core.window_tripped(config, g, world.now)
            } else {
                None
            };
            let calls = next.reference.len();
            let failures = next.reference.iter().filter(|(f, _)| *f).count();
            let slows = next.reference.iter().filter(|(_, s)| *s).count();
            let opens = calls >= min_calls as usize
                && (failures as f64 >= failure_rate * calls as f64
                    || slows as f64 >= slow_call_rate * calls as f64);
            assert_eq!(
                moved.is_some(),
                opens,
                "{failures} failures, {slows} slow of {calls}"
            );
            moved
        }
        TripRule::Rate { .. } => unreachable!("the model explores count windows"),
    }
}

fn reference_counts(reference: &VecDeque<(bool, bool)>) -> Counts {
    Counts {
        calls: reference.len() as u64,
        failures: reference.iter().filter(|(f, _)| *f).count() as u64,
        slow: reference.iter().filter(|(_, s)| *s).count() as u64,
    }
}

fn explore(config: BreakerConfig) -> usize {
    let start = World {
        core: Core::new(&config),
        count: match config.rule {
            TripRule::Rate {
                window: SlidingWindow::Calls(size),
                ..
            } => Some(CountWindow::new(size, 0)),
            _ => None,
        },
        failures: (0, 0),
        now: 0,
        held: [None; CALLERS],
        reference: VecDeque::new(),
    };
    let mut seen = HashSet::from([start.key()]);
    let mut queue = VecDeque::from([start]);
    let mut states_by_kind = HashSet::new();
    while let Some(world) = queue.pop_front() {
        states_by_kind.insert(world.core.state.code());
        let mut steps = vec![Step::Wait, Step::Isolate, Step::Reset];
        for i in 0..CALLERS {
            steps.extend([Step::Admit(i), Step::Abandon(i)]);
            for (failed, slow) in [(false, false), (true, false), (false, true), (true, true)] {
                steps.push(Step::End {
                    caller: i,
                    failed,
                    slow,
                });
            }
        }
        for s in steps {
            if let Some(next) = step(&config, &world, s)
                && seen.insert(next.key())
            {
                queue.push_back(next);
            }
        }
    }
    assert_eq!(states_by_kind.len(), 4, "every state is reached");
    seen.len()
}

const COOLDOWN_D: Duration = Duration::from_nanos(COOLDOWN);

#[test]
fn every_reachable_state_keeps_the_rules_consecutive() {
    for failure_threshold in 1..=3 {
        for success_threshold in 1..=3 {
            let config =
                BreakerConfig::consecutive(failure_threshold, success_threshold, COOLDOWN_D);
            let states = explore(config);
            assert!(states > 20, "{states} states");
        }
    }
}

#[test]
fn every_reachable_state_keeps_the_rules_rate() {
    for size in 1..=3 {
        for min_calls in 1..=size {
            for (failure_rate, slow_call_rate) in
                [(0.5, None), (1.0, Some(0.34)), (0.34, Some(1.0))]
            {
                for success_threshold in 1..=2 {
                    let config = BreakerConfig::rate(
                        failure_rate,
                        SlidingWindow::Calls(size),
                        Some(min_calls),
                        Some(Duration::from_nanos(1)),
                        slow_call_rate,
                        success_threshold,
                        COOLDOWN_D,
                    );
                    let states = explore(config);
                    assert!(states > 20, "{states} states");
                }
            }
        }
    }
}

/// The rule itself, on counts: nothing is decided below `min_calls`, and at or above it the
/// failure and slow shares are compared inclusively.
#[test]
fn the_rate_rule_opens_at_the_share_and_not_below_min_calls() {
    let config = BreakerConfig::rate(
        0.5,
        SlidingWindow::Calls(10),
        Some(4),
        None,
        Some(0.75),
        1,
        COOLDOWN_D,
    );
    let counts = |calls, failures, slow| Counts {
        calls,
        failures,
        slow,
    };
    assert!(!trips(&config.rule, counts(3, 3, 3)), "below min_calls");
    assert!(trips(&config.rule, counts(4, 2, 0)), "exactly half failed");
    assert!(
        !trips(&config.rule, counts(4, 1, 2)),
        "a quarter failed, half slow"
    );
    assert!(trips(&config.rule, counts(4, 0, 3)), "three quarters slow");
    let consecutive = BreakerConfig::DEFAULT;
    assert!(!trips(&consecutive.rule, counts(100, 100, 100)));
}
