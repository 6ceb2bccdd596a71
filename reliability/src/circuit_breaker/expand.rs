//! What `#[circuit_breaker]` expands into: a `static` slot holding the settings and the breaker,
//! and the call of the layer below under a permit taken at its first poll.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::call::{Convert, StackCtx};
use crate::circuit_breaker::{BreakerConfig, Caller, CircuitBreaker, Permit, SlidingWindow};
use crate::site::Site;
use crate::slot::Slot;

/// A `static` holding one circuit breaker layer.
#[derive(Debug)]
pub struct BreakerSlot {
    name: Option<&'static str>,
    config: BreakerConfig,
    slot: Slot<CircuitBreaker>,
    /// With `name = EXPR`: the breakers of the names seen lately, kept alive here (the registry
    /// holds them weakly), at most 1 024 of them.
    named_by: OnceLock<moka::sync::Cache<Arc<str>, CircuitBreaker, foldhash::fast::RandomState>>,
}

/// The breakers a `name = EXPR` layer keeps alive: the names used least recently beyond this many
/// are let go (their state is lost once no call holds them).
pub(crate) const NAMED_BY_CAPACITY: u64 = 1_024;

/// The consecutive rule's settings, checked by the macro.
pub const fn consecutive_breaker(
    failure_threshold: u32,
    success_threshold: u32,
    cooldown: Duration,
) -> BreakerConfig {
    BreakerConfig::consecutive(failure_threshold, success_threshold, cooldown)
}

/// The rate rule's settings, checked by the macro; `None` takes the default (`min_calls`: the
/// smaller of 100 and a count window's size; `slow_call_rate`: `failure_rate`).
pub const fn rate_breaker(
    failure_rate: f64,
    window: SlidingWindow,
    min_calls: Option<u32>,
    slow_call: Option<Duration>,
    slow_call_rate: Option<f64>,
    success_threshold: u32,
    cooldown: Duration,
) -> BreakerConfig {
    BreakerConfig::rate(
        failure_rate,
        window,
        min_calls,
        slow_call,
        slow_call_rate,
        success_threshold,
        cooldown,
    )
}

impl BreakerSlot {
    /// A slot for a breaker shared under `name`, or of its own (under the default name, one per
    /// instantiation of the function) for `None`; settings checked by the macro.
    pub const fn new(config: BreakerConfig) -> Self {
        BreakerSlot {
            name: None,
            config,
            slot: Slot::new(),
            named_by: OnceLock::new(),
        }
    }

    /// Registered as `name`, one for every instantiation of the function.
    pub const fn named(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// The breaker, registered on first use.
    #[inline]
    pub fn get(&'static self, site: Site) -> &'static CircuitBreaker {
        // A breaker named explicitly is one for every instantiation: the first one made is it,
        // whichever instantiation asks.
        let instance = if self.name.is_some() {
            if let Some(breaker) = self.slot.first() {
                return breaker;
            }
            ""
        } else {
            site.instance()
        };
        self.slot
            .get(instance, site, |_| true, |site| self.make(&site))
    }

    /// With `name = EXPR`: the breaker registered as `name`, one per name (made on its first call,
    /// kept while it is among the 1 024 names used most recently).
    #[inline]
    pub fn named_by(&self, site: &Site, name: &str) -> CircuitBreaker {
        let breakers = self.named_by.get_or_init(|| {
            moka::sync::Cache::builder()
                .max_capacity(NAMED_BY_CAPACITY)
                .build_with_hasher(foldhash::fast::RandomState::default())
        });
        if let Some(breaker) = breakers.get(name) {
            return breaker;
        }
        let breaker = self.make_named(site, name.to_owned());
        breakers.insert(name.into(), breaker.clone());
        breaker
    }

    #[cold]
    fn make(&self, site: &Site) -> CircuitBreaker {
        let name = match self.name {
            Some(name) => name.to_owned(),
            None => site.name(),
        };
        self.make_named(site, name)
    }

    #[cold]
    fn make_named(&self, site: &Site, name: String) -> CircuitBreaker {
        let (breaker, created) = CircuitBreaker::shared(&name, self.config);
        if !created && breaker.config() != self.config {
            tracing::warn!(
                target: "reliability",
                breaker = %name,
                function = %site,
                settings = ?self.config,
                in_use = ?breaker.config(),
                "another function made the circuit breaker of this name with other settings; this function shares it, with the settings in use"
            );
        }
        breaker
    }
}

/// Runs `fut` through `breaker`, counting errors for which `counts` is true as failures. The
/// breaker is asked at the first poll: a future made but never polled (a cache hit above) is not a
/// call of the breaker.
#[inline]
pub fn circuit_breaker<'a, T, E, F, P>(
    breaker: &'a CircuitBreaker,
    site: &'a Site,
    ctx: &'a StackCtx,
    counts: &'a P,
    convert: Convert<E>,
    fut: F,
) -> BreakerCall<'a, T, E, F, P>
where
    F: Future<Output = Result<T, E>>,
    P: Fn(&E) -> bool,
{
    BreakerCall {
        fut,
        breaker,
        site,
        ctx,
        permit: None,
        asked: false,
        counts,
        convert,
        out: PhantomData,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`circuit_breaker`]: at its first poll, the breaker's permit or rejection;
    /// then the layer below, polled in place under the permit.
    pub struct BreakerCall<'a, T, E, F, P> {
        #[pin]
        fut: F,
        breaker: &'a CircuitBreaker,
        site: &'a Site,
        ctx: &'a StackCtx,
        permit: Option<Permit<'a>>,
        asked: bool,
        counts: &'a P,
        convert: Convert<E>,
        out: PhantomData<fn() -> T>,
    }
}

impl<T, E, F, P> Future for BreakerCall<'_, T, E, F, P>
where
    F: Future<Output = Result<T, E>>,
    P: Fn(&E) -> bool,
{
    type Output = Result<T, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let caller = || Caller {
            function: Some(*this.site),
            attempt: this.ctx.attempt(),
        };
        if !*this.asked {
            *this.asked = true;
            if let Err(rejection) = this.breaker.acquire_into(&caller(), this.permit) {
                this.ctx.rejected.store(true, Ordering::Relaxed);
                return Poll::Ready(Err((this.convert)(rejection)));
            }
        }
        // Taken apart before the outcome is recorded and rebuilt from its fields, not kept whole
        // across the recording and moved (see the module `call`). A permit dropped unrecorded
        // (cancelled, or polled again) counts as neither; so does a rejection by a rate limit or
        // bulkhead below: load shedding, not a failure of the service.
        match std::task::ready!(this.fut.poll(cx)) {
            Ok(value) => {
                if let Some(permit) = this.permit {
                    permit.success(&caller());
                    *this.permit = None;
                }
                Poll::Ready(Ok(value))
            }
            Err(error) => {
                if let Some(permit) = this.permit {
                    if !this.ctx.shed.load(Ordering::Relaxed) {
                        permit.settle_error(&error, *this.counts, &caller());
                    }
                    *this.permit = None;
                }
                Poll::Ready(Err(error))
            }
        }
    }
}
