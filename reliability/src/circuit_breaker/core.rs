//! The breaker's state machine, free of time and of locking: the single place where transitions
//! happen.

use super::CircuitState;
use super::config::SlidingWindow;
use super::config::{BreakerConfig, TripRule};
use super::window::{Counts, Outcome, TimeWindow};

/// The state machine. The caller holds the lock and passes the time (`now`, in nanoseconds on the
/// breaker's clock). Each method returns the state it moved to, if it moved, so that the caller
/// reports every transition exactly once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Core {
    pub(crate) state: CircuitState,
    /// Bumped at every transition (and reset), so that a call admitted in an earlier period can
    /// neither free a trial slot of a later one nor count as one of its outcomes.
    pub(crate) generation: u64,
    /// Half-open: trial calls running now (never above `success_threshold`); zero otherwise.
    pub(crate) trials: u32,
    /// Half-open: trial calls of this period that succeeded (below `success_threshold`); zero otherwise.
    pub(crate) trial_successes: u32,
    /// Open: when trial calls are let through.
    pub(crate) open_until: u64,
    /// Rate rule with a time window: the outcomes of this closed period; empty in every other
    /// state. (A count window is lock-free, outside the core.)
    pub(crate) window: Option<TimeWindow>,
}

/// What [`Core::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Admission {
    /// Closed: an ordinary call of the given generation.
    Call(u64),
    /// Half-open: a trial call of the given generation, holding one slot.
    Trial(u64),
    /// Rejected; trial calls are let through in this many nanoseconds (zero when half-open and
    /// every slot is taken; the cooldown while isolated).
    Reject(u64),
}

impl Core {
    pub(crate) fn new(config: &BreakerConfig) -> Self {
        Core {
            state: CircuitState::Closed,
            generation: 0,
            trials: 0,
            trial_successes: 0,
            open_until: 0,
            window: match config.rule {
                TripRule::Rate {
                    window: SlidingWindow::Duration(duration),
                    ..
                } => Some(TimeWindow::new(duration)),
                _ => None,
            },
        }
    }

    /// Asks to run a call at `now`. Open with the cooldown over, the breaker moves to half-open first.
    pub(crate) fn admit(
        &mut self,
        config: &BreakerConfig,
        now: u64,
    ) -> (Admission, Option<CircuitState>) {
        let mut moved = None;
        match self.state {
            CircuitState::Isolated => return (Admission::Reject(nanos(config.cooldown)), None),
            CircuitState::Open if now < self.open_until => {
                return (Admission::Reject(self.open_until - now), None);
            }
            CircuitState::Open => moved = Some(self.enter(CircuitState::HalfOpen)),
            _ => {}
        }
        let admission = match self.state {
            CircuitState::Closed => Admission::Call(self.generation),
            _ if self.trials < config.success_threshold => {
                self.trials += 1;
                Admission::Trial(self.generation)
            }
            _ => Admission::Reject(0),
        };
        (admission, moved)
    }

    /// Consecutive rule, closed: `failure_threshold` consecutive failures of `generation` were
    /// counted, so open (unless the breaker moved on since).
    pub(crate) fn failures_reached(
        &mut self,
        config: &BreakerConfig,
        generation: u64,
        now: u64,
    ) -> Option<CircuitState> {
        self.is(CircuitState::Closed, generation)
            .then(|| self.open(config, now))
    }

    /// Rate rule with a time window, closed: a call of `generation` ended with `outcome` at `now`.
    /// Ignored if the breaker moved on since the call was admitted; else recorded, and the circuit
    /// opens if the rule says so.
    pub(crate) fn record(
        &mut self,
        config: &BreakerConfig,
        generation: u64,
        outcome: Outcome,
        now: u64,
    ) -> Option<CircuitState> {
        if !self.is(CircuitState::Closed, generation) {
            return None;
        }
        let counts = self.window.as_mut()?.record(outcome, now);
        trips(&config.rule, counts).then(|| self.open(config, now))
    }

