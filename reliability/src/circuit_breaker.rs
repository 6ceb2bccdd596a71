//! The circuit breaker: fail fast while a service is down, probe it with a few trial calls.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use crate::circuit_state::CircuitState;
use crate::circuit_state::{CLOSED, HALF_OPEN, OPEN};
use crate::error::{ConfigError, Error};
use crate::registry::{Registry, registry};
use crate::stats::{Field, PolicyKind, Stats};
use crate::sync::{AtomicU8, AtomicU32, AtomicU64, Mutex, MutexGuard, Ordering};

pub(crate) mod expand;

/// The settings of a [`CircuitBreaker`]; see [`CircuitBreakerBuilder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    failure_threshold: u32,
    success_threshold: u32,
    cooldown: Duration,
}

impl BreakerConfig {
    /// The defaults: 5 failures open the circuit, 2 trial successes close it, 60 s cooldown.
    pub const DEFAULT: BreakerConfig = BreakerConfig {
        failure_threshold: 5,
        success_threshold: 2,
        cooldown: Duration::from_secs(60),
    };

    /// Settings already validated (by the attribute macro).
    pub(crate) const fn checked(
        failure_threshold: u32,
        success_threshold: u32,
        cooldown: Duration,
    ) -> Self {
        BreakerConfig {
            failure_threshold,
            success_threshold,
            cooldown,
        }
    }

    /// Consecutive counted failures that open the circuit.
    pub fn failure_threshold(&self) -> u32 {
        self.failure_threshold
    }

    /// Successful trial calls in half-open that close it; also the number of trials let through at once.
    pub fn success_threshold(&self) -> u32 {
        self.success_threshold
    }

    /// Time open before trial calls are let through.
    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A circuit breaker, shared by cloning (clones are the same breaker).
///
/// Closed, it runs calls and counts consecutive counted failures; at `failure_threshold` it opens.
/// Open, it rejects calls with [`Error::CircuitOpen`] without running them, for `cooldown`. Then it is
/// half-open: at most `success_threshold` trial calls run at a time (others are rejected); that many
/// successes close it, one counted failure opens it again. A call dropped before it finishes, or one
/// that panics, counts as neither success nor failure and frees its trial slot. An error that the
/// `when` predicate does not count is a success for the breaker: the service did answer.
///
/// ```
/// use std::time::Duration;
/// use reliability::{CircuitBreaker, CircuitState, Error};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let breaker = CircuitBreaker::builder("payments")
///     .failure_threshold(2)
///     .cooldown(Duration::from_secs(10))
///     .build()
///     .unwrap();
/// for _ in 0..2 {
///     let _ = breaker.call(async { Err::<(), Error>(Error::Timeout { after: Duration::ZERO }) }).await;
/// }
/// assert_eq!(breaker.state(), CircuitState::Open);
/// let rejected = breaker.call(async { Ok::<_, Error>(1) }).await;
/// assert!(matches!(rejected, Err(Error::CircuitOpen { .. })));
/// tokio::time::sleep(Duration::from_secs(10)).await;
/// assert_eq!(breaker.call(async { Ok::<_, Error>(1) }).await, Ok(1)); // a trial call
/// # }
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
}

/// The shared state of one breaker.
///
/// Every transition happens in [`Core`], under its lock. Two fast paths read without the lock: the
/// state (a mirror of `Core::state`, so a closed breaker admits a call with one atomic load) and,
/// while open, the end of the cooldown (so an open breaker rejects with two). The count of
/// consecutive failures while closed is an atomic of its own, so that a success in the closed state
/// takes no lock either; only reaching `failure_threshold` takes it.
struct Inner {
    name: Arc<str>,
    config: BreakerConfig,
    /// `Core::state`, mirrored; written only under `core`.
    state: AtomicU8,
    /// `Core::open_until`, mirrored (meaningful while open); written under `core`, before `state`.
    open_until: AtomicU64,
    /// Consecutive counted failures while closed; reset under `core` at every transition.
    failures: AtomicU32,
    clock: Clock,
    core: Mutex<Core>,
    stats: Arc<Stats>,
    /// Every transition, in order, for the model to check.
    #[cfg(all(test, reliability_loom))]
    transitions: std::sync::Mutex<Vec<CircuitState>>,
}

