//! The circuit breaker: fail fast while a service is down, probe it with a few trial calls.
//!
//! - `config`: the settings ([`BreakerConfig`], [`TripRule`], [`SlidingWindow`]) and the builder;
//! - `core`: the state machine, the single place where transitions happen;
//! - `window`: the sliding window of the rate rule;
//! - here: the shared breaker, its lock-free fast paths, permits, manual control and events.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use crate::circuit_state::CircuitState;
use crate::error::Error;
use crate::registry::{Named, Registry, registry};
use crate::stats::{Field, PolicyKind, Stats, Timer};
use crate::sync::{AtomicU64, Mutex, MutexGuard, Ordering};

mod config;
mod core;
mod count_window;
pub(crate) mod expand;
#[cfg(feature = "redis")]
pub(crate) mod shared;
mod window;

pub use config::{BreakerConfig, CircuitBreakerBuilder, SlidingWindow, TripRule};

use self::core::{Admission, Core, nanos, trips};
use self::count_window::CountWindow;
use self::window::Outcome;

const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;
const ISOLATED: u64 = 3;

/// The state mirror packs the state in its low byte and the generation above it.
const STATE_BITS: u32 = 8;
const STATE_MASK: u64 = (1 << STATE_BITS) - 1;

impl CircuitState {
    const fn from_code(code: u64) -> Self {
        match code {
            CLOSED => CircuitState::Closed,
            OPEN => CircuitState::Open,
            HALF_OPEN => CircuitState::HalfOpen,
            _ => CircuitState::Isolated,
        }
    }

    const fn code(self) -> u64 {
        match self {
            CircuitState::Closed => CLOSED,
            CircuitState::Open => OPEN,
            CircuitState::HalfOpen => HALF_OPEN,
            CircuitState::Isolated => ISOLATED,
        }
    }
}

/// A circuit breaker, shared by cloning (clones are the same breaker).
///
/// Closed, it runs calls and counts their outcomes by its [`TripRule`]; when the rule says so, it
/// opens. Open, it rejects calls with [`Error::CircuitOpen`] without running them, for `cooldown`.
/// Then it is half-open: at most `success_threshold` trial calls run at a time (others are
/// rejected); that many successes close it, one counted failure opens it again.
///
/// Rules that hold for both trip rules:
/// - an error that the `when` predicate does not count is a success for the breaker: the service
///   did answer;
/// - a call dropped before it finishes, or one that panics, counts as neither success nor failure
///   and frees its trial slot;
/// - a result that arrives after the breaker changed state (opened, half-opened, closed, isolated
///   or reset since the call was admitted) is ignored: a slow call admitted before an opening
///   cannot count against the closed period that follows the recovery;
/// - a failure while open does not restart the cooldown;
/// - the window (rate rule) and the failure count (consecutive rule) are cleared at every
///   transition.
///
/// # Which rule to choose
///
/// **Consecutive** (the default, [`failure_threshold`](CircuitBreakerBuilder::failure_threshold)):
/// `N` counted failures in a row open the circuit. It suits low traffic, where a handful of calls
/// in a row is a clear signal. Under concurrent traffic it is a trap: a burst of calls that start
/// together finishes with the fast failures first, so 5 instant errors among 256 calls that
/// otherwise succeed in a few milliseconds open a breaker with `failure_threshold = 5` although 90%
/// of the calls succeed.
///
/// **Rate** ([`failure_rate`](CircuitBreakerBuilder::failure_rate) and its siblings): the breaker
/// opens when, over a sliding window of the last N calls (or of the calls of the last DUR), at least
/// `failure_rate` of the calls failed or at least `slow_call_rate` were slower than `slow_call`, once
/// the window holds `min_calls` calls. It suits concurrent traffic. Defaults beside two peers':
///
/// | | failure share | window | minimum calls | slow calls | open for |
/// |---|---|---|---|---|---|
/// | reliability, rate rule | 0.5 | last 100 calls | min(100, window) | off (share: the failure share) | 60 s |
/// | resilience4j | 50% | last 100 calls | 100 | 60 s, at 100% | 60 s |
/// | Polly v8 | 0.1 | 30 s sampling | 100 | — | 5 s |
///
/// Cost on the closed path: both rules admit a call with one atomic load. A consecutive breaker
/// records a success with one more load (and a failure with a compare-exchange). A rate breaker
/// with a count window records an outcome without a lock, with one compare-exchange of a word
/// every call through it shares and two atomic operations on a ring made with the breaker; with
/// a time window, under a short lock (ten buckets). Neither allocates, and the clock is read only
/// for a time window or `slow_call`. (When more outcomes are being recorded at once than a count
/// window holds, a call may find the one N places before it still unrecorded: it is counted, and
/// leaves the decision to the next call.)
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
///
/// The rate rule: half of the last 10 calls failed, or took longer than 2 s.
///
/// ```
/// use std::time::Duration;
/// use reliability::{CircuitBreaker, CircuitState, Error};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let breaker = CircuitBreaker::builder("search")
///     .failure_rate(0.5)
///     .window_calls(10)
///     .min_calls(10)
///     .slow_call(Duration::from_secs(2))
///     .build()
///     .unwrap();
/// let timeout = || async { Err::<(), Error>(Error::Timeout { after: Duration::ZERO }) };
/// for _ in 0..4 {
///     let _ = breaker.call(timeout()).await;
///     let _ = breaker.call(async { Ok::<_, Error>(()) }).await;
/// }
/// let _ = breaker.call(timeout()).await;
/// assert_eq!(breaker.state(), CircuitState::Closed, "5 failures of 9 calls: below min_calls");
/// let _ = breaker.call(async { Ok::<_, Error>(()) }).await;
/// assert_eq!(breaker.state(), CircuitState::Open, "5 failures of 10 calls");
/// # }
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
}

