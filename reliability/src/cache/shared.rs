//! A second cache tier in Redis, shared by replicas: looked up after the local (moka) tier
//! misses, filled by every answer a replica computes.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use siphasher::sip128::{Hasher128, SipHasher13};
use tokio::time::Instant;

use super::expand::{CacheSlot, OkValues, Values, verdict};
use super::{Cache, Core, Flight, Keep, Settled, Stored, Verdict};
use crate::call::StackCtx;
use crate::shared::{RedisStore, installed};
use crate::site::Site;
use crate::stats::Field;

/// The format of a stored entry: `(FORMAT, key bytes, value)`, postcard-encoded.
const FORMAT: u8 = 1;

/// The fixed keys of the digest: every replica computes the same digest for one key.
const DIGEST_KEYS: (u64, u64) = (0x7265_6c69_6162_696c, 0x6974_793a_6361_6368);

/// A key of a shared cache: a cache key that serde can serialise.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the key of a shared cache: it must be `serde::Serialize` (and `Hash + Eq + Clone + Send + Sync + 'static`)",
    label = "the key `#[cached(shared)]` stores in Redis",
    note = "derive `serde::Serialize` for it, or choose a key with `key = ...` (e.g. a `String`)"
)]
pub trait SharedKey: Serialize + Hash + Eq + Clone + Send + Sync + 'static {}

impl<K: Serialize + Hash + Eq + Clone + Send + Sync + 'static> SharedKey for K {}

/// A value of a shared cache: a cache value that serde can serialise and deserialise.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a shared cache: it must be `serde::Serialize + serde::de::DeserializeOwned` (and `Clone + Send + Sync + 'static`)",
    label = "the value `#[cached(shared)]` stores in Redis",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it"
)]
pub trait SharedValue: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> SharedValue for V {}

/// A [`Cache`] with a second tier in a [`RedisStore`], shared by replicas.
///
/// A lookup reads the local (moka) tier first; on a miss, the store, under
/// `reliability:{name}:{digest}`; on a miss there too, it runs the call and stores its value in
/// both tiers, in the store with the cache's `ttl` as its expiry (`PX`; none without a `ttl`). A
/// hit in the store fills the local tier, for the time the entry has left. Single flight stays per
/// replica: concurrent misses of one key in one replica read the store and run the call once.
///
/// - Keys and values are serialised with postcard (compact, and stable: its wire format is
///   specified). A key's serialisation must be the same on every replica: a `HashMap` in a key
///   serialises in its iteration order, so prefer a `BTreeMap` or a string. Types postcard cannot
///   deserialise (self-describing ones, e.g. `serde_json::Value`) always miss the shared tier.
/// - `{digest}` is the 128-bit SipHash-1-3 (fixed keys) of the serialised key, in hex: key names
///   never hold the key itself. The entry holds the serialised key too, checked on read: a
///   collision is a miss, never a wrong answer. An entry that does not decode is a miss.
/// - `tti` applies to the local tier only.
/// - With the store down or slow (each operation is bounded, 50 ms by default) the local tier
///   works alone, and `store_errors` counts it. A hit in the store counts as a hit.
///
/// ```no_run
/// use reliability::Cache;
/// use reliability::shared::{RedisStore, SharedCache};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// let cache: Cache<String, String> = Cache::builder("answers")
///     .ttl(std::time::Duration::from_secs(3600))
///     .build()?;
/// let answers = SharedCache::new(&cache, &store);
/// let answer = answers
///     .get_or_insert("what is rust?".to_owned(), async { "a language".to_owned() })
///     .await;
/// # let _ = answer; Ok(()) }
/// ```
pub struct SharedCache<K: Send, V: Send + Sync> {
    cache: Cache<K, V>,
    store: RedisStore,
    name: Arc<str>,
}

impl<K: Send, V: Send + Sync> Clone for SharedCache<K, V> {
    fn clone(&self) -> Self {
        SharedCache {
            cache: self.cache.clone(),
            store: self.store.clone(),
            name: self.name.clone(),
        }
    }
}

