//! The retry budget: retries may add at most a share of the calls made over the last 10 s, plus a
//! floor of 10 retries a second, shared by every retry with the same registry name.
//!
//! The budget keeps a ring of ten one-second buckets of deposits (calls) and withdrawals (retries).
//! Each bucket is one `AtomicU64` holding the second it counts (high 32 bits) and its count (low 32
//! bits), so a write that finds a bucket of an older second starts it afresh in the same
//! compare-and-swap: no lock, and no count lost to a reset. The share is kept in parts per billion
//! and the comparison is done in integers, so no share is rounded away (a float budget that
//! truncates `0.1 × calls` to an integer per call would never allow a retry).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::registry::{Named, Registry, registry};
use crate::stats::PolicyKind;

/// The buckets of the window, one per second.
const WINDOW_SECS: u32 = 10;
/// Retries a second allowed whatever the calls.
const FLOOR_PER_SEC: u64 = 10;
/// One whole in parts per billion.
pub(crate) const ONE_PPB: u32 = 1_000_000_000;

/// The share `ratio` (0 < ratio <= 1) in parts per billion, at least one part.
pub(crate) const fn ratio_to_ppb(ratio: f64) -> u32 {
    let ppb = ratio * ONE_PPB as f64 + 0.5;
    if ppb >= ONE_PPB as f64 {
        ONE_PPB
    } else if ppb >= 1.0 {
        ppb as u32
    } else {
        1
    }
}

/// A retry budget shared by the retries registered under one name; see the `budget` setting of
/// [`RetryPolicyBuilder`](crate::RetryPolicyBuilder).
///
/// Get a budget in use with [`Registry::retry_budget`](crate::Registry::retry_budget).
pub struct RetryBudget {
    name: Arc<str>,
    ratio_ppb: u32,
    start: Instant,
    deposits: Ring,
    withdrawals: Ring,
}

/// One counter per second of the window.
struct Ring([AtomicU64; WINDOW_SECS as usize]);

impl Ring {
    fn new() -> Self {
        Ring(std::array::from_fn(|_| AtomicU64::new(0)))
    }

    fn slot(&self, second: u32) -> &AtomicU64 {
        &self.0[(second % WINDOW_SECS) as usize]
    }

    /// Adds one to the count of `second`.
    fn add(&self, second: u32) {
        let slot = self.slot(second);
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let next = if stamp(current) == second {
                pack(second, count(current).saturating_add(1))
            } else {
                pack(second, 1)
            };
            match slot.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Takes back one added to `second`, if that second's count is still there.
    fn undo(&self, second: u32) {
        let slot = self.slot(second);
        let mut current = slot.load(Ordering::Relaxed);
        while stamp(current) == second && count(current) > 0 {
            let next = pack(second, count(current) - 1);
            match slot.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// The counts of the window that ends with `second`.
    fn sum(&self, second: u32) -> u64 {
        self.0
            .iter()
            .map(|slot| slot.load(Ordering::Acquire))
            .filter(|&v| second.wrapping_sub(stamp(v)) < WINDOW_SECS)
            .map(|v| u64::from(count(v)))
            .sum()
    }
}

fn pack(second: u32, count: u32) -> u64 {
    (u64::from(second) << 32) | u64::from(count)
}

fn stamp(v: u64) -> u32 {
    (v >> 32) as u32
}

fn count(v: u64) -> u32 {
    v as u32
}

impl RetryBudget {
    pub(crate) fn new(name: &str, ratio_ppb: u32) -> Self {
        RetryBudget {
            name: name.into(),
            ratio_ppb: ratio_ppb.clamp(1, ONE_PPB),
            start: Instant::now(),
            // Every bucket starts as second 0 with a count of 0: nothing counted.
            deposits: Ring::new(),
            withdrawals: Ring::new(),
        }
    }

    /// The registry name of the retries sharing it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The share of calls that retries may add (0 < ratio <= 1).
    pub fn ratio(&self) -> f64 {
        f64::from(self.ratio_ppb) / f64::from(ONE_PPB)
    }

    /// The second of the budget's clock (the tokio clock) it is now; wraps after 136 years.
    fn second(&self) -> u32 {
        (self.start.elapsed().as_secs() & u64::from(u32::MAX)) as u32
    }

    /// Counts a call (its first attempt).
    pub(crate) fn deposit(&self) {
        self.deposits.add(self.second());
    }

    /// Takes one retry from the budget; `false` when it is spent.
    ///
    /// The retry is counted first and taken back if it does not fit, so concurrent callers can
    /// only fall short of the budget, never overdraw it.
    pub(crate) fn withdraw(&self) -> bool {
        let second = self.second();
        self.withdrawals.add(second);
        if self.fits(second) {
            true
        } else {
            self.withdrawals.undo(second);
            false
        }
    }

    /// Whether the window's retries fit the budget.
    fn fits(&self, second: u32) -> bool {
        u128::from(self.withdrawals.sum(second)) * u128::from(ONE_PPB) <= self.limit(second)
    }

    /// The retries the window allows, in parts per billion: the floor plus the share of its calls.
    fn limit(&self, second: u32) -> u128 {
        let floor = u128::from(FLOOR_PER_SEC * u64::from(WINDOW_SECS));
        let calls = u128::from(self.deposits.sum(second));
        floor * u128::from(ONE_PPB) + calls * u128::from(self.ratio_ppb)
    }

    /// Retries that could be made now without exceeding the budget.
    pub fn available(&self) -> u64 {
        let second = self.second();
        let allowed = self.limit(second) / u128::from(ONE_PPB);
        let retries = u128::from(self.withdrawals.sum(second));
        u64::try_from(allowed.saturating_sub(retries)).unwrap_or(u64::MAX)
    }

    /// The length of the window the budget looks back over.
    pub const WINDOW: Duration = Duration::from_secs(WINDOW_SECS as u64);
}

impl std::fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryBudget")
            .field("name", &self.name)
            .field("ratio", &self.ratio())
            .field("available", &self.available())
            .finish()
    }
}

impl RetryBudget {
    /// The budget of the retries named `name`, made with the share `ratio_ppb` (parts per billion)
    /// if there is none yet.
    pub(crate) fn shared(name: &str, ratio_ppb: u32) -> Arc<RetryBudget> {
        registry()
            .shared(PolicyKind::Retry, name, |_| {
                RetryBudget::new(name, ratio_ppb)
            })
            .0
    }
}

impl Named for RetryBudget {
    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }

