//! What `#[cached]` expands into: a `static` slot holding the settings and the cache of each
//! instantiation, and the lookup around the layer below. Whether only `Ok` values are stored is
//! decided by the type system, not by how the return type is spelled: a `Result` (through any alias)
//! stores its `Ok` values, any other type its values.

use std::any::Any;
use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::cache::{Cache, CacheConfig, Verdict};
use crate::call::StackCtx;
use crate::site::Site;
use crate::slot::Slot;

/// A cache key.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a cache key: it must be `Hash + Eq + Clone + Send + Sync + 'static`",
    label = "the `#[cached]` key",
    note = "choose the key with `#[cached(key = ...)]`, e.g. `key = query.to_string()`"
)]
pub trait CacheKey: Hash + Eq + Clone + Send + Sync + 'static {}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> CacheKey for K {}

/// A cached value.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached: it must be `Clone + Send + Sync + 'static`",
    label = "the value `#[cached]` stores",
    note = "wrap it in `Arc` to share it without `Clone`"
)]
pub trait CacheValue: Clone + Send + Sync + 'static {}

impl<V: Clone + Send + Sync + 'static> CacheValue for V {}

/// A `static` holding one cache layer: one cache per instantiation of the function (and per key
/// and value type).
#[derive(Debug)]
pub struct CacheSlot {
    name: Option<&'static str>,
    config: CacheConfig,
    slot: Slot<Box<dyn Any + Send + Sync>>,
}

impl CacheSlot {
    /// A slot of `max_size` entries (checked by the macro).
    pub const fn new(max_size: u64) -> Self {
        CacheSlot {
            name: None,
            config: CacheConfig::checked(None, None, max_size),
            slot: Slot::new(),
        }
    }

    /// Registered as `name`.
    pub const fn named(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// With a time to live the macro checked.
    pub const fn ttl(mut self, ttl: Duration) -> Self {
        self.config = CacheConfig::checked(Some(ttl), self.config.tti, self.config.max_size);
        self
    }

    /// With a stale window the macro checked (it needs a `ttl`).
    pub const fn stale_if_error(mut self, window: Duration) -> Self {
        self.config = self.config.with_stale_if_error(window);
        self
    }

    /// With a time to idle the macro checked.
    pub const fn tti(mut self, tti: Duration) -> Self {
        self.config = CacheConfig::checked(self.config.ttl, Some(tti), self.config.max_size);
        self
    }

    /// The cache for `K → V` of this instantiation, registered on first use.
    #[inline]
    pub fn get<K: CacheKey, V: CacheValue>(&self, site: &Site) -> &'static Cache<K, V> {
        let fits =
            |cache: &Box<dyn Any + Send + Sync>| cache.downcast_ref::<Cache<K, V>>().is_some();
        let cache = self
            .slot
            .get(site.instance(), fits, || Box::new(self.make::<K, V>(site)));
        match cache.downcast_ref::<Cache<K, V>>() {
            Some(cache) => cache,
            None => unreachable!("the slot checked the type"),
        }
    }

    #[cold]
    fn make<K: CacheKey, V: CacheValue>(&self, site: &Site) -> Cache<K, V> {
        let name = match self.name {
            Some(name) => name.to_owned(),
            None => site.name(),
        };
        let (cache, created) = Cache::<K, V>::shared(&name, self.config);
        if !created && cache.config() != self.config {
            tracing::warn!(
                target: "reliability",
                cache = %name,
                function = %site,
                settings = ?self.config,
                in_use = ?cache.config(),
                "another function made the cache of this name with other settings; this function shares it, with the settings in use"
            );
        }
        cache
    }
}

/// Whether to store a value the layer below answered: not when a fallback below served it, nor when
/// `unless` says so.
#[inline]
pub(crate) fn verdict<V>(ctx: &StackCtx, unless: &impl Fn(&V) -> bool, value: &V) -> Verdict {
    if ctx.degraded.load(Ordering::Relaxed) {
        Verdict::Degraded
    } else if unless(value) {
        Verdict::Skip
    } else {
        Verdict::Store
    }
}