impl<K: Send, V: Send + Sync> std::fmt::Debug for SharedCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCache")
            .field("cache", &self.cache)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<K: SharedKey, V: SharedValue> SharedCache<K, V> {
    /// `cache` with a second tier in `store`, under the cache's name.
    pub fn new(cache: &Cache<K, V>, store: &RedisStore) -> Self {
        Self::with_name(cache, store, cache.name())
    }

    /// `cache` with a second tier in `store`, under `name`: caches of every replica with one name
    /// share their entries. (Several local caches in one process can so play replicas, as in
    /// tests.)
    pub fn with_name(cache: &Cache<K, V>, store: &RedisStore, name: &str) -> Self {
        SharedCache {
            cache: cache.clone(),
            store: store.clone(),
            name: name.into(),
        }
    }

    /// The local tier.
    pub fn cache(&self) -> &Cache<K, V> {
        &self.cache
    }

    /// The cached value for `key` (local tier, then the store), or the `Ok` of `fut`, which is
    /// stored in both.
    pub async fn get_or_try_insert<E, F>(&self, key: K, fut: F) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        self.cache
            .core
            .get_or_run_shared(&self.store, &self.name, key, fut, &|_| Verdict::Store)
            .await
    }

    /// The cached value for `key` (local tier, then the store), or the value of `fut`, which is
    /// stored in both.
    pub async fn get_or_insert(&self, key: K, fut: impl Future<Output = V>) -> V {
        let fut = async { Ok::<V, std::convert::Infallible>(fut.await) };
        match self
            .cache
            .core
            .get_or_run_shared(&self.store, &self.name, key, fut, &|_| Verdict::Store)
            .await
        {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }
}

/// Bytes serialised as bytes (a slice of `u8` would be a sequence).
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// The 128-bit digest of a serialised key, in hex.
fn digest(key: &[u8]) -> String {
    let mut hasher = SipHasher13::new_with_keys(DIGEST_KEYS.0, DIGEST_KEYS.1);
    hasher.write(key);
    format!("{:032x}", hasher.finish128().as_u128())
}

/// Where one key lives in the store.
struct Remote {
    /// `reliability:{name}:{digest}`.
    name: String,
    /// The serialised key.
    key: Vec<u8>,
}

