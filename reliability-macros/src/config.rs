//! Each attribute's options, validated: ranges, required options and options that conflict.

use proc_macro2::Span;
use quote::ToTokens;
use syn::{Expr, Path};

use crate::kind::Kind;
use crate::options::{self, Errors, Options, at, missing};

pub(crate) struct RetryConfig {
    pub(crate) max: u32,
    pub(crate) backoff: Backoff,
    pub(crate) delay: u64,
    pub(crate) max_delay: u64,
    pub(crate) multiplier: f64,
    pub(crate) jitter: Jitter,
    pub(crate) when: Option<Expr>,
}

/// `backoff = "..."`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backoff {
    Fixed,
    Linear,
    Exponential,
}

impl Backoff {
    const CHOICES: [(&'static str, Backoff); 3] = [
        ("fixed", Backoff::Fixed),
        ("linear", Backoff::Linear),
        ("exponential", Backoff::Exponential),
    ];

    fn name(self) -> &'static str {
        match self {
            Backoff::Fixed => "fixed",
            Backoff::Linear => "linear",
            Backoff::Exponential => "exponential",
        }
    }
}

/// `jitter = "..."`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Jitter {
    None,
    Full,
    Equal,
    Decorrelated,
}

impl Jitter {
    const CHOICES: [(&'static str, Jitter); 4] = [
        ("none", Jitter::None),
        ("full", Jitter::Full),
        ("equal", Jitter::Equal),
        ("decorrelated", Jitter::Decorrelated),
    ];

    /// The runtime's variant of the same name.
    pub(crate) fn variant(self) -> &'static str {
        match self {
            Jitter::None => "None",
            Jitter::Full => "Full",
            Jitter::Equal => "Equal",
            Jitter::Decorrelated => "Decorrelated",
        }
    }
}

