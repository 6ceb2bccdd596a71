//! A circuit breaker shared by replicas through a [`RedisStore`]: openings and isolations spread,
//! counting stays local, and one replica at a time sends half-open trials.
//!
//! Design: one small task per shared breaker (spawned on the first call, on the caller's tokio
//! runtime, and again if that runtime has gone) publishes the breaker's local transitions at once
//! and reads the store's state every `sync`. A call never waits for it: on the closed path a shared
//! breaker costs what an unshared one does, plus one relaxed load (is the task running?). Only a
//! call that would be a half-open trial asks the store, once, for the trial lease (bounded).

use std::future::Future;
use std::sync::Arc;
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering as StdOrdering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::core::nanos;
use super::{CLOSED, Caller, CircuitBreaker, CircuitState, ISOLATED, Inner, OPEN, STATE_MASK};
use crate::call::{Convert, StackCtx};
use crate::error::Error;
use crate::shared::{RedisStore, Script, installed};
use crate::site::Site;
use crate::stats::Field;
use crate::sync::Ordering;

/// A transition of the local breaker, for the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Moved(CircuitState),
    Isolated,
    Reset,
}

const NONE: u8 = 0;
const OPENED: u8 = 1;
const ISOLATE: u8 = 2;
const CLOSE: u8 = 3;
const RESET: u8 = 4;

/// Publishes a local transition: `open` (with its remaining cooldown, never shortening a longer one
/// in the store, never over an isolation), `isolate`, `reset` (clears the state and the lease), or
/// `closed`; each but `reset` then releases this replica's trial lease.
const PUBLISH: &str = r"
local function release()
  if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
end
local op = ARGV[1]
if op == 'open' then
  if redis.call('GET', KEYS[1]) ~= 'isolated' then
    if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
      redis.call('SET', KEYS[1], 'open', 'PX', ARGV[3])
    end
  end
  release()
elseif op == 'isolate' then
  redis.call('SET', KEYS[1], 'isolated')
  release()
elseif op == 'reset' then
  redis.call('DEL', KEYS[1], KEYS[2])
else
  release()
end
return 1
";

/// Asks for the right to send trial calls: `{0, 0}` granted (or already this replica's, renewed);
/// `{1, ms}` open elsewhere for `ms`; `{2, 0}` isolated; `{3, ms}` another replica holds the lease
/// for `ms`.
const TRIAL: &str = r"
local state = redis.call('GET', KEYS[1])
if state == 'isolated' then return {2, 0} end
if state then return {1, redis.call('PTTL', KEYS[1])} end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return {3, redis.call('PTTL', KEYS[2])} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {0, 0}
";

fn scripts() -> &'static (Script, Script) {
    static SCRIPTS: std::sync::OnceLock<(Script, Script)> = std::sync::OnceLock::new();
    SCRIPTS.get_or_init(|| (Script::new(PUBLISH), Script::new(TRIAL)))
}

/// The link between one local breaker and the store.
pub(crate) struct Link {
    store: RedisStore,
    /// `reliability:breaker:{name}`.
    key: String,
    /// `reliability:breaker:{name}:trial`.
    lease_key: String,
    breaker: Weak<Inner>,
    /// The latest local transition not yet published.
    pending: AtomicU8,
    notify: Notify,
    /// The task runs (or is about to).
    running: AtomicBool,
    /// The breaker is isolated because the store said so: it closes when the store's isolation
    /// is reset.
    isolated_by_store: AtomicBool,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// What the store says of a breaker.
enum Remote {
    Open(Duration),
    Isolated,
    Absent,
}

impl Inner {
    /// Tells the store's link of a local transition (called with the core's lock held: it only
    /// records it and wakes the task).
    pub(super) fn tell_store(&self, event: Event) {
        let Some(link) = self.shared.get() else {
            return;
        };
        let code = match event {
            Event::Moved(CircuitState::Open) => OPENED,
            Event::Moved(CircuitState::Closed) => CLOSE,
            Event::Isolated => {
                link.isolated_by_store.store(false, StdOrdering::Relaxed);
                ISOLATE
            }
            Event::Reset => RESET,
            Event::Moved(_) => return,
        };
        link.pending.store(code, StdOrdering::Release);
        link.notify.notify_one();
    }

