//! The circuit breaker: fail fast while a service is down, probe it with a few trial calls.

use std::future::Future;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{ConfigError, Error};
use crate::registry::{PolicyKind, registry};
use crate::stats::{Field, Stats};

/// The state of a [`CircuitBreaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    /// Calls run; consecutive counted failures are being counted.
    Closed,
    /// Calls are rejected at once until the cooldown has passed.
    Open,
    /// Up to `success_threshold` trial calls run at a time; enough successes close the circuit,
    /// one counted failure opens it again.
    HalfOpen,
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

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

    /// Settings already validated by the attribute macro.
    #[doc(hidden)]
    pub const fn __checked(
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

struct Inner {
    name: Arc<str>,
    config: BreakerConfig,
    /// CLOSED, OPEN or HALF_OPEN; written only under `core`.
    state: AtomicU8,
    /// Consecutive counted failures while closed.
    failures: AtomicU32,
    /// While open: nanoseconds after `epoch` at which trial calls are let through.
    open_until: AtomicU64,
    epoch: Instant,
    core: Mutex<Core>,
    stats: Arc<Stats>,
}

/// Half-open bookkeeping, changed only under the lock.
struct Core {
    /// Bumped at every opening, so a trial permit of an earlier half-open period cannot free a slot of
    /// a later one.
    generation: u64,
    trials: u32,
    trial_successes: u32,
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
        Ok(registry().shared_breaker(&self.name, self.config))
    }
}

fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    core.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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

    pub(crate) fn create(name: &str, config: BreakerConfig) -> Self {
        let stats = registry().stats(PolicyKind::CircuitBreaker, name);
        CircuitBreaker {
            inner: Arc::new(Inner {
                name: name.into(),
                config,
                state: AtomicU8::new(CLOSED),
                failures: AtomicU32::new(0),
                open_until: AtomicU64::new(0),
                epoch: Instant::now(),
                core: Mutex::new(Core {
                    generation: 0,
                    trials: 0,
                    trial_successes: 0,
                }),
                stats,
            }),
        }
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
        match self.inner.state.load(Ordering::Acquire) {
            CLOSED => CircuitState::Closed,
            OPEN => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
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
        let inner = &*self.inner;
        inner.stats.add(Field::Calls);
        let state = inner.state.load(Ordering::Acquire);
        if state == CLOSED {
            return Ok(Permit { inner, trial: None });
        }
        let now = Instant::now();
        let since = nanos(now.saturating_duration_since(inner.epoch));
        if state == OPEN {
            let until = inner.open_until.load(Ordering::Acquire);
            if since < until {
                return Err(self.reject(attempt, Duration::from_nanos(until - since)));
            }
        }
        let mut core = lock(&inner.core);
        match inner.state.load(Ordering::Acquire) {
            CLOSED => return Ok(Permit { inner, trial: None }),
            OPEN => {
                let until = inner.open_until.load(Ordering::Acquire);
                if since < until {
                    drop(core);
                    return Err(self.reject(attempt, Duration::from_nanos(until - since)));
                }
                core.trials = 0;
                core.trial_successes = 0;
                inner.state.store(HALF_OPEN, Ordering::Release);
                tracing::info!(target: "reliability", breaker = %inner.name, "circuit breaker half-open: letting trial calls through");
            }
            _ => {}
        }
        if core.trials < inner.config.success_threshold {
            core.trials += 1;
            Ok(Permit {
                inner,
                trial: Some(core.generation),
            })
        } else {
            drop(core);
            Err(self.reject(attempt, Duration::ZERO))
        }
    }

    fn reject(&self, attempt: u32, retry_after: Duration) -> Error {
        let inner = &*self.inner;
        inner.stats.add(Field::Rejections);
        tracing::debug!(target: "reliability", breaker = %inner.name, attempt, ?retry_after, "circuit breaker rejected a call");
        Error::CircuitOpen {
            name: inner.name.clone(),
            retry_after,
        }
    }
}

impl Inner {
    /// Opens the circuit. Called with `core` locked.
    fn open(&self, core: &mut Core) {
        core.generation = core.generation.wrapping_add(1);
        core.trials = 0;
        core.trial_successes = 0;
        let now = nanos(Instant::now().saturating_duration_since(self.epoch));
        self.open_until.store(
            now.saturating_add(nanos(self.config.cooldown)),
            Ordering::Release,
        );
        self.failures.store(0, Ordering::Relaxed);
        self.state.store(OPEN, Ordering::Release);
        self.stats.add(Field::Openings);
        tracing::warn!(
            target: "reliability",
            breaker = %self.name,
            cooldown = ?self.config.cooldown,
            "circuit breaker opened"
        );
    }
}

/// Leave to run one call through a [`CircuitBreaker`].
pub(crate) struct Permit<'a> {
    inner: &'a Inner,
    /// `Some(generation)` for a half-open trial.
    trial: Option<u64>,
}

impl Permit<'_> {
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
                let mut core = lock(&inner.core);
                if core.generation == generation && inner.state.load(Ordering::Acquire) == HALF_OPEN
                {
                    core.trials -= 1;
                    core.trial_successes += 1;
                    if core.trial_successes >= inner.config.success_threshold {
                        core.trials = 0;
                        core.trial_successes = 0;
                        inner.failures.store(0, Ordering::Relaxed);
                        inner.state.store(CLOSED, Ordering::Release);
                        tracing::info!(target: "reliability", breaker = %inner.name, "circuit breaker closed");
                    }
                }
            }
        }
    }

    pub(crate) fn failure(mut self) {
        let inner = self.inner;
        inner.stats.add(Field::Failures);
        match self.trial.take() {
            None => {
                let failures = inner
                    .failures
                    .fetch_add(1, Ordering::AcqRel)
                    .saturating_add(1);
                if failures >= inner.config.failure_threshold {
                    let mut core = lock(&inner.core);
                    if inner.state.load(Ordering::Acquire) == CLOSED
                        && inner.failures.load(Ordering::Acquire) >= inner.config.failure_threshold
                    {
                        inner.open(&mut core);
                    }
                }
            }
            Some(generation) => {
                let mut core = lock(&inner.core);
                if core.generation == generation && inner.state.load(Ordering::Acquire) == HALF_OPEN
                {
                    inner.open(&mut core);
                }
            }
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Some(generation) = self.trial {
            let mut core = lock(&self.inner.core);
            if core.generation == generation
                && self.inner.state.load(Ordering::Acquire) == HALF_OPEN
            {
                core.trials -= 1;
            }
        }
    }
}
