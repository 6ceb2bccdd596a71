//! The process-wide registry of named policies, and snapshots of their counters.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::circuit_breaker::{BreakerConfig, CircuitBreaker, CircuitState};
use crate::stats::{Field, Stats};

/// The kind of a policy in the [`Registry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PolicyKind {
    /// `#[retry]` or [`Retry`](crate::Retry).
    Retry,
    /// `#[timeout]` or [`Timeout`](crate::Timeout).
    Timeout,
    /// `#[circuit_breaker]` or [`CircuitBreaker`].
    CircuitBreaker,
    /// `#[fallback]` or [`Fallback`](crate::Fallback).
    Fallback,
    /// `#[cached]` or [`Cache`](crate::Cache).
    Cache,
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyKind::Retry => "retry",
            PolicyKind::Timeout => "timeout",
            PolicyKind::CircuitBreaker => "circuit_breaker",
            PolicyKind::Fallback => "fallback",
            PolicyKind::Cache => "cached",
        })
    }
}

/// The process-wide registry of named policies; get it with [`registry()`].
///
/// Every policy registers itself under its name the first time it is used (attributes) or built
/// (programmatic API). Policies of one kind with the same name share their counters; circuit
/// breakers with the same explicit name are one breaker.
pub struct Registry {
    stats: Mutex<Vec<Arc<Stats>>>,
    breakers: Mutex<Vec<CircuitBreaker>>,
}

/// The process-wide [`Registry`].
///
/// ```
/// use reliability::{circuit_breaker, registry, CircuitState};
///
/// #[circuit_breaker(name = "search")]
/// async fn search(q: &str) -> Result<String, reliability::Error> {
///     Ok(q.to_uppercase())
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// assert!(registry().circuit_breaker("search").is_none()); // not used yet
/// search("rust").await.unwrap();
/// let breaker = registry().circuit_breaker("search").unwrap();
/// assert_eq!(breaker.state(), CircuitState::Closed);
/// let stats = registry().snapshot();
/// assert_eq!(stats.circuit_breaker("search").unwrap().successes, 1);
/// # }
/// ```
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        stats: Mutex::new(Vec::new()),
        breakers: Mutex::new(Vec::new()),
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Registry {
    /// The circuit breaker registered under `name`, or `None` until one of that name has been used.
    pub fn circuit_breaker(&self, name: &str) -> Option<CircuitBreaker> {
        lock(&self.breakers)
            .iter()
            .find(|b| b.name() == name)
            .cloned()
    }

    /// Every registered circuit breaker.
    pub fn circuit_breakers(&self) -> Vec<CircuitBreaker> {
        lock(&self.breakers).clone()
    }

    /// A copy of every policy's counters at this moment, in registration order.
    pub fn snapshot(&self) -> Snapshot {
        let stats = lock(&self.stats).clone();
        let policies = stats
            .iter()
            .map(|s| PolicyStats {
                kind: s.kind,
                name: s.name.to_string(),
                calls: s.get(Field::Calls),
                successes: s.get(Field::Successes),
                failures: s.get(Field::Failures),
                retries: s.get(Field::Retries),
                timeouts: s.get(Field::Timeouts),
                rejections: s.get(Field::Rejections),
                hits: s.get(Field::Hits),
                misses: s.get(Field::Misses),
                openings: s.get(Field::Openings),
                slow_calls: s.get(Field::SlowCalls),
                isolations: s.get(Field::Isolations),
                resets: s.get(Field::Resets),
                fallbacks: s.targets(),
                state: match s.kind {
                    PolicyKind::CircuitBreaker => self.circuit_breaker(&s.name).map(|b| b.state()),
                    _ => None,
                },
            })
            .collect();
        Snapshot { policies }
    }

    /// The counters of `(kind, name)`, created on first request.
    pub(crate) fn stats(&self, kind: PolicyKind, name: &str) -> Arc<Stats> {
        let mut all = lock(&self.stats);
        if let Some(found) = all.iter().find(|s| s.kind == kind && &*s.name == name) {
            return found.clone();
        }
        let created = Arc::new(Stats::new(kind, name.into()));
        all.push(created.clone());
        created
    }

    /// The breaker named `name`, created with `config` if there is none yet (shared by name).
    pub(crate) fn shared_breaker(&self, name: &str, config: BreakerConfig) -> CircuitBreaker {
        let mut all = lock(&self.breakers);
        if let Some(found) = all.iter().find(|b| b.name() == name) {
            return found.clone();
        }
        let created = CircuitBreaker::create(name, config);
        all.push(created.clone());
        created
    }

    /// Registers a breaker of its own (not shared by name) so that it can be looked up.
    pub(crate) fn own_breaker(&self, name: &str, config: BreakerConfig) -> CircuitBreaker {
        let created = CircuitBreaker::create(name, config);
        lock(&self.breakers).push(created.clone());
        created
    }
}

/// The counters of every policy at one moment; see [`Registry::snapshot`].
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    policies: Vec<PolicyStats>,
}

impl Snapshot {
    /// Every policy, in registration order.
    pub fn policies(&self) -> &[PolicyStats] {
        &self.policies
    }

