//! Shared state across replicas (feature `redis`): circuit-breaker openings, a second cache tier
//! and rate-limit quotas that every replica of a service sees, kept in Redis.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // At start-up: an `Err` saying why when the server cannot be reached (never a panic).
//! let store = reliability::shared::RedisStore::connect("redis://127.0.0.1:6379").await?;
//! reliability::shared::install(store)?; // once per process; a second install is an `Err`
//! # Ok(()) }
//! ```
//!
//! Attributes opt in with the flag `shared` (`#[circuit_breaker(name = "gpt4", shared)]`,
//! `#[cached(ttl = 3600, shared)]`, `#[rate_limit(rate = 500, per = "1m", shared)]`); they use the
//! store [`install`]ed in the process, and work locally while there is none. The same policies
//! without macros, each over a local policy and with an explicit store:
//!
//! | type | shares | local part |
//! |---|---|---|
//! | [`SharedBreaker`] | openings and isolations, seen by every replica within `sync` (1 s); one replica at a time sends half-open trials | counting of failures, the state machine |
//! | [`SharedCache`] | a second tier under `reliability:{name}:{digest}`, with the entry's TTL | the moka tier (looked up first), single flight per replica |
//! | [`SharedRateLimiter`] | one GCRA quota for all replicas, updated atomically by a Lua script | the limiter used while the store is down |
//!
//! ```no_run
//! use std::time::Duration;
//! use reliability::{Cache, CircuitBreaker, Error, RateLimiter};
//! use reliability::shared::{RedisStore, SharedBreaker, SharedCache, SharedRateLimiter};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::builder("redis://127.0.0.1:6379")
//!     .op_timeout(Duration::from_millis(50)) // the bound on every store operation (the default)
//!     .sync(Duration::from_secs(1))          // how fast openings spread (the default)
//!     .connect()
//!     .await?;
//! let breaker = SharedBreaker::new(&CircuitBreaker::builder("gpt4").build()?, &store);
//! let cache: Cache<String, String> =
//!     Cache::builder("answers").ttl(Duration::from_secs(3600)).build()?;
//! let answers = SharedCache::new(&cache, &store);
//! let limiter = RateLimiter::builder("openai", 500).per(Duration::from_secs(60)).build()?;
//! let quota = SharedRateLimiter::new(&limiter, &store);
//!
//! let answer = answers
//!     .get_or_try_insert("what is rust?".to_owned(), async {
//!         quota.acquire(1).await?;
//!         breaker.call(async { Ok::<_, Error>("a language".to_owned()) }).await
//!     })
//!     .await?;
//! # let _ = answer; Ok(()) }
//! ```
//!
//! # A store that is down or slow
//!
//! The store is advisory: it never fails or stalls a call. Every store operation is bounded by
//! [`op_timeout`](RedisStoreBuilder::op_timeout) (50 ms by default); when one fails or times out,
//! the policy uses its local state (this replica's breaker, its local cache tier, its local rate
//! limiter), the policy's `store_errors` counter moves, and a warning is logged, at most once a
//! second per store. After a failure the store is left alone for
//! [`pause_after_failure`](RedisStoreBuilder::pause_after_failure) (250 ms), so that calls do not
//! each wait for a server that is down. The connection is made again on its own.
//!
//! While the store is down, a shared rate limit is enforced by each replica alone: N replicas
//! together may then admit up to N times the rate.
//!
//! The store's URL, which may carry a password, is never logged, never in an error, and not in any
//! `Debug` output.
//!
//! # What is in Redis
//!
//! | key | value | expiry |
//! |---|---|---|
//! | `reliability:breaker:{name}` | `open` or `isolated` | the remaining cooldown; none when isolated (until `reset()`) |
//! | `reliability:breaker:{name}:trial` | the replica holding the half-open trials | [`trial_lease`](RedisStoreBuilder::trial_lease) (5 s) |
//! | `reliability:{name}:{digest}` | a cached entry: format version, serialised key, serialised value (postcard) | the cache's `ttl` |
//! | `reliability:rate:{name}` | the GCRA's theoretical arrival time, in µs of the server's clock | when the quota is whole again |
//!
//! `{digest}` is SipHash-1-3 with 128-bit output (fixed keys, so every replica computes the same)
//! of the postcard serialisation of the cache key, in hex: prompts and user data never appear in
//! key names. The entry holds the serialised key too, checked on read, so a collision is a miss,
//! never a wrong answer.

mod store;

use std::sync::OnceLock;

pub use crate::cache::shared::{SharedCache, SharedKey, SharedValue};
pub use crate::circuit_breaker::shared::SharedBreaker;
pub use crate::rate_limit::shared::SharedRateLimiter;
pub(crate) use store::Script;
pub use store::{RedisStore, RedisStoreBuilder, StoreError, StoreErrorKind};

static INSTALLED: OnceLock<RedisStore> = OnceLock::new();

/// Makes `store` the store of every policy marked `shared` in this process. Once per process: a
/// second call returns an `Err` (of kind [`StoreErrorKind::AlreadyInstalled`]) and changes nothing.
///
/// Policies marked `shared` that were used before still find it: each looks for the store until
/// there is one.
pub fn install(store: RedisStore) -> Result<(), StoreError> {
    INSTALLED.set(store).map_err(|_| {
        StoreError::new(
            StoreErrorKind::AlreadyInstalled,
            "a shared store is installed in this process already; install one once, at start-up",
        )
    })
}

/// The store [`install`]ed in this process, if any.
pub fn installed() -> Option<&'static RedisStore> {
    INSTALLED.get()
}

/// What the attributes' `shared` flag expands into (re-exported by `__private`). Not public API:
/// no semver guarantee. `#[cached(shared)]` calls `OkValues::cached_shared` /
/// `Values::cached_shared` in place of `cached`.
#[doc(hidden)]
pub mod expand {
    pub use crate::cache::shared::{SharedKey, SharedValue};
    pub use crate::circuit_breaker::shared::circuit_breaker_shared;
    pub use crate::rate_limit::shared::rate_limit_shared;
}