    /// Rate rule with a count window (lock-free, outside the core): the window of a call of
    /// `generation` says to open. Ignored if the breaker moved on since the call was admitted.
    pub(crate) fn window_tripped(
        &mut self,
        config: &BreakerConfig,
        generation: u64,
        now: u64,
    ) -> Option<CircuitState> {
        self.is(CircuitState::Closed, generation)
            .then(|| self.open(config, now))
    }

    /// A trial of `generation` succeeded: it frees its slot, and enough successes close the circuit.
    pub(crate) fn trial_succeeded(
        &mut self,
        config: &BreakerConfig,
        generation: u64,
    ) -> Option<CircuitState> {
        if !self.is(CircuitState::HalfOpen, generation) {
            return None;
        }
        self.trials -= 1;
        self.trial_successes += 1;
        if self.trial_successes < config.success_threshold {
            return None;
        }
        Some(self.enter(CircuitState::Closed))
    }

    /// A trial of `generation` failed (counted, or slow): open again.
    pub(crate) fn trial_failed(
        &mut self,
        config: &BreakerConfig,
        generation: u64,
        now: u64,
    ) -> Option<CircuitState> {
        self.is(CircuitState::HalfOpen, generation)
            .then(|| self.open(config, now))
    }

    /// A trial of `generation` ended without an outcome (dropped or panicked): it frees its slot.
    pub(crate) fn trial_abandoned(&mut self, generation: u64) {
        if self.is(CircuitState::HalfOpen, generation) {
            self.trials -= 1;
        }
    }

    /// Manual control: reject every call until [`reset`](Self::reset). `None` if already isolated.
    pub(crate) fn isolate(&mut self) -> Option<CircuitState> {
        (self.state != CircuitState::Isolated).then(|| self.enter(CircuitState::Isolated))
    }

    /// Manual control: closed, with the window and every count cleared, whatever the state was.
    pub(crate) fn reset(&mut self) -> CircuitState {
        self.enter(CircuitState::Closed)
    }

    /// A shared breaker learnt that another replica opened the circuit until `until`. Closed or
    /// half-open, it opens until then; open, it keeps the later end (`None`: not moved); isolated,
    /// nothing changes.
    #[cfg(feature = "redis")]
    pub(crate) fn opened_elsewhere(&mut self, until: u64) -> Option<CircuitState> {
        match self.state {
            CircuitState::Closed | CircuitState::HalfOpen => {
                self.open_until = until;
                Some(self.enter(CircuitState::Open))
            }
            CircuitState::Open => {
                self.open_until = self.open_until.max(until);
                None
            }
            CircuitState::Isolated => None,
        }
    }

    fn is(&self, state: CircuitState, generation: u64) -> bool {
        self.state == state && self.generation == generation
    }

    fn open(&mut self, config: &BreakerConfig, now: u64) -> CircuitState {
        self.open_until = now.saturating_add(nanos(config.cooldown));
        self.enter(CircuitState::Open)
    }

    /// Every transition goes through here: a new period, with no trial and an empty window.
    fn enter(&mut self, state: CircuitState) -> CircuitState {
        self.state = state;
        self.generation = self.generation.wrapping_add(1);
        self.trials = 0;
        self.trial_successes = 0;
        if let Some(window) = &mut self.window {
            window.clear();
        }
        state
    }
}

/// Whether a rate rule opens the circuit on a window holding `counts`.
pub(crate) fn trips(rule: &TripRule, counts: Counts) -> bool {
    match *rule {
        TripRule::Rate {
            failure_rate,
            min_calls,
            slow_call_rate,
            ..
        } => {
            // Through `i64`: one instruction to convert, where `u64` takes a sequence (counts
            // never reach 2^63).
            let calls = counts.calls as i64 as f64;
            counts.calls >= u64::from(min_calls.max(1))
                && (counts.failures as i64 as f64 >= failure_rate * calls
                    || counts.slow as i64 as f64 >= slow_call_rate * calls)
        }
        TripRule::Consecutive { .. } => false,
    }
}

pub(crate) fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
