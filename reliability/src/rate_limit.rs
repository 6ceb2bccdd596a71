//! Rate limit: stay under a quota of `rate` permits per `per`, with GCRA (the `governor` crate)
//! on the tokio clock; one limiter, or one per key with idle keys dropped.

mod clock;

use std::hash::{BuildHasher, Hash};
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use governor::Quota;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use tokio::time::Instant;

use crate::error::{ConfigError, Error};
use crate::registry::{Named, Registry, registry};
use crate::stats::{Field, PolicyKind, Stats};
use clock::{TokioClock, TokioInstant};

pub(crate) mod expand;
#[cfg(feature = "redis")]
pub(crate) mod shared;

/// One GCRA state: a single atomic word.
type Gcra =
    governor::RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>;

/// The longest a spent burst may take to refill: GCRA's state counts nanoseconds in a `u64`
/// (584 years), and this leaves room for the process's uptime.
const MAX_REFILL: Duration = Duration::from_secs(86_400 * 365 * 100);

/// The settings of a [`RateLimiter`]; see [`RateLimiterBuilder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    rate: u32,
    per: Duration,
    burst: u32,
    wait: Duration,
    max_keys: u64,
}

impl RateLimitConfig {
    /// Keys kept at most by a keyed limiter, unless set otherwise.
    pub const DEFAULT_MAX_KEYS: u64 = 100_000;

    /// Settings already validated by the attribute macro: `rate` >= 1, `per` > 0 and at least
    /// `rate` nanoseconds, `burst` >= 1, `per / rate × burst` at most 100 years.
    pub(crate) const fn checked(rate: u32, per: Duration, burst: u32, wait: Duration) -> Self {
        RateLimitConfig {
            rate,
            per,
            burst,
            wait,
            max_keys: Self::DEFAULT_MAX_KEYS,
        }
    }

    /// Permits per [`per`](Self::per).
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The period of [`rate`](Self::rate).
    pub fn per(&self) -> Duration {
        self.per
    }

    /// Permits that may be taken at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// How long a call may wait for its permits.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Keys a keyed limiter keeps at most.
    pub fn max_keys(&self) -> u64 {
        self.max_keys
    }

    /// The time one permit takes to come back: `per / rate`.
    pub fn interval(&self) -> Duration {
        // `rate` >= 1, so this cannot divide by zero.
        self.per / self.rate.max(1)
    }

    /// The time a spent burst takes to come back whole: after a key has been idle this long, its
    /// state is the same as a new key's, so dropping it loses nothing.
    pub fn refill(&self) -> Duration {
        self.interval().saturating_mul(self.burst)
    }

    fn quota(&self) -> Quota {
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        // A zero interval cannot pass validation; one nanosecond keeps `with_period` total.
        Quota::with_period(self.interval().max(Duration::from_nanos(1)))
            .unwrap_or_else(|| unreachable!("the period is at least one nanosecond"))
            .allow_burst(burst)
    }
}

/// Builds a [`RateLimiter`]; [`build`](Self::build) validates every setting.
#[derive(Debug, Clone)]
#[must_use]
pub struct RateLimiterBuilder {
    name: String,
    config: RateLimitConfig,
    burst: Option<u32>,
}

impl RateLimiterBuilder {
    /// The period of the rate (> 0; default 1 s).
    pub fn per(mut self, per: Duration) -> Self {
        self.config.per = per;
        self
    }

    /// Permits that may be taken at once (>= 1; default the rate).
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// How long a call may wait for its permits (default zero: a call with no free permit is
    /// rejected at once).
    pub fn wait(mut self, wait: Duration) -> Self {
        self.config.wait = wait;
        self
    }

    /// Keys a keyed limiter keeps at most (>= 1; default 100 000).
    pub fn max_keys(mut self, max_keys: u64) -> Self {
        self.config.max_keys = max_keys;
        self
    }

