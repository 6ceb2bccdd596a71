//! Snapshots of the registry's counters: what [`Registry::snapshot`](crate::Registry::snapshot)
//! returns.

use std::fmt;

use crate::circuit_state::CircuitState;
use crate::stats::PolicyKind;

/// The counters of every policy at one moment; see [`Registry::snapshot`](crate::Registry::snapshot).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    policies: Vec<PolicyStats>,
}

impl Snapshot {
    pub(crate) fn new(policies: Vec<PolicyStats>) -> Self {
        Snapshot { policies }
    }

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

    /// The rate limiter named `name`.
    pub fn rate_limit(&self, name: &str) -> Option<&PolicyStats> {
        self.get(PolicyKind::RateLimit, name)
    }

    /// The bulkhead named `name`.
    pub fn bulkhead(&self, name: &str) -> Option<&PolicyStats> {
        self.get(PolicyKind::Bulkhead, name)
    }

    /// The hedge named `name`.
    pub fn hedge(&self, name: &str) -> Option<&PolicyStats> {
        self.get(PolicyKind::Hedge, name)
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
/// | retry | calls of the layer | final `Ok` | final `Err` (attempts exhausted, error not retryable, rejected by a breaker below, a wait asked for above `max_delay`, deadline or budget) | `retries`: attempts after the first that started; `rejections`: calls ended by an open breaker below; `deadline_exceeded`, `budget_exhausted`: calls that gave up early for that reason |
/// | timeout | calls of the layer | `Ok` in time | `Err` in time | `timeouts`: deadlines that expired |
/// | circuit_breaker | calls admitted or rejected | admitted calls that succeeded (or failed with an error `when` does not count) | counted failures | `rejections`, `openings`, `slow_calls`, `isolations`, `resets`, `state` |
/// | fallback | calls of the layer | `Ok` from the layer below | every target failed | `fallbacks`: calls served by each target |
/// | cached | `hits + misses + coalesced` | runs of the layer below that returned `Ok` (stored, or not stored because a fallback below served it) | runs of the layer below that failed | `hits`: answered from a stored entry; `misses`: ran the layer below; `coalesced`: received the value of a concurrent run of the same key; `stale_served`: misses answered with an expired entry (`stale_if_error`) because the run failed or only a fallback answered |
/// | rate_limit | calls that asked for permits | — | — | `waited`: calls that waited for permits (admitted or not); `rejections`: calls that got none in time (load rejections) |
/// | bulkhead | calls that asked for a slot | — | — | `waited`: calls that queued for a slot (admitted or not); `rejections`: calls rejected (queue full, or no slot within `wait`) |
/// | hedge | calls of the layer | an attempt's `Ok` | final `Err` (every attempt failed, an error `when` rejects, or a breaker below rejected the last one running) | `hedges`: extra attempts started (by time or after a failure); `hedges_won`: calls answered by an extra attempt; `rejections`: calls ended by an open breaker below |
/// | any shared policy (feature `redis`) | | | | `store_errors`: store operations that failed, timed out or were skipped; the call used local state |
///
/// A rate limiter or bulkhead admits or rejects; it does not see how the call it admitted ends,
/// so its `successes` and `failures` stay zero: `calls - rejections` calls were admitted, less any
/// waiting call that was cancelled.
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
    /// Calls that reached the policy. Retry, timeout, hedge and circuit breaker count a call when
    /// it ends (cancelled calls, and a breaker's rejections, included), so a call still running is
    /// not in their `calls` yet.
    pub calls: u64,
    /// Calls that ended in success at this layer.
    pub successes: u64,
    /// Calls that ended in failure at this layer.
    pub failures: u64,
    /// Retry: attempts after the first.
    pub retries: u64,
    /// Timeout: deadlines that expired.
    pub timeouts: u64,
    /// Circuit breaker: calls rejected while open or while all trial slots were taken; retry and
    /// hedge: calls that ended because a breaker below rejected them; rate limit and bulkhead: calls rejected
    /// without running (load rejections).
    pub rejections: u64,
    /// Cache: calls answered from the cache.
    pub hits: u64,
    /// Cache: calls that ran the layer below.
    pub misses: u64,
    /// Cache: calls that missed while a concurrent call of the same key was running the layer
    /// below, and received its value without running it themselves (single flight).
    pub coalesced: u64,
    /// Cache: misses answered with an entry past its `ttl` (within `stale_if_error`) because the
    /// layer below failed, or only a fallback below answered. A subset of `misses`.
    pub stale_served: u64,
    /// Circuit breaker: transitions to open.
    pub openings: u64,
    /// Circuit breaker: calls slower than its `slow_call`.
    pub slow_calls: u64,
    /// Circuit breaker: `isolate()` calls that isolated it.
    pub isolations: u64,
    /// Circuit breaker: `reset()` calls.
    pub resets: u64,
    /// Rate limit: calls that waited for permits; bulkhead: calls that queued for a slot.
    pub waited: u64,
    /// Retry: calls that gave up because the retry budget was spent.
    pub budget_exhausted: u64,
    /// Retry: calls that gave up because the next attempt would start past the deadline.
    pub deadline_exceeded: u64,
    /// Hedge: extra attempts started, after the delay or after a failed attempt.
    pub hedges: u64,
    /// Hedge: calls answered by an extra attempt (not the first).
    pub hedges_won: u64,
    /// Shared policies (feature `redis`, `reliability::shared`): store operations that failed,
    /// timed out (each is bounded, 50 ms by default), or were skipped because the store had just
    /// failed. Each such call used the policy's local state instead: the breaker of this replica,
    /// the local cache tier, the local rate limiter.
    pub store_errors: u64,
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

    /// Cache: the share of calls answered from a stored entry, `hits / calls`, or `0.0` before
    /// the first call. Calls that shared a concurrent call's run (`coalesced`) are not hits: they
    /// waited for the layer below.
    pub fn hit_rate(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.hits as f64 / self.calls as f64
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
            ("coalesced", self.coalesced),
            ("stale_served", self.stale_served),
            ("openings", self.openings),
            ("slow_calls", self.slow_calls),
            ("isolations", self.isolations),
            ("resets", self.resets),
            ("waited", self.waited),
            ("budget_exhausted", self.budget_exhausted),
            ("deadline_exceeded", self.deadline_exceeded),
            ("hedges", self.hedges),
            ("hedges_won", self.hedges_won),
            ("store_errors", self.store_errors),
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
