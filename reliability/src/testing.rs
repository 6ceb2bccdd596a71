//! Helpers for your own tests: [`reset`] the process-wide state between tests, and inject faults
//! with [`FaultInjector`]. Enable the `testing` feature in your dev-dependency:
//! `reliability = { version = "0.1", features = ["testing"] }`.
//!
//! # Isolating tests
//!
//! Policies live as long as the process and are shared by name (the [`registry`](crate::registry())),
//! so a test can see the cache entries, breaker state and counters an earlier test left behind in the
//! same test binary. Two ways out:
//!
//! - per policy, safe while other tests run in parallel: `registry().cache(name)` gives
//!   [`invalidate_all`](crate::CacheHandle::invalidate_all), and `registry().circuit_breaker(name)`
//!   gives the breaker's handle; give each test's functions their own names;
//! - everything at once with [`reset`]: for a test binary whose tests run one at a time
//!   (`--test-threads=1`), or at the start of a test that owns the process.
//!
//! # Fault injection
//!
//! Make a dependency fail, slow down, hang or panic on purpose, and check that your stack of
//! policies copes.
//!
//! A [`FaultInjector`] stands in front of the call your code makes to a service. Each call through
//! it draws its fate from a generator seeded by you, so a failing test fails again the same way
//! with the same seed and the same order of calls:
//!
//! - `error_rate`: a share of calls fail with your error;
//! - [`fail_next(k)`](FaultInjector::fail_next): the next `k` calls fail with it;
//! - `latency`: a share of calls wait first (on the `tokio` clock, so paused-time tests stay instant);
//! - `hang_rate` and [`hang_next(k)`](FaultInjector::hang_next): calls that never finish (only a
//!   timeout above, or the caller dropping the call, ends them);
//! - `panic_rate`: calls that panic.
//!
//! [`heal`](FaultInjector::heal) stops every fault, to check that the stack recovers.
//!
//! ```
//! use std::time::Duration;
//! use reliability::testing::FaultInjector;
//! use reliability::{circuit_breaker, registry, retry, timeout, CircuitState};
//!
//! #[derive(Debug, PartialEq, thiserror::Error)]
//! enum ApiError {
//!     #[error("service unavailable")]
//!     Unavailable,
//!     #[error(transparent)]
//!     Reliability(#[from] reliability::Error),
//! }
//!
//! // The code under test: your stack, with the injector where the real request would be.
//! #[retry(max = 3, delay = 0.1, jitter = "none")]
//! #[circuit_breaker(name = "users-api", failure_threshold = 3, cooldown = 30)]
//! #[timeout(secs = 1)]
//! async fn fetch_user(service: &FaultInjector<ApiError>, id: u32) -> Result<String, ApiError> {
//!     service.inject().await?;
//!     Ok(format!("user {id}"))
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let service = FaultInjector::builder(|| ApiError::Unavailable).seed(7).build().unwrap();
//!
//! // Two transient failures: the retry absorbs them.
//! service.fail_next(2);
//! assert_eq!(fetch_user(&service, 1).await, Ok("user 1".to_owned()));
//!
//! // A hung service: the timeout ends the attempt and the retry tries again.
//! service.hang_next(1);
//! assert_eq!(fetch_user(&service, 2).await, Ok("user 2".to_owned()));
//!
//! // A service that is down: the breaker opens and later calls fail fast.
//! service.fail_next(100);
//! assert_eq!(fetch_user(&service, 3).await, Err(ApiError::Unavailable));
//! let rejected = fetch_user(&service, 4).await;
//! assert!(matches!(rejected, Err(ApiError::Reliability(reliability::Error::CircuitOpen { .. }))));
//! let breaker = registry().circuit_breaker("users-api").unwrap();
//! assert_eq!(breaker.state(), CircuitState::Open);
//!
//! // The service recovers: after the cooldown, trial calls close the breaker again.
//! service.heal();
//! tokio::time::sleep(Duration::from_secs(30)).await;
//! assert_eq!(fetch_user(&service, 5).await, Ok("user 5".to_owned()));
//! assert_eq!(fetch_user(&service, 6).await, Ok("user 6".to_owned()));
//! assert_eq!(breaker.state(), CircuitState::Closed);
//!
//! let injected = service.injected();
//! assert_eq!((injected.errors, injected.hangs), (2 + 3, 1));
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::error::ConfigError;

