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
    pub fn get<K: CacheKey, V: CacheValue>(&'static self, site: Site) -> &'static Cache<K, V> {
        let fits =
            |cache: &Box<dyn Any + Send + Sync>| cache.downcast_ref::<Cache<K, V>>().is_some();
        let cache = self.slot.get(site.instance(), site, fits, |site| {
            Box::new(self.make::<K, V>(&site))
        });
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

/// How `#[cached]` treats the function's return type `R`, chosen by method resolution on
/// `(&&&&Returns::<R>::new()).how()`, the first that applies:
///
/// 1. [`StoresOk`]: a `Result<T, E>` whose `T` can be stored ([`CacheValue`]): only `Ok` values are
///    stored;
/// 2. [`StoresValue`]: any other type that can be stored: every value is stored;
/// 3. [`OkNotStored`], [`NotStored`]: a value that cannot be stored, the one compile error (ours).
///    Their `how` gives a type nothing names, so rustc adds no errors about the rest of the layer.
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

impl<T: CacheValue, E> StoresOk for &&&Returns<Result<T, E>> {
    #[inline(always)]
    fn how(&self) -> OkValues {
        OkValues
    }
}

/// Picked for any other return type that can be stored: every value is stored.
pub trait StoresValue {
    /// [`Values`].
    fn how(&self) -> Values;
}

impl<R: CacheValue> StoresValue for &&Returns<R> {
    #[inline(always)]
    fn how(&self) -> Values {
        Values
    }
}

/// Picked for a `Result<T, E>` whose `T` cannot be stored: the error, at the attribute.
pub trait OkNotStored<T> {
    /// Never compiles: reached only when `T` is not a [`CacheValue`].
    fn how<H: Default>(&self) -> H
    where
        T: CacheValue;
}

impl<T, E> OkNotStored<T> for &Returns<Result<T, E>> {
    fn how<H: Default>(&self) -> H
    where
        T: CacheValue,
    {
        H::default()
    }
}

/// Picked for any other return type that cannot be stored: the error, at the attribute.
pub trait NotStored<R> {
    /// Never compiles: reached only when `R` is not a [`CacheValue`].
    fn how<H: Default>(&self) -> H
    where
        R: CacheValue;
}

impl<R> NotStored<R> for Returns<R> {
    fn how<H: Default>(&self) -> H
    where
        R: CacheValue,
    {
        H::default()
    }
}

/// One part of a cache key: an argument (when no `key = ...` is given) or an element of `key = ...`,
/// checked by method resolution on `(&&&&&&KeyPart::of(&part)).part()(part)`, the first that
/// applies:
///
/// 1. [`PartIsKey`]: a part that can be a key ([`CacheKey`]) is passed through;
/// 2. [`PartNotSync`], [`PartNotSend`], [`PartNotClone`], [`PartNotHash`], [`PartNotEq`]: the
///    first of `Eq`, `Hash`, `Clone`, `Send`, `Sync` (from last to first) the part lacks.
///
/// Each of 2 is one compile error of ours, at the part, and gives a type nothing names, so rustc
/// adds no errors about the rest of the key (a tuple of such parts, or a struct that is not
/// `Hash`, used to be one raw error per missing trait and part, at the attribute).
pub struct KeyPart<K>(PhantomData<fn() -> K>);

impl<K> KeyPart<K> {
    /// The marker of `part`'s type.
    #[inline(always)]
    pub fn of(_part: &K) -> Self {
        KeyPart(PhantomData)
    }
}

/// A part that can be a key.
pub trait PartIsKey<K> {
    /// What makes the part: `part` itself.
    fn part(&self) -> fn(K) -> K;
}

impl<K: CacheKey> PartIsKey<K> for &&&&&KeyPart<K> {
    #[inline(always)]
    fn part(&self) -> fn(K) -> K {
        same
    }
}

#[inline(always)]
fn same<K>(part: K) -> K {
    part
}

macro_rules! not_a_part {
    ($trait:ident for [$($refs:tt)*] where K: $($has:path)|* ; lacks $check:ident: $bound:path, $what:literal, $message:literal) => {
        #[doc = concat!("A part of the cache key that lacks `", $what, "`.")]
        #[diagnostic::on_unimplemented(
            message = $message,
            label = "part of the `#[cached]` key",
            note = "a cache key must be `Hash + Eq + Clone + Send + Sync + 'static`",
            note = "choose the key with `#[cached(key = ...)]`, e.g. `key = query.to_string()` (a float: `x.to_bits()`)"
        )]
        pub trait $check {}

        impl<K: $bound> $check for K {}

        #[doc = concat!("Picked for a part that lacks `", $what, "` (and has what the parts before need).")]
        pub trait $trait<K> {
            /// Never compiles: reached only when `K` fails the check.
            fn part<H: Default>(&self) -> H
            where
                K: $check;
        }

        impl<K $(: $has)*> $trait<K> for $($refs)* KeyPart<K> {
            fn part<H: Default>(&self) -> H
            where
                K: $check,
            {
                H::default()
            }
        }
    };
}