    /// The policy of `kind` named `name`.
    pub fn get(&self, kind: PolicyKind, name: &str) -> Option<&PolicyStats> {
        self.policies
            .iter()
            .find(|p| p.kind == kind && p.name == name)
    }

    /// The retry policy named `name`.
    pub fn retry(&self, name: &str) -> Option<&PolicyStats> {
        self.get(PolicyKind::Retry, name)
    }

    /// The timeout policy named `name`.
    pub fn timeout(&self, name: &str) -> Option<&PolicyStats> {
        self.get(PolicyKind::Timeout, name)
    }

    /// The circuit breaker named `name`.
    pub fn circuit_breaker(&self, name: &str) -> Option<&PolicyStats> {
        self.get(PolicyKind::CircuitBreaker, name)
    }

    /// The fallback policy named `name`.
    pub fn fallback(&self, name: &str) -> Option<&PolicyStats> {
        self.get(PolicyKind::Fallback, name)
    }

    /// The cache named `name`.
    pub fn cache(&self, name: &str) -> Option<&PolicyStats> {
        self.get(PolicyKind::Cache, name)
    }
}

/// Prints one line per policy with its non-zero counters.
impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.policies {
            writeln!(f, "{p}")?;
        }
        Ok(())
    }
}

/// The counters of one policy. Counters a policy does not move stay zero.
///
/// | kind | `calls` | `successes` | `failures` | other |
/// |---|---|---|---|---|
/// | retry | calls of the layer | final `Ok` | final `Err` (attempts exhausted, error not retryable, or rejected by a breaker below) | `retries`: attempts after the first; `rejections`: calls ended by an open breaker below |
/// | timeout | calls of the layer | `Ok` in time | `Err` in time | `timeouts`: deadlines that expired |
/// | circuit_breaker | calls admitted or rejected | admitted calls that succeeded (or failed with an error `when` does not count) | counted failures | `rejections`, `openings`, `slow_calls`, `isolations`, `resets`, `state` |
/// | fallback | calls of the layer | `Ok` from the layer below | every target failed | `fallbacks`: calls served by each target |
/// | cached | `hits + misses` | `Ok` results stored | runs of the layer below that failed | `hits`, `misses` |
///
/// Each layer counts a call when it is first polled and its outcome when it ends. A call dropped
/// (cancelled) or panicking inside a layer has no outcome there, so `calls` is the sum of the
/// outcomes above plus the calls abandoned in the layer (for `cached`: `misses`, with `successes +
/// failures`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyStats {
    /// The kind of policy.
    pub kind: PolicyKind,
    /// Its registry name.
    pub name: String,
    /// Calls that reached the policy. Retry and timeout count a call when it ends (cancelled calls
    /// included), so a call still running is not in their `calls` yet.
    pub calls: u64,
    /// Calls that ended in success at this layer.
    pub successes: u64,
    /// Calls that ended in failure at this layer.
    pub failures: u64,
    /// Retry: attempts after the first.
    pub retries: u64,
    /// Timeout: deadlines that expired.
    pub timeouts: u64,
    /// Circuit breaker: calls rejected while open or while all trial slots were taken; retry: calls
    /// that ended because a breaker below rejected them.
    pub rejections: u64,
    /// Cache: calls answered from the cache.
    pub hits: u64,
    /// Cache: calls that ran the layer below (or waited for a concurrent call of the same key).
    pub misses: u64,
    /// Circuit breaker: transitions to open.
    pub openings: u64,
    /// Circuit breaker (rate rule with `slow_call`): admitted calls that took longer than
    /// `slow_call`, whatever their result (they are also in `successes` or `failures`).
    pub slow_calls: u64,
    /// Circuit breaker: times [`CircuitBreaker::isolate`] isolated it.
    pub isolations: u64,
    /// Circuit breaker: times [`CircuitBreaker::reset`] reset it.
    pub resets: u64,
    /// Fallback: `(target, calls it served)` for each target, in declaration order.
    pub fallbacks: Vec<(String, u64)>,
    /// Circuit breaker: its state when the snapshot was taken.
    pub state: Option<CircuitState>,
}

impl PolicyStats {
    /// Fallback: calls served by any target.
    pub fn fallbacks_served(&self) -> u64 {
        self.fallbacks.iter().map(|(_, n)| n).sum()
    }

    /// Cache: `hits / (hits + misses)`, or `0.0` before the first call.
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

impl fmt::Display for PolicyStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: calls={}", self.kind, self.name, self.calls)?;
        let fields = [
            ("successes", self.successes),
            ("failures", self.failures),
            ("retries", self.retries),
            ("timeouts", self.timeouts),
            ("rejections", self.rejections),
            ("hits", self.hits),
            ("misses", self.misses),
            ("openings", self.openings),
            ("slow_calls", self.slow_calls),
            ("isolations", self.isolations),
            ("resets", self.resets),
        ];
        for (label, value) in fields {
            if value != 0 {
                write!(f, " {label}={value}")?;
            }
        }
        for (target, served) in &self.fallbacks {
            write!(f, " served_by[{target}]={served}")?;
        }
        if let Some(state) = self.state {
            write!(f, " state={state:?}")?;
        }
        Ok(())
    }
}