    /// Validates the settings and returns the limiter registered under the name, made with these
    /// settings if there was none yet (a name is one limiter).
    pub fn build(self) -> Result<RateLimiter, ConfigError> {
        let mut c = self.config;
        c.burst = self.burst.unwrap_or(c.rate);
        if c.rate == 0 {
            return Err(ConfigError::new("rate", "must be at least 1"));
        }
        if c.per.is_zero() {
            return Err(ConfigError::new("per", "must be longer than zero"));
        }
        if c.interval().is_zero() {
            return Err(ConfigError::new(
                "rate",
                format!(
                    "{} permits per {:?} is more than one a nanosecond",
                    c.rate, c.per
                ),
            ));
        }
        if c.burst == 0 {
            return Err(ConfigError::new("burst", "must be at least 1"));
        }
        if c.refill() > MAX_REFILL {
            return Err(ConfigError::new(
                "per",
                format!(
                    "a burst of {} at {} per {:?} takes longer than 100 years to refill",
                    c.burst, c.rate, c.per
                ),
            ));
        }
        if c.max_keys == 0 {
            return Err(ConfigError::new("max_keys", "must be at least 1"));
        }
        let (limiter, created) = RateLimiter::shared(&self.name, c);
        if !created && limiter.config() != c {
            return Err(ConfigError::new(
                "name",
                format!(
                    "a rate limiter named `{}` exists already with other settings ({:?}); give this one another name, or the same settings",
                    self.name,
                    limiter.config()
                ),
            ));
        }
        Ok(limiter)
    }
}

/// A named rate limiter: GCRA (the `governor` crate) on the tokio clock, no background task.
///
/// | setting | meaning | default |
/// |---|---|---|
/// | `rate` ([`builder`](Self::builder)) | permits per `per` (>= 1) | required |
/// | [`per`](RateLimiterBuilder::per) | the period of `rate` | 1 s |
/// | [`burst`](RateLimiterBuilder::burst) | permits that may be taken at once | `rate` |
/// | [`wait`](RateLimiterBuilder::wait) | how long a call may wait for its permits; zero rejects at once | 0 |
/// | [`max_keys`](RateLimiterBuilder::max_keys) | keys a keyed limiter keeps at most | 100 000 |
/// | `cost` (per call: [`acquire`](Self::acquire)) | permits the call takes | 1 |
/// | `key` (per call: [`acquire_key`](Self::acquire_key)) | one quota per key (a tenant, an API key) | one quota |
///
/// A call that gets no permit in time is rejected with [`Error::RateLimited`], whose
/// `retry_after` says when its permits will be free. A waiting call that is dropped (cancelled)
/// takes no permit. A call asking for more permits than the burst can never be admitted: it is
/// rejected at once, with a warning event, never left waiting. A waiting call sleeps until the
/// instant GCRA names for its permits and asks again; waiters are not served in arrival order, so
/// one that finds its permits taken waits for the next ones, within its `wait`.
///
/// Limiters are shared by name: every builder, attribute and [`registry`](crate::Registry::rate_limiter)
/// lookup of one name gives the same limiter (made with the settings of the first).
///
/// Keys: [`acquire_key`](Self::acquire_key) keeps one GCRA state per key, identified by a 64-bit
/// hash of the key under a random seed. Memory stays bounded: at most
/// [`max_keys`](RateLimitConfig::max_keys) keys are kept (a few hundred bytes each), and a key
/// idle for [`refill`](RateLimitConfig::refill) (the time a spent burst takes to come back) is
/// dropped; it comes back with a full burst, which is what it would have had. When more keys than
/// `max_keys` are active at once, the least recently used are dropped early and start afresh.
/// (Idle time is measured by the key cache's own clock, the system's, while permits follow the
/// tokio clock: under a paused tokio clock a key can be dropped while tokio time stands still.)
///
/// ```
/// use std::time::Duration;
/// use reliability::{Error, RateLimiter};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let limiter = RateLimiter::builder("doc.rate_limit", 2).build().unwrap();
/// assert_eq!(limiter.acquire(1).await, Ok(()));
/// assert_eq!(limiter.acquire(1).await, Ok(()));
/// // The burst of 2 is spent; one permit comes back every 500 ms.
/// let rejected = limiter.acquire(1).await.unwrap_err();
/// assert_eq!(rejected.retry_after(), Some(Duration::from_millis(500)));
///
/// // Per key: each tenant has its own quota.
/// assert_eq!(limiter.acquire_key("tenant-a", 2).await, Ok(()));
/// assert_eq!(limiter.acquire_key("tenant-b", 2).await, Ok(()));
/// assert!(limiter.acquire_key("tenant-a", 1).await.unwrap_err().is_rate_limited());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    config: RateLimitConfig,
    stats: Arc<Stats>,
    /// The state of calls without a key.
    single: Gcra,
    /// The states of keyed calls, made on the first keyed call.
    keys: OnceLock<moka::sync::Cache<u64, Arc<Gcra>>>,
    /// The seed of the key hashes.
    hasher: foldhash::fast::RandomState,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What a GCRA state says about a call now.