    /// Applies the store's state to the local breaker, without publishing it back.
    fn apply(&self, link: &Link, remote: Remote) {
        let now = self.clock.now();
        let mut core = self.lock();
        match remote {
            Remote::Open(left) => {
                let until = now.saturating_add(nanos(left));
                if core.opened_elsewhere(until).is_some() {
                    self.publish(&core);
                    self.stats.add(Field::Openings);
                    tracing::warn!(
                        target: "reliability",
                        breaker = %self.name,
                        cooldown = ?left,
                        "circuit breaker opened: another replica opened it"
                    );
                } else if core.state == CircuitState::Open {
                    self.open_until.store(core.open_until, Ordering::Release);
                }
            }
            Remote::Isolated => {
                if core.isolate().is_some() {
                    self.publish(&core);
                    self.stats.add(Field::Isolations);
                    link.isolated_by_store.store(true, StdOrdering::Relaxed);
                    tracing::warn!(
                        target: "reliability",
                        breaker = %self.name,
                        "circuit breaker isolated by another replica: rejecting every call until reset"
                    );
                }
            }
            Remote::Absent => {
                if core.state == CircuitState::Isolated
                    && link.isolated_by_store.swap(false, StdOrdering::Relaxed)
                {
                    core.reset();
                    self.publish(&core);
                    tracing::info!(
                        target: "reliability",
                        breaker = %self.name,
                        "circuit breaker reset by another replica: closed, counts cleared"
                    );
                }
            }
        }
    }
}

impl Link {
    /// Starts the task if it is not running (one relaxed load when it is).
    #[inline]
    fn ensure_running(self: &Arc<Self>) {
        if !self.running.load(StdOrdering::Relaxed) {
            self.start();
        }
    }

    #[cold]
    fn start(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self
            .running
            .compare_exchange(false, true, StdOrdering::AcqRel, StdOrdering::Relaxed)
            .is_err()
        {
            return;
        }
        // Owned by the task's future: dropped with it, polled or not (a runtime shutting down).
        let running = Running(self.clone());
        runtime.spawn(async move {
            let link = running.0.clone();
            link.run().await;
            drop(running);
        });
    }

    /// The task: publishes local transitions as they happen, reads the store every `sync`; ends
    /// with the breaker.
    async fn run(&self) {
        let sync = self.store.sync();
        let mut next_poll = Instant::now();
        loop {
            let Some(inner) = self.breaker.upgrade() else {
                return;
            };
            self.flush(&inner).await;
            if Instant::now() >= next_poll {
                self.poll(&inner).await;
                next_poll = Instant::now() + sync;
            }
            drop(inner);
            let _ = tokio::time::timeout_at(next_poll, self.notify.notified()).await;
        }
    }

    /// Publishes the latest local transition; kept for the next round if the store failed.
    async fn flush(&self, inner: &Inner) {
        let event = self.pending.swap(NONE, StdOrdering::AcqRel);
        let (op, ms) = match event {
            NONE => return,
            OPENED => {
                // The remaining cooldown, if the breaker is still open.
                let word = inner.state.load(Ordering::Acquire);
                if word & STATE_MASK != OPEN {
                    return;
                }
                let left = inner
                    .open_until
                    .load(Ordering::Acquire)
                    .saturating_sub(inner.clock.now());
                let ms = left.div_ceil(1_000_000);
                if ms == 0 {
                    return;
                }
                ("open", ms)
            }
            ISOLATE => ("isolate", 0),
            RESET => ("reset", 0),
            _ => ("closed", 0),
        };
        let published: Option<i64> = self
            .store
            .eval(
                &inner.stats,
                "publish breaker state",
                &scripts().0,
                &[&self.key, &self.lease_key],
                &[&op, &self.store.token(), &ms],
            )
            .await;
        if published.is_none() {
            let _ = self.pending.compare_exchange(
                NONE,
                event,
                StdOrdering::AcqRel,
                StdOrdering::Relaxed,
            );
        }
    }

    /// Reads the store's state and applies it.
    async fn poll(&self, inner: &Inner) {
        let key = self.key.as_str();
        let read: Option<(Option<String>, i64)> = self
            .store
            .run(&inner.stats, "read breaker state", |mut conn| async move {
                redis::pipe()
                    .get(key)
                    .pttl(key)
                    .query_async(&mut conn)
                    .await
            })
            .await;
        let remote = match read {
            None => return,
            Some((Some(state), _)) if state == "isolated" => Remote::Isolated,
            Some((Some(_), ms)) if ms > 0 => Remote::Open(Duration::from_millis(ms as u64)),
            Some(_) => Remote::Absent,
        };
        inner.apply(self, remote);
    }

