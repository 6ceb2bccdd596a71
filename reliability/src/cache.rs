//! Cache: answer repeated calls from memory, running the layer below once per key at a time.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::ConfigError;
use crate::registry::{CacheControl, Named, registry};
use crate::stats::{Field, PolicyKind, Stats, lock};

pub(crate) mod expand;
mod front;
mod handle;
#[cfg(feature = "redis")]
pub(crate) mod shared;

pub use handle::CacheHandle;

use front::{Fronts, Seen};

/// The settings of a [`Cache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    ttl: Option<Duration>,
    tti: Option<Duration>,
    max_size: u64,
    stale_if_error: Option<Duration>,
}

impl CacheConfig {
    /// No expiry, 10 000 entries.
    pub const DEFAULT: CacheConfig = CacheConfig {
        ttl: None,
        tti: None,
        max_size: 10_000,
        stale_if_error: None,
    };

    /// Settings already validated (by the attribute macro).
    pub(crate) const fn checked(
        ttl: Option<Duration>,
        tti: Option<Duration>,
        max_size: u64,
    ) -> Self {
        CacheConfig {
            ttl,
            tti,
            max_size,
            stale_if_error: None,
        }
    }

    /// With a stale window already validated (by the attribute macro: it needs a `ttl`).
    pub(crate) const fn with_stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = Some(window);
        self
    }

    /// Time to live after insertion.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// Time to idle.
    pub fn tti(&self) -> Option<Duration> {
        self.tti
    }

    /// Entry capacity.
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// How long after its `ttl` an entry may still answer when the layer below fails (or only a
    /// fallback below answered).
    pub fn stale_if_error(&self) -> Option<Duration> {
        self.stale_if_error
    }

    /// How long moka keeps an entry: its `ttl`, plus the stale window.
    fn kept_for(&self) -> Option<Duration> {
        self.ttl
            .map(|ttl| ttl.saturating_add(self.stale_if_error.unwrap_or(Duration::ZERO)))
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Builds a [`Cache`]; [`build`](Self::build) validates every setting.
#[derive(Debug, Clone)]
#[must_use]
pub struct CacheBuilder {
    name: String,
    config: CacheConfig,
}

impl CacheBuilder {
    /// Time to live after insertion (> 0 and at most 1000 years; default none).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = Some(ttl);
        self
    }

    /// Time to idle (> 0 and at most 1000 years; default none).
    pub fn tti(mut self, tti: Duration) -> Self {
        self.config.tti = Some(tti);
        self
    }

    /// Entry capacity (>= 1; default 10 000).
    pub fn max_size(mut self, max_size: u64) -> Self {
        self.config.max_size = max_size;
        self
    }

    /// Serve an entry expired no longer than `window` ago when the layer below fails, or when only
    /// a fallback below answered (> 0; needs a [`ttl`](Self::ttl); default off). Counted as
    /// `stale_served`. Expired entries are kept that much longer, within `max_size`.
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.config.stale_if_error = Some(window);
        self
    }

    /// Validates the settings and returns the cache registered as the builder's name: the one
    /// already registered under that name with the same key and value types if there is one (caches
    /// are shared by name; its settings must be the same), else a new, empty one.
    pub fn build<K, V>(self) -> Result<Cache<K, V>, ConfigError>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        if self.name.is_empty() {
            return Err(ConfigError::new("name", "must not be empty"));
        }
        if self.config.ttl.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new("ttl", "must be longer than zero"));
        }
        if self.config.tti.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new("tti", "must be longer than zero"));
        }
        // moka's limit; it panics above it.
        const THOUSAND_YEARS: Duration = Duration::from_secs(1000 * 365 * 86_400);
        if self.config.ttl.is_some_and(|d| d > THOUSAND_YEARS) {
            return Err(ConfigError::new("ttl", "must be at most 1000 years"));
        }
        if self.config.tti.is_some_and(|d| d > THOUSAND_YEARS) {
            return Err(ConfigError::new("tti", "must be at most 1000 years"));
        }
        if self.config.max_size == 0 {
            return Err(ConfigError::new("max_size", "must be at least 1"));
        }
        if let Some(window) = self.config.stale_if_error {
            if window.is_zero() {
                return Err(ConfigError::new(
                    "stale_if_error",
                    "must be longer than zero",
                ));
            }
            if self.config.ttl.is_none() {
                return Err(ConfigError::new(
                    "stale_if_error",
                    "needs a `ttl`: an entry turns stale when its `ttl` has passed",
                ));
            }
            if self.config.kept_for().is_some_and(|d| d > THOUSAND_YEARS) {
                return Err(ConfigError::new(
                    "stale_if_error",
                    "with the `ttl`, must be at most 1000 years",
                ));
            }
        }
        let (cache, created) = Cache::shared(&self.name, self.config);
        if !created && cache.config() != self.config {
            return Err(ConfigError::new(
                "name",
                format!(
                    "a cache named `{}` exists already with other settings ({:?}); give this one another name, or the same settings",
                    self.name,
                    cache.config()
                ),
            ));
        }
        Ok(cache)
    }
}