/// The value of `choices` named `name` (a name `options::choice` accepted).
fn pick<T: Copy>(choices: &[(&'static str, T)], name: &str, default: T) -> T {
    choices
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(default, |(_, value)| *value)
}

pub(crate) struct TimeoutConfig {
    pub(crate) nanos: u64,
}

pub(crate) struct BreakerConfig {
    pub(crate) name: Option<String>,
    pub(crate) failure_threshold: u32,
    pub(crate) success_threshold: u32,
    pub(crate) cooldown: u64,
    pub(crate) when: Option<Expr>,
}

pub(crate) struct CacheConfig {
    pub(crate) ttl: Option<u64>,
    pub(crate) tti: Option<u64>,
    pub(crate) max_size: u64,
    pub(crate) key: Option<Expr>,
    pub(crate) name: Option<String>,
}

pub(crate) struct FallbackConfig {
    pub(crate) targets: Vec<Path>,
    pub(crate) when: Option<Expr>,
}

/// One attribute of the stack, validated.
pub(crate) enum Layer {
    Retry(RetryConfig),
    Timeout(TimeoutConfig),
    CircuitBreaker(BreakerConfig),
    Cached(CacheConfig),
    Fallback(FallbackConfig),
}

const SECOND: u64 = 1_000_000_000;

/// Validates the options of one attribute; `span` is the attribute, blamed for missing options.
pub(crate) fn layer(kind: Kind, opts: &Options, span: Span, errors: &mut Errors) -> Option<Layer> {
    let before = errors_len(errors);
    let layer = match kind {
        Kind::Retry => Layer::Retry(retry(opts, errors)),
        Kind::Timeout => Layer::Timeout(timeout(opts, span, errors)),
        Kind::CircuitBreaker => Layer::CircuitBreaker(breaker(opts, errors)),
        Kind::Cached => Layer::Cached(cache(opts, errors)),
        Kind::Fallback => Layer::Fallback(fallback(opts, span, errors)),
    };
    (errors_len(errors) == before).then_some(layer)
}

fn errors_len(errors: &Errors) -> usize {
    errors.count()
}

impl Errors {
    fn count(&self) -> usize {
        self.peek().map_or(0, |e| e.into_iter().count())
    }
}

fn retry(opts: &Options, errors: &mut Errors) -> RetryConfig {
    let mut config = RetryConfig {
        max: 3,
        backoff: Backoff::Exponential,
        delay: SECOND,
        max_delay: 30 * SECOND,
        multiplier: 2.0,
        jitter: Jitter::Full,
        when: opts.get("when").cloned(),
    };
    if let Some(expr) = opts.get("max")
        && let Some(max) = errors.take(options::integer_u32("max", expr))
    {
        if max == 0 {
            errors.push(at(expr, "`max` counts every attempt, the first included, so it must be at least 1 (`max = 1` disables retries)"));
        }
        config.max = max;
    }
    if let Some(expr) = opts.get("backoff")
        && let Some(backoff) = errors.take(options::choice(
            "backoff",
            expr,
            &Backoff::CHOICES.map(|(name, _)| name),
            &[
                ("constant", "fixed"),
                ("exp", "exponential"),
                ("expo", "exponential"),
                ("exponent", "exponential"),
            ],
        ))
    {
        config.backoff = pick(&Backoff::CHOICES, backoff, Backoff::Exponential);
    }
    if let Some(expr) = opts.get("jitter")
        && let Some(jitter) = errors.take(options::choice(
            "jitter",
            expr,
            &Jitter::CHOICES.map(|(name, _)| name),
            &[
                ("random", "full"),
                ("true", "full"),
                ("false", "none"),
                ("off", "none"),
                ("no", "none"),
                ("half", "equal"),
            ],
        ))
    {
        config.jitter = pick(&Jitter::CHOICES, jitter, Jitter::Full);
    }
    if let Some(expr) = opts.get("delay")
        && let Some(delay) = errors.take(options::duration("delay", expr))
    {
        config.delay = delay;
    }
    let mut max_delay_given = false;
    if let Some(expr) = opts.get("max_delay")
        && let Some(max_delay) = errors.take(options::duration("max_delay", expr))
    {
        if max_delay == 0 {
            errors.push(at(expr, "`max_delay` must be longer than zero"));
        }
        config.max_delay = max_delay;
        max_delay_given = true;
    }
    if config.delay > config.max_delay {
        let message = if max_delay_given {
            "`delay` is longer than `max_delay`; every wait is capped at `max_delay`, so make `delay` shorter or `max_delay` longer"
        } else {
            "`delay` is longer than the default `max_delay` (30 s); add a `max_delay` at least as long"
        };
        let blame = opts.get("delay").or(opts.get("max_delay"));
        if let Some(blame) = blame {
            errors.push(at(blame, message));
        }
    }
    if let Some(expr) = opts.get("multiplier")
        && let Some(multiplier) = errors.take(options::number("multiplier", expr))
    {
        if !(multiplier.is_finite() && multiplier > 1.0) {
            errors.push(at(
                expr,
                "`multiplier` must be above 1.0 (for equal waits use `backoff = \"fixed\"`)",
            ));
        }
        if config.backoff != Backoff::Exponential {
            errors.push(at(
                    expr,
                    format!("`multiplier` applies only to `backoff = \"exponential\"`, and this retry uses `backoff = \"{}\"`", config.backoff.name()),
                ));
        }
        config.multiplier = multiplier;
    }
    config
}

fn timeout(opts: &Options, span: Span, errors: &mut Errors) -> TimeoutConfig {
    let mut nanos = 0;
    match (opts.get("secs"), opts.get("ms")) {
        (Some(_), Some(ms)) => errors.push(at(ms, "give the deadline once: `secs = ...` or `ms = ...`, not both")),
        (None, None) => errors.push(missing(
            span,
            "`#[timeout]` needs a deadline: `#[timeout(secs = 30)]`, `#[timeout(secs = \"1m30s\")]` or `#[timeout(ms = 250)]`".to_owned(),
        )),
        (Some(secs), None) => {
            if let Some(value) = errors.take(options::duration("secs", secs)) {
                nanos = value;
                if value == 0 {
                    errors.push(at(secs, "the deadline must be longer than zero"));
                }
            }
        }
        (None, Some(ms)) => {
            if let Some(value) = errors.take(options::integer("ms", ms)) {
                nanos = value.saturating_mul(1_000_000);
                if value == 0 {
                    errors.push(at(ms, "the deadline must be longer than zero"));
                }
            }
        }
    }
    TimeoutConfig { nanos }
}

fn breaker(opts: &Options, errors: &mut Errors) -> BreakerConfig {
    let mut config = BreakerConfig {
        name: None,
        failure_threshold: 5,
        success_threshold: 2,
        cooldown: 60 * SECOND,
        when: opts.get("when").cloned(),
    };
    if let Some(expr) = opts.get("name") {
        config.name = errors.take(options::name("name", expr));
    }
    for (key, slot) in [
        ("failure_threshold", &mut config.failure_threshold),
        ("success_threshold", &mut config.success_threshold),
    ] {
        if let Some(expr) = opts.get(key)
            && let Some(value) = errors.take(options::integer_u32(key, expr))
        {
            if value == 0 {
                errors.push(at(expr, format!("`{key}` must be at least 1")));
            }
            *slot = value;
        }
    }
    if let Some(expr) = opts.get("cooldown")
        && let Some(cooldown) = errors.take(options::duration("cooldown", expr))
    {
        if cooldown == 0 {
            errors.push(at(expr, "`cooldown` must be longer than zero"));
        }
        config.cooldown = cooldown;
    }
    config
}

fn cache(opts: &Options, errors: &mut Errors) -> CacheConfig {
    let mut config = CacheConfig {
        ttl: None,
        tti: None,
        max_size: 10_000,
        key: opts.get("key").cloned(),
        name: None,
    };
    for (key, slot) in [("ttl", &mut config.ttl), ("tti", &mut config.tti)] {
        if let Some(expr) = opts.get(key)
            && let Some(value) = errors.take(options::duration(key, expr))
        {
            if value == 0 {
                errors.push(at(expr, format!("`{key}` must be longer than zero (leave it out to keep entries until evicted)")));
            }
            *slot = Some(value);
        }
    }
    if let Some(expr) = opts.get("max_size")
        && let Some(max_size) = errors.take(options::integer("max_size", expr))
    {
        if max_size == 0 {
            errors.push(at(expr, "`max_size` must be at least 1"));
        }
        config.max_size = max_size;
    }
    if let Some(expr) = opts.get("name") {
        config.name = errors.take(options::name("name", expr));
    }
    config
}

fn fallback(opts: &Options, span: Span, errors: &mut Errors) -> FallbackConfig {
    if opts.paths.is_empty() {
        errors.push(missing(
            span,
            "`#[fallback]` needs at least one function to fall back to: `#[fallback(cheaper_model, canned_answer)]`".to_owned(),
        ));
    }
    // Compared as written (segments, `::` and any generic arguments), e.g. `models::cheaper`.
    let written: Vec<String> = opts
        .paths
        .iter()
        .map(|p| p.to_token_stream().to_string())
        .collect();
    for (i, path) in opts.paths.iter().enumerate() {
        if written[..i].contains(&written[i]) {
            errors.push(at(path, "this fallback is listed twice; remove this one"));
        }
    }
    FallbackConfig {
        targets: opts.paths.clone(),
        when: opts.get("when").cloned(),
    }
}
