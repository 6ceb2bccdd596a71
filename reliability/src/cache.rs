//! Cache: answer repeated calls from memory, running the layer below once per key at a time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use thread_local::ThreadLocal;

use tokio::time::Instant;

use crate::error::ConfigError;
use crate::registry::{PolicyKind, registry};
use crate::stats::{Field, Stats};

/// The settings of a [`Cache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    ttl: Option<Duration>,
    tti: Option<Duration>,
    max_size: u64,
}

impl CacheConfig {
    /// No expiry, 10 000 entries.
    pub const DEFAULT: CacheConfig = CacheConfig {
        ttl: None,
        tti: None,
        max_size: 10_000,
    };

    /// Settings already validated by the attribute macro.
    #[doc(hidden)]
    pub const fn __checked(ttl: Option<Duration>, tti: Option<Duration>, max_size: u64) -> Self {
        CacheConfig { ttl, tti, max_size }
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

    /// Validates the settings and makes an empty cache registered as the builder's name.
    pub fn build<K, V>(self) -> Result<Cache<K, V>, ConfigError>
    where
        K: Hash + Eq + Send + Sync + 'static,
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
        Ok(Cache::checked(&self.name, self.config))
    }
}

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

/// Most entries one thread's front holds for one cache.
const FRONT_CAPACITY: u64 = 1024;

/// One lookup in this many skips the front and reads moka, so that moka's eviction policy (frequency
/// and recency) keeps seeing the entries that are read.
const FRONT_SAMPLE: u32 = 256;

/// Every thread's front of one cache.
type Fronts<K, V> = ThreadLocal<Padded<RefCell<Front<K, V>>>>;

/// A value on cache lines of its own: a thread's front is written on every hit (its borrow flag),
/// and must not share a line with another thread's.
#[repr(align(128))]
struct Padded<T>(T);

/// One thread's copies of entries it found in moka: hits answered here take no lock, write no shared
/// memory and skip moka's read bookkeeping. moka stays the owner of every entry: a copy answers only
/// while its entry is live in moka, and is dropped when it is not.
struct Front<K, V> {
    /// The cache's epoch when the copies were made; [`Cache::invalidate_all`] moves it on.
    epoch: u64,
    hits: u32,
    entries: HashMap<K, Stored<V>, foldhash::fast::RandomState>,
}

/// A cache of call results, backed by moka, with single flight: concurrent misses on one key run the
/// layer below once and all receive its value.
///
/// Only successes are stored. Errors are never shared: when the call that ran fails, each caller that
/// was waiting for it runs the layer below itself, so every caller gets an error value of its own and
/// `E` need not be `Clone`.
///
/// Expiry: `ttl` is checked on the `tokio` clock (so paused-time tests are exact) and also handed to
/// moka, whose clock evicts entries in the background; `tti` is moka's alone.
///
/// Hits: each thread keeps a small front of entries it found in moka (at most 1 024 keys, or
/// `max_size` if smaller), so a repeated hit takes no lock and writes no shared memory. moka stays the
/// owner: a front entry answers only while moka still holds it (eviction, expiry, replacement,
/// [`invalidate`](Self::invalidate) and [`invalidate_all`](Self::invalidate_all) end it at once), and the
/// value is shared with moka's entry through an `Arc`, not copied. One hit in 256 is read from moka so
/// that its eviction policy keeps seeing what is used. Without a front (`tti` set) every hit reads moka.
///
/// ```
/// use reliability::Cache;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache: Cache<String, usize> = Cache::builder("lengths").max_size(100).build().unwrap();
/// let first = cache.get_or_try_insert("rust".to_owned(), async { Ok::<_, ()>(4) }).await;
/// let again = cache.get_or_try_insert("rust".to_owned(), async { Ok::<_, ()>(999) }).await;
/// assert_eq!((first, again), (Ok(4), Ok(4)));
/// # }
/// ```
pub struct Cache<K: Send, V: Send + Sync> {
    /// Hashed with foldhash, seeded per process: a fraction of SipHash's cost on every lookup.
    inner: moka::future::Cache<K, Stored<V>, foldhash::fast::RandomState>,
    /// Per-thread copies of live entries; `None` with a `tti`, which needs moka to see every read.
    front: Option<Fronts<K, V>>,
    /// Moved on by [`invalidate_all`](Self::invalidate_all), which empties every front.
    epoch: AtomicU64,
    config: CacheConfig,
    name: Arc<str>,
    stats: Arc<Stats>,
}