/// What moka stores for one key.
#[derive(Clone)]
struct Stored<V> {
    /// Shared by moka's entry and every thread's copy of it, so a copy costs no memory of its own.
    value: Arc<V>,
    /// Insertion time on the `tokio` clock, kept when a `ttl` is set.
    born: Option<Instant>,
    /// Cleared when moka removes this entry (evicted, expired, replaced or invalidated), so that the
    /// copies in the per-thread fronts stop answering at once.
    live: Arc<AtomicBool>,
}

/// A cache of call results, backed by moka, with single flight: concurrent misses on one key run the
/// layer below once and all receive its value. Clones are the same cache.
///
/// Only successes are stored. Errors are never shared: when the call that ran fails, the callers
/// that were waiting for it run the layer below themselves, one at a time, so every caller gets an
/// error value of its own and `E` need not be `Clone`.
///
/// Stale answers ([`stale_if_error`](CacheBuilder::stale_if_error)): an entry past its `ttl` no
/// longer answers a lookup, but moka keeps it for the stale window more; a call whose run of the
/// layer below fails then answers with it instead of the error (counted as `stale_served`).
///
/// Expiry: `ttl` is checked on the `tokio` clock (so paused-time tests are exact) and also handed to
/// moka, whose clock evicts entries in the background; `tti` is moka's alone.
///
/// Hits: each thread keeps a small front (at most 64 entries) of entries it found in moka, so a
/// repeated hit takes no lock and writes no shared memory. moka stays the owner: a front entry
/// answers only while moka still holds it (eviction, expiry, replacement,
/// [`invalidate`](Self::invalidate) and [`invalidate_all`](Self::invalidate_all) end it at once for
/// every thread), and the value is shared with moka's entry through an `Arc`, not copied. While the
/// cache is far from full, one hit in 256 is read from moka; once it holds 90% of `max_size`, every
/// hit is, so that moka's eviction policy (frequency and recency) sees every read when it decides
/// what stays. Without a front (`tti` set) every hit reads moka.
///
/// ```
/// use reliability::Cache;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache: Cache<String, usize> = Cache::builder("lengths").max_size(100).build().unwrap();
/// let first = cache.get_or_try_insert("rust".to_owned(), async { Ok::<_, ()>(4) }).await;
/// let again = cache.get_or_try_insert("rust".to_owned(), async { Ok::<_, ()>(999) }).await;
/// assert_eq!((first, again), (Ok(4), Ok(4)));
/// assert!(cache.invalidate(&"rust".to_owned()));
/// assert_eq!(cache.get(&"rust".to_owned()), None);
/// # }
/// ```
pub struct Cache<K: Send, V: Send + Sync> {
    core: Arc<Core<K, V>>,
}

impl<K: Send, V: Send + Sync> Clone for Cache<K, V> {
    fn clone(&self) -> Self {
        Cache {
            core: self.core.clone(),
        }
    }
}

/// The state of one cache, shared by its clones and found by name in the registry.
pub(crate) struct Core<K: Send, V: Send + Sync> {
    /// Hashed with foldhash, seeded per process: a fraction of SipHash's cost on every lookup.
    store: moka::sync::Cache<K, Stored<V>, foldhash::fast::RandomState>,
    /// Per-thread copies of live entries; `None` with a `tti`, which needs moka to see every read.
    front: Option<Fronts<K, V>>,
    /// Moved on by [`Cache::invalidate_all`], which empties every front.
    epoch: AtomicU64,
    /// Moved on by every removal from moka, so that fronts drop their dead copies.
    removals: Arc<AtomicU64>,
    /// The keys whose layer below is running now, each with the turn that callers of the key wait
    /// for (single flight).
    flights: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>, foldhash::fast::RandomState>>,
    /// Near capacity from this many entries: then every hit reads moka.
    full_at: u64,
    config: CacheConfig,
    name: Arc<str>,
    stats: Arc<Stats>,
}