    fn reset(&self) {
        for ring in [&self.deposits, &self.withdrawals] {
            for slot in &ring.0 {
                slot.store(0, Ordering::Release);
            }
        }
    }
}

impl Registry {
    /// The retry budget shared by the retries named `name`, or `None` until a retry of that name
    /// with a budget has been used.
    pub fn retry_budget(&self, name: &str) -> Option<Arc<RetryBudget>> {
        self.find::<RetryBudget>(PolicyKind::Retry, name)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{ONE_PPB, RetryBudget, ratio_to_ppb};

    #[test]
    fn ratios_are_kept_in_parts_per_billion() {
        assert_eq!(ratio_to_ppb(1.0), ONE_PPB);
        assert_eq!(ratio_to_ppb(0.1), 100_000_000);
        assert_eq!(ratio_to_ppb(0.2), 200_000_000);
        assert_eq!(ratio_to_ppb(1e-12), 1, "never rounded to nothing");
    }

    #[tokio::test(start_paused = true)]
    async fn the_floor_allows_ten_retries_a_second_over_the_window() {
        let budget = RetryBudget::new("budget.floor", ratio_to_ppb(0.1));
        assert_eq!(budget.available(), 100);
        for _ in 0..100 {
            assert!(budget.withdraw());
        }
        assert!(!budget.withdraw(), "the floor is spent");
        assert_eq!(budget.available(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_tenth_of_the_calls_is_added_exactly() {
        let budget = RetryBudget::new("budget.share", ratio_to_ppb(0.1));
        for _ in 0..100 {
            assert!(budget.withdraw());
        }
        // Nine calls are 0.9 of a retry: not yet one.
        for _ in 0..9 {
            budget.deposit();
        }
        assert!(!budget.withdraw());
        budget.deposit();
        assert!(budget.withdraw(), "the tenth call pays for one retry");
        assert!(!budget.withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn spending_leaves_the_window_after_ten_seconds() {
        let budget = RetryBudget::new("budget.window", ratio_to_ppb(0.5));
        for _ in 0..100 {
            assert!(budget.withdraw());
        }
        assert!(!budget.withdraw());
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(!budget.withdraw(), "still in the window");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(budget.available(), 100, "the first second left the window");
    }
}