/// The breaker's clock, in nanoseconds since the breaker was made: `tokio::time`, so paused-time
/// tests are exact. Under the loom model it is a counter the model advances.
struct Clock {
    #[cfg(not(all(test, reliability_loom)))]
    epoch: tokio::time::Instant,
    #[cfg(all(test, reliability_loom))]
    now: AtomicU64,
}

impl Clock {
    fn new() -> Self {
        Clock {
            #[cfg(not(all(test, reliability_loom)))]
            epoch: tokio::time::Instant::now(),
            #[cfg(all(test, reliability_loom))]
            now: AtomicU64::new(0),
        }
    }

    #[cfg(not(all(test, reliability_loom)))]
    fn now(&self) -> u64 {
        nanos(tokio::time::Instant::now().saturating_duration_since(self.epoch))
    }

    #[cfg(all(test, reliability_loom))]
    fn now(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    #[cfg(all(test, reliability_loom))]
    fn advance(&self, by: Duration) {
        self.now.fetch_add(nanos(by), Ordering::SeqCst);
    }
}

/// The breaker's state machine, free of time and of locking: the caller holds the lock and passes
/// the time (`now`, in nanoseconds on the breaker's clock). Each method returns the state it moved
/// to, if it moved, so that the caller reports every transition exactly once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Core {
    state: CircuitState,
    /// Bumped at every opening, so a trial permit of an earlier half-open period can neither free a
    /// slot of a later one nor count as one of its successes or failures.
    generation: u64,
    /// Half-open: trial calls running now (never above `success_threshold`); zero otherwise.
    trials: u32,
    /// Half-open: trial calls of this period that succeeded (below `success_threshold`); zero otherwise.
    trial_successes: u32,
    /// Open: when trial calls are let through.
    open_until: u64,
}

/// What [`Core::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Admission {
    /// Closed: an ordinary call.
    Call,
    /// Half-open: a trial call of the given generation, holding one slot.
    Trial(u64),
    /// Rejected; trial calls are let through in this many nanoseconds (zero when half-open and
    /// every slot is taken).
    Reject(u64),
}

impl Core {
    const fn new() -> Self {
        Core {
            state: CircuitState::Closed,
            generation: 0,
            trials: 0,
            trial_successes: 0,
            open_until: 0,
        }
    }

    /// Asks to run a call at `now`. Open with the cooldown over, the breaker moves to half-open first.
    fn admit(&mut self, config: &BreakerConfig, now: u64) -> (Admission, Option<CircuitState>) {
        let mut moved = None;
        if self.state == CircuitState::Open {
            if now < self.open_until {
                return (Admission::Reject(self.open_until - now), None);
            }
            self.state = CircuitState::HalfOpen;
            self.trials = 0;
            self.trial_successes = 0;
            moved = Some(CircuitState::HalfOpen);
        }
        let admission = match self.state {
            CircuitState::Closed => Admission::Call,
            _ if self.trials < config.success_threshold => {
                self.trials += 1;
                Admission::Trial(self.generation)
            }
            _ => Admission::Reject(0),
        };
        (admission, moved)
    }

    /// Closed: `failure_threshold` consecutive failures were counted, so open.
    fn failures_reached(&mut self, config: &BreakerConfig, now: u64) -> Option<CircuitState> {
        (self.state == CircuitState::Closed).then(|| self.open(config, now))
    }

    /// A trial of `generation` succeeded: it frees its slot, and enough successes close the circuit.
    fn trial_succeeded(&mut self, config: &BreakerConfig, generation: u64) -> Option<CircuitState> {
        if !self.is_current(generation) {
            return None;
        }
        self.trials -= 1;
        self.trial_successes += 1;
        if self.trial_successes < config.success_threshold {
            return None;
        }
        self.state = CircuitState::Closed;
        self.trials = 0;
        self.trial_successes = 0;
        Some(CircuitState::Closed)
    }

    /// A trial of `generation` failed (counted): open again.
    fn trial_failed(
        &mut self,
        config: &BreakerConfig,
        generation: u64,
        now: u64,
    ) -> Option<CircuitState> {
        self.is_current(generation).then(|| self.open(config, now))
    }