/// The shared state of one breaker.
///
/// Every transition happens in [`Core`], under its lock. Two fast paths read without the lock: the
/// state (a mirror of `Core::state` and `Core::generation`, so a closed breaker admits a call with
/// one atomic load, and the call knows its period) and, while open, the end of the cooldown (so an
/// open breaker rejects with two). The consecutive rule's count of failures while closed is an
/// atomic of its own, tagged with the period, so that a success in the closed state takes no lock;
/// only reaching `failure_threshold` takes it. The rate rule's count window is lock-free too, and
/// takes the lock only to open; its time window is in `Core`.
struct Inner {
    name: Arc<str>,
    config: BreakerConfig,
    /// `Core::generation << STATE_BITS | Core::state`, mirrored; written only under `core`.
    state: AtomicU64,
    /// `Core::open_until`, mirrored (meaningful while open); written under `core`, before `state`.
    open_until: AtomicU64,
    /// Consecutive rule: `(generation as u32) << 32 | consecutive counted failures` of the current
    /// closed period; set to the new period's tag and zero under `core` at every transition.
    failures: AtomicU64,
    /// Rate rule with `slow_call`: admission reads the clock, to time the call.
    timed: bool,
    /// Rate rule with a count window: the window, lock-free; reset under `core` at every
    /// transition. (A time window is in `core`.)
    count: Option<CountWindow>,
    clock: Clock,
    core: Mutex<Core>,
    stats: Arc<Stats>,
    /// Feature `redis`: the link to the store of a shared breaker, told of every local transition.
    #[cfg(feature = "redis")]
    shared: std::sync::OnceLock<Arc<shared::Link>>,
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

/// The consecutive failure count's word: the period's tag and a count.
const fn failures_word(generation: u64, count: u32) -> u64 {
    ((generation as u32 as u64) << 32) | count as u64
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

impl CircuitBreaker {
    /// Starts a builder for the breaker registered as `name`.
    pub fn builder(name: impl Into<String>) -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new(name.into())
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
        CircuitState::from_code(self.inner.state.load(Ordering::Acquire) & STATE_MASK)
    }

    /// Opens the circuit until [`reset`](Self::reset), whatever the traffic: a kill switch for
    /// operators. The state is [`CircuitState::Isolated`]; every call is rejected with
    /// [`Error::CircuitOpen`] (whose `retry_after` is the cooldown: the breaker cannot know when
    /// it will be reset), and results of calls admitted before are ignored. Isolating an isolated
    /// breaker does nothing. Counted in the breaker's `isolations` and reported as a `tracing`
    /// event (target `reliability`).
    ///
    /// ```
    /// use reliability::{CircuitBreaker, CircuitState, Error, registry};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// // Kept by its owner (a breaker built at run time leaves the registry with its last handle):
    /// let _ledger = CircuitBreaker::builder("ledger").build().unwrap();
    /// // Elsewhere, e.g. in an admin endpoint:
    /// let breaker = registry().circuit_breaker("ledger").unwrap();
    /// breaker.isolate();
    /// assert_eq!(breaker.state(), CircuitState::Isolated);
    /// let rejected = breaker.call(async { Ok::<_, Error>(1) }).await;
    /// assert!(matches!(rejected, Err(Error::CircuitOpen { .. })));
    /// breaker.reset();
    /// assert_eq!(breaker.state(), CircuitState::Closed);
    /// assert_eq!(breaker.call(async { Ok::<_, Error>(1) }).await, Ok(1));
    /// let stats = registry().snapshot();
    /// let stats = stats.circuit_breaker("ledger").unwrap();
    /// assert_eq!((stats.isolations, stats.resets), (1, 1));
    /// # }
    /// ```
    pub fn isolate(&self) {
        let inner = &*self.inner;
        let mut core = inner.lock();
        let from = core.state;
        if core.isolate().is_none() {
            return;
        }
        inner.publish(&core);
        #[cfg(feature = "redis")]
        inner.tell_store(shared::Event::Isolated);
        inner.stats.add(Field::Isolations);
        tracing::warn!(
            target: "reliability",
            breaker = %inner.name,
            from = ?from,
            "circuit breaker isolated: rejecting every call until reset"
        );
        #[cfg(all(test, reliability_loom))]
        inner
            .transitions
            .lock()
            .unwrap()
            .push(CircuitState::Isolated);
    }

    /// Closes the circuit, from any state, and clears the window, the failure count and the trial
    /// slots; results of calls admitted before are ignored. Counted in the breaker's `resets` and
    /// reported as a `tracing` event (target `reliability`). See [`isolate`](Self::isolate).
    pub fn reset(&self) {
        let inner = &*self.inner;
        let mut core = inner.lock();
        let from = core.state;
        core.reset();
        inner.publish(&core);
        #[cfg(feature = "redis")]
        inner.tell_store(shared::Event::Reset);
        inner.stats.add(Field::Resets);
        tracing::info!(
            target: "reliability",
            breaker = %inner.name,
            from = ?from,
            "circuit breaker reset: closed, counts cleared"
        );
        #[cfg(all(test, reliability_loom))]
        inner.transitions.lock().unwrap().push(CircuitState::Closed);
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
    ///
    /// The breaker is asked at the first poll, and the permit kept in the returned future itself
    /// (a hand-written future rather than an `async fn`, which copied it at every step).
    pub fn call_when<T, E, F, P>(
        &self,
        counts: P,
        fut: F,
    ) -> impl Future<Output = Result<T, E>> + use<'_, T, E, F, P>
    where
        F: Future<Output = Result<T, E>>,
        E: From<Error>,
        P: Fn(&E) -> bool,
    {
        CallWhen {
            fut,
            breaker: self,
            permit: None,
            asked: false,
            counts,
        }
    }

    /// Asks to run one call. `Err` is the rejection; the permit records the outcome, and when dropped
    /// unrecorded (cancellation, panic) counts as neither success nor failure.
    #[cfg(all(test, reliability_loom))]
    pub(crate) fn acquire(&self, attempt: u32) -> Result<Permit<'_>, Error> {
        let mut permit = None;
        self.acquire_into(&Caller::anonymous(attempt), &mut permit)?;
        Ok(permit.expect("an admitted call leaves its permit"))
    }

    /// Asks to run one call: `Err` is the rejection; an admitted call leaves its permit in `slot`,
    /// written where it will be kept (a future's field), not built aside and copied there. The
    /// permit records the outcome, and when dropped unrecorded (cancellation, panic) counts as
    /// neither success nor failure.
    #[inline]
    pub(crate) fn acquire_into<'a>(
        &'a self,
        caller: &Caller<'_>,
        slot: &mut Option<Permit<'a>>,
    ) -> Result<(), Error> {
        let inner = &*self.inner;
        match inner.admit(caller) {
            Ok(admitted) => {
                *slot = Some(inner.permit(admitted));
                Ok(())
            }
            Err(retry_after) => Err(self.reject(caller, retry_after)),
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

impl Named for Inner {
    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }

    fn reset(&self) {
        let mut core = self.lock();
        core.reset();
        self.publish(&core);
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
        stats.set_state(CircuitState::Closed.as_u8());
        Inner {
            name: name.into(),
            config,
            state: AtomicU64::new(CLOSED),
            failures: AtomicU64::new(failures_word(0, 0)),
            open_until: AtomicU64::new(0),
            timed: config.slow_call().is_some(),
            count: match config.rule {
                TripRule::Rate {
                    window: SlidingWindow::Calls(size),
                    ..
                } => Some(CountWindow::new(size, 0)),
                _ => None,
            },
            clock: Clock::new(),
            core: Mutex::new(Core::new(&config)),
            stats,
            #[cfg(feature = "redis")]
            shared: std::sync::OnceLock::new(),
            #[cfg(all(test, reliability_loom))]
            transitions: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The permit of a call admitted as `admitted`.
    #[inline]
    fn permit(&self, admitted: Admitted) -> Permit<'_> {
        Permit {
            inner: self,
            started: if self.timed { self.clock.now() } else { 0 },
            admitted,
            timer: Timer::start(),
        }
    }

    /// What the breaker admitted, or `Err(retry_after)` for a rejection.
    #[inline]
    fn admit(&self, caller: &Caller<'_>) -> Result<Admitted, Duration> {
        let word = self.state.load(Ordering::Acquire);
        if word & STATE_MASK == CLOSED {
            return Ok(Admitted::call(word >> STATE_BITS));
        }
        self.admit_slow(word & STATE_MASK, caller)
    }

    /// [`admit`](Self::admit) while open, half-open or isolated: reads the clock, may take the lock.
    #[cold]
    #[inline(never)]
    fn admit_slow(&self, state: u64, caller: &Caller<'_>) -> Result<Admitted, Duration> {
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
            Admission::Call(generation) => Ok(Admitted::call(generation)),
            Admission::Trial(generation) => Ok(Admitted::trial(generation)),
            Admission::Reject(retry_after) => Err(Duration::from_nanos(retry_after)),
        }
    }

    /// Mirrors `core` (called with its lock held, after a transition): the end of the cooldown, the
    /// failure count of the new period, then the state and generation.
    fn publish(&self, core: &Core) {
        if core.state == CircuitState::Open {
            self.open_until.store(core.open_until, Ordering::Release);
        }
        // A read-modify-write, not a store: ordered with the closed-state compare-exchanges of
        // the count in every model (loom 0.7 lets a compare-exchange read past a plain store).
        self.failures
            .swap(failures_word(core.generation, 0), Ordering::AcqRel);
        if let Some(count) = &self.count {
            count.reset(core.generation);
        }
        self.state.store(
            (core.generation << STATE_BITS) | core.state.code(),
            Ordering::Release,
        );
        self.stats.set_state(core.state.as_u8());
    }

    /// Publishes a transition of `core` (called with its lock held): the mirrors, the `openings`
    /// counter and the event.
    fn moved(&self, core: &Core, moved: Option<CircuitState>, caller: &Caller<'_>) {
        let Some(to) = moved else { return };
        self.publish(core);
        #[cfg(feature = "redis")]
        self.tell_store(shared::Event::Moved(to));
        match to {
            CircuitState::Open => {
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
                tracing::info!(
                    target: "reliability",
                    breaker = %self.name,
                    function = %caller,
                    attempt = caller.attempt,
                    "circuit breaker half-open: letting trial calls through"
                );
            }
            CircuitState::Closed => {
                tracing::info!(
                    target: "reliability",
                    breaker = %self.name,
                    function = %caller,
                    attempt = caller.attempt,
                    "circuit breaker closed"
                );
            }
            // Only `CircuitBreaker::isolate` isolates, and reports it itself.
            CircuitState::Isolated => {}
        }
        #[cfg(all(test, reliability_loom))]
        self.transitions.lock().unwrap().push(to);
    }

    /// Rate rule: records the outcome of a closed-state call of `generation`. `now`: the clock
    /// when the outcome arrived, if read already.
    fn record(&self, generation: u64, outcome: Outcome, now: Option<u64>, caller: &Caller<'_>) {
        let Some(count) = &self.count else {
            return self.record_in_time(generation, outcome, now, caller);
        };
        // Lock-free; the lock only to open.
        if count.record_opens(generation, outcome, |counts| {
            trips(&self.config.rule, counts)
        }) {
            self.window_tripped(generation, now, caller);
        }
    }

    /// Rate rule with a count window: the window of a call of `generation` says to open.
    #[cold]
    #[inline(never)]
    fn window_tripped(&self, generation: u64, now: Option<u64>, caller: &Caller<'_>) {
        let now = now.unwrap_or_else(|| self.clock.now());
        let mut core = self.lock();
        let moved = core.window_tripped(&self.config, generation, now);
        self.moved(&core, moved, caller);
    }

    /// Rate rule with a time window (in the core, under the lock): [`record`](Self::record).
    #[inline(never)]
    fn record_in_time(
        &self,
        generation: u64,
        outcome: Outcome,
        now: Option<u64>,
        caller: &Caller<'_>,
    ) {
        let now = now.unwrap_or_else(|| self.clock.now());
        let mut core = self.lock();
        let moved = core.record(&self.config, generation, outcome, now);
        self.moved(&core, moved, caller);
    }

    /// Consecutive rule: a success of `generation` clears the failure count, if it is that
    /// period's and not zero already (one load when there is nothing to clear).
    #[inline]
    fn consecutive_success(&self, generation: u64) {
        let clear = failures_word(generation, 0);
        let mut word = self.failures.load(Ordering::Relaxed);
        while word != clear && word >> 32 == clear >> 32 {
            match self.failures.compare_exchange_weak(
                word,
                clear,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => word = now,
            }
        }
    }

    /// Consecutive rule: a counted failure of `generation`; at the threshold, opens under the lock.
    fn consecutive_failure(&self, generation: u64, caller: &Caller<'_>) {
        let TripRule::Consecutive { failure_threshold } = self.config.rule else {
            return;
        };
        let tag = failures_word(generation, 0);
        let mut word = self.failures.load(Ordering::Acquire);
        let count = loop {
            if word >> 32 != tag >> 32 {
                return; // the breaker moved on since the call was admitted
            }
            let count = (word as u32).saturating_add(1);
            match self.failures.compare_exchange_weak(
                word,
                tag | u64::from(count),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break count,
                Err(now) => word = now,
            }
        };
        if count >= failure_threshold {
            let now = self.clock.now();
            let mut core = self.lock();
            // Checked again under the lock: a success may have reset the count meanwhile.
            let word = self.failures.load(Ordering::Acquire);
            if word >> 32 == tag >> 32 && word as u32 >= failure_threshold {
                let moved = core.failures_reached(&self.config, generation, now);
                self.moved(&core, moved, caller);
            }
        }
    }

    /// Whether a call admitted at `started` and ending at `now` was slow.
    fn slow(&self, started: u64, now: u64) -> bool {
        self.config
            .slow_call()
            .is_some_and(|limit| now.saturating_sub(started) > nanos(limit))
    }
}

pin_project_lite::pin_project! {
    /// The future of [`CircuitBreaker::call_when`]: at its first poll, the permit or the
    /// rejection; then `fut`, polled in place under the permit.
    struct CallWhen<'a, F, P> {
        #[pin]
        fut: F,
        breaker: &'a CircuitBreaker,
        permit: Option<Permit<'a>>,
        asked: bool,
        counts: P,
    }
}

impl<T, E, F, P> Future for CallWhen<'_, F, P>
where
    F: Future<Output = Result<T, E>>,
    E: From<Error>,
    P: Fn(&E) -> bool,
{
    type Output = Result<T, E>;

    #[inline]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let caller = Caller::anonymous(1);
        if !*this.asked {
            *this.asked = true;
            if let Err(rejection) = this.breaker.acquire_into(&caller, this.permit) {
                return std::task::Poll::Ready(Err(E::from(rejection)));
            }
        }
        // Taken apart before the outcome is recorded and rebuilt from its fields, not kept whole
        // across the recording and moved (see the module `call`).
        match std::task::ready!(this.fut.poll(cx)) {
            Ok(value) => {
                if let Some(permit) = this.permit {
                    permit.success(&caller);
                    *this.permit = None;
                }
                std::task::Poll::Ready(Ok(value))
            }
            Err(error) => {
                if let Some(permit) = this.permit {
                    permit.settle_error(&error, &*this.counts, &caller);
                    *this.permit = None;
                }
                std::task::Poll::Ready(Err(error))
            }
        }
    }
}