    /// Whether a call now would be a half-open trial (then it asks for the lease first). Closed,
    /// one atomic load.
    #[inline]
    fn trial_due(inner: &Inner) -> bool {
        let word = inner.state.load(Ordering::Acquire);
        match word & STATE_MASK {
            CLOSED | ISOLATED => false,
            OPEN => inner.clock.now() >= inner.open_until.load(Ordering::Acquire),
            _ => true,
        }
    }

    /// Before a half-open trial: asks the store for the trial lease. `Err(retry_after)` when
    /// another replica holds it, or the store says open or isolated.
    #[cold]
    async fn lease(&self, inner: &Inner) -> Result<(), Duration> {
        let lease_ms = self.store.trial_lease().as_millis().max(1) as u64;
        let reply: Option<(i64, i64)> = self
            .store
            .eval(
                &inner.stats,
                "take trial lease",
                &scripts().1,
                &[&self.key, &self.lease_key],
                &[&self.store.token(), &lease_ms],
            )
            .await;
        let ms = |ms: i64| Duration::from_millis(ms.max(0) as u64);
        match reply {
            None | Some((0, _)) => Ok(()),
            Some((1, left)) if left > 0 => {
                inner.apply(self, Remote::Open(ms(left)));
                Err(ms(left))
            }
            Some((2, _)) => {
                inner.apply(self, Remote::Isolated);
                Err(inner.config.cooldown)
            }
            Some((3, left)) => Err(ms(left)),
            Some(_) => Ok(()),
        }
    }
}

/// Marks the task stopped when its future is dropped.
struct Running(Arc<Link>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.store(false, StdOrdering::Release);
    }
}

/// A [`CircuitBreaker`] whose openings and isolations every replica sees, through a
/// [`RedisStore`]. Clones share the link.
///
/// - Counting stays local: each replica's breaker opens by its own [`TripRule`](crate::TripRule).
/// - When it opens, it publishes `reliability:breaker:{name}` = `open` with the remaining cooldown
///   as its expiry (`SET … PX`), at once; [`isolate()`](CircuitBreaker::isolate) publishes
///   `isolated` (no expiry) and [`reset()`](CircuitBreaker::reset) deletes it.
/// - Each replica reads that key every [`sync`](crate::shared::RedisStoreBuilder::sync) (1 s by
///   default), from a small task of its own, never on a call's path. Seeing `open`, a closed or
///   half-open breaker opens for the remaining time (an open one keeps the later end); seeing
///   `isolated`, it is isolated until the isolation is reset.
/// - A call that would be a half-open trial first takes a lease (`SET … NX PX`, 5 s by default,
///   renewed by the holder's later trials and released when its trials end): one replica at a time
///   sends trials; the others reject as if open.
/// - With the store down or slow (each operation is bounded, 50 ms by default), the breaker works
///   alone, and `store_errors` counts it.
///
/// A breaker is linked to one store under one name: linking it again gives the same link.
///
/// ```no_run
/// use reliability::{CircuitBreaker, Error};
/// use reliability::shared::{RedisStore, SharedBreaker};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// let breaker = CircuitBreaker::builder("payments").failure_threshold(3).build()?;
/// let payments = SharedBreaker::new(&breaker, &store);
/// let paid = payments.call(async { Ok::<_, Error>("paid") }).await?;
/// # let _ = paid; Ok(()) }
/// ```
#[derive(Clone)]
pub struct SharedBreaker {
    breaker: CircuitBreaker,
    link: Arc<Link>,
}

impl std::fmt::Debug for SharedBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBreaker")
            .field("breaker", &self.breaker)
            .field("key", &self.link.key)
            .finish()
    }
}

impl SharedBreaker {
    /// Links `breaker` to `store` under the breaker's name.
    pub fn new(breaker: &CircuitBreaker, store: &RedisStore) -> Self {
        Self::with_name(breaker, store, breaker.name())
    }

    /// Links `breaker` to `store` under `name`: breakers of every replica linked under one name
    /// share their openings. (Several local breakers in one process can so play replicas, as in
    /// tests.)
    pub fn with_name(breaker: &CircuitBreaker, store: &RedisStore, name: &str) -> Self {
        let link = breaker.link(store, name);
        link.ensure_running();
        SharedBreaker {
            breaker: breaker.clone(),
            link,
        }
    }

