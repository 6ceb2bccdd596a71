//! The embedded service's fault plan: which attempt fails, hangs or is slow, decided by a seeded hash.
//!
//! Every decision is a pure function of `(seed, model, request id, attempt)`, so the same seed gives
//! the same fault to the same attempt of the same request in every rung and every run. Only the
//! outage window depends on the clock: it is measured from the start of each rung's run.

use std::ops::Range;
use std::time::Duration;

/// What the service does with one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Answers normally after `after`.
    Answer {
        /// Simulated model latency.
        after: Duration,
    },
    /// Answers HTTP 500 after `after`.
    ServerError {
        /// Time before the error.
        after: Duration,
    },
    /// Answers HTTP 429 with `Retry-After` (and `retry-after-ms`) after `after`.
    RateLimited {
        /// Time before the error.
        after: Duration,
    },
    /// Never answers.
    Hang,
    /// The model is down: HTTP 503 at once.
    Outage,
}

/// The faults the embedded service injects. Rates are per attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    /// Seeds every decision.
    pub seed: u64,
    /// Share of attempts answered with HTTP 500 or 429.
    pub failure_rate: f64,
    /// Share of those failures that are HTTP 429 (the others are 500). A service that enforces a
    /// real quota ([`Quota`](super::server::Quota)) makes its own 429s; its plan sets this to 0.
    pub rate_limited_share: f64,
    /// Share of attempts never answered.
    pub hang_rate: f64,
    /// Median latency of the primary model; the fallback model answers twice as fast.
    pub median_latency: Duration,
    /// Spread of the log-normal latency distribution (sigma of its logarithm).
    pub latency_sigma: f64,
    /// While the run's clock is in this window, every request to the primary model gets HTTP 503.
    pub outage: Option<Range<Duration>>,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            seed: 42,
            failure_rate: 0.08,
            rate_limited_share: 0.5,
            hang_rate: 0.02,
            median_latency: Duration::from_millis(20),
            latency_sigma: 0.5,
            outage: Some(Duration::from_secs(2)..Duration::from_secs(3)),
        }
    }
}

impl FaultPlan {
    /// The fault for attempt `attempt` (0-based) of request `request` to `model`, at `elapsed` into
    /// the run. `primary` says whether `model` is the one the outage takes down.
    pub fn decide(
        &self,
        model: &str,
        primary: bool,
        request: &str,
        attempt: u32,
        elapsed: Duration,
    ) -> Fault {
        if primary && self.outage.as_ref().is_some_and(|w| w.contains(&elapsed)) {
            return Fault::Outage;
        }
        let key = mix(
            self.seed ^ mix(hash_str(model) ^ mix(hash_str(request) ^ mix(u64::from(attempt))))
        );
        let mut rng = SplitMix::new(key);
        // Draw every value whatever the outcome, so the streams stay aligned.
        let kind = rng.next_f64();
        let which = rng.next_f64();
        let median = if primary {
            self.median_latency
        } else {
            self.median_latency / 2
        };
        let after = log_normal(median, self.latency_sigma, rng.next_f64(), rng.next_f64());
        if kind < self.hang_rate {
            Fault::Hang
        } else if kind < self.hang_rate + self.failure_rate {
            if which < 1.0 - self.rate_limited_share {
                Fault::ServerError { after: after / 4 }
            } else {
                Fault::RateLimited { after: after / 4 }
            }
        } else {
            Fault::Answer { after }
        }
    }
}

/// `median × e^(sigma × z)` with `z` standard normal from two uniforms (Box–Muller).
fn log_normal(median: Duration, sigma: f64, u1: f64, u2: f64) -> Duration {
    let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    let factor = (sigma * z).exp().clamp(0.05, 20.0);
    Duration::try_from_secs_f64(median.as_secs_f64() * factor).unwrap_or(median)
}

/// FNV-1a: a stable hash of a string (std's `DefaultHasher` may change between releases).
pub(crate) fn hash_str(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SplitMix64's finaliser: scrambles the bits of `z`.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// SplitMix64: a tiny seeded generator, good enough for simulation and stable across releases.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = SplitMix(seed);
        rng.next_u64();
        rng
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(plan: &FaultPlan) -> Vec<Fault> {
        (0..2_000)
            .map(|i| plan.decide("gpt-4", true, &i.to_string(), i % 3, Duration::ZERO))
            .collect()
    }

    #[test]
    fn same_seed_same_pattern_other_seed_other_pattern() {
        let plan = FaultPlan::default();
        assert_eq!(pattern(&plan), pattern(&plan.clone()));
        let other = FaultPlan {
            seed: 7,
            ..FaultPlan::default()
        };
        assert_ne!(pattern(&plan), pattern(&other));
    }

    #[test]
    fn rates_are_close_to_the_plan() {
        let plan = FaultPlan {
            outage: None,
            ..FaultPlan::default()
        };
        let faults = pattern(&plan);
        let hangs = faults.iter().filter(|f| **f == Fault::Hang).count();
        let errors = faults
            .iter()
            .filter(|f| matches!(f, Fault::ServerError { .. } | Fault::RateLimited { .. }))
            .count();
        // 2,000 draws: 2% and 8% within a few standard deviations.
        assert!((20..=60).contains(&hangs), "{hangs} hangs");
        assert!((120..=200).contains(&errors), "{errors} errors");
    }

    #[test]
    fn the_outage_takes_down_the_primary_only() {
        let plan = FaultPlan::default();
        let inside = Duration::from_millis(2_500);
        assert_eq!(plan.decide("gpt-4", true, "1", 0, inside), Fault::Outage);
        assert_ne!(plan.decide("gpt-3.5", false, "1", 0, inside), Fault::Outage);
        let after = Duration::from_millis(3_000);
        assert_ne!(plan.decide("gpt-4", true, "1", 0, after), Fault::Outage);
    }
}
