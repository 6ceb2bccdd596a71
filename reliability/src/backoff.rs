//! Delay schedules between retry attempts, and their jitter.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

/// How the delay grows between attempts (before jitter and the `max_delay` cap).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backoff {
    /// `delay`, `delay`, `delay`, …
    Fixed,
    /// `delay`, `2 × delay`, `3 × delay`, …
    Linear,
    /// `delay`, `delay × m`, `delay × m²`, … for the multiplier `m` (> 1.0).
    Exponential {
        /// The growth factor.
        multiplier: f64,
    },
}

/// How each delay is randomised. Every mode stays within `[0, max_delay]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// The delay exactly as the backoff computes it.
    None,
    /// Uniform in `[0, d]`, where `d` is the computed delay.
    Full,
    /// Uniform in `[d / 2, d]`.
    Equal,
    /// Uniform in `[delay, 3 × previous wait]` (the first wait is `delay`), capped at `max_delay`;
    /// the backoff mode does not apply.
    Decorrelated,
}

/// A full delay schedule: backoff, first delay, cap and jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub(crate) backoff: Backoff,
    pub(crate) delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) jitter: Jitter,
}

impl Schedule {
    /// The delay growth.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// The first delay.
    pub fn initial_delay(&self) -> Duration {
        self.delay
    }

    /// The cap on any single delay.
    pub fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// The randomisation of each delay.
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The un-jittered delay before retry number `retry` (1 = the wait after the first attempt).
    pub fn base_delay(&self, retry: u32) -> Duration {
        let n = retry.max(1);
        let raw = match self.backoff {
            Backoff::Fixed => self.delay,
            Backoff::Linear => self.delay.saturating_mul(n),
            // Zero stays zero however large the factor grows (0 × ∞ would be NaN).
            Backoff::Exponential { .. } if self.delay.is_zero() => Duration::ZERO,
            Backoff::Exponential { multiplier } => {
                let factor = multiplier.powi(i32::try_from(n - 1).unwrap_or(i32::MAX));
                let secs = self.delay.as_secs_f64() * factor;
                if secs.is_finite() && secs < self.max_delay.as_secs_f64() {
                    Duration::from_secs_f64(secs)
                } else {
                    self.max_delay
                }
            }
        };
        raw.min(self.max_delay)
    }

    /// The wait before retry number `retry`, given the previous wait (used by decorrelated jitter),
    /// drawing randomness from `random` (uniform in `[0, 1)`).
    pub fn delay_with(&self, retry: u32, previous: Duration, random: f64) -> Duration {
        // Outside `[0, 1]` (or NaN) would overflow `mul_f64`; clamp rather than panic.
        let random = if random.is_nan() {
            0.0
        } else {
            random.clamp(0.0, 1.0)
        };
        let base = self.base_delay(retry);
        let wait = match self.jitter {
            Jitter::None => base,
            Jitter::Full => base.mul_f64(random),
            Jitter::Equal => base / 2 + (base - base / 2).mul_f64(random),
            Jitter::Decorrelated => {
                let low = self.delay;
                let high = previous
                    .max(self.delay)
                    .saturating_mul(3)
                    .min(self.max_delay);
                if high <= low {
                    low
                } else {
                    low + (high - low).mul_f64(random)
                }
            }
        };
        wait.min(self.max_delay)
    }

    /// The wait before retry number `retry`, with fresh randomness.
    pub fn delay(&self, retry: u32, previous: Duration) -> Duration {
        let random = if self.jitter == Jitter::None {
            0.0
        } else {
            random_unit()
        };
        self.delay_with(retry, previous, random)
    }
}

/// A uniform number in `[0, 1)` from a per-thread generator seeded by the standard library's
/// random hasher keys (no extra dependency).
pub(crate) fn random_unit() -> f64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(0x5eed_u64) | 1);
    }
    STATE
        .try_with(|state| {
            let mut next = state.get();
            let unit = splitmix_unit(&mut next);
            state.set(next);
            unit
        })
        .unwrap_or(0.5)
}

/// The next number of a SplitMix64 generator whose state is `state`, as a uniform number in
/// `[0, 1)`.
pub(crate) fn splitmix_unit(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Backoff, Jitter, Schedule};

    /// With `delay = 0` the factor overflows to infinity after ~1000 retries; 0 × ∞ is NaN, which
    /// must not turn into a wait (it used to become `max_delay`).
    #[test]
    fn exponential_backoff_from_zero_stays_zero() {
        let schedule = Schedule {
            backoff: Backoff::Exponential { multiplier: 2.0 },
            delay: Duration::ZERO,
            max_delay: Duration::from_secs(30),
            jitter: Jitter::None,
        };
        for retry in [1, 2, 1_100, u32::MAX] {
            assert_eq!(schedule.base_delay(retry), Duration::ZERO, "retry {retry}");
            assert_eq!(
                schedule.delay_with(retry, Duration::ZERO, 0.5),
                Duration::ZERO,
                "retry {retry}"
            );
        }
    }
}
