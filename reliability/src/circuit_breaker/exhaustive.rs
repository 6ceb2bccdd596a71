//! Every reachable state of the state machine, with a few concurrent callers, checked against the
//! breaker's rules. (The loom model below checks the real breaker's threads; this checks the rules.)

use std::collections::{HashSet, VecDeque};

use super::*;

const COOLDOWN: u64 = 10;
const CALLERS: usize = 3;

/// The breaker's core, its closed-state failure count, the time, and the permit each caller holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct World {
    core: Core,
    failures: u32,
    now: u64,
    held: [Option<Admission>; CALLERS],
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Admit(usize),
    Succeed(usize),
    Fail(usize),
    Abandon(usize),
    /// Time passes until the cooldown is over.
    Wait,
}

impl World {
    /// The state up to what cannot change behaviour: generations and time relative to now.
    fn key(&self) -> impl Eq + std::hash::Hash + use<> {
        let generation = self.core.generation;
        let held = self.held.map(|h| match h {
            Some(Admission::Trial(g)) => Some(Admission::Trial(u64::from(g == generation))),
            other => other,
        });
        let mut core = self.core.clone();
        core.generation = 0;
        core.open_until = core.open_until.saturating_sub(self.now);
        (core, self.failures, held)
    }

    fn trials_held(&self) -> u32 {
        let current = Some(Admission::Trial(self.core.generation));
        self.held.iter().filter(|h| **h == current).count() as u32
    }
}

fn legal(from: CircuitState, to: CircuitState) -> bool {
    use CircuitState::*;
    matches!(
        (from, to),
        (Closed, Open) | (Open, HalfOpen) | (HalfOpen, Open) | (HalfOpen, Closed)
    )
}

/// Applies `step` as `Inner` and `Permit` do, asserting the rules; `None` if the step is not
/// possible in `world`.
fn step(config: &BreakerConfig, world: &World, step: Step) -> Option<World> {
    let mut next = world.clone();
    let before = world.core.state;
    let moved = match step {
        Step::Admit(i) => {
            world.held[i].is_none().then_some(())?;
            let (admission, moved) = next.core.admit(config, world.now);
            let expected = match before {
                CircuitState::Closed => Admission::Call,
                CircuitState::Open if world.now < world.core.open_until => {
                    Admission::Reject(world.core.open_until - world.now)
                }
                CircuitState::Open => Admission::Trial(world.core.generation),
                CircuitState::HalfOpen if world.core.trials < config.success_threshold => {
                    Admission::Trial(world.core.generation)
                }
                CircuitState::HalfOpen => Admission::Reject(0),
            };
            assert_eq!(admission, expected, "admission in {world:?}");
            if !matches!(admission, Admission::Reject(_)) {
                next.held[i] = Some(admission);
            }
            moved
        }
        Step::Succeed(i) => match next.held[i].take()? {
            Admission::Call => {
                next.failures = 0;
                None
            }
            Admission::Trial(g) => {
                let moved = next.core.trial_succeeded(config, g);
                let current = before == CircuitState::HalfOpen && g == world.core.generation;
                let closes = current && world.core.trial_successes + 1 == config.success_threshold;
                assert_eq!(moved.is_some(), closes, "trial success in {world:?}");
                moved
            }
            Admission::Reject(_) => unreachable!(),
        },
        Step::Fail(i) => match next.held[i].take()? {
            Admission::Call => {
                next.failures += 1;
                let moved = if next.failures >= config.failure_threshold {
                    next.core.failures_reached(config, world.now)
                } else {
                    None
                };
                let opens = before == CircuitState::Closed
                    && world.failures + 1 >= config.failure_threshold;
                assert_eq!(moved.is_some(), opens, "failure in {world:?}");
                moved
            }
            Admission::Trial(g) => {
                let moved = next.core.trial_failed(config, g, world.now);
                let current = before == CircuitState::HalfOpen && g == world.core.generation;
                assert_eq!(moved.is_some(), current, "trial failure in {world:?}");
                moved
            }
            Admission::Reject(_) => unreachable!(),
        },
        Step::Abandon(i) => match next.held[i].take()? {
            Admission::Trial(g) => {
                next.core.trial_abandoned(g);
                None
            }
            _ => None,
        },
        Step::Wait => {
            (world.core.state == CircuitState::Open && world.now < world.core.open_until)
                .then_some(())?;
            next.now = world.core.open_until;
            None
        }
    };
    // Transitions: reported exactly when the state changes, and only along the machine's edges.
    let after = next.core.state;
    assert_eq!(moved.is_some(), before != after, "{step:?} in {world:?}");
    if let Some(to) = moved {
        assert_eq!(to, after);
        assert!(legal(before, after), "{before:?} -> {after:?}");
        if to == CircuitState::Open {
            assert_eq!(next.core.generation, world.core.generation + 1);
            assert_eq!(next.core.open_until, world.now + COOLDOWN);
        }
        if matches!(to, CircuitState::Open | CircuitState::Closed) {
            next.failures = 0; // as `Inner::moved` does
        }
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

fn explore(failure_threshold: u32, success_threshold: u32) -> usize {
    let config = BreakerConfig::checked(
        failure_threshold,
        success_threshold,
        Duration::from_nanos(COOLDOWN),
    );
    let start = World {
        core: Core::new(),
        failures: 0,
        now: 0,
        held: [None; CALLERS],
    };
    let mut seen = HashSet::from([start.key()]);
    let mut queue = VecDeque::from([start]);
    let mut states_by_kind = HashSet::new();
    while let Some(world) = queue.pop_front() {
        states_by_kind.insert(world.core.state as u8);
        let mut steps = vec![Step::Wait];
        for i in 0..CALLERS {
            steps.extend([
                Step::Admit(i),
                Step::Succeed(i),
                Step::Fail(i),
                Step::Abandon(i),
            ]);
        }
        for s in steps {
            if let Some(next) = step(&config, &world, s)
                && seen.insert(next.key())
            {
                queue.push_back(next);
            }
        }
    }
    assert_eq!(states_by_kind.len(), 3, "every state is reached");
    seen.len()
}

#[test]
fn every_reachable_state_keeps_the_rules() {
    for failure_threshold in 1..=3 {
        for success_threshold in 1..=3 {
            let states = explore(failure_threshold, success_threshold);
            assert!(states > 20, "{states} states");
        }
    }
}
