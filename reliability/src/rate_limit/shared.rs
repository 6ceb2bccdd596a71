//! One rate-limit quota for every replica: a GCRA kept in Redis, updated atomically by a Lua
//! script on the server's clock.

use std::future::Future;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

use siphasher::sip128::{Hasher128, SipHasher13};
use tokio::time::Instant;

use super::{Check, Inner, RateLimiter};
use crate::call::{Convert, StackCtx};
use crate::error::Error;
use crate::shared::{RedisStore, Script, installed};
use crate::stats::Field;

/// GCRA: `KEYS[1]` holds the theoretical arrival time (µs on the server's clock).
/// `ARGV`: the emission interval (µs, may be fractional), the burst, the cost. Returns 0 when the
/// permits are taken, else the µs until they would be free.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then tat = math.max(tonumber(stored), now) end
local new_tat = tat + interval * cost
local allow_at = new_tat - interval * burst
if allow_at > now then
  return math.max(1, math.ceil(allow_at - now))
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return 0
";

fn script() -> &'static Script {
    static SCRIPT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(GCRA))
}

/// The fixed keys of a key's digest: every replica computes the same.
const KEY_DIGEST: (u64, u64) = (0x7261_7465_3a6b_6579, 0x7265_6c69_6162_6c65);

/// A [`RateLimiter`] whose quota is one for every replica: a GCRA in a [`RedisStore`] under
/// `reliability:rate:{name}`, updated atomically by a Lua script (`EVALSHA`, falling back to
/// `EVAL` when the server lacks it) on the server's clock, so the replicas' clocks do not matter.
/// N replicas together stay within `rate` per `per`, with the limiter's `burst`.
///
/// With the store down or slow (each operation is bounded, 50 ms by default), each replica uses
/// its local limiter (the one given, with the same settings), and `store_errors` counts it: **the
/// quota may then be exceeded up to N times** for N replicas. A call that waits for permits
/// (`wait`) sleeps on the tokio clock for the time the script names, and asks again.
///
/// ```no_run
/// use reliability::RateLimiter;
/// use reliability::shared::{RedisStore, SharedRateLimiter};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// // An API key's 500 requests a minute, for the whole fleet.
/// let limiter = RateLimiter::builder("openai", 500)
///     .per(std::time::Duration::from_secs(60))
///     .build()?;
/// let quota = SharedRateLimiter::new(&limiter, &store);
/// quota.acquire(1).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct SharedRateLimiter {
    limiter: RateLimiter,
    store: RedisStore,
    /// `reliability:rate:{name}`.
    key: String,
}

impl SharedRateLimiter {
    /// `limiter`'s quota kept in `store`, under the limiter's name.
    pub fn new(limiter: &RateLimiter, store: &RedisStore) -> Self {
        Self::with_name(limiter, store, limiter.name())
    }

    /// `limiter`'s quota kept in `store` under `name`: limiters of every replica with one name
    /// share one quota. (Several local limiters in one process can so play replicas, as in tests.)
    pub fn with_name(limiter: &RateLimiter, store: &RedisStore, name: &str) -> Self {
        SharedRateLimiter {
            limiter: limiter.clone(),
            store: store.clone(),
            key: format!("reliability:rate:{name}"),
        }
    }

    /// The local limiter, used while the store is down.
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// Takes `cost` permits from the shared quota, waiting for them up to the limiter's `wait`;
    /// `Err(Error::RateLimited { .. })` when they are not free in time. A cost of zero is admitted
    /// at once.
    pub async fn acquire(&self, cost: u32) -> Result<(), Error> {
        self.limiter
            .inner
            .acquire_shared(&self.store, &self.key, None, cost)
            .await
    }

    /// Like [`acquire`](Self::acquire), from the shared quota of `key` (each key has one of its
    /// own, under `reliability:rate:{name}:{digest}`, where `{digest}` is a 128-bit SipHash of the
    /// key's `Hash`: the same on every replica of one build).
    pub async fn acquire_key<K: Hash + ?Sized>(&self, key: &K, cost: u32) -> Result<(), Error> {
        let digest = key_digest(key);
        self.limiter
            .inner
            .acquire_shared(&self.store, &self.key, Some(digest), cost)
            .await
    }
}

/// The digest of a key's `Hash`, stable across replicas (fixed keys).
fn key_digest<K: Hash + ?Sized>(key: &K) -> u128 {
    let mut hasher = SipHasher13::new_with_keys(KEY_DIGEST.0, KEY_DIGEST.1);
    key.hash(&mut hasher);
    hasher.finish128().as_u128()
}

impl Inner {
    /// [`acquire`](Inner::acquire) from the store's quota `key` (and sub-key `sub`); the local
    /// state while the store is down.
    async fn acquire_shared(
        &self,
        store: &RedisStore,
        key: &str,
        sub: Option<u128>,
        cost: u32,
    ) -> Result<(), Error> {
        let Some(permits) = NonZeroU32::new(cost) else {
            return self.acquire(None, cost).await; // admitted at once, and counted
        };
        if cost > self.config.burst {
            return self.acquire(None, cost).await; // never admitted: rejected, and counted
        }
        self.stats.add(Field::Calls);
        let name = match sub {
            Some(digest) => format!("{key}:{digest:032x}"),
            None => key.to_owned(),
        };
        let interval_us = self.config.interval().as_nanos() as f64 / 1000.0;
        let deadline = Instant::now().checked_add(self.config.wait);
        let mut waited = false;
        loop {
            let reply: Option<i64> = store
                .eval(
                    &self.stats,
                    "take permits",
                    script(),
                    &[&name],
                    &[&format!("{interval_us:.3}"), &self.config.burst, &cost],
                )
                .await;
            let Some(reply) = reply else {
                // The store is down: this replica's own limiter decides.
                let local = sub.map(|digest| digest as u64);
                return match self.check(local, permits) {
                    Check::Now => Ok(()),
                    Check::At(at) => self.wait_for(local, permits, at).await,
                    Check::Never => Err(self.too_costly(permits)),
                };
            };
            if reply <= 0 {
                return Ok(());
            }
            let retry_after = Duration::from_micros(reply as u64);
            let at = Instant::now() + retry_after;
            if deadline.is_some_and(|deadline| at > deadline) {
                return Err(self.rejected(retry_after));
            }
            if !waited {
                waited = true;
                self.stats.add(Field::Waited);
            }
            tokio::time::sleep_until(at).await;
        }
    }
}

/// What `#[rate_limit(shared)]` expands into: [`rate_limit`](super::expand::rate_limit) from the
/// quota in the [installed](crate::shared::install) store, once there is one (before, the local
/// limiter's).
pub async fn rate_limit_shared<T, E, F, K>(
    limiter: &RateLimiter,
    ctx: &StackCtx,
    convert: Convert<E>,
    key: Option<&K>,
    cost: u32,
    fut: F,
) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    K: Hash + ?Sized,
{
    let Some(store) = installed() else {
        return super::expand::rate_limit(limiter, ctx, convert, key, cost, fut).await;
    };
    let name = format!("reliability:rate:{}", limiter.name());
    let admitted = limiter
        .inner
        .acquire_shared(store, &name, key.map(key_digest), cost)
        .await;
    match admitted {
        Ok(()) => fut.await,
        Err(rejection) => {
            ctx.shed(rejection.retry_after());
            Err(convert(rejection))
        }
    }
}
