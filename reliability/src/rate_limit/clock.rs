//! The clock of the rate limiters: `governor`'s `Clock` over `tokio::time`, so that a paused tokio
//! clock makes limits exact in tests, and a waiter sleeps until the very instant GCRA names.

use std::ops::Add;
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::nanos::Nanos;

/// Reads [`tokio::time::Instant::now`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TokioClock;

/// An instant of the tokio clock, as `governor` wants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TokioInstant(pub(crate) tokio::time::Instant);

impl Clock for TokioClock {
    type Instant = TokioInstant;

    #[inline]
    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now())
    }
}

impl Add<Nanos> for TokioInstant {
    type Output = TokioInstant;

    #[inline]
    fn add(self, nanos: Nanos) -> TokioInstant {
        // Past what an `Instant` holds (centuries ahead) it stays put rather than panic.
        TokioInstant(self.0.checked_add(Duration::from(nanos)).unwrap_or(self.0))
    }
}

impl Reference for TokioInstant {
    #[inline]
    fn duration_since(&self, earlier: Self) -> Nanos {
        Nanos::from(self.0.saturating_duration_since(earlier.0))
    }

    #[inline]
    fn saturating_sub(&self, nanos: Nanos) -> Self {
        TokioInstant(self.0.checked_sub(Duration::from(nanos)).unwrap_or(self.0))
    }
}
