//! What `#[rate_limit]` expands into: a `static` slot holding the settings and the limiter, and
//! the call of the layer below once it has its permits.

use std::future::Future;
use std::hash::Hash;
use std::time::Duration;

use crate::call::{Convert, StackCtx};
use crate::rate_limit::{RateLimitConfig, RateLimiter};
use crate::site::Site;
use crate::slot::Slot;

/// A `static` holding one rate-limit layer.
#[derive(Debug)]
pub struct RateLimitSlot {
    name: Option<&'static str>,
    config: RateLimitConfig,
    slot: Slot<RateLimiter>,
}

impl RateLimitSlot {
    /// A slot with settings the macro checked; `name` when the attribute names the limiter.
    pub const fn new(rate: u32, per: Duration, burst: u32, wait: Duration) -> Self {
        RateLimitSlot {
            name: None,
            config: RateLimitConfig::checked(rate, per, burst, wait),
            slot: Slot::new(),
        }
    }

    /// Registered as `name`, one for every instantiation of the function.
    pub const fn named(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// The limiter, registered on first use. A limiter named explicitly is one for every
    /// instantiation of the function.
    #[inline]
    pub fn get(&'static self, site: Site) -> &'static RateLimiter {
        let instance = if self.name.is_some() {
            ""
        } else {
            site.instance()
        };
        self.slot
            .get(instance, site, |_| true, |site| self.make(&site))
    }

    #[cold]
    fn make(&self, site: &Site) -> RateLimiter {
        let name = self.name.map_or_else(|| site.name(), str::to_owned);
        let (limiter, created) = RateLimiter::shared(&name, self.config);
        if !created && limiter.config() != self.config {
            tracing::warn!(
                target: "reliability",
                rate_limit = %name,
                function = %site,
                settings = ?self.config,
                in_use = ?limiter.config(),
                "another function made the rate limiter of this name with other settings; this function shares it, with the settings in use"
            );
        }
        limiter
    }
}

/// The permits a call takes: the value of `cost = ...`.
#[diagnostic::on_unimplemented(
    message = "`cost` must be an unsigned integer (the permits this call takes), not `{Self}`",
    label = "the `cost` of this call",
    note = "e.g. `cost = prompt.len() as u32 / 4`, an estimate of the tokens"
)]
pub trait Cost {
    /// The permits, saturating at `u32::MAX`.
    fn permits(self) -> u32;
}

macro_rules! cost {
    ($($t:ty),*) => {$(
        impl Cost for $t {
            #[inline(always)]
            fn permits(self) -> u32 {
                u32::try_from(self).unwrap_or(u32::MAX)
            }
        }
    )*};
}

cost!(u8, u16, u32, u64, u128, usize);

/// The permits of a `cost = ...` value.
#[inline(always)]
pub fn cost<C: Cost>(cost: C) -> u32 {
    cost.permits()
}

/// Runs `fut` once `limiter` gave `cost` permits (from `key`'s quota when given); a call that gets
/// none in time returns the rejection without running `fut`, and tells the layers above that it
/// shed the load (a breaker does not count it; a retry waits the `retry_after` it reports).
#[inline]
pub async fn rate_limit<T, E, F, K>(
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
    let admitted = match key {
        Some(key) => limiter.acquire_key(key, cost).await,
        None => limiter.acquire(cost).await,
    };
    match admitted {
        Ok(()) => fut.await,
        Err(rejection) => {
            ctx.shed(rejection.retry_after());
            Err(convert(rejection))
        }
    }
}
