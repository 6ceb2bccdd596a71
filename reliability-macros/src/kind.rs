//! The five attributes, their option names and the names other libraries use for them.

use std::fmt;

/// One of our attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Retry,
    Timeout,
    CircuitBreaker,
    Cached,
    Fallback,
}

impl Kind {
    pub(crate) const ALL: [Kind; 5] = [
        Kind::Retry,
        Kind::Timeout,
        Kind::CircuitBreaker,
        Kind::Cached,
        Kind::Fallback,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Retry => "retry",
            Kind::Timeout => "timeout",
            Kind::CircuitBreaker => "circuit_breaker",
            Kind::Cached => "cached",
            Kind::Fallback => "fallback",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    pub(crate) fn options(self) -> &'static [&'static str] {
        match self {
            Kind::Retry => &[
                "max",
                "backoff",
                "delay",
                "max_delay",
                "multiplier",
                "jitter",
                "when",
            ],
            Kind::Timeout => &["secs", "ms"],
            Kind::CircuitBreaker => &[
                "name",
                "failure_threshold",
                "success_threshold",
                "cooldown",
                "when",
            ],
            Kind::Cached => &["ttl", "tti", "max_size", "key", "name"],
            Kind::Fallback => &["when"],
        }
    }

    /// Names used by resilience4j, Polly, tower, backon, cached and the seeds, mapped to ours.
    pub(crate) fn aliases(self) -> &'static [(&'static str, &'static str)] {
        const WHEN: [(&str, &str); 6] = [
            ("on", "when"),
            ("if", "when"),
            ("retry_if", "when"),
            ("predicate", "when"),
            ("filter", "when"),
            ("only_if", "when"),
        ];
        match self {
            Kind::Retry => &[
                ("max_attempts", "max"),
                ("attempts", "max"),
                ("max_retries", "max"),
                ("retries", "max"),
                ("times", "max"),
                ("tries", "max"),
                ("initial_delay", "delay"),
                ("base_delay", "delay"),
                ("min_delay", "delay"),
                ("wait", "delay"),
                ("factor", "multiplier"),
                ("exponent", "multiplier"),
                ("backoff_multiplier", "multiplier"),
                ("strategy", "backoff"),
                ("backoff_strategy", "backoff"),
                ("random", "jitter"),
                ("retry_if", "when"),
                ("on", "when"),
                ("if", "when"),
                ("predicate", "when"),
            ],
            Kind::Timeout => &[
                ("seconds", "secs"),
                ("sec", "secs"),
                ("s", "secs"),
                ("duration", "secs"),
                ("after", "secs"),
                ("timeout", "secs"),
                ("millis", "ms"),
                ("milliseconds", "ms"),
            ],
            Kind::CircuitBreaker => &[
                ("threshold", "failure_threshold"),
                ("failures", "failure_threshold"),
                ("max_failures", "failure_threshold"),
                ("successes", "success_threshold"),
                ("half_open_calls", "success_threshold"),
                ("reset_timeout", "cooldown"),
                ("recovery_timeout", "cooldown"),
                ("open_duration", "cooldown"),
                ("break_duration", "cooldown"),
                ("wait_duration", "cooldown"),
                ("timeout", "cooldown"),
                ("id", "name"),
                ("on", "when"),
                ("predicate", "when"),
            ],
            Kind::Cached => &[
                ("time_to_live", "ttl"),
                ("ttl_secs", "ttl"),
                ("ttl_seconds", "ttl"),
                ("expire", "ttl"),
                ("expiry", "ttl"),
                ("lifespan", "ttl"),
                ("time", "ttl"),
                ("time_to_idle", "tti"),
                ("size", "max_size"),
                ("capacity", "max_size"),
                ("max_capacity", "max_size"),
                ("max_entries", "max_size"),
                ("convert", "key"),
                ("key_fn", "key"),
            ],
            Kind::Fallback => &WHEN,
        }
    }

    /// ` (options: a, b)` for messages.
    pub(crate) fn options_hint(self) -> String {
        format!(" (options: {})", crate::suggest::list(self.options()))
    }

    /// An example value for `key`, for messages.
    pub(crate) fn value_hint(self, key: &str) -> &'static str {
        match key {
            "max" | "failure_threshold" | "success_threshold" => ", e.g. `= 3`",
            "backoff" => ", e.g. `backoff = \"exponential\"`",
            "jitter" => ", e.g. `jitter = \"full\"`",
            "delay" | "max_delay" | "cooldown" | "secs" | "ttl" | "tti" => {
                ", e.g. `= 30` or `= \"250ms\"`"
            }
            "ms" => ", e.g. `ms = 250`",
            "multiplier" => ", e.g. `multiplier = 2.0`",
            "max_size" => ", e.g. `max_size = 1000`",
            "when" => ", e.g. `when = is_transient` or `when = |e| e.is_transient()`",
            "key" => ", e.g. `key = query.to_lowercase()`",
            "name" => ", e.g. `name = \"gpt4\"`",
            _ => "",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
