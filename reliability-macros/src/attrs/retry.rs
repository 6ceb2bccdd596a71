//! `#[retry]`: the attempt loop, written into the function as a `loop` around the layer below.

use proc_macro2::{Literal, TokenStream};
use quote::{ToTokens, format_ident, quote};
use syn::Expr;

use super::Wrapped;
use crate::consts::{self, Consts};
use crate::expand::{Cx, duration};
use crate::kind::{Opt, Spec};
use crate::options::{self, Errors, Options, at};

pub(crate) static SPEC: Spec = Spec {
    name: "retry",
    options: &[
        Opt::new(
            "max",
            "max = 3",
            "`3`",
            &[
                "max_attempts",
                "attempts",
                "max_retries",
                "retries",
                "times",
                "tries",
            ],
        ),
        Opt::new(
            "backoff",
            "backoff = \"exponential\"",
            "`\"exponential\"`",
            &["strategy", "backoff_strategy"],
        ),
        Opt::new(
            "delay",
            "delay = \"250ms\"",
            "1 s",
            &["initial_delay", "base_delay", "min_delay", "wait"],
        ),
        Opt::new("max_delay", "max_delay = 30", "30 s", &["max_wait", "cap"]),
        Opt::new(
            "multiplier",
            "multiplier = 2.0",
            "`2.0`",
            &["factor", "exponent", "backoff_multiplier"],
        ),
        Opt::new(
            "jitter",
            "jitter = \"full\"",
            "`\"full\"`",
            &["random", "randomize"],
        ),
        Opt::new(
            "when",
            "when = |e| e.is_transient()",
            "every `Err`",
            &["retry_if", "on", "if", "predicate", "filter", "only_if"],
        ),
        Opt::new("name", "name = \"gpt4\"", "module path + fn name", &["id"]),
        Opt::new(
            "retry_after",
            "retry_after = LlmError::retry_after",
            "none",
            &["respect_retry_after", "server_delay"],
        ),
        Opt::new(
            "deadline",
            "deadline = \"2m\"",
            "none",
            &["total_timeout", "max_elapsed", "max_duration", "timeout"],
        ),
        Opt::new("budget", "budget = 0.1", "none", &["retry_budget", "ratio"]),
    ],
    needs_result: true,
    reuses_args: true,
    docs: include_str!("../../docs/retry.md"),
};

/// The defaults, shared with the docs table above and checked against the runtime's in a test.
pub(crate) const DEFAULT_MAX: u32 = 3;
pub(crate) const DEFAULT_DELAY: u64 = SECOND;
pub(crate) const DEFAULT_MAX_DELAY: u64 = 30 * SECOND;
pub(crate) const DEFAULT_MULTIPLIER: f64 = 2.0;
const SECOND: u64 = 1_000_000_000;

pub(crate) struct Config {
    max: u32,
    backoff: Backoff,
    delay: u64,
    max_delay: u64,
    multiplier: f64,
    jitter: Jitter,
    when: Option<Expr>,
    name: Option<String>,
    retry_after: Option<Expr>,
    /// With the option's value, for a message that blames it.
    pub(crate) deadline: Option<(u64, Expr)>,
    budget: Option<f64>,
    /// Values given as constants, checked when the `static` is evaluated.
    consts: Consts,
}

/// `backoff = "..."`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Backoff {
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
    const ALIASES: [(&'static str, &'static str); 4] = [
        ("constant", "fixed"),
        ("exp", "exponential"),
        ("expo", "exponential"),
        ("exponent", "exponential"),
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
enum Jitter {
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
    const ALIASES: [(&'static str, &'static str); 6] = [
        ("random", "full"),
        ("true", "full"),
        ("false", "none"),
        ("off", "none"),
        ("no", "none"),
        ("half", "equal"),
    ];

    /// The runtime's variant of the same meaning.
    fn variant(self) -> &'static str {
        match self {
            Jitter::None => "None",
            Jitter::Full => "Full",
            Jitter::Equal => "Equal",
            Jitter::Decorrelated => "Decorrelated",
        }
    }
}