/// Who is calling through a breaker, for its events: the function (named lazily, only when an
/// event is recorded) and the attempt number.
pub(crate) struct Caller<'a> {
    pub(crate) function: Option<&'a crate::site::Site>,
    pub(crate) attempt: u32,
}

impl std::fmt::Display for Caller<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.function {
            Some(site) => write!(f, "{site}"),
            None => f.write_str("-"),
        }
    }
}

impl Caller<'_> {
    /// A call made through the breaker's own methods, not a function's stack.
    pub(crate) const fn anonymous(attempt: u32) -> Self {
        Caller {
            function: None,
            attempt,
        }
    }
}

/// What a permit was admitted as, with the generation it was admitted in, in one word: the
/// generation (below 2^63: a breaker does not move 2^63 times), the top bit for a trial, all ones
/// once the outcome is recorded. One word, so that a permit is small to keep in a future.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Admitted(u64);

impl Admitted {
    const TRIAL: u64 = 1 << 63;
    /// The outcome was recorded.
    const ENDED: Admitted = Admitted(u64::MAX);

    /// Closed: an ordinary call.
    fn call(generation: u64) -> Self {
        Admitted(generation & !Self::TRIAL)
    }

    /// Half-open: a trial, holding a slot.
    fn trial(generation: u64) -> Self {
        Admitted(generation | Self::TRIAL)
    }

