//! What `#[timeout]` expands into: a `static` slot holding the deadline, and the call of the layer
//! below under it.

use std::future::Future;
use std::time::Duration;

use crate::call::{Convert, StackCtx};
use crate::site::Site;
use crate::slot::Slot;
use crate::timeout::Timeout;

/// A `static` holding one timeout layer.
#[derive(Debug)]
pub struct TimeoutSlot {
    after: Duration,
    slot: Slot<Timeout>,
}

impl TimeoutSlot {
    /// A slot with a deadline the macro checked (> 0).
    pub const fn new(after: Duration) -> Self {
        TimeoutSlot {
            after,
            slot: Slot::new(),
        }
    }

    /// The policy of this instantiation, registered under the site's name on first use.
    #[inline]
    pub fn get(&'static self, site: Site) -> &'static Timeout {
        self.slot.get(
            site.instance(),
            site,
            |_| true,
            |site| Timeout::checked(&site.name(), self.after),
        )
    }
}

/// Runs `fut` under `timeout`; the future is the policy's own, which polls `fut` in place.
#[inline]
pub fn timeout<'a, T, E, F>(
    timeout: &'a Timeout,
    ctx: &StackCtx,
    convert: Convert<E>,
    fut: F,
) -> impl Future<Output = Result<T, E>> + use<'a, T, E, F>
where
    F: Future<Output = Result<T, E>>,
{
    // The attempt is known when the future is made: the retry loop above numbers it first.
    timeout.run_attempt(fut, ctx.attempt(), convert)
}