    /// A trial of `generation` ended without an outcome (dropped or panicked): it frees its slot.
    fn trial_abandoned(&mut self, generation: u64) {
        if self.is_current(generation) {
            self.trials -= 1;
        }
    }

    fn is_current(&self, generation: u64) -> bool {
        self.state == CircuitState::HalfOpen && self.generation == generation
    }

    fn open(&mut self, config: &BreakerConfig, now: u64) -> CircuitState {
        self.state = CircuitState::Open;
        self.generation = self.generation.wrapping_add(1);
        self.trials = 0;
        self.trial_successes = 0;
        self.open_until = now.saturating_add(nanos(config.cooldown));
        CircuitState::Open
    }
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name())
            .field("state", &self.state())
            .field("config", &self.inner.config)
            .finish()
    }
}

/// Builds a [`CircuitBreaker`]; every setting is validated by [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use]
pub struct CircuitBreakerBuilder {
    name: String,
    config: BreakerConfig,
}

impl CircuitBreakerBuilder {
    /// Consecutive counted failures that open the circuit (>= 1; default 5).
    pub fn failure_threshold(mut self, n: u32) -> Self {
        self.config.failure_threshold = n;
        self
    }

    /// Trial successes that close it, and trials admitted at once (>= 1; default 2).
    pub fn success_threshold(mut self, n: u32) -> Self {
        self.config.success_threshold = n;
        self
    }

    /// Time open before trial calls (> 0; default 60 s).
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.config.cooldown = cooldown;
        self
    }

    /// Validates the settings and returns the breaker registered under the name: the one already
    /// registered under that name if there is one (breakers are shared by name, and the first
    /// configuration wins), else a new one.
    pub fn build(self) -> Result<CircuitBreaker, ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::new("name", "must not be empty"));
        }
        if self.config.failure_threshold == 0 {
            return Err(ConfigError::new("failure_threshold", "must be at least 1"));
        }
        if self.config.success_threshold == 0 {
            return Err(ConfigError::new("success_threshold", "must be at least 1"));
        }
        if self.config.cooldown.is_zero() {
            return Err(ConfigError::new("cooldown", "must be longer than zero"));
        }
        let (breaker, created) = CircuitBreaker::shared(&self.name, self.config);
        if !created && breaker.config() != self.config {
            return Err(ConfigError::new(
                "name",
                format!(
                    "a circuit breaker named `{}` exists already with other settings ({:?}); give this one another name, or the same settings",
                    self.name,
                    breaker.config()
                ),
            ));
        }
        Ok(breaker)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl CircuitBreaker {
    /// Starts a builder for the breaker registered as `name`.
    pub fn builder(name: impl Into<String>) -> CircuitBreakerBuilder {
        CircuitBreakerBuilder {
            name: name.into(),
            config: BreakerConfig::DEFAULT,
        }
    }

    /// The breaker registered as `name`, made with `config` if there is none; the flag is `true`
    /// when this call made it.
    pub(crate) fn shared(name: &str, config: BreakerConfig) -> (Self, bool) {
        let (inner, created) = registry().shared(PolicyKind::CircuitBreaker, name, |stats| {
            Inner::new(name, config, stats)
        });
        (CircuitBreaker { inner }, created)
    }

    /// The registry name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The settings.
    pub fn config(&self) -> BreakerConfig {
        self.inner.config
    }

    /// The current state. An open breaker whose cooldown has passed reports `Open` until the next
    /// call moves it to `HalfOpen`.
    pub fn state(&self) -> CircuitState {
        CircuitState::from_u8(self.inner.state.load(Ordering::Acquire))
            .unwrap_or(CircuitState::Closed)
    }

    /// Runs `fut` if the breaker admits it; every `Err` counts as a failure.
    pub async fn call<T, E, F>(&self, fut: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: From<Error>,
    {
        self.call_when(|_: &E| true, fut).await
    }

    /// Runs `fut` if the breaker admits it; an `Err` counts as a failure when `counts` says so, and
    /// as a success otherwise (the service answered).
    pub async fn call_when<T, E, F, P>(&self, counts: P, fut: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: From<Error>,
        P: Fn(&E) -> bool,
    {
        let permit = match self.acquire(1) {
            Ok(permit) => permit,
            Err(rejection) => return Err(E::from(rejection)),
        };
        let out = fut.await;
        match &out {
            Err(e) if counts(e) => permit.failure(),
            _ => permit.success(),
        }
        out
    }

    /// Asks to run one call. `Err` is the rejection; the permit records the outcome, and when dropped
    /// unrecorded (cancellation, panic) counts as neither success nor failure.
    pub(crate) fn acquire(&self, attempt: u32) -> Result<Permit<'_>, Error> {
        self.acquire_for(Caller {
            function: None,
            attempt,
        })
    }

    /// [`acquire`](Self::acquire) for a function's stack, whose name goes into the events.
    #[inline]
    pub(crate) fn acquire_for<'a>(&'a self, caller: Caller<'a>) -> Result<Permit<'a>, Error> {
        let inner = &*self.inner;
        inner.stats.add(Field::Calls);
        match inner.admit(&caller) {
            Ok(trial) => Ok(Permit {
                inner,
                trial,
                caller,
            }),
            Err(retry_after) => Err(self.reject(&caller, retry_after)),
        }
    }

    fn reject(&self, caller: &Caller<'_>, retry_after: Duration) -> Error {
        let inner = &*self.inner;
        inner.stats.add(Field::Rejections);
        tracing::debug!(
            target: "reliability",
            breaker = %inner.name,
            function = %caller,
            attempt = caller.attempt,
            ?retry_after,
            "circuit breaker rejected a call"
        );
        Error::CircuitOpen {
            name: inner.name.clone(),
            retry_after,
        }
    }
}

impl crate::registry::Named for Inner {
    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }

    fn reset(&self) {
        let mut core = self.lock();
        // Permits of the periods before this one neither free slots nor count in the new one.
        let generation = core.generation.wrapping_add(1);
        *core = Core::new();
        core.generation = generation;
        self.failures.store(0, Ordering::Release);
        self.state.store(CLOSED, Ordering::Release);
        self.stats.set_state(CLOSED);
    }
}

