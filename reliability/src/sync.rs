//! The synchronisation primitives of the circuit breaker: `std`'s, or loom's when the crate's unit
//! tests are built with `--cfg reliability_loom` to model-check every interleaving of its threads.

#[cfg(not(all(test, reliability_loom)))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(all(test, reliability_loom)))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(all(test, reliability_loom))]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(all(test, reliability_loom))]
pub(crate) use loom::sync::{Mutex, MutexGuard};
