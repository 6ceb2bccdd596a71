//! The settings of a circuit breaker and their builder.

use std::time::Duration;

use super::CircuitBreaker;
use crate::error::ConfigError;

/// The most calls a count window may hold.
const MAX_WINDOW_CALLS: u32 = super::count_window::MAX_CALLS;

/// `min_calls` when not given: the smaller of this and a count window's size.
const DEFAULT_MIN_CALLS: u32 = 100;

/// `failure_rate` when not given in rate mode.
const DEFAULT_FAILURE_RATE: f64 = 0.5;

/// The window when not given in rate mode.
const DEFAULT_WINDOW: SlidingWindow = SlidingWindow::Calls(100);

/// The calls a rate rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SlidingWindow {
    /// The last N calls.
    Calls(u32),
    /// The calls that ended in the last DUR, kept in 10 buckets of DUR/10: a call leaves the window
    /// between 0.9 DUR and DUR after it ended.
    Duration(Duration),
}

/// How a closed breaker decides to open; see [`CircuitBreaker`] for which to choose.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum TripRule {
    /// Open after `failure_threshold` consecutive counted failures.
    #[non_exhaustive]
    Consecutive {
        /// Consecutive counted failures that open the circuit.
        failure_threshold: u32,
    },
    /// Open when, once the window holds `min_calls` calls, at least `failure_rate` of them failed
    /// or at least `slow_call_rate` of them were slow.
    #[non_exhaustive]
    Rate {
        /// Open when `failures >= failure_rate × calls` in the window (0 < rate <= 1).
        failure_rate: f64,
        /// The calls the rates are taken over.
        window: SlidingWindow,
        /// No decision before the window holds this many calls.
        min_calls: u32,
        /// A call that takes longer is slow, even if it succeeds; `None`: no call is slow.
        slow_call: Option<Duration>,
        /// Open when `slow calls >= slow_call_rate × calls` in the window (0 < rate <= 1).
        slow_call_rate: f64,
    },
}

/// The settings of a [`CircuitBreaker`]; see [`CircuitBreakerBuilder`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    pub(crate) rule: TripRule,
    pub(crate) success_threshold: u32,
    pub(crate) cooldown: Duration,
}

impl BreakerConfig {
    /// The defaults: the consecutive rule with 5 failures, 2 trial successes close it, 60 s cooldown.
    pub const DEFAULT: BreakerConfig = BreakerConfig::consecutive(5, 2, Duration::from_secs(60));

    /// The consecutive rule, with settings already validated (by the builder or the attribute macro).
    pub(crate) const fn consecutive(
        failure_threshold: u32,
        success_threshold: u32,
        cooldown: Duration,
    ) -> Self {
        BreakerConfig {
            rule: TripRule::Consecutive { failure_threshold },
            success_threshold,
            cooldown,
        }
    }

    /// The rate rule, with settings already validated (by the builder or the attribute macro).
    /// `None` takes the default: `min_calls` is the smaller of 100 and a count window's size
    /// (an explicit one above that size is cut to it), `slow_call_rate` is `failure_rate`.
    pub(crate) const fn rate(
        failure_rate: f64,
        window: SlidingWindow,
        min_calls: Option<u32>,
        slow_call: Option<Duration>,
        slow_call_rate: Option<f64>,
        success_threshold: u32,
        cooldown: Duration,
    ) -> Self {
        let most = match window {
            SlidingWindow::Calls(n) => n,
            SlidingWindow::Duration(_) => u32::MAX,
        };
        let min_calls = match min_calls {
            Some(n) => n,
            None => DEFAULT_MIN_CALLS,
        };
        BreakerConfig {
            rule: TripRule::Rate {
                failure_rate,
                window,
                min_calls: if min_calls < most { min_calls } else { most },
                slow_call,
                slow_call_rate: match slow_call_rate {
                    Some(rate) => rate,
                    None => failure_rate,
                },
            },
            success_threshold,
            cooldown,
        }
    }

    /// How a closed breaker decides to open.
    pub fn rule(&self) -> TripRule {
        self.rule
    }

    /// The consecutive rule's threshold; `None` in rate mode.
    pub fn failure_threshold(&self) -> Option<u32> {
        match self.rule {
            TripRule::Consecutive { failure_threshold } => Some(failure_threshold),
            TripRule::Rate { .. } => None,
        }
    }

    /// Successful trial calls in half-open that close it; also the number of trials let through at once.
    pub fn success_threshold(&self) -> u32 {
        self.success_threshold
    }