impl<K, V> Core<K, V>
where
    K: SharedKey,
    V: SharedValue,
{
    /// [`get_or_run`](Core::get_or_run) with the store as a second tier.
    pub(crate) async fn get_or_run_shared<E, F>(
        &self,
        store: &RedisStore,
        name: &str,
        key: K,
        fut: F,
        keep: Keep<'_, V>,
    ) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        if let Some(value) = self.lookup(&key) {
            return Ok(value);
        }
        self.run_missed_shared(store, name, key, fut, keep).await
    }

    /// The miss path of [`get_or_run_shared`](Self::get_or_run_shared): also what the attribute
    /// runs once its own lookup found nothing.
    pub(crate) async fn run_missed_shared<E, F>(
        &self,
        store: &RedisStore,
        name: &str,
        key: K,
        fut: F,
        keep: Keep<'_, V>,
    ) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        let flight = Flight::join(self, &key);
        let _turn = match flight.gate().try_lock() {
            Ok(turn) => turn,
            Err(_) => {
                let turn = flight.gate().lock().await;
                if let Some(stored) = self.stored(&key) {
                    self.stats.add(Field::Coalesced);
                    tracing::debug!(target: "reliability", cache = %self.name, "cache miss answered by a concurrent call");
                    drop(turn);
                    return Ok(V::clone(&stored.value));
                }
                turn
            }
        };
        let remote = match postcard::to_allocvec(&key) {
            Ok(bytes) => Some(Remote {
                name: format!("reliability:{name}:{}", digest(&bytes)),
                key: bytes,
            }),
            Err(error) => {
                tracing::debug!(target: "reliability", cache = %self.name, %error, "the key does not serialise: the shared tier is skipped");
                None
            }
        };
        if let Some(remote) = &remote
            && let Some((value, left)) = self.read_remote(store, remote).await
        {
            self.fill(key, value.clone(), left);
            self.hit();
            tracing::debug!(target: "reliability", cache = %self.name, "cache hit in the shared store");
            return Ok(value);
        }
        self.stats.add(Field::Misses);
        tracing::debug!(target: "reliability", cache = %self.name, "cache miss");
        match self.settle(key, fut.await, keep) {
            Settled::Store(key, value) => {
                if let Some(remote) = &remote {
                    self.write_remote(store, remote, &value).await;
                }
                self.store(key, value.clone());
                Ok(value)
            }
            Settled::Answer(answer) => answer,
        }
    }

    /// The entry in the store, if it is there, decodes, and is of this key; with the time it has
    /// left (`None`: no expiry).
    async fn read_remote(
        &self,
        store: &RedisStore,
        remote: &Remote,
    ) -> Option<(V, Option<Duration>)> {
        let name = remote.name.as_str();
        let (bytes, ttl): (Option<Vec<u8>>, i64) = store
            .run(&self.stats, "read cache entry", |mut conn| async move {
                redis::pipe()
                    .get(name)
                    .pttl(name)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let bytes = bytes?;
        match postcard::from_bytes::<(u8, &[u8], V)>(&bytes) {
            Ok((FORMAT, key, value)) if key == remote.key.as_slice() => {
                let left = (ttl > 0).then(|| Duration::from_millis(ttl as u64));
                Some((value, left))
            }
            Ok((FORMAT, _, _)) => {
                tracing::debug!(target: "reliability", cache = %self.name, "an entry of another key under the same digest in the shared store: a miss");
                None
            }
            _ => {
                tracing::debug!(target: "reliability", cache = %self.name, "an entry of the shared store does not decode: a miss");
                None
            }
        }
    }

    async fn write_remote(&self, store: &RedisStore, remote: &Remote, value: &V) {
        let entry = match postcard::to_allocvec(&(FORMAT, Bytes(&remote.key), value)) {
            Ok(entry) => entry,
            Err(error) => {
                tracing::debug!(target: "reliability", cache = %self.name, %error, "the value does not serialise: not stored in the shared tier");
                return;
            }
        };
        let ttl = self.config.ttl.map(|ttl| ttl.as_millis().max(1) as u64);
        let name = remote.name.as_str();
        let _: Option<()> = store
            .run(&self.stats, "write cache entry", |mut conn| async move {
                let mut set = redis::cmd("SET");
                set.arg(name).arg(entry);
                if let Some(ms) = ttl {
                    set.arg("PX").arg(ms);
                }
                set.query_async(&mut conn).await
            })
            .await;
    }

    /// Stores a value read from the store in the local tier, for the time it has left there.
    fn fill(&self, key: K, value: V, left: Option<Duration>) {
        let now = Instant::now();
        let born = self.config.ttl.map(|ttl| match left {
            Some(left) if left < ttl => now.checked_sub(ttl - left).unwrap_or(now),
            _ => now,
        });
        let stored = Stored {
            value: Arc::new(value),
            born,
            live: Arc::new(AtomicBool::new(true)),
        };
        self.store.insert(key, stored);
    }
}

impl OkValues {
    /// What `#[cached(shared)]` on a function returning `Result` expands into: [`cached`](Self::cached)
    /// with a second tier in the [installed](crate::shared::install) store, once there is one.
    #[inline]
    pub async fn cached_shared<K, V, E, F, U>(
        self,
        slot: &'static CacheSlot,
        site: Site,
        ctx: &StackCtx,
        unless: &U,
        key: K,
        fut: F,
    ) -> Result<V, E>
    where
        K: SharedKey,
        V: SharedValue,
        F: Future<Output = Result<V, E>>,
        U: Fn(&V) -> bool + Sync,
    {
        let Some(store) = installed() else {
            return self.cached(slot, site, ctx, unless, key, fut).await;
        };
        let keep = |value: &V| verdict(ctx, unless, value);
        let cache = slot.get::<K, V>(site);
        cache
            .core
            .run_missed_shared(store, cache.name(), key, fut, &keep)
            .await
    }
}

impl Values {
    /// What `#[cached(shared)]` on a function returning a plain value expands into:
    /// [`cached`](Self::cached) with a second tier in the [installed](crate::shared::install)
    /// store, once there is one.
    #[inline]
    pub async fn cached_shared<K, V, F, U>(
        self,
        slot: &'static CacheSlot,
        site: Site,
        ctx: &StackCtx,
        unless: &U,
        key: K,
        fut: F,
    ) -> V
    where
        K: SharedKey,
        V: SharedValue,
        F: Future<Output = V>,
        U: Fn(&V) -> bool + Sync,
    {
        let Some(store) = installed() else {
            return self.cached(slot, site, ctx, unless, key, fut).await;
        };
        let keep = |value: &V| verdict(ctx, unless, value);
        let cache = slot.get::<K, V>(site);
        let fut = async { Ok::<V, std::convert::Infallible>(fut.await) };
        match cache
            .core
            .run_missed_shared(store, cache.name(), key, fut, &keep)
            .await
        {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_fixed_and_128_bits() {
        let d = digest(b"what is rust?");
        assert_eq!(d.len(), 32);
        assert_eq!(d, digest(b"what is rust?"));
        assert_ne!(d, digest(b"what is rust!"));
    }

    #[test]
    fn an_entry_round_trips_with_its_key() {
        let key = postcard::to_allocvec(&("q".to_owned(), 7u32)).unwrap();
        let entry = postcard::to_allocvec(&(FORMAT, Bytes(&key), &vec!["a".to_owned()])).unwrap();
        let (format, read, value) =
            postcard::from_bytes::<(u8, &[u8], Vec<String>)>(&entry).unwrap();
        assert_eq!(
            (format, read, value),
            (FORMAT, key.as_slice(), vec!["a".to_owned()])
        );
    }
}
