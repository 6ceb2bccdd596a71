//! What `#[bulkhead]` expands into: a `static` slot holding the settings and the bulkhead, and the
//! call of the layer below inside a slot.

use std::future::Future;
use std::time::Duration;

use crate::bulkhead::{Bulkhead, BulkheadConfig};
use crate::call::{Convert, StackCtx};
use crate::site::Site;
use crate::slot::Slot;

/// A `static` holding one bulkhead layer.
#[derive(Debug)]
pub struct BulkheadSlot {
    name: Option<&'static str>,
    config: BulkheadConfig,
    slot: Slot<Bulkhead>,
}

impl BulkheadSlot {
    /// A slot with settings the macro checked; `name` when the attribute names the bulkhead.
    pub const fn new(max: u32, queue: u32, wait: Duration) -> Self {
        BulkheadSlot {
            name: None,
            config: BulkheadConfig::checked(max, queue, wait),
            slot: Slot::new(),
        }
    }

    /// Registered as `name`, one for every instantiation of the function.
    pub const fn named(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// The bulkhead, registered on first use. A bulkhead named explicitly is one for every
    /// instantiation of the function.
    #[inline]
    pub fn get(&'static self, site: Site) -> &'static Bulkhead {
        let instance = if self.name.is_some() {
            ""
        } else {
            site.instance()
        };
        self.slot
            .get(instance, site, |_| true, |site| self.make(&site))
    }

    #[cold]
    fn make(&self, site: &Site) -> Bulkhead {
        let name = self.name.map_or_else(|| site.name(), str::to_owned);
        let (bulkhead, created) = Bulkhead::shared(&name, self.config);
        if !created && bulkhead.config() != self.config {
            tracing::warn!(
                target: "reliability",
                bulkhead = %name,
                function = %site,
                settings = ?self.config,
                in_use = ?bulkhead.config(),
                "another function made the bulkhead of this name with other settings; this function shares it, with the settings in use"
            );
        }
        bulkhead
    }
}

/// Runs `fut` in a slot of `bulkhead`, freed when it ends, is cancelled or panics; a call that gets
/// no slot returns the rejection without running `fut`, and tells the layers above that it shed
/// the load (a breaker does not count it).
#[inline]
pub async fn bulkhead<T, E, F>(
    bulkhead: &Bulkhead,
    ctx: &StackCtx,
    convert: Convert<E>,
    fut: F,
) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
{
    match bulkhead.acquire().await {
        Ok(_slot) => fut.await,
        Err(rejection) => {
            ctx.shed(None);
            Err(convert(rejection))
        }
    }
}