/// Resets every policy of the process as if it had never been called: counters to zero, circuit
/// breakers closed with their counts cleared, caches emptied. Calls running meanwhile may leave a
/// count behind: call it when no call is in flight.
///
/// ```
/// use reliability::{cached, registry};
///
/// #[cached]
/// async fn double(n: u32) -> u32 {
///     n * 2
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// double(2).await;
/// double(2).await;
/// reliability::testing::reset();
/// double(2).await; // a miss again: the cache was emptied
/// let stats = registry().snapshot();
/// let cache = stats.policies().iter().find(|p| p.name.ends_with("double")).unwrap();
/// assert_eq!((cache.hits, cache.misses), (0, 1));
/// # }
/// ```
pub fn reset() {
    crate::registry::registry().reset_all();
}

/// Injects faults in front of a call; clones share their state. See the [module](self) documentation.
pub struct FaultInjector<E> {
    shared: Arc<Shared<E>>,
}

struct Shared<E> {
    error: Box<dyn Fn() -> E + Send + Sync>,
    config: Config,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Config {
    seed: u64,
    error_rate: f64,
    latency: Duration,
    latency_rate: f64,
    hang_rate: f64,
    panic_rate: f64,
}

#[derive(Debug)]
struct State {
    rng: u64,
    fail_next: u64,
    hang_next: u64,
    healed: bool,
    injected: Injected,
}

/// What a [`FaultInjector`] has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Injected {
    /// Calls that went through the injector.
    pub calls: u64,
    /// Calls it failed with the error.
    pub errors: u64,
    /// Calls it delayed by the latency.
    pub delays: u64,
    /// Calls it made hang.
    pub hangs: u64,
    /// Calls it made panic.
    pub panics: u64,
}

/// The fate of one call, drawn by [`FaultInjector::next_fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The call goes through.
    Pass,
    /// The call fails with the injector's error.
    Error,
    /// The call never finishes.
    Hang,
    /// The call panics.
    Panic,
}

/// Builds a [`FaultInjector`]; [`build`](Self::build) validates every setting.
#[must_use]
pub struct FaultInjectorBuilder<E> {
    error: Box<dyn Fn() -> E + Send + Sync>,
    config: Config,
}

impl<E> fmt::Debug for FaultInjectorBuilder<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultInjectorBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<E> FaultInjectorBuilder<E> {
    /// The seed of the generator that draws each call's fate (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// The share of calls that fail with the error, from 0.0 to 1.0 (default 0.0).
    pub fn error_rate(mut self, share: f64) -> Self {
        self.config.error_rate = share;
        self
    }

    /// The share of calls, from 0.0 to 1.0, that wait `delay` before their fate applies (default none).
    pub fn latency(mut self, share: f64, delay: Duration) -> Self {
        self.config.latency_rate = share;
        self.config.latency = delay;
        self
    }

    /// The share of calls that never finish, from 0.0 to 1.0 (default 0.0).
    pub fn hang_rate(mut self, share: f64) -> Self {
        self.config.hang_rate = share;
        self
    }

    /// The share of calls that panic, from 0.0 to 1.0 (default 0.0).
    pub fn panic_rate(mut self, share: f64) -> Self {
        self.config.panic_rate = share;
        self
    }

    /// Validates the settings: every share is a number from 0.0 to 1.0, and the shares of calls
    /// that hang, panic or fail add up to at most 1.0.
    pub fn build(self) -> Result<FaultInjector<E>, ConfigError> {
        let c = self.config;
        for (setting, share) in [
            ("error_rate", c.error_rate),
            ("latency", c.latency_rate),
            ("hang_rate", c.hang_rate),
            ("panic_rate", c.panic_rate),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(ConfigError::new(
                    setting,
                    format!("must be a share from 0.0 to 1.0, not {share}"),
                ));
            }
        }
        let total = c.error_rate + c.hang_rate + c.panic_rate;
        if total > 1.0 {
            return Err(ConfigError::new(
                "error_rate",
                format!("error_rate + hang_rate + panic_rate must be at most 1.0, not {total}"),
            ));
        }
        Ok(FaultInjector {
            shared: Arc::new(Shared {
                error: self.error,
                config: c,
                state: Mutex::new(State {
                    rng: c.seed,
                    fail_next: 0,
                    hang_next: 0,
                    healed: false,
                    injected: Injected::default(),
                }),
            }),
        })
    }
}