pub(crate) fn config(opts: &Options, errors: &mut Errors) -> Config {
    let mut config = Config {
        max: DEFAULT_MAX,
        backoff: Backoff::Exponential,
        delay: DEFAULT_DELAY,
        max_delay: DEFAULT_MAX_DELAY,
        multiplier: DEFAULT_MULTIPLIER,
        jitter: Jitter::Full,
        when: opts.get("when").cloned(),
        name: None,
        retry_after: opts.get("retry_after").cloned(),
        deadline: None,
        budget: None,
        consts: Consts::default(),
    };
    const MAX_RULE: &str = "`max` counts every attempt, the first included, so it must be at least 1 (`max = 1` disables retries)";
    if let Some(expr) = opts.get("max")
        && let Some(max) = consts::count(
            "retry",
            "max",
            expr,
            (1, u32::MAX),
            MAX_RULE,
            &mut config.consts,
            errors,
        )
    {
        config.max = max;
    }
    if let Some(expr) = opts.get("backoff")
        && let Some(backoff) = errors.value(options::choice(
            "backoff",
            expr,
            &Backoff::CHOICES,
            &Backoff::ALIASES,
        ))
    {
        config.backoff = backoff;
    }
    if let Some(expr) = opts.get("jitter")
        && let Some(jitter) = errors.value(options::choice(
            "jitter",
            expr,
            &Jitter::CHOICES,
            &Jitter::ALIASES,
        ))
    {
        config.jitter = jitter;
    }
    if let Some(expr) = consts::given(opts, "delay") {
        let delay = consts::duration("retry", "delay", expr, None, errors);
        config.consts.set("delay", delay);
    } else if let Some(expr) = opts.get("delay")
        && let Some(delay) = errors.value(options::duration("delay", expr))
    {
        config.delay = delay;
    }
    let mut max_delay_given = false;
    if let Some(expr) = consts::given(opts, "max_delay") {
        let rule = "`max_delay` must be longer than zero";
        let max_delay = consts::duration("retry", "max_delay", expr, Some((1, rule)), errors);
        config.consts.set("max_delay", max_delay);
        max_delay_given = true;
    } else if let Some(expr) = opts.get("max_delay")
        && let Some(max_delay) = errors.value(options::duration("max_delay", expr))
    {
        if max_delay == 0 {
            errors.push(at(expr, "`max_delay` must be longer than zero"));
        }
        config.max_delay = max_delay;
        max_delay_given = true;
    }
    if config.consts.has("delay") || config.consts.has("max_delay") {
        // Checked when the `static` is evaluated: `max_delay` (as given, or the default) not shorter
        // than `delay`.
        let rule = if max_delay_given {
            "`delay` is longer than `max_delay`; every wait is capped at `max_delay`, so make `delay` shorter or `max_delay` longer"
        } else {
            "`delay` is longer than the default `max_delay` (30 s); add a `max_delay` at least as long"
        };
        if let Some(blame) = consts::given(opts, "delay").or(consts::given(opts, "max_delay")) {
            let delay = config
                .consts
                .get("delay")
                .unwrap_or_else(|| consts::respan(duration(config.delay), blame));
            let max_delay = config
                .consts
                .get("max_delay")
                .unwrap_or_else(|| consts::respan(duration(config.max_delay), blame));
            let checked = consts::across(
                "retry",
                blame,
                "not_shorter",
                &[&delay, &max_delay, &consts::respan(quote!(false), blame)],
                rule,
            );
            config.consts.set("max_delay", checked);
        }
    } else if config.delay > config.max_delay {
        let message = if max_delay_given {
            "`delay` is longer than `max_delay`; every wait is capped at `max_delay`, so make `delay` shorter or `max_delay` longer"
        } else {
            "`delay` is longer than the default `max_delay` (30 s); add a `max_delay` at least as long"
        };
        if let Some(blame) = opts.get("delay").or(opts.get("max_delay")) {
            errors.push(at(blame, message));
        }
    }
    const MULTIPLIER_RULE: &str =
        "`multiplier` must be above 1.0 (for equal waits use `backoff = \"fixed\"`)";
    if let Some(expr) = consts::given(opts, "multiplier") {
        let multiplier = consts::float(
            "retry",
            "multiplier",
            expr,
            "above_one",
            MULTIPLIER_RULE,
            errors,
        );
        config.consts.set("multiplier", multiplier);
    }
    if let Some(expr) = opts.get("multiplier")
        && let Some(multiplier) = if config.consts.has("multiplier") {
            Some(DEFAULT_MULTIPLIER)
        } else {
            errors.value(options::number("multiplier", expr))
        }
    {
        if !(multiplier.is_finite() && multiplier > 1.0) {
            errors.push(at(expr, MULTIPLIER_RULE));
        }
        if config.backoff != Backoff::Exponential {
            errors.push(at(
                expr,
                format!(
                    "`multiplier` applies only to `backoff = \"exponential\"`, and this retry uses `backoff = \"{}\"`",
                    config.backoff.name()
                ),
            ));
        }
        config.multiplier = multiplier;
    }
    if let Some(expr) = opts.get("name") {
        config.name = errors.value(options::name("name", expr));
    }
    if let Some(expr) = consts::given(opts, "deadline") {
        let rule = "`deadline` must be longer than zero";
        let mut deadline = consts::duration("retry", "deadline", expr, Some((1, rule)), errors);
        if opts.get("delay").is_some() {
            let delay = config
                .consts
                .get("delay")
                .unwrap_or_else(|| consts::respan(duration(config.delay), expr));
            let rule = "`deadline` is not longer than `delay`: no retry could ever start before it; make the deadline longer, or the delay shorter";
            deadline = consts::across(
                "retry",
                expr,
                "not_shorter",
                &[&delay, &deadline, &consts::respan(quote!(true), expr)],
                rule,
            );
        }
        config.consts.set("deadline", deadline);
    } else if let Some(expr) = opts.get("deadline")
        && let Some(deadline) = errors.value(options::duration("deadline", expr))
    {
        if deadline == 0 {
            errors.push(at(expr, "`deadline` must be longer than zero"));
        } else if let Some(blame) = consts::given(opts, "delay") {
            let deadline = consts::respan(duration(deadline), blame);
            let delay = config.consts.get("delay").unwrap_or_default();
            let rule = "`deadline` is not longer than `delay`: no retry could ever start before it; make the deadline longer, or the delay shorter";
            let checked = consts::across(
                "retry",
                blame,
                "not_shorter",
                &[&delay, &deadline, &consts::respan(quote!(true), blame)],
                rule,
            );
            config.consts.set("deadline", checked);
        } else if opts.get("delay").is_some() && deadline <= config.delay {
            errors.push(at(
                expr,
                "`deadline` is not longer than `delay`: no retry could ever start before it; make the deadline longer, or the delay shorter",
            ));
        }
        config.deadline = Some((deadline, expr.clone()));
    }
    if let Some(expr) = consts::given(opts, "budget") {
        let rule = "`budget` is the share of calls that retries may add: above 0 and at most 1 (e.g. `budget = 0.1` for 10%)";
        let budget = consts::float("retry", "budget", expr, "share", rule, errors);
        config.consts.set("budget", budget);
    } else if let Some(expr) = opts.get("budget")
        && let Some(budget) = errors.value(options::number("budget", expr))
    {
        if !(budget > 0.0 && budget <= 1.0) {
            errors.push(at(
                expr,
                "`budget` is the share of calls that retries may add: above 0 and at most 1 (e.g. `budget = 0.1` for 10%)",
            ));
        }
        config.budget = Some(budget);
    }
    config
}

