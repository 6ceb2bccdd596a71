//! What `#[hedge]` expands into: a `static` slot holding the settings and one [`Hedge`] per
//! instantiation of the function, and the call that runs the layer below as the attempts of a
//! hedge.
//!
//! Under `#[hedge]`, the stack's [`StackCtx`] is shared by attempts that run at once. The attempt
//! number is set before each attempt is made and before each of its polls, so the layers below
//! read their own number (a timeout when it is made, a breaker at its first poll). A breaker's
//! rejection flag is read, and cleared, right after an attempt completes: a breaker sets it in the
//! poll in which it rejects, which is the poll in which the attempt completes, and the caller's
//! task polls one attempt at a time, so the flag belongs to the attempt that just completed.

use std::future::Future;

use crate::__private::{Site, StackCtx};
use crate::hedge::{Hedge, HedgeConfig};
use crate::slot::Slot;

pub use crate::hedge::HedgeAfter;

/// A `static` holding one hedge layer.
#[derive(Debug)]
pub struct HedgeSlot {
    config: HedgeConfig,
    slot: Slot<Hedge>,
}

impl HedgeSlot {
    /// A slot for settings the macro checked: `1 <= max <= 5`, a percentile in 50..=99.9.
    pub const fn new(after: HedgeAfter, max: u32) -> Self {
        HedgeSlot {
            config: HedgeConfig::checked(after, max),
            slot: Slot::new(),
        }
    }

    /// The hedge of this instantiation, registered under the site's name on first use; its
    /// latencies are this instantiation's.
    #[inline]
    pub fn get(&'static self, site: Site) -> &'static Hedge {
        self.slot.get(
            site.instance(),
            site,
            |_| true,
            |site| Hedge::checked(&site.name(), self.config),
        )
    }
}

/// Runs the futures `attempt()` makes as the attempts of one hedged call: the first at once, the
/// others as `hedge` says; an attempt failing with an error for which `when` is true starts the
/// next at once. An attempt that a breaker below rejected starts no other.
#[inline]
pub fn hedge<'a, T, E, F, Fut, W>(
    hedge: &'a Hedge,
    ctx: &'a StackCtx,
    when: &'a W,
    attempt: F,
) -> impl Future<Output = Result<T, E>> + use<'a, T, E, F, Fut, W>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    W: Fn(&E) -> bool,
{
    hedge.call(Some(ctx), when, attempt)
}