    /// Time open before trial calls are let through.
    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }

    /// Rate mode: the duration above which a call is slow.
    pub(crate) fn slow_call(&self) -> Option<Duration> {
        match self.rule {
            TripRule::Rate { slow_call, .. } => slow_call,
            TripRule::Consecutive { .. } => None,
        }
    }
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Builds a [`CircuitBreaker`]; every setting is validated by [`build`](Self::build).
///
/// Without any rate setting the breaker uses the consecutive rule ([`failure_threshold`](Self::failure_threshold)).
/// Any of [`failure_rate`](Self::failure_rate), [`window_calls`](Self::window_calls),
/// [`window_duration`](Self::window_duration), [`min_calls`](Self::min_calls),
/// [`slow_call`](Self::slow_call) or [`slow_call_rate`](Self::slow_call_rate) chooses the rate rule,
/// with defaults for the others; giving `failure_threshold` too is a [`ConfigError`].
#[derive(Debug, Clone)]
#[must_use]
pub struct CircuitBreakerBuilder {
    name: String,
    failure_threshold: Option<u32>,
    success_threshold: u32,
    cooldown: Duration,
    failure_rate: Option<f64>,
    window_calls: Option<u32>,
    window_duration: Option<Duration>,
    min_calls: Option<u32>,
    slow_call: Option<Duration>,
    slow_call_rate: Option<f64>,
}

impl CircuitBreakerBuilder {
    pub(crate) fn new(name: String) -> Self {
        CircuitBreakerBuilder {
            name,
            failure_threshold: None,
            success_threshold: BreakerConfig::DEFAULT.success_threshold,
            cooldown: BreakerConfig::DEFAULT.cooldown,
            failure_rate: None,
            window_calls: None,
            window_duration: None,
            min_calls: None,
            slow_call: None,
            slow_call_rate: None,
        }
    }

    /// Consecutive rule: counted failures in a row that open the circuit (>= 1; default 5).
    pub fn failure_threshold(mut self, n: u32) -> Self {
        self.failure_threshold = Some(n);
        self
    }

    /// Trial successes that close it, and trials admitted at once (>= 1; default 2).
    pub fn success_threshold(mut self, n: u32) -> Self {
        self.success_threshold = n;
        self
    }

    /// Time open before trial calls (> 0; default 60 s).
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// Rate rule: open when at least this share of the window's calls failed (0 < rate <= 1;
    /// default 0.5).
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.failure_rate = Some(rate);
        self
    }

    /// Rate rule: the window is the last `n` calls (1 to 65 535; default 100).
    pub fn window_calls(mut self, n: u32) -> Self {
        self.window_calls = Some(n);
        self
    }

    /// Rate rule: the window is the calls that ended in the last `window` (at least 10 ns), kept
    /// in 10 buckets of `window / 10`: a call leaves it between 0.9 and 1 `window` after it ended.
    pub fn window_duration(mut self, window: Duration) -> Self {
        self.window_duration = Some(window);
        self
    }

    /// Rate rule: no decision before the window holds `n` calls (>= 1, at most a count window's
    /// size; default the smaller of 100 and that size).
    pub fn min_calls(mut self, n: u32) -> Self {
        self.min_calls = Some(n);
        self
    }

    /// Rate rule: a call that takes longer than `limit` is slow, even if it succeeds (> 0; default
    /// off). Measured on the tokio clock from admission to outcome. A slow half-open trial is a
    /// failed trial.
    pub fn slow_call(mut self, limit: Duration) -> Self {
        self.slow_call = Some(limit);
        self
    }

    /// Rate rule: open when at least this share of the window's calls were slow (0 < rate <= 1;
    /// default the failure rate).
    pub fn slow_call_rate(mut self, rate: f64) -> Self {
        self.slow_call_rate = Some(rate);
        self
    }

    /// The validated settings.
    pub(crate) fn config(&self) -> Result<BreakerConfig, ConfigError> {
        if self.success_threshold == 0 {
            return Err(ConfigError::new("success_threshold", "must be at least 1"));
        }
        if self.cooldown.is_zero() {
            return Err(ConfigError::new("cooldown", "must be longer than zero"));
        }
        let rate_setting = [
            ("failure_rate", self.failure_rate.is_some()),
            ("window_calls", self.window_calls.is_some()),
            ("window_duration", self.window_duration.is_some()),
            ("min_calls", self.min_calls.is_some()),
            ("slow_call", self.slow_call.is_some()),
            ("slow_call_rate", self.slow_call_rate.is_some()),
        ]
        .into_iter()
        .find_map(|(name, given)| given.then_some(name));
        let Some(rate_setting) = rate_setting else {
            let failure_threshold = self
                .failure_threshold
                .unwrap_or(BreakerConfig::DEFAULT.failure_threshold().unwrap_or(5));
            if failure_threshold == 0 {
                return Err(ConfigError::new("failure_threshold", "must be at least 1"));
            }
            return Ok(BreakerConfig::consecutive(
                failure_threshold,
                self.success_threshold,
                self.cooldown,
            ));
        };
        if self.failure_threshold.is_some() {
            return Err(ConfigError::new(
                "failure_threshold",
                format!(
                    "cannot be combined with `{rate_setting}`: pick the consecutive rule \
                     (`failure_threshold` alone) or the rate rule (`failure_rate`, `window_calls` or \
                     `window_duration`, `min_calls`, `slow_call`, `slow_call_rate`)"
                ),
            ));
        }
        let failure_rate = self.failure_rate.unwrap_or(DEFAULT_FAILURE_RATE);
        check_rate("failure_rate", failure_rate)?;
        if let Some(rate) = self.slow_call_rate {
            check_rate("slow_call_rate", rate)?;
        }
        let window = match (self.window_calls, self.window_duration) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "window_duration",
                    "cannot be combined with `window_calls`: a window counts calls or time, not both",
                ));
            }
            (Some(n), None) => {
                if n == 0 || n > MAX_WINDOW_CALLS {
                    return Err(ConfigError::new(
                        "window_calls",
                        format!("must be between 1 and {MAX_WINDOW_CALLS}, not {n}"),
                    ));
                }
                SlidingWindow::Calls(n)
            }
            (None, Some(d)) => {
                if d < Duration::from_nanos(10) {
                    return Err(ConfigError::new(
                        "window_duration",
                        "must be at least 10 ns (the window keeps 10 buckets)",
                    ));
                }
                SlidingWindow::Duration(d)
            }
            (None, None) => DEFAULT_WINDOW,
        };
        if let Some(n) = self.min_calls {
            if n == 0 {
                return Err(ConfigError::new("min_calls", "must be at least 1"));
            }
            if let SlidingWindow::Calls(size) = window
                && n > size
            {
                return Err(ConfigError::new(
                    "min_calls",
                    format!(
                        "{n} is more than the window holds ({size} calls): lower `min_calls` or raise `window_calls`"
                    ),
                ));
            }
        }
        if self.slow_call.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new("slow_call", "must be longer than zero"));
        }
        Ok(BreakerConfig::rate(
            failure_rate,
            window,
            self.min_calls,
            self.slow_call,
            self.slow_call_rate,
            self.success_threshold,
            self.cooldown,
        ))
    }

    /// Validates the settings and returns the breaker registered under the name: the one already
    /// registered under that name if there is one (breakers are shared by name; a second build with
    /// other settings is an error), else a new one.
    pub fn build(self) -> Result<CircuitBreaker, ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::new("name", "must not be empty"));
        }
        let config = self.config()?;
        let (breaker, created) = CircuitBreaker::shared(&self.name, config);
        if !created && breaker.config() != config {
            return Err(ConfigError::new(
                "name",
                format!(
                    "a circuit breaker named `{}` exists already with other settings ({:?}); give this one another name, or the same settings",
                    self.name,
                    breaker.config()
                ),
            ));
        }
        Ok(breaker)
    }
}