impl<E> Clone for FaultInjector<E> {
    fn clone(&self) -> Self {
        FaultInjector {
            shared: self.shared.clone(),
        }
    }
}

impl<E> fmt::Debug for FaultInjector<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultInjector")
            .field("config", &self.shared.config)
            .field("injected", &self.injected())
            .finish_non_exhaustive()
    }
}

impl<E> FaultInjector<E> {
    /// Starts a builder; `error` makes the error of each failed call.
    pub fn builder(error: impl Fn() -> E + Send + Sync + 'static) -> FaultInjectorBuilder<E> {
        FaultInjectorBuilder {
            error: Box::new(error),
            config: Config {
                seed: 0,
                error_rate: 0.0,
                latency: Duration::ZERO,
                latency_rate: 0.0,
                hang_rate: 0.0,
                panic_rate: 0.0,
            },
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        crate::stats::lock(&self.shared.state)
    }

    /// Fails the next `k` calls with the error (before any drawn fault), in addition to those
    /// already set to fail.
    pub fn fail_next(&self, k: u64) {
        let mut state = self.state();
        state.fail_next = state.fail_next.saturating_add(k);
        state.healed = false;
    }

    /// Makes the next `k` calls hang (before any drawn fault), in addition to those already set to.
    pub fn hang_next(&self, k: u64) {
        let mut state = self.state();
        state.hang_next = state.hang_next.saturating_add(k);
        state.healed = false;
    }

    /// Stops every fault: the drawn ones and the pending `fail_next` and `hang_next`. Calls go
    /// through from now on, until `fail_next` or `hang_next` asks for faults again.
    pub fn heal(&self) {
        let mut state = self.state();
        state.fail_next = 0;
        state.hang_next = 0;
        state.healed = true;
    }

    /// What the injector has done so far.
    pub fn injected(&self) -> Injected {
        self.state().injected
    }

    /// Draws the fate of one call and the delay before it (zero for none), and counts them. Each
    /// call draws the same amount of randomness, so the fate of the n-th call depends only on the
    /// seed, on n and on the `fail_next`, `hang_next` and `heal` calls made before it.
    pub fn next_fault(&self) -> (Fault, Duration) {
        let c = &self.shared.config;
        let mut state = self.state();
        let fate = unit(&mut state.rng);
        let slow = unit(&mut state.rng);
        state.injected.calls += 1;
        let fault = if state.hang_next > 0 {
            state.hang_next -= 1;
            Fault::Hang
        } else if state.fail_next > 0 {
            state.fail_next -= 1;
            Fault::Error
        } else if state.healed {
            Fault::Pass
        } else if fate < c.hang_rate {
            Fault::Hang
        } else if fate < c.hang_rate + c.panic_rate {
            Fault::Panic
        } else if fate < c.hang_rate + c.panic_rate + c.error_rate {
            Fault::Error
        } else {
            Fault::Pass
        };
        let delay = if !state.healed && slow < c.latency_rate {
            state.injected.delays += 1;
            c.latency
        } else {
            Duration::ZERO
        };
        match fault {
            Fault::Error => state.injected.errors += 1,
            Fault::Hang => state.injected.hangs += 1,
            Fault::Panic => state.injected.panics += 1,
            Fault::Pass => {}
        }
        (fault, delay)
    }

    /// Applies the next call's fate: waits the latency if drawn, then returns `Ok(())` to let the
    /// call go through, returns the error, never finishes, or panics. Put it where your code would
    /// call the service: `service.inject().await?;`.
    pub async fn inject(&self) -> Result<(), E> {
        let (fault, delay) = self.next_fault();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match fault {
            Fault::Pass => Ok(()),
            Fault::Error => Err((self.shared.error)()),
            Fault::Hang => std::future::pending().await,
            Fault::Panic => panic!("reliability::testing: injected panic"),
        }
    }

    /// Runs `call` behind [`inject`](Self::inject): `call` runs only if the injector lets it through.
    pub async fn run<T, F>(&self, call: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.inject().await?;
        call.await
    }
}

/// A uniform number in `[0, 1)` from a SplitMix64 generator.
fn unit(state: &mut u64) -> f64 {
    crate::backoff::splitmix_unit(state)
}
