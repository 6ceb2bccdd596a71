//! Fixtures shared by the behaviour tests: an error type, drop guards and a gate for holding calls.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

/// The error type of the protected functions: a status from the fake service, or a policy's error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppError {
    #[error("service answered {0}")]
    Status(u16),
    #[error(transparent)]
    Reliability(#[from] reliability::Error),
}

impl AppError {
    /// The status, for the errors of the service itself.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            AppError::Status(s) => Some(*s),
            AppError::Reliability(_) => None,
        }
    }

    pub(crate) fn is_timeout(&self) -> bool {
        matches!(self, AppError::Reliability(e) if e.is_timeout())
    }

    pub(crate) fn is_circuit_open(&self) -> bool {
        matches!(self, AppError::Reliability(e) if e.is_circuit_open())
    }

    /// The `retry_after` of a circuit-open rejection.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            AppError::Reliability(reliability::Error::CircuitOpen { retry_after, .. }) => {
                Some(*retry_after)
            }
            _ => None,
        }
    }
}

/// A counter of body runs.
#[derive(Debug, Default)]
pub(crate) struct Runs(AtomicU32);

impl Runs {
    pub(crate) const fn new() -> Self {
        Runs(AtomicU32::new(0))
    }

    /// Counts one run and returns its number (1 for the first).
    pub(crate) fn bump(&self) -> u32 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(crate) fn get(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }

    /// Starts counting again from zero.
    pub(crate) fn reset(&self) {
        self.0.store(0, Ordering::SeqCst);
    }
}

/// Sets its flag when dropped: proves that a future holding it was dropped.
pub(crate) struct DropFlag(pub(crate) Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Holds calls until released: bodies `pass()` through it.
#[derive(Debug)]
pub(crate) struct Gate {
    permits: Semaphore,
    waiting: AtomicU32,
}

impl Gate {
    pub(crate) fn new() -> Self {
        Gate {
            permits: Semaphore::new(0),
            waiting: AtomicU32::new(0),
        }
    }

    /// Waits until `open` lets this caller through.
    pub(crate) async fn pass(&self) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let permit = self.permits.acquire().await.expect("gate semaphore closed");
        permit.forget();
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    /// How many callers are waiting at the gate.
    pub(crate) fn waiting(&self) -> u32 {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Lets `n` callers through.
    pub(crate) fn open(&self, n: usize) {
        self.permits.add_permits(n);
    }
}

/// The instants at which each attempt started, relative to a start instant.
#[derive(Debug)]
pub(crate) struct Attempts {
    start: Instant,
    at: std::sync::Mutex<Vec<Duration>>,
}

impl Attempts {
    pub(crate) fn new() -> Self {
        Attempts {
            start: Instant::now(),
            at: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Records that an attempt starts now; returns its number (1 for the first).
    pub(crate) fn record(&self) -> usize {
        let mut at = self.at.lock().unwrap();
        at.push(self.start.elapsed());
        at.len()
    }

    /// When each attempt started, since `new`.
    pub(crate) fn starts(&self) -> Vec<Duration> {
        self.at.lock().unwrap().clone()
    }

    /// The waits between consecutive attempts.
    pub(crate) fn waits(&self) -> Vec<Duration> {
        let at = self.starts();
        at.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// SplitMix64: the next number of a small deterministic generator whose state is `state`.
pub(crate) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