impl<K: Send, V: Send + Sync> std::fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.core.name)
            .field("config", &self.core.config)
            .finish_non_exhaustive()
    }
}

impl Cache<(), ()> {
    /// Starts a builder for a cache registered as `name`.
    pub fn builder(name: impl Into<String>) -> CacheBuilder {
        CacheBuilder {
            name: name.into(),
            config: CacheConfig::DEFAULT,
        }
    }
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The cache registered as `name` with these key and value types, made with `config` if there
    /// is none; the flag is `true` when this call made it.
    pub(crate) fn shared(name: &str, config: CacheConfig) -> (Self, bool) {
        let (core, created) = registry().shared(PolicyKind::Cache, name, |stats| {
            Core::new(name, config, stats)
        });
        (Cache { core }, created)
    }

    /// The registry name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// The settings.
    pub fn config(&self) -> CacheConfig {
        self.core.config
    }

    /// The number of entries, after applying pending insertions, evictions and expirations.
    pub fn entry_count(&self) -> u64 {
        CacheControl::entry_count(&*self.core)
    }

    /// Applies pending evictions and expirations now.
    pub async fn run_pending_tasks(&self) {
        self.core.store.run_pending_tasks();
    }

    /// Removes the entry for `key`, at once for every thread; `false` when there was none.
    pub fn invalidate(&self, key: &K) -> bool {
        self.core.remove(key)
    }

    /// Removes every entry, at once for every thread.
    pub fn invalidate_all(&self) {
        self.core.invalidate_all();
    }

    /// The stored value for `key`, if any and not expired; does not count as a hit or miss.
    pub fn get(&self, key: &K) -> Option<V> {
        self.core.stored(key).map(|stored| V::clone(&stored.value))
    }

    /// The cached value for `key`, or the `Ok` of `fut`, which is stored. Concurrent misses on one key
    /// run one `fut`; see the type's documentation for errors.
    pub async fn get_or_try_insert<E, F>(&self, key: K, fut: F) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        self.core.get_or_run(key, fut, &|_| Verdict::Store).await
    }

    /// The cached value for `key`, or the value of `fut`, which is stored. Concurrent misses on one key
    /// run one `fut`.
    pub async fn get_or_insert(&self, key: K, fut: impl Future<Output = V>) -> V {
        let fut = async { Ok::<V, std::convert::Infallible>(fut.await) };
        match self.core.get_or_run(key, fut, &|_| Verdict::Store).await {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }
}