/// `Hash + Eq + Clone + Send`: what a part that lacks only `Sync` has.
pub trait KeyButSync: Hash + Eq + Clone + Send {}
impl<K: Hash + Eq + Clone + Send> KeyButSync for K {}

/// `Hash + Eq + Clone`.
pub trait KeyButSend: Hash + Eq + Clone {}
impl<K: Hash + Eq + Clone> KeyButSend for K {}

/// `Hash + Eq`.
pub trait KeyButClone: Hash + Eq {}
impl<K: Hash + Eq> KeyButClone for K {}

not_a_part!(PartNotSync for [&&&&] where K: KeyButSync; lacks KeySync: Sync, "Sync",
    "`{Self}` cannot be part of the cache key: it is not `Sync`");
not_a_part!(PartNotSend for [&&&] where K: KeyButSend; lacks KeySend: Send, "Send",
    "`{Self}` cannot be part of the cache key: it is not `Send`");
not_a_part!(PartNotClone for [&&] where K: KeyButClone; lacks KeyClone: Clone, "Clone",
    "`{Self}` cannot be part of the cache key: it is not `Clone`");
not_a_part!(PartNotHash for [&] where K: Eq; lacks KeyHash: Hash, "Hash",
    "`{Self}` cannot be part of the cache key: it is not `Hash`");
not_a_part!(PartNotEq for [] where K: ; lacks KeyEq: Eq, "Eq",
    "`{Self}` cannot be part of the cache key: it is not `Eq`");

/// The cache of a function returning `Result<T, E>`: stores `Ok` values.
#[derive(Debug, Clone, Copy)]
pub struct OkValues;

/// The cache of a function returning a plain value: stores every value.
#[derive(Debug, Clone, Copy)]
pub struct Values;

impl OkValues {
    /// A hit: `key`'s value in `slot`, answered before the layers below are even made.
    #[inline]
    pub fn hit<K: CacheKey, V: CacheValue, E>(
        self,
        slot: &'static CacheSlot,
        site: Site,
        key: &K,
    ) -> Option<Result<V, E>> {
        slot.get::<K, V>(site).core.lookup(key).map(Ok)
    }

    /// After [`hit`](Self::hit) found nothing: runs `fut` (once for concurrent misses of `key`),
    /// storing its `Ok` value, except an answer a fallback below served.
    #[inline]
    pub async fn cached<K, V, E, F, U>(
        self,
        slot: &'static CacheSlot,
        site: Site,
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
            .run_missed(key, fut, &keep)
            .await
    }
}

impl Values {
    /// A hit: `key`'s value in `slot`, answered before the layers below are even made.
    #[inline]
    pub fn hit<K: CacheKey, V: CacheValue>(
        self,
        slot: &'static CacheSlot,
        site: Site,
        key: &K,
    ) -> Option<V> {
        slot.get::<K, V>(site).core.lookup(key)
    }

    /// After [`hit`](Self::hit) found nothing: runs `fut` (once for concurrent misses of `key`),
    /// storing its value, except an answer a fallback below served.
    #[inline]
    pub async fn cached<K, V, F, U>(
        self,
        slot: &'static CacheSlot,
        site: Site,
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
            .run_missed(key, fut, &keep)
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
        slot: &'static CacheSlot,
        site: Site,
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
        slot: &'static CacheSlot,
        site: Site,
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