/// The `unless` used when none is given: every value is stored.
#[inline(always)]
pub fn store_all<V>(_: &V) -> bool {
    false
}

/// How `#[cached]` treats the function's return type `R`, chosen by [`StoresOk`] (for a `Result`)
/// or [`StoresValue`] (anything else): `(&Returns::<R>::new()).how()`.
pub struct Returns<R>(PhantomData<fn() -> R>);

impl<R> Returns<R> {
    /// The marker of the return type `R`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Returns(PhantomData)
    }
}

/// Picked for a `Result<T, E>` return type: only `Ok` values are stored.
pub trait StoresOk {
    /// [`OkValues`].
    fn how(&self) -> OkValues;
}

impl<T, E> StoresOk for Returns<Result<T, E>> {
    #[inline(always)]
    fn how(&self) -> OkValues {
        OkValues
    }
}

/// Picked for any other return type (one autoref further, so [`StoresOk`] wins for a `Result`):
/// every value is stored.
pub trait StoresValue {
    /// [`Values`].
    fn how(&self) -> Values;
}

impl<R> StoresValue for &Returns<R> {
    #[inline(always)]
    fn how(&self) -> Values {
        Values
    }
}

/// The cache of a function returning `Result<T, E>`: stores `Ok` values.
#[derive(Debug, Clone, Copy)]
pub struct OkValues;

/// The cache of a function returning a plain value: stores every value.
#[derive(Debug, Clone, Copy)]
pub struct Values;

impl OkValues {
    /// Answers from `slot`, storing `Ok` values, except answers a fallback below served.
    #[inline]
    pub async fn cached<K, V, E, F, U>(
        self,
        slot: &CacheSlot,
        site: &Site,
        ctx: &StackCtx,
        unless: &U,
        key: K,
        fut: F,
    ) -> Result<V, E>
    where
        K: CacheKey,
        V: CacheValue,
        F: Future<Output = Result<V, E>>,
        U: Fn(&V) -> bool + Sync,
    {
        let keep = |value: &V| verdict(ctx, unless, value);
        slot.get::<K, V>(site)
            .core
            .get_or_run(key, fut, &keep)
            .await
    }
}

impl Values {
    /// Answers from `slot`, storing every value, except answers a fallback below served.
    #[inline]
    pub async fn cached<K, V, F, U>(
        self,
        slot: &CacheSlot,
        site: &Site,
        ctx: &StackCtx,
        unless: &U,
        key: K,
        fut: F,
    ) -> V
    where
        K: CacheKey,
        V: CacheValue,
        F: Future<Output = V>,
        U: Fn(&V) -> bool + Sync,
    {
        let keep = |value: &V| verdict(ctx, unless, value);
        let fut = async { Ok::<V, std::convert::Infallible>(fut.await) };
        match slot
            .get::<K, V>(site)
            .core
            .get_or_run(key, fut, &keep)
            .await
        {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }
}

#[cfg(not(feature = "redis"))]
impl OkValues {
    /// Without the `redis` feature, `#[cached(shared)]` is a compile error (`needs_redis`); this
    /// keeps it the only one.
    #[inline]
    pub async fn cached_shared<K, V, E, F, U>(
        self,
        slot: &CacheSlot,
        site: &Site,
        ctx: &StackCtx,
        unless: &U,
        key: K,
        fut: F,
    ) -> Result<V, E>
    where
        K: CacheKey,
        V: CacheValue,
        F: Future<Output = Result<V, E>>,
        U: Fn(&V) -> bool + Sync,
    {
        self.cached(slot, site, ctx, unless, key, fut).await
    }
}

#[cfg(not(feature = "redis"))]
impl Values {
    /// See [`OkValues::cached_shared`].
    #[inline]
    pub async fn cached_shared<K, V, F, U>(
        self,
        slot: &CacheSlot,
        site: &Site,
        ctx: &StackCtx,
        unless: &U,
        key: K,
        fut: F,
    ) -> V
    where
        K: CacheKey,
        V: CacheValue,
        F: Future<Output = V>,
        U: Fn(&V) -> bool + Sync,
    {
        self.cached(slot, site, ctx, unless, key, fut).await
    }
}
