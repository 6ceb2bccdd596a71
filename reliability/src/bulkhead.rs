//! Bulkhead: bound the calls running at once, with a bounded queue of callers waiting for a slot.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::{ConfigError, Error};
use crate::registry::{Named, Registry, registry};
use crate::stats::{Field, PolicyKind, Stats};

pub(crate) mod expand;

/// The settings of a [`Bulkhead`]; see [`BulkheadBuilder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkheadConfig {
    max: u32,
    queue: u32,
    wait: Duration,
}

impl BulkheadConfig {
    /// Settings already validated by the attribute macro: 1 <= `max` <= [`Bulkhead::MAX`].
    pub(crate) const fn checked(max: u32, queue: u32, wait: Duration) -> Self {
        BulkheadConfig { max, queue, wait }
    }

    /// Calls running at once.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// Calls that may wait for a slot.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// How long a queued call waits before it is rejected.
    pub fn wait(&self) -> Duration {
        self.wait
    }
}

/// Builds a [`Bulkhead`]; [`build`](Self::build) validates every setting.
#[derive(Debug, Clone)]
#[must_use]
pub struct BulkheadBuilder {
    name: String,
    config: BulkheadConfig,
}

impl BulkheadBuilder {
    /// Calls that may wait for a slot; more are rejected at once (default 0).
    pub fn queue(mut self, queue: u32) -> Self {
        self.config.queue = queue;
        self
    }

    /// How long a queued call waits for a slot before it is rejected (default 1 s).
    pub fn wait(mut self, wait: Duration) -> Self {
        self.config.wait = wait;
        self
    }

    /// Validates the settings and returns the bulkhead registered under the name, made with these
    /// settings if there was none yet (a name is one bulkhead).
    pub fn build(self) -> Result<Bulkhead, ConfigError> {
        let c = self.config;
        if c.max == 0 {
            return Err(ConfigError::new("max", "must be at least 1"));
        }
        if c.max > Bulkhead::MAX {
            return Err(ConfigError::new(
                "max",
                format!("must be at most {}", Bulkhead::MAX),
            ));
        }
        let (bulkhead, created) = Bulkhead::shared(&self.name, c);
        if !created && bulkhead.config() != c {
            return Err(ConfigError::new(
                "name",
                format!(
                    "a bulkhead named `{}` exists already with other settings ({:?}); give this one another name, or the same settings",
                    self.name,
                    bulkhead.config()
                ),
            ));
        }
        Ok(bulkhead)
    }
}

/// A named bound on concurrency: at most `max` calls run at once, up to `queue` more wait for a
/// slot (each at most `wait`), others are rejected at once with [`Error::BulkheadFull`].
///
/// | setting | meaning | default |
/// |---|---|---|
/// | `max` ([`builder`](Self::builder)) | calls running at once (1..=[`MAX`](Self::MAX)) | required |
/// | [`queue`](BulkheadBuilder::queue) | calls that may wait for a slot; more are rejected at once | 0 |
/// | [`wait`](BulkheadBuilder::wait) | how long a queued call waits before it is rejected | 1 s |
///
/// A slot is held by a [`BulkheadPermit`] and freed when it is dropped: when the call ends, is
/// cancelled or panics. Queued calls get slots in the order they queued. Bulkheads are shared by
/// name, like rate limiters.
///
/// ```
/// use std::time::Duration;
/// use reliability::{Bulkhead, Error};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let bulkhead = Bulkhead::builder("doc.bulkhead", 1).build().unwrap();
/// let slot = bulkhead.acquire().await.unwrap();
/// // The only slot is taken and nobody may queue: rejected at once.
/// let full = bulkhead.acquire().await.unwrap_err();
/// assert!(full.is_bulkhead_full());
/// drop(slot);
/// let out: Result<u32, Error> = bulkhead.run(async { Ok(7) }).await;
/// assert_eq!(out, Ok(7));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Bulkhead {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: Arc<str>,
    config: BulkheadConfig,
    stats: Arc<Stats>,
    slots: Semaphore,
    /// Calls waiting for a slot now.
    queued: AtomicU32,
}

/// A running call's slot in a [`Bulkhead`], freed when dropped.
#[derive(Debug)]
#[must_use = "the slot is freed when the permit is dropped"]
pub struct BulkheadPermit<'a> {
    _slot: SemaphorePermit<'a>,
}

/// Takes a call out of the queue when it leaves it, however it leaves (admitted, timed out,
/// cancelled).
struct Queued<'a>(&'a AtomicU32);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Bulkhead {
    /// The largest `max`.
    pub const MAX: u32 = 1 << 28;

    /// Starts the settings of a bulkhead of `max` slots registered as `name`.
    pub fn builder(name: impl Into<String>, max: u32) -> BulkheadBuilder {
        BulkheadBuilder {
            name: name.into(),
            config: BulkheadConfig {
                max,
                queue: 0,
                wait: Duration::from_secs(1),
            },
        }
    }

