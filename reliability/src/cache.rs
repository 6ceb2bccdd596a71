//! Cache: answer repeated calls from memory, running the layer below once per key at a time.

use std::future::Future;
use std::hash::Hash;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

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
    /// Time to live after insertion (> 0; default none).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = Some(ttl);
        self
    }

    /// Time to idle (> 0; default none).
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
        if self.config.max_size == 0 {
            return Err(ConfigError::new("max_size", "must be at least 1"));
        }
        Ok(Cache::checked(&self.name, self.config))
    }
}

#[derive(Clone)]
struct Stored<V> {
    value: V,
    /// Insertion time on the `tokio` clock, kept when a `ttl` is set.
    born: Option<Instant>,
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
pub struct Cache<K, V> {
    inner: moka::future::Cache<K, Stored<V>>,
    config: CacheConfig,
    name: Arc<str>,
    stats: Arc<Stats>,
}

impl<K, V> std::fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Marks an init future that failed; its error stays with the caller that ran it.
#[derive(Debug)]
struct RanAndFailed;

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
        let mut builder = moka::future::Cache::builder().max_capacity(config.max_size);
        if let Some(ttl) = config.ttl {
            builder = builder.time_to_live(ttl);
        }
        if let Some(tti) = config.tti {
            builder = builder.time_to_idle(tti);
        }
        Cache {
            inner: builder.build(),
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
        self.inner.invalidate(key).await;
    }

    /// Removes every entry.
    pub fn invalidate_all(&self) {
        self.inner.invalidate_all();
    }

    /// The stored value for `key`, if any and not expired; does not count as a hit or miss.
    pub async fn get(&self, key: &K) -> Option<V> {
        self.fresh(key).await
    }

    async fn fresh(&self, key: &K) -> Option<V> {
        let stored = self.inner.get(key).await?;
        if let (Some(ttl), Some(born)) = (self.config.ttl, stored.born) {
            if born.elapsed() >= ttl {
                self.inner.invalidate(key).await;
                return None;
            }
        }
        Some(stored.value)
    }

    fn store(&self, value: V) -> Stored<V> {
        Stored {
            value,
            born: self.config.ttl.map(|_| Instant::now()),
        }
    }

    async fn lookup(&self, key: &K) -> Option<V> {
        self.stats.add(Field::Calls);
        let found = self.fresh(key).await;
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
        if let Some(value) = self.lookup(&key).await {
            return Ok(value);
        }
        let mut fut = pin!(fut);
        let mut failed = None;
        let shared = self
            .inner
            .try_get_with(key.clone(), async {
                match fut.as_mut().await {
                    Ok(value) => Ok(self.store(value)),
                    Err(error) => {
                        failed = Some(error);
                        Err(RanAndFailed)
                    }
                }
            })
            .await;
        match shared {
            Ok(stored) => {
                self.stats.add(Field::Successes);
                Ok(stored.value)
            }
            Err(_) => {
                if let Some(error) = failed {
                    self.stats.add(Field::Failures);
                    return Err(error);
                }
                // The call we waited for failed: run our own.
                match fut.as_mut().await {
                    Ok(value) => {
                        self.stats.add(Field::Successes);
                        self.inner.insert(key, self.store(value.clone())).await;
                        Ok(value)
                    }
                    Err(error) => {
                        self.stats.add(Field::Failures);
                        Err(error)
                    }
                }
            }
        }
    }

    /// The cached value for `key`, or the value of `fut`, which is stored. Concurrent misses on one key
    /// run one `fut`.
    pub async fn get_or_insert(&self, key: K, fut: impl Future<Output = V>) -> V
    where
        K: Clone,
    {
        if let Some(value) = self.lookup(&key).await {
            return value;
        }
        let stored = self
            .inner
            .get_with(key, async { self.store(fut.await) })
            .await;
        self.stats.add(Field::Successes);
        stored.value
    }
}