impl<K, V> Core<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(name: &str, config: CacheConfig, stats: Arc<Stats>) -> Self {
        let removals = Arc::new(AtomicU64::new(0));
        let listener_removals = removals.clone();
        let mut builder = moka::sync::Cache::builder()
            .max_capacity(config.max_size)
            .eviction_listener(move |_key, stored: Stored<V>, _cause| {
                stored.live.store(false, Ordering::Release);
                listener_removals.fetch_add(1, Ordering::Release);
            });
        if let Some(kept_for) = config.kept_for() {
            builder = builder.time_to_live(kept_for);
        }
        if let Some(tti) = config.tti {
            builder = builder.time_to_idle(tti);
        }
        Core {
            store: builder.build_with_hasher(foldhash::fast::RandomState::default()),
            front: config.tti.is_none().then(Fronts::new),
            epoch: AtomicU64::new(0),
            removals,
            flights: Mutex::new(HashMap::default()),
            full_at: config.max_size - config.max_size / 10,
            config,
            name: name.into(),
            stats,
        }
    }

    /// Removes `key`'s entry, and its copies stop answering at once (moka's listener clears its
    /// `live` flag); `false` when there was none, or only an expired one.
    fn remove(&self, key: &K) -> bool {
        match self.store.remove(key) {
            Some(stored) => {
                stored.live.store(false, Ordering::Release);
                self.removals.fetch_add(1, Ordering::Release);
                !self.expired(&stored)
            }
            None => false,
        }
    }

    fn invalidate_all(&self) {
        self.store.invalidate_all();
        // After moka: a front copy made from an entry read before this line carries the old epoch
        // and is dropped at its front's next use; one read after it cannot be an old entry.
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// The live, unexpired entry for `key` in moka.
    fn stored(&self, key: &K) -> Option<Stored<V>> {
        let stored = self.store.get(key)?;
        if !stored.live.load(Ordering::Acquire) {
            return None;
        }
        if self.expired(&stored) {
            if self.past_stale_window(&stored) {
                self.remove(key);
            }
            return None;
        }
        Some(stored)
    }

    /// Past its `ttl` on the `tokio` clock.
    #[inline]
    fn expired(&self, stored: &Stored<V>) -> bool {
        matches!((self.config.ttl, stored.born), (Some(ttl), Some(born)) if born.elapsed() >= ttl)
    }

    /// Past its `ttl` and its stale window: it can never answer again.
    fn past_stale_window(&self, stored: &Stored<V>) -> bool {
        matches!((self.config.kept_for(), stored.born), (Some(kept), Some(born)) if born.elapsed() >= kept)
    }

    /// With `stale_if_error`: the value of `key`'s entry if it expired no longer than the window
    /// ago (or is still fresh: a concurrent call stored it), counted as `stale_served`. Called when
    /// the layer below failed, or only a fallback below answered.
    fn stale(&self, key: &K, why: &'static str) -> Option<V> {
        self.config.stale_if_error?;
        let stored = self.store.get(key)?;
        if !stored.live.load(Ordering::Acquire) || self.past_stale_window(&stored) {
            return None;
        }
        self.stats.add(Field::StaleServed);
        let age = stored.born.map(|born| born.elapsed()).unwrap_or_default();
        tracing::info!(target: "reliability", cache = %self.name, ?age, "{why}: serving the stale entry");
        Some(V::clone(&stored.value))
    }

    /// Settles a run of the layer below: stores what `keep` says to, and answers with a stale entry
    /// instead of an error or of an answer only a fallback gave, when there is one.
    fn settle<E>(&self, key: K, outcome: Result<V, E>, keep: Keep<'_, V>) -> Settled<K, V, E> {
        match outcome {
            Ok(value) => {
                self.stats.add(Field::Successes);
                match keep(&value) {
                    Verdict::Store => Settled::Store(key, value),
                    Verdict::Skip => Settled::Answer(Ok(value)),
                    Verdict::Degraded => {
                        tracing::debug!(target: "reliability", cache = %self.name, "not caching an answer a fallback served");
                        let stale = self.stale(&key, "only a fallback answered");
                        Settled::Answer(Ok(stale.unwrap_or(value)))
                    }
                }
            }
            Err(error) => {
                self.stats.add(Field::Failures);
                match self.stale(&key, "the layer below failed") {
                    Some(value) => Settled::Answer(Ok(value)),
                    None => Settled::Answer(Err(error)),
                }
            }
        }
    }

    #[inline]
    fn seen(&self) -> Seen {
        Seen {
            epoch: self.epoch.load(Ordering::Acquire),
            removals: self.removals.load(Ordering::Acquire),
            full: self.store.entry_count() >= self.full_at,
        }
    }

    /// A hit from this thread's front, else from moka (and then copied to the front). Counts hits,
    /// not misses: a miss is counted by the run that follows it.
    #[inline]
    pub(crate) fn lookup(&self, key: &K) -> Option<V> {
        let seen = self.seen();
        if let Some(front) = &self.front
            && let Some(value) = front.get(key, seen, |s| self.expired(s))
        {
            self.hit();
            return Some(value);
        }
        let stored = self.stored(key)?;
        if let Some(front) = &self.front {
            let capacity = usize::try_from(self.config.max_size).unwrap_or(usize::MAX);
            front.keep(key, &stored, seen, capacity);
        }
        self.hit();
        Some(V::clone(&stored.value))
    }

    #[inline]
    fn hit(&self) {
        self.stats.add(Field::Hits);
        tracing::debug!(target: "reliability", cache = %self.name, "cache hit");
    }

    fn store(&self, key: K, value: V) {
        let stored = Stored {
            value: Arc::new(value),
            born: self.config.ttl.map(|_| Instant::now()),
            live: Arc::new(AtomicBool::new(true)),
        };
        self.store.insert(key, stored);
    }

    /// The cached value for `key`, or the `Ok` of `fut`, stored if `keep(&value)` says so once `fut`
    /// has finished (the attributes keep answers that no fallback served, and that `unless`
    /// accepts). Concurrent misses on one key run one `fut`; a caller that waited for a run that
    /// failed, or whose value was not kept, runs its own.
    pub(crate) async fn get_or_run<E, F>(&self, key: K, fut: F, keep: Keep<'_, V>) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        if let Some(value) = self.lookup(&key) {
            return Ok(value);
        }
        self.run_missed(key, fut, keep).await
    }

    /// The miss path of [`get_or_run`](Self::get_or_run), apart so that a hit stays small.
    pub(crate) async fn run_missed<E, F>(&self, key: K, fut: F, keep: Keep<'_, V>) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        let flight = Flight::join(self, &key);
        let _turn = match flight.gate().try_lock() {
            Ok(turn) => turn,
            Err(_) => {
                let turn = flight.gate().lock().await;
                // The call we waited for may have stored its value.
                if let Some(stored) = self.stored(&key) {
                    self.stats.add(Field::Coalesced);
                    tracing::debug!(target: "reliability", cache = %self.name, "cache miss answered by a concurrent call");
                    drop(turn);
                    return Ok(V::clone(&stored.value));
                }
                turn
            }
        };
        self.stats.add(Field::Misses);
        tracing::debug!(target: "reliability", cache = %self.name, "cache miss");
        match self.settle(key, fut.await, keep) {
            Settled::Store(key, value) => {
                self.store(key, value.clone());
                Ok(value)
            }
            Settled::Answer(answer) => answer,
        }
    }
}

