//! The process-wide registry of named policies: their counters, and the objects that policies of
//! one name share (a circuit breaker, a cache).
//!
//! Lookups are hash-map lookups under one lock, taken when a policy is first used or built, never
//! on a call's path. Entries are weak: a policy built at run time (a breaker per host, a cache per
//! tenant) leaves the registry when the last handle to it is dropped.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::circuit_state::CircuitState;
use crate::snapshot::{PolicyStats, Snapshot};
use crate::stats::{Field, PolicyKind, Stats, lock};

/// The process-wide registry of named policies; get it with [`registry()`].
///
/// Every policy registers itself under its name the first time it is used (attributes) or built
/// (programmatic API). Policies of one kind with the same name share their counters; circuit
/// breakers with the same name are one breaker. A policy built at run time is dropped from the
/// registry with its last handle (attributes' policies live as long as the program). Rate limiters
/// and bulkheads with the same name are one limiter or bulkhead, and retries with the same name
/// and a budget share one budget.
pub struct Registry {
    entries: Mutex<Entries>,
}

type Key = (PolicyKind, Arc<str>);

#[derive(Default)]
struct Entries {
    /// Counters by kind and name.
    stats: HashMap<Key, Weak<Stats>>,
    /// The same counters in registration order, for snapshots.
    order: Vec<Weak<Stats>>,
    /// Objects shared by policies of one kind and name.
    shared: HashMap<Key, Weak<dyn Named>>,
    /// Registrations until dead entries are swept again (amortised: sweeps cost O(1) per registration).
    until_sweep: usize,
}

impl Entries {
    fn sweep(&mut self) {
        self.stats.retain(|_, s| s.strong_count() > 0);
        self.order.retain(|s| s.strong_count() > 0);
        self.shared.retain(|_, s| s.strong_count() > 0);
        self.until_sweep = 16 + self.order.len();
    }

    fn registered(&mut self) {
        match self.until_sweep.checked_sub(1) {
            Some(left) => self.until_sweep = left,
            None => self.sweep(),
        }
    }
}

/// An object the registry hands out by name: a circuit breaker, a cache.
pub(crate) trait Named: Any + Send + Sync {
    /// Back to the concrete type.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    /// Clears its state, as new (for tests: [`testing::reset`](crate::testing)).
    fn reset(&self);
    /// The object as a cache, if it is one.
    fn as_cache(&self) -> Option<&dyn CacheControl> {
        None
    }
}

/// What [`registry().cache(name)`](Registry::cache) can do with a cache of any key and value type.
pub(crate) trait CacheControl: Send + Sync {
    fn entry_count(&self) -> u64;
    fn invalidate_all(&self);
    /// `false` when `key` is absent or not of the cache's key type.
    fn invalidate(&self, key: &dyn Any) -> bool;
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = lock(&self.entries);
        f.debug_struct("Registry")
            .field("policies", &entries.stats.len())
            .finish_non_exhaustive()
    }
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
        entries: Mutex::new(Entries::default()),
    })
}

impl Registry {
    /// A copy of every live policy's counters at this moment, in registration order.
    pub fn snapshot(&self) -> Snapshot {
        let stats: Vec<Arc<Stats>> = lock(&self.entries)
            .order
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
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
                coalesced: s.get(Field::Coalesced),
                stale_served: s.get(Field::StaleServed),
                openings: s.get(Field::Openings),
                waited: s.get(Field::Waited),
                budget_exhausted: s.get(Field::BudgetExhausted),
                deadline_exceeded: s.get(Field::DeadlineExceeded),
                slow_calls: s.get(Field::SlowCalls),
                isolations: s.get(Field::Isolations),
                resets: s.get(Field::Resets),
                hedges: s.get(Field::Hedges),
                hedges_won: s.get(Field::HedgesWon),
                store_errors: s.get(Field::StoreErrors),
                fallbacks: s.targets(),
                state: CircuitState::from_u8(s.state()),
            })
            .collect();
        Snapshot::new(policies)
    }

    /// The counters of `(kind, name)`, created on first request.
    pub(crate) fn stats(&self, kind: PolicyKind, name: &str) -> Arc<Stats> {
        let mut entries = lock(&self.entries);
        let key: Key = (kind, name.into());
        if let Some(found) = entries.stats.get(&key).and_then(Weak::upgrade) {
            return found;
        }
        let created = Arc::new(Stats::new(kind, key.1.clone()));
        entries.stats.insert(key, Arc::downgrade(&created));
        entries.order.push(Arc::downgrade(&created));
        entries.registered();
        created
    }

    /// The object of type `T` shared under `(kind, name)`, made by `make` (with the policy's
    /// counters) when there is none alive. The flag is `true` when this call made it.
    pub(crate) fn shared<T: Named>(
        &self,
        kind: PolicyKind,
        name: &str,
        make: impl FnOnce(Arc<Stats>) -> T,
    ) -> (Arc<T>, bool) {
        if let Some(found) = self.find::<T>(kind, name) {
            return (found, false);
        }
        let stats = self.stats(kind, name);
        let mut entries = lock(&self.entries);
        let key: Key = (kind, name.into());
        // Made meanwhile by another thread?
        if let Some(found) = entries
            .shared
            .get(&key)
            .and_then(Weak::upgrade)
            .and_then(|named| named.into_any().downcast::<T>().ok())
        {
            return (found, false);
        }
        let created = Arc::new(make(stats));
        let erased: Arc<dyn Named> = created.clone();
        entries.shared.insert(key, Arc::downgrade(&erased));
        entries.registered();
        (created, true)
    }

    /// The live object of type `T` shared under `(kind, name)`.
    pub(crate) fn find<T: Named>(&self, kind: PolicyKind, name: &str) -> Option<Arc<T>> {
        self.find_named(kind, name)
            .and_then(|named| named.into_any().downcast::<T>().ok())
    }

    /// The live object shared under `(kind, name)`, of whatever type.
    pub(crate) fn find_named(&self, kind: PolicyKind, name: &str) -> Option<Arc<dyn Named>> {
        let entries = lock(&self.entries);
        let key: Key = (kind, name.into());
        entries.shared.get(&key).and_then(Weak::upgrade)
    }

    /// Every live object of type `T` shared under `kind`, by name.
    pub(crate) fn find_all<T: Named>(&self, kind: PolicyKind) -> Vec<Arc<T>> {
        let entries = lock(&self.entries);
        let mut found: Vec<(Arc<str>, Arc<T>)> = entries
            .shared
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .filter_map(|((_, name), weak)| {
                let named = weak.upgrade()?;
                Some((name.clone(), named.into_any().downcast::<T>().ok()?))
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found.into_iter().map(|(_, t)| t).collect()
    }

    /// Resets every live policy: counters to zero, breakers closed, caches emptied. For tests; see
    /// [`testing::reset`](crate::testing).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn reset_all(&self) {
        let (stats, named): (Vec<Arc<Stats>>, Vec<Arc<dyn Named>>) = {
            let entries = lock(&self.entries);
            (
                entries.order.iter().filter_map(Weak::upgrade).collect(),
                entries.shared.values().filter_map(Weak::upgrade).collect(),
            )
        };
        for named in named {
            named.reset();
        }
        for stats in stats {
            stats.clear();
        }
    }
}