impl<K: Send, V: Send + Sync> std::fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Marks an init future whose result is not shared: an error (it stays with the caller that ran it) or
/// a value that is not to be stored.
#[derive(Debug)]
struct NotStored;

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
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn checked(name: &str, config: CacheConfig) -> Self {
        let mut builder = moka::future::Cache::builder()
            .max_capacity(config.max_size)
            .eviction_listener(|_key, stored: Stored<V>, _cause| {
                stored.live.store(false, Ordering::Release);
            });
        if let Some(ttl) = config.ttl {
            builder = builder.time_to_live(ttl);
        }
        if let Some(tti) = config.tti {
            builder = builder.time_to_idle(tti);
        }
        Cache {
            inner: builder.build_with_hasher(foldhash::fast::RandomState::default()),
            front: config.tti.is_none().then(ThreadLocal::new),
            epoch: AtomicU64::new(0),
            config,
            name: name.into(),
            stats: registry().stats(PolicyKind::Cache, name),
        }
    }

    /// The registry name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The settings.
    pub fn config(&self) -> CacheConfig {
        self.config
    }

    /// The number of entries (moka's estimate: evictions are applied in the background).
    pub fn entry_count(&self) -> u64 {
        self.inner.entry_count()
    }

    /// Applies pending evictions and expirations now.
    pub async fn run_pending_tasks(&self) {
        self.inner.run_pending_tasks().await;
    }

    /// Removes the entry for `key`.
    pub async fn invalidate(&self, key: &K) {
        if let Some(stored) = self.inner.remove(key).await {
            stored.live.store(false, Ordering::Release);
        }
    }

    /// Removes every entry.
    pub fn invalidate_all(&self) {
        self.inner.invalidate_all();
        // After moka: a front copy made from an entry read before this line is refused by the epoch
        // check in `keep_in_front`, and one read after it cannot be an old entry.
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// The stored value for `key`, if any and not expired; does not count as a hit or miss.
    pub async fn get(&self, key: &K) -> Option<V> {
        self.fresh(key).await
    }

    async fn fresh(&self, key: &K) -> Option<V> {
        self.fresh_stored(key)
            .await
            .map(|stored| V::clone(&stored.value))
    }

    async fn fresh_stored(&self, key: &K) -> Option<Stored<V>> {
        let stored = self.inner.get(key).await?;
        if self.expired(&stored) {
            self.invalidate(key).await;
            return None;
        }
        Some(stored)
    }

    /// Past its `ttl` on the `tokio` clock.
    #[inline]
    fn expired(&self, stored: &Stored<V>) -> bool {
        matches!((self.config.ttl, stored.born), (Some(ttl), Some(born)) if born.elapsed() >= ttl)
    }

    /// The value of a live copy of `key` in this thread's front. One lookup in [`FRONT_SAMPLE`] is
    /// answered `None`, so that the caller reads moka and moka counts the read.
    #[inline]
    fn front_hit(&self, key: &K) -> Option<V> {
        let cell = &self.front.as_ref()?.get()?.0;
        let mut front = cell.try_borrow_mut().ok()?;
        if front.epoch != self.epoch.load(Ordering::Acquire) {
            front.entries.clear();
            return None;
        }
        front.hits = front.hits.wrapping_add(1);
        let sampled = front.hits.is_multiple_of(FRONT_SAMPLE);
        let stored = front.entries.get(key)?;
        if !stored.live.load(Ordering::Acquire) || self.expired(stored) {
            front.entries.remove(key);
            return None;
        }
        if sampled {
            return None;
        }
        Some(V::clone(&stored.value))
    }

    /// Keeps a copy of `stored`, read from moka while the epoch was `epoch`, in this thread's front.
    fn keep_in_front(&self, key: &K, stored: &Stored<V>, epoch: u64)
    where
        K: Clone,
    {
        let Some(fronts) = &self.front else { return };
        let cell = &fronts
            .get_or(|| {
                Padded(RefCell::new(Front {
                    epoch,
                    hits: 0,
                    entries: HashMap::default(),
                }))
            })
            .0;
        let Ok(mut front) = cell.try_borrow_mut() else {
            return;
        };
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if front.epoch != epoch {
            front.entries.clear();
            front.epoch = epoch;
        }
        let capacity = usize::try_from(FRONT_CAPACITY.min(self.config.max_size)).unwrap_or(1);
        if front.entries.len() >= capacity && !front.entries.contains_key(key) {
            front.entries.retain(|_, s| s.live.load(Ordering::Relaxed));
            if front.entries.len() >= capacity {
                front.entries.clear();
            }
        }
        front.entries.insert(key.clone(), stored.clone());
    }

    fn store(&self, value: V) -> Stored<V> {
        Stored {
            value: Arc::new(value),
            born: self.config.ttl.map(|_| Instant::now()),
            live: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Counts a hit or a miss; `calls` is their sum, so a lookup moves one counter. A hit is
    /// answered from this thread's front when it can be, else from moka (and then copied to the
    /// front).
    #[inline]
    async fn lookup(&self, key: &K) -> Option<V>
    where
        K: Clone,
    {
        if let Some(value) = self.front_hit(key) {
            self.stats.add(Field::Hits);
            tracing::debug!(target: "reliability", cache = %self.name, "cache hit");
            return Some(value);
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let found = self.fresh_stored(key).await.map(|stored| {
            if stored.live.load(Ordering::Acquire) {
                self.keep_in_front(key, &stored, epoch);
            }
            V::clone(&stored.value)
        });
        if found.is_some() {
            self.stats.add(Field::Hits);
            tracing::debug!(target: "reliability", cache = %self.name, "cache hit");
        } else {
            self.stats.add(Field::Misses);
            tracing::debug!(target: "reliability", cache = %self.name, "cache miss");
        }
        found
    }

    /// The cached value for `key`, or the `Ok` of `fut`, which is stored. Concurrent misses on one key
    /// run one `fut`; see the type's documentation for errors.
    pub async fn get_or_try_insert<E, F>(&self, key: K, fut: F) -> Result<V, E>
    where
        K: Clone,
        F: Future<Output = Result<V, E>>,
    {
        self.get_or_run(key, fut, &|| true).await
    }

    /// The cached value for `key`, or the value of `fut`, which is stored. Concurrent misses on one key
    /// run one `fut`.
    pub async fn get_or_insert(&self, key: K, fut: impl Future<Output = V>) -> V
    where
        K: Clone,
    {
        let fut = async { Ok::<V, std::convert::Infallible>(fut.await) };
        match self.get_or_run(key, fut, &|| true).await {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// The cached value for `key`, or the `Ok` of `fut`, stored if `keep()` says so once `fut` has
    /// finished (the attributes keep answers that no fallback served). Concurrent misses on one key run
    /// one `fut`; a caller that waited for a run that failed, or whose value was not kept, runs its own.
    pub(crate) async fn get_or_run<E, F>(
        &self,
        key: K,
        fut: F,
        keep: &(dyn Fn() -> bool + Sync),
    ) -> Result<V, E>
    where
        K: Clone,
        F: Future<Output = Result<V, E>>,
    {
        if let Some(value) = self.lookup(&key).await {
            return Ok(value);
        }
        self.run_missed(key, fut, keep).await
    }

    /// The miss path of [`get_or_run`](Self::get_or_run), apart so that a hit stays small.
    async fn run_missed<E, F>(
        &self,
        key: K,
        fut: F,
        keep: &(dyn Fn() -> bool + Sync),
    ) -> Result<V, E>
    where
        K: Clone,
        F: Future<Output = Result<V, E>>,
    {
        let mut fut = pin!(fut);
        let mut failed = None;
        let mut unkept = None;
        let shared = self
            .inner
            .try_get_with(key.clone(), async {
                match fut.as_mut().await {
                    Ok(value) if keep() => Ok(self.store(value)),
                    Ok(value) => {
                        unkept = Some(value);
                        Err(NotStored)
                    }
                    Err(error) => {
                        failed = Some(error);
                        Err(NotStored)
                    }
                }
            })
            .await;
        let out = match shared {
            Ok(stored) => Ok(V::clone(&stored.value)),
            Err(_) => match (failed, unkept) {
                (Some(error), _) => Err(error),
                (None, Some(value)) => {
                    tracing::debug!(target: "reliability", cache = %self.name, "not caching an answer a fallback served");
                    Ok(value)
                }
                // The run we waited for failed or was not kept: run our own.
                (None, None) => match fut.as_mut().await {
                    Ok(value) => {
                        if keep() {
                            self.inner.insert(key, self.store(value.clone())).await;
                        }
                        Ok(value)
                    }
                    Err(error) => Err(error),
                },
            },
        };
        self.stats.add(if out.is_ok() {
            Field::Successes
        } else {
            Field::Failures
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::Cache;

    /// A call of the layer below, counted.
    async fn run(runs: &AtomicU32, value: u32) -> Result<u32, ()> {
        runs.fetch_add(1, Ordering::SeqCst);
        Ok(value)
    }

    /// Hits that this thread's front answers must stop as soon as moka no longer has the entry,
    /// whoever removed it.
    #[tokio::test(flavor = "current_thread")]
    async fn a_removed_entry_is_not_answered_by_a_front() {
        let cache: Cache<u32, u32> = Cache::builder("cache.front.removed").build().unwrap();
        let runs = AtomicU32::new(0);
        // One run, then hits: the first from moka (which leaves a copy in this thread's front),
        // the next from the front.
        let store_and_hit = |value: u32, expected_runs: u32| {
            let (cache, runs) = (&cache, &runs);
            async move {
                for _ in 0..3 {
                    assert_eq!(
                        cache.get_or_try_insert(1, run(runs, value)).await,
                        Ok(value)
                    );
                }
                assert_eq!(runs.load(Ordering::SeqCst), expected_runs);
            }
        };
        store_and_hit(10, 1).await;

        cache.invalidate(&1).await;
        store_and_hit(11, 2).await;

        // Removed from another thread: this thread's copy must not answer either.
        std::thread::scope(|s| {
            s.spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap()
                    .block_on(cache.invalidate(&1));
            });
        });
        store_and_hit(12, 3).await;

        cache.invalidate_all();
        store_and_hit(13, 4).await;
    }
}