enum Check {
    /// Admitted: its permits are taken.
    Now,
    /// Not before this instant.
    At(Instant),
    /// More permits than the burst: never.
    Never,
}

impl RateLimiter {
    /// Starts the settings of a limiter of `rate` permits per second (change the period with
    /// [`per`](RateLimiterBuilder::per)) registered as `name`.
    pub fn builder(name: impl Into<String>, rate: u32) -> RateLimiterBuilder {
        RateLimiterBuilder {
            name: name.into(),
            config: RateLimitConfig {
                rate,
                per: Duration::from_secs(1),
                burst: rate,
                wait: Duration::ZERO,
                max_keys: RateLimitConfig::DEFAULT_MAX_KEYS,
            },
            burst: None,
        }
    }

    /// The limiter registered as `name`, made with `config` if there is none; the flag is `true`
    /// when this call made it.
    pub(crate) fn shared(name: &str, config: RateLimitConfig) -> (Self, bool) {
        let (inner, created) = registry().shared(PolicyKind::RateLimit, name, |stats| Inner {
            name: name.into(),
            config,
            stats,
            single: Gcra::direct_with_clock(config.quota(), TokioClock),
            keys: OnceLock::new(),
            hasher: foldhash::fast::RandomState::default(),
        });
        (RateLimiter { inner }, created)
    }

    /// The registry name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The settings.
    pub fn config(&self) -> RateLimitConfig {
        self.inner.config
    }

    /// Takes `cost` permits from the limiter's quota, waiting for them up to the limiter's
    /// [`wait`](RateLimitConfig::wait); `Err(Error::RateLimited { .. })` when they are not free
    /// in time. A cost of zero is admitted at once.
    pub async fn acquire(&self, cost: u32) -> Result<(), Error> {
        self.inner.acquire(None, cost).await
    }

    /// Like [`acquire`](Self::acquire), from the quota of `key` (each key has one of its own).
    /// The key is hashed at once: the future does not borrow it.
    pub fn acquire_key<K: Hash + ?Sized>(
        &self,
        key: &K,
        cost: u32,
    ) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        let key = self.inner.hasher.hash_one(key);
        self.inner.acquire(Some(key), cost)
    }

    /// Runs `fut` once it has one permit; a rejected call returns `Err(E::from(error))` without
    /// running it.
    pub async fn run<T, E, F>(&self, fut: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: From<Error>,
    {
        self.acquire(1).await?;
        fut.await
    }

    /// Keys a keyed limiter keeps now, after dropping those due (idle or over `max_keys`).
    pub fn key_count(&self) -> u64 {
        match self.inner.keys.get() {
            Some(keys) => {
                keys.run_pending_tasks();
                keys.entry_count()
            }
            None => 0,
        }
    }
}

impl Inner {
    #[inline]
    async fn acquire(&self, key: Option<u64>, cost: u32) -> Result<(), Error> {
        self.stats.add(Field::Calls);
        let Some(cost) = NonZeroU32::new(cost) else {
            return Ok(());
        };
        // Checked here, before GCRA multiplies the cost by the interval.
        if cost.get() > self.config.burst {
            return Err(self.too_costly(cost));
        }
        match self.check(key, cost) {
            Check::Now => Ok(()),
            Check::At(at) => self.wait_for(key, cost, at).await,
            Check::Never => Err(self.too_costly(cost)),
        }
    }