    /// The bulkhead registered as `name`, made with `config` if there is none; the flag is `true`
    /// when this call made it.
    pub(crate) fn shared(name: &str, config: BulkheadConfig) -> (Self, bool) {
        let (inner, created) = registry().shared(PolicyKind::Bulkhead, name, |stats| Inner {
            name: name.into(),
            config,
            stats,
            slots: Semaphore::new(config.max.min(Self::MAX) as usize),
            queued: AtomicU32::new(0),
        });
        (Bulkhead { inner }, created)
    }

    /// The registry name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The settings.
    pub fn config(&self) -> BulkheadConfig {
        self.inner.config
    }

    /// Slots free now.
    pub fn available(&self) -> usize {
        self.inner.slots.available_permits()
    }

    /// Takes a slot: at once if one is free, else after queueing (if the queue has room) for at
    /// most the bulkhead's wait; `Err(Error::BulkheadFull { .. })` otherwise.
    #[inline]
    pub async fn acquire(&self) -> Result<BulkheadPermit<'_>, Error> {
        let inner = &*self.inner;
        inner.stats.add(Field::Calls);
        match inner.slots.try_acquire() {
            Ok(slot) => Ok(BulkheadPermit { _slot: slot }),
            Err(_) => inner.queue().await,
        }
    }

    /// Runs `fut` in a slot; a rejected call returns `Err(E::from(error))` without running it.
    pub async fn run<T, E, F>(&self, fut: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: From<Error>,
    {
        let _slot = self.acquire().await?;
        fut.await
    }
}

/// A slot that owns its bulkhead, so that a tower service can hold it between `poll_ready` and
/// `call`, and its response future after; freed when dropped.
#[cfg(feature = "tower")]
#[derive(Debug)]
pub(crate) struct OwnedSlot {
    inner: Arc<Inner>,
}

#[cfg(feature = "tower")]
impl Drop for OwnedSlot {
    fn drop(&mut self) {
        // Its semaphore permit was forgotten when it was taken: give it back.
        self.inner.slots.add_permits(1);
    }
}

/// The wait of a queued caller for an [`OwnedSlot`].
#[cfg(feature = "tower")]
pub(crate) type SlotWait =
    std::pin::Pin<Box<dyn Future<Output = Result<OwnedSlot, Error>> + Send + 'static>>;

#[cfg(feature = "tower")]
impl Bulkhead {
    /// [`acquire`](Self::acquire) for a slot that owns the bulkhead: `Ok` when a slot is free now,
    /// else the wait in the queue (which rejects at once when the queue is full).
    pub(crate) fn acquire_owned(&self) -> Result<OwnedSlot, SlotWait> {
        let inner = &self.inner;
        inner.stats.add(Field::Calls);
        match inner.slots.try_acquire() {
            Ok(slot) => {
                slot.forget();
                Ok(OwnedSlot {
                    inner: inner.clone(),
                })
            }
            Err(_) => {
                let inner = inner.clone();
                Err(Box::pin(async move {
                    inner.queue().await?._slot.forget();
                    Ok(OwnedSlot { inner })
                }))
            }
        }
    }
}

impl Inner {
    /// Waits in the queue for a slot, if the queue has room.
    #[cold]
    async fn queue(&self) -> Result<BulkheadPermit<'_>, Error> {
        let limit = self.config.queue;
        let joined = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok();
        if !joined {
            return Err(self.rejected("no free slot and the queue is full"));
        }
        let _queued = Queued(&self.queued);
        self.stats.add(Field::Waited);
        tracing::debug!(target: "reliability", bulkhead = %self.name, "waiting for a slot");
        match tokio::time::timeout(self.config.wait, self.slots.acquire()).await {
            Ok(Ok(slot)) => Ok(BulkheadPermit { _slot: slot }),
            // The semaphore is never closed; a closed one has no slot to give either.
            Ok(Err(_)) => Err(self.rejected("closed")),
            Err(_) => Err(self.rejected("no slot within the wait")),
        }
    }

    #[cold]
    fn rejected(&self, why: &'static str) -> Error {
        self.stats.add(Field::Rejections);
        tracing::debug!(target: "reliability", bulkhead = %self.name, why, "bulkhead full");
        Error::BulkheadFull {
            name: self.name.clone(),
            max: self.config.max,
            queue: self.config.queue,
        }
    }
}

impl Named for Inner {
    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }

    /// A bulkhead holds no state but the calls running in it, which finish on their own.
    fn reset(&self) {}
}

impl Registry {
    /// The bulkhead registered under `name`, or `None` until one of that name has been used (or
    /// after every handle to one built at run time was dropped).
    pub fn bulkhead(&self, name: &str) -> Option<Bulkhead> {
        self.find::<Inner>(PolicyKind::Bulkhead, name)
            .map(|inner| Bulkhead { inner })
    }
}