    /// The generation of an ordinary call.
    fn as_call(self) -> Option<u64> {
        (self.0 & Self::TRIAL == 0).then_some(self.0)
    }

    /// The generation of a trial.
    fn as_trial(self) -> Option<u64> {
        (self != Self::ENDED && self.0 & Self::TRIAL != 0).then_some(self.0 & !Self::TRIAL)
    }
}

/// Leave to run one call through a [`CircuitBreaker`].
pub(crate) struct Permit<'a> {
    inner: &'a Inner,
    admitted: Admitted,
    /// The clock at admission, when slow calls are measured.
    started: u64,
    /// The call's duration, for the `metrics` facade.
    timer: Timer,
}

impl Permit<'_> {
    /// Records a call that ended in `error`: a failure if `counts` says so, else a success.
    #[inline]
    pub(crate) fn settle_error<E>(
        &mut self,
        error: &E,
        counts: impl Fn(&E) -> bool,
        caller: &Caller<'_>,
    ) {
        if counts(error) {
            self.failure(caller);
        } else {
            self.success(caller);
        }
    }

    #[inline]
    pub(crate) fn success(&mut self, caller: &Caller<'_>) {
        let inner = self.inner;
        std::mem::take(&mut self.timer).stop(&inner.stats);
        let admitted = std::mem::replace(&mut self.admitted, Admitted::ENDED);
        if !inner.timed
            && let Some(generation) = admitted.as_call()
            && let TripRule::Consecutive { .. } = inner.config.rule
        {
            inner.consecutive_success(generation);
        } else {
            self.end(admitted, false, caller);
        }
        // Counted after the window's compare-exchange, which then waits for fewer stores.
        inner.stats.add(Field::Successes);
    }

    pub(crate) fn failure(&mut self, caller: &Caller<'_>) {
        let inner = self.inner;
        inner.stats.add(Field::Failures);
        std::mem::take(&mut self.timer).stop(&inner.stats);
        let admitted = std::mem::replace(&mut self.admitted, Admitted::ENDED);
        self.end(admitted, true, caller);
    }

    /// Records an outcome other than a consecutive-rule success.
    fn end(&self, admitted: Admitted, failed: bool, caller: &Caller<'_>) {
        let inner = self.inner;
        if let (Some(generation), TripRule::Consecutive { .. }) =
            (admitted.as_call(), inner.config.rule)
        {
            if failed {
                inner.consecutive_failure(generation, caller);
            } else {
                inner.consecutive_success(generation);
            }
            return;
        }
        let (generation, trial) = match (admitted.as_call(), admitted.as_trial()) {
            (Some(generation), _) => (generation, false),
            (None, Some(generation)) => (generation, true),
            (None, None) => return,
        };
        // A closed call reads the clock only to time itself; the window asks for it if it needs it.
        let now = (inner.timed || trial).then(|| inner.clock.now());
        let slow = inner.timed && now.is_some_and(|now| inner.slow(self.started, now));
        if slow {
            inner.stats.add(Field::SlowCalls);
        }
        if !trial {
            inner.record(generation, Outcome { failed, slow }, now, caller);
            return;
        }
        let now = now.unwrap_or_default();
        let mut core = inner.lock();
        let moved = if failed || slow {
            core.trial_failed(&inner.config, generation, now)
        } else {
            core.trial_succeeded(&inner.config, generation)
        };
        inner.moved(&core, moved, caller);
    }

    /// Whether this is a half-open trial.
    #[cfg(all(test, reliability_loom))]
    fn is_trial(&self) -> bool {
        self.admitted.as_trial().is_some()
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.admitted != Admitted::ENDED {
            self.abandoned();
        }
    }
}

impl Permit<'_> {
    /// Dropped unrecorded (cancelled, panicked, or shed by a load layer below): counted only so
    /// that the breaker's `calls` (the sum of the ways a call ends) includes it; a trial frees
    /// its slot.
    #[cold]
    #[inline(never)]
    fn abandoned(&mut self) {
        self.inner.stats.add(Field::Cancelled);
        if let Some(generation) = self.admitted.as_trial() {
            self.inner.lock().trial_abandoned(generation);
        }
    }
}

#[cfg(all(test, not(reliability_loom)))]
mod exhaustive;

#[cfg(all(test, reliability_loom))]
mod loom_model;