/// Whether to store a value the layer below answered with, asked once it has finished.
pub(crate) type Keep<'a, V> = &'a (dyn Fn(&V) -> Verdict + Sync);

/// What [`Keep`] says of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Store it.
    Store,
    /// Answer with it, do not store it (`unless` said so).
    Skip,
    /// Only a fallback below could answer: do not store it, and answer with a stale entry
    /// instead if `stale_if_error` allows one.
    Degraded,
}

/// How a run of the layer below ends at the cache.
enum Settled<K, V, E> {
    /// Store the value, then answer with it.
    Store(K, V),
    /// Answer with this, storing nothing.
    Answer(Result<V, E>),
}

/// A caller's place in the single flight of one key: it holds the key's turn while it exists, and
/// the last one out removes the key from the map.
struct Flight<'a, K: Hash + Eq + Send, V: Send + Sync> {
    core: &'a Core<K, V>,
    key: K,
    gate: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl<'a, K, V> Flight<'a, K, V>
where
    K: Hash + Eq + Clone + Send,
    V: Send + Sync,
{
    fn join(core: &'a Core<K, V>, key: &K) -> Self {
        let gate = lock(&core.flights).entry(key.clone()).or_default().clone();
        Flight {
            core,
            key: key.clone(),
            gate: Some(gate),
        }
    }

    fn gate(&self) -> &tokio::sync::Mutex<()> {
        match &self.gate {
            Some(gate) => gate,
            None => unreachable!("the gate is taken only when the flight is dropped"),
        }
    }
}

impl<K: Hash + Eq + Send, V: Send + Sync> Drop for Flight<'_, K, V> {
    fn drop(&mut self) {
        let mut flights = lock(&self.core.flights);
        // Under the lock, where every other handle to the gate is made or dropped: two handles left
        // are the map's and this one.
        if let Some(gate) = self.gate.take()
            && Arc::strong_count(&gate) == 2
            && flights
                .get(&self.key)
                .is_some_and(|g| Arc::ptr_eq(g, &gate))
        {
            flights.remove(&self.key);
        }
    }
}

impl<K, V> Named for Core<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn reset(&self) {
        self.invalidate_all();
    }

    fn as_cache(&self) -> Option<&dyn CacheControl> {
        Some(self)
    }
}

impl<K, V> CacheControl for Core<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn entry_count(&self) -> u64 {
        self.store.run_pending_tasks();
        self.store.entry_count()
    }

    fn invalidate_all(&self) {
        Core::invalidate_all(self);
    }

    fn invalidate(&self, key: &dyn Any) -> bool {
        key.downcast_ref::<K>().is_some_and(|key| self.remove(key))
    }
}