pub(crate) fn expand(config: &Config, cx: &mut Cx<'_>, below: TokenStream) -> Wrapped {
    let consts = &config.consts;
    let max = consts
        .get("max")
        .unwrap_or_else(|| Literal::u32_unsuffixed(config.max).into_token_stream());
    let backoff = match config.backoff {
        Backoff::Fixed => quote!(::reliability::__private::Backoff::Fixed),
        Backoff::Linear => quote!(::reliability::__private::Backoff::Linear),
        Backoff::Exponential => {
            let multiplier = consts
                .get("multiplier")
                .unwrap_or_else(|| Literal::f64_unsuffixed(config.multiplier).into_token_stream());
            quote!(::reliability::__private::Backoff::Exponential { multiplier: #multiplier })
        }
    };
    let jitter = format_ident!("{}", config.jitter.variant());
    let delay = consts
        .get("delay")
        .unwrap_or_else(|| duration(config.delay));
    let max_delay = consts
        .get("max_delay")
        .unwrap_or_else(|| duration(config.max_delay));
    let named = config.name.as_ref().map(|n| quote!(.named(#n)));
    let deadline = consts
        .get("deadline")
        .or_else(|| config.deadline.as_ref().map(|(d, _)| duration(*d)))
        .map(|d| quote!(.deadline(#d)));
    let budget = consts
        .get("budget")
        .or_else(|| {
            config
                .budget
                .map(|b| Literal::f64_unsuffixed(b).into_token_stream())
        })
        .map(|b| quote!(.budget(#b)));
    cx.statics.push(quote! {
        static __RELIABILITY_RETRY: ::reliability::__private::RetrySlot = ::reliability::__private::RetrySlot::new(
            #max, #backoff, #delay, #max_delay, ::reliability::__private::Jitter::#jitter,
        )#named #deadline #budget;
    });
    let when = cx.predicate("__reliability_retry_when", config.when.as_ref());
    let retry_after = cx.retry_after("__reliability_retry_after", config.retry_after.as_ref());
    // How events show the error: `Display`, else `Debug`, else not at all, as its type allows.
    let ret = cx.ret;
    let show = cx.local("__reliability_show");
    cx.lets.push(quote! {
        let #show = (&&&::reliability::__private::Show::<<#ret as ::reliability::__private::IsResult>::Err>::new()).show();
    });
    let (ctx, site) = (&cx.names.ctx, &cx.names.site);
    let attempts = cx.local("__reliability_attempts");
    let out = cx.local("__reliability_out");
    let value = cx.local("__reliability_value");
    let error = cx.local("__reliability_error");
    Wrapped::Statements(quote! {
        let mut #attempts = ::reliability::__private::RetryLoop::new(__RELIABILITY_RETRY.get(#site), &#ctx);
        loop {
            // The attempt's result ends with the `match`, before the wait (held across it, it
            // was kept in the function's future); an `Ok` is rebuilt from its value (see
            // `RetryLoop::succeeded`).
            match #below.await {
                ::core::result::Result::Ok(#value) => break #attempts.succeeded(#value),
                ::core::result::Result::Err(#error) => if let ::core::ops::ControlFlow::Break(#out) = #attempts.decide(#error, #when, #retry_after, #show) {
                    break #out;
                },
            }
            #attempts.wait().await;
        }
    })
}