impl Registry {
    /// The circuit breaker registered under `name`, or `None` until one of that name has been used
    /// (or after every handle to one built at run time was dropped).
    pub fn circuit_breaker(&self, name: &str) -> Option<CircuitBreaker> {
        self.find::<Inner>(PolicyKind::CircuitBreaker, name)
            .map(|inner| CircuitBreaker { inner })
    }

    /// Every registered circuit breaker, by name.
    pub fn circuit_breakers(&self) -> Vec<CircuitBreaker> {
        self.find_all::<Inner>(PolicyKind::CircuitBreaker)
            .into_iter()
            .map(|inner| CircuitBreaker { inner })
            .collect()
    }
}

impl Inner {
    fn new(name: &str, config: BreakerConfig, stats: Arc<Stats>) -> Self {
        stats.set_state(CLOSED);
        Inner {
            name: name.into(),
            config,
            state: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            clock: Clock::new(),
            core: Mutex::new(Core::new()),
            stats,
            #[cfg(all(test, reliability_loom))]
            transitions: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `Ok(None)` for an ordinary call, `Ok(Some(generation))` for a trial, `Err(retry_after)` for a
    /// rejection.
    #[inline]
    fn admit(&self, caller: &Caller<'_>) -> Result<Option<u64>, Duration> {
        let state = self.state.load(Ordering::Acquire);
        if state == CLOSED {
            return Ok(None);
        }
        self.admit_slow(state, caller)
    }

    /// [`admit`](Self::admit) while open or half-open: reads the clock, may take the lock.
    #[cold]
    #[inline(never)]
    fn admit_slow(&self, state: u8, caller: &Caller<'_>) -> Result<Option<u64>, Duration> {
        let now = self.clock.now();
        if state == OPEN {
            let until = self.open_until.load(Ordering::Acquire);
            if now < until {
                return Err(Duration::from_nanos(until - now));
            }
        }
        let mut core = self.lock();
        let (admission, moved) = core.admit(&self.config, now);
        self.moved(&core, moved, caller);
        drop(core);
        match admission {
            Admission::Call => Ok(None),
            Admission::Trial(generation) => Ok(Some(generation)),
            Admission::Reject(retry_after) => Err(Duration::from_nanos(retry_after)),
        }
    }

    /// Publishes a transition of `core` (called with its lock held): the mirrors, the failure count,
    /// the `openings` counter and the event.
    fn moved(&self, core: &Core, moved: Option<CircuitState>, caller: &Caller<'_>) {
        let Some(to) = moved else { return };
        self.stats.set_state(to.as_u8());
        match to {
            CircuitState::Open => {
                self.open_until.store(core.open_until, Ordering::Release);
                self.failures.store(0, Ordering::Release);
                self.state.store(OPEN, Ordering::Release);
                self.stats.add(Field::Openings);
                tracing::warn!(
                    target: "reliability",
                    breaker = %self.name,
                    function = %caller,
                    attempt = caller.attempt,
                    cooldown = ?self.config.cooldown,
                    "circuit breaker opened"
                );
            }
            CircuitState::HalfOpen => {
                self.state.store(HALF_OPEN, Ordering::Release);
                tracing::info!(
                    target: "reliability",
                    breaker = %self.name,
                    function = %caller,
                    attempt = caller.attempt,
                    "circuit breaker half-open: letting trial calls through"
                );
            }
            CircuitState::Closed => {
                self.failures.store(0, Ordering::Release);
                self.state.store(CLOSED, Ordering::Release);
                tracing::info!(
                    target: "reliability",
                    breaker = %self.name,
                    function = %caller,
                    attempt = caller.attempt,
                    "circuit breaker closed"
                );
            }
        }
        #[cfg(all(test, reliability_loom))]
        self.transitions.lock().unwrap().push(to);
    }
}

/// Who is calling through a breaker, for its events: the function (named lazily, only when an
/// event is recorded) and the attempt number.
pub(crate) struct Caller<'a> {
    pub(crate) function: Option<&'a (dyn Fn() -> String + Send + Sync)>,
    pub(crate) attempt: u32,
}

impl std::fmt::Display for Caller<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.function {
            Some(name) => f.write_str(&name()),
            None => f.write_str("-"),
        }
    }
}