fn check_rate(setting: &'static str, rate: f64) -> Result<(), ConfigError> {
    if rate > 0.0 && rate <= 1.0 {
        Ok(())
    } else {
        Err(ConfigError::new(
            setting,
            format!("must be a share above 0 and at most 1 (0.5 is half the calls), not {rate}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Built in a `static`, as the attribute macro's slots build them.
    static CONSECUTIVE: BreakerConfig =
        super::super::expand::consecutive_breaker(3, 1, Duration::from_secs(5));
    static RATE: BreakerConfig = super::super::expand::rate_breaker(
        0.25,
        SlidingWindow::Calls(20),
        None,
        Some(Duration::from_secs(2)),
        None,
        2,
        Duration::from_secs(30),
    );
    static TIME: BreakerConfig = BreakerConfig::rate(
        0.5,
        SlidingWindow::Duration(Duration::from_secs(30)),
        None,
        None,
        Some(0.8),
        2,
        Duration::from_secs(60),
    );

    #[test]
    fn const_constructors_resolve_the_defaults() {
        assert_eq!(CONSECUTIVE.failure_threshold(), Some(3));
        assert_eq!(
            (CONSECUTIVE.success_threshold(), CONSECUTIVE.cooldown()),
            (1, Duration::from_secs(5))
        );
        assert_eq!(
            RATE.rule(),
            TripRule::Rate {
                failure_rate: 0.25,
                window: SlidingWindow::Calls(20),
                min_calls: 20,
                slow_call: Some(Duration::from_secs(2)),
                slow_call_rate: 0.25,
            }
        );
        assert!(matches!(
            TIME.rule(),
            TripRule::Rate {
                min_calls: 100,
                slow_call_rate: 0.8,
                slow_call: None,
                ..
            }
        ));
        // The builder makes the same settings as the macro's constructors.
        let built = CircuitBreakerBuilder::new("config".into())
            .failure_rate(0.25)
            .window_calls(20)
            .slow_call(Duration::from_secs(2))
            .cooldown(Duration::from_secs(30))
            .config()
            .unwrap();
        assert_eq!(built, RATE);
        assert_eq!(BreakerConfig::default().failure_threshold(), Some(5));
    }
}