    /// The local breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// Runs `fut` if the breaker admits it; every `Err` counts as a failure.
    pub async fn call<T, E, F>(&self, fut: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: From<Error>,
    {
        self.call_when(|_: &E| true, fut).await
    }

    /// Runs `fut` if the breaker admits it; an `Err` counts as a failure when `counts` says so.
    pub async fn call_when<T, E, F, P>(&self, counts: P, fut: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: From<Error>,
        P: Fn(&E) -> bool,
    {
        self.link.ensure_running();
        // The lease is boxed: its future (a store round trip) is large, and inline it would make
        // every call's future, closed ones included, that much larger to build and move.
        if Link::trial_due(&self.breaker.inner)
            && let Err(retry_after) = Box::pin(self.link.lease(&self.breaker.inner)).await
        {
            let caller = Caller {
                function: None,
                attempt: 1,
            };
            return Err(E::from(self.breaker.reject_shared(&caller, retry_after)));
        }
        self.breaker.call_when(counts, fut).await
    }
}

impl CircuitBreaker {
    /// The breaker's link to a store, made on first request.
    fn link(&self, store: &RedisStore, name: &str) -> Arc<Link> {
        self.inner
            .shared
            .get_or_init(|| {
                Arc::new(Link {
                    store: store.clone(),
                    key: format!("reliability:breaker:{name}"),
                    lease_key: format!("reliability:breaker:{name}:trial"),
                    breaker: Arc::downgrade(&self.inner),
                    pending: AtomicU8::new(NONE),
                    notify: Notify::new(),
                    running: AtomicBool::new(false),
                    isolated_by_store: AtomicBool::new(false),
                })
            })
            .clone()
    }

    /// A rejection decided by the store: counted as a rejection (and so as a call).
    #[cold]
    fn reject_shared(&self, caller: &Caller<'_>, retry_after: Duration) -> Error {
        self.reject(caller, retry_after)
    }
}

/// What `#[circuit_breaker(shared)]` expands into: [`circuit_breaker`](super::expand::circuit_breaker)
/// with the breaker linked to the [installed](crate::shared::install) store (under the breaker's
/// name), once there is one; before, the breaker works locally.
pub async fn circuit_breaker_shared<T, E, F, P>(
    breaker: &CircuitBreaker,
    site: &Site,
    ctx: &StackCtx,
    counts: &P,
    convert: Convert<E>,
    fut: F,
) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    P: Fn(&E) -> bool,
{
    let link = match breaker.inner.shared.get() {
        Some(link) => Some(link),
        None => installed().and_then(|store| {
            breaker.link(store, breaker.name());
            breaker.inner.shared.get()
        }),
    };
    if let Some(link) = link {
        link.ensure_running();
        if Link::trial_due(&breaker.inner)
            && let Err(retry_after) = link.lease(&breaker.inner).await
        {
            let caller = Caller {
                function: Some(site),
                attempt: ctx.attempt(),
            };
            ctx.rejected
                .store(true, std::sync::atomic::Ordering::Relaxed);
            return Err(convert(breaker.reject_shared(&caller, retry_after)));
        }
    }
    super::expand::circuit_breaker(breaker, site, ctx, counts, convert, fut).await
}

#[cfg(test)]
mod tests {
    use super::super::config::BreakerConfig;
    use super::super::core::Core;
    use super::*;

    #[test]
    fn an_opening_elsewhere_opens_a_closed_breaker_and_extends_an_open_one() {
        let config = BreakerConfig::consecutive(1, 1, Duration::from_secs(10));
        let mut core = Core::new(&config);
        assert_eq!(core.opened_elsewhere(500), Some(CircuitState::Open));
        assert_eq!((core.state, core.open_until), (CircuitState::Open, 500));
        assert_eq!(
            core.opened_elsewhere(400),
            None,
            "an earlier end does not shorten it"
        );
        assert_eq!(core.open_until, 500);
        assert_eq!(core.opened_elsewhere(900), None);
        assert_eq!(core.open_until, 900, "a later end extends it");
        assert!(core.isolate().is_some());
        assert_eq!(core.opened_elsewhere(2_000), None);
        assert_eq!(core.state, CircuitState::Isolated);
    }
}