/// Leave to run one call through a [`CircuitBreaker`].
pub(crate) struct Permit<'a> {
    inner: &'a Inner,
    /// `Some(generation)` for a half-open trial.
    trial: Option<u64>,
    caller: Caller<'a>,
}

impl Permit<'_> {
    #[inline]
    pub(crate) fn success(mut self) {
        let inner = self.inner;
        inner.stats.add(Field::Successes);
        match self.trial.take() {
            None => {
                if inner.failures.load(Ordering::Relaxed) != 0 {
                    inner.failures.store(0, Ordering::Relaxed);
                }
            }
            Some(generation) => {
                let mut core = inner.lock();
                let moved = core.trial_succeeded(&inner.config, generation);
                inner.moved(&core, moved, &self.caller);
            }
        }
    }

    pub(crate) fn failure(mut self) {
        let inner = self.inner;
        inner.stats.add(Field::Failures);
        match self.trial.take() {
            None => {
                let threshold = inner.config.failure_threshold;
                let failures = inner
                    .failures
                    .fetch_add(1, Ordering::AcqRel)
                    .saturating_add(1);
                if failures >= threshold {
                    let now = inner.clock.now();
                    let mut core = inner.lock();
                    // Checked again under the lock: a success may have reset the count meanwhile.
                    if inner.failures.load(Ordering::Acquire) >= threshold {
                        let moved = core.failures_reached(&inner.config, now);
                        inner.moved(&core, moved, &self.caller);
                    }
                }
            }
            Some(generation) => {
                let now = inner.clock.now();
                let mut core = inner.lock();
                let moved = core.trial_failed(&inner.config, generation, now);
                inner.moved(&core, moved, &self.caller);
            }
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Some(generation) = self.trial {
            self.inner.lock().trial_abandoned(generation);
        }
    }
}

#[cfg(all(test, not(reliability_loom)))]
mod exhaustive;

#[cfg(all(test, reliability_loom))]
mod loom_model;