    /// Asks the state of `key` for `cost` permits now.
    #[inline]
    fn check(&self, key: Option<u64>, cost: NonZeroU32) -> Check {
        let outcome = match key {
            None => self.single.check_n(cost),
            Some(key) => self.keyed(key).check_n(cost),
        };
        match outcome {
            Ok(Ok(())) => Check::Now,
            Ok(Err(not_until)) => Check::At(not_until.earliest_possible().0),
            Err(_) => Check::Never,
        }
    }

    /// The state of `key`, made with a full burst if it is not kept.
    fn keyed(&self, key: u64) -> Arc<Gcra> {
        let keys = self.keys.get_or_init(|| {
            moka::sync::Cache::builder()
                .max_capacity(self.config.max_keys)
                .time_to_idle(
                    self.config
                        .refill()
                        .clamp(Duration::from_nanos(1), MAX_REFILL),
                )
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .build()
        });
        // A plain read first: moka's `get_with` allocates even when the key is there.
        if let Some(state) = keys.get(&key) {
            return state;
        }
        let quota = self.config.quota();
        keys.get_with(key, || Arc::new(Gcra::direct_with_clock(quota, TokioClock)))
    }

    /// Waits until the permits are free (GCRA names the instant), within the call's wait. Checks
    /// again on waking, since another caller may have taken them: a waiter takes no permit until
    /// it is admitted, so a waiter dropped while it waits takes none.
    #[cold]
    async fn wait_for(
        &self,
        key: Option<u64>,
        cost: NonZeroU32,
        mut at: Instant,
    ) -> Result<(), Error> {
        let now = Instant::now();
        // `None`: a wait too long to add to an instant, so no limit.
        let deadline = now.checked_add(self.config.wait);
        if deadline.is_some_and(|deadline| at > deadline) {
            return Err(self.rejected(at.saturating_duration_since(now)));
        }
        self.stats.add(Field::Waited);
        tracing::debug!(target: "reliability", limiter = %self.name, cost = cost.get(), wait = ?at.saturating_duration_since(now), "waiting for a permit");
        loop {
            tokio::time::sleep_until(at).await;
            match self.check(key, cost) {
                Check::Now => return Ok(()),
                Check::At(next) if deadline.is_none_or(|deadline| next <= deadline) => at = next,
                Check::At(next) => {
                    return Err(self.rejected(next.saturating_duration_since(Instant::now())));
                }
                Check::Never => return Err(self.too_costly(cost)),
            }
        }
    }

    #[cold]
    fn rejected(&self, retry_after: Duration) -> Error {
        self.stats.add(Field::Rejections);
        tracing::debug!(target: "reliability", limiter = %self.name, ?retry_after, "rate limited");
        Error::RateLimited {
            name: self.name.clone(),
            retry_after,
        }
    }

    #[cold]
    fn too_costly(&self, cost: NonZeroU32) -> Error {
        self.stats.add(Field::Rejections);
        tracing::warn!(
            target: "reliability",
            limiter = %self.name,
            cost = cost.get(),
            burst = self.config.burst,
            "rate limited: the call asks for more permits than the burst, so it can never be admitted"
        );
        Error::RateLimited {
            name: self.name.clone(),
            retry_after: Duration::MAX,
        }
    }
}

impl Named for Inner {
    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }

    /// Permits already taken stay taken (the quota is the service's, and it has seen them); the
    /// keyed limiters are dropped, so every key starts with a full burst.
    fn reset(&self) {
        if let Some(keys) = self.keys.get() {
            keys.invalidate_all();
        }
    }
}

impl Registry {
    /// The rate limiter registered under `name`, or `None` until one of that name has been used
    /// (or after every handle to one built at run time was dropped).
    pub fn rate_limiter(&self, name: &str) -> Option<RateLimiter> {
        self.find::<Inner>(PolicyKind::RateLimit, name)
            .map(|inner| RateLimiter { inner })
    }
}
