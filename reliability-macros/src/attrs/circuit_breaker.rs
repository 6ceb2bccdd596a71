//! `#[circuit_breaker]`: fail fast while the service is down. Two trip rules: consecutive failures
//! (the default) or a failure rate over a window (chosen by any of its options).

use proc_macro2::{Literal, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Lit};

use super::option;
use crate::consts::{self, Consts};
use crate::expand::{Cx, duration};
use crate::kind::{Opt, Spec};
use crate::options::{self, Errors, Options, at};

pub(crate) static SPEC: Spec = Spec {
    name: "circuit_breaker",
    options: &[
        Opt::new("name", "name = \"gpt4\"", "module path + fn name", &["id"]),
        Opt::new(
            "failure_threshold",
            "failure_threshold = 5",
            "`5`",
            &["threshold", "failures", "max_failures"],
        ),
        Opt::new(
            "success_threshold",
            "success_threshold = 2",
            "`2`",
            &[
                "successes",
                "half_open_calls",
                "permitted_calls_in_half_open_state",
            ],
        ),
        Opt::new(
            "cooldown",
            "cooldown = 60",
            "60 s",
            &[
                "reset_timeout",
                "recovery_timeout",
                "open_duration",
                "break_duration",
                "wait_duration",
                "timeout",
                "wait_duration_in_open_state",
            ],
        ),
        Opt::new(
            "when",
            "when = |e| e.is_transient()",
            "every `Err`",
            &["on", "predicate", "record_exceptions", "should_handle"],
        ),
        Opt::new(
            "failure_rate",
            "failure_rate = 0.5",
            "0.5 (rate rule)",
            &["failure_rate_threshold", "failure_ratio", "error_rate"],
        ),
        Opt::new(
            "window",
            "window = 100",
            "100 calls (rate rule)",
            &[
                "sliding_window",
                "sliding_window_size",
                "sampling_duration",
                "window_size",
            ],
        ),
        Opt::new(
            "min_calls",
            "min_calls = 20",
            "the smaller of 100 and the window's size (rate rule)",
            &[
                "minimum_number_of_calls",
                "minimum_throughput",
                "min_throughput",
            ],
        ),
        Opt::new(
            "slow_call",
            "slow_call = \"2s\"",
            "off",
            &["slow_call_duration_threshold", "slow_call_duration"],
        ),
        Opt::new(
            "slow_call_rate",
            "slow_call_rate = 0.5",
            "`failure_rate`",
            &["slow_call_rate_threshold"],
        ),
        Opt::flag("shared", "off", &["distributed", "global", "redis"]),
    ],
    needs_result: true,
    reuses_args: false,
    docs: include_str!("../../docs/circuit_breaker.md"),
};

pub(crate) const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
pub(crate) const DEFAULT_SUCCESS_THRESHOLD: u32 = 2;
pub(crate) const DEFAULT_COOLDOWN: u64 = 60 * SECOND;
pub(crate) const DEFAULT_FAILURE_RATE: f64 = 0.5;
pub(crate) const DEFAULT_WINDOW_CALLS: u32 = 100;
const SECOND: u64 = 1_000_000_000;
/// The largest count window the runtime keeps exact counts for.
const MAX_WINDOW_CALLS: u64 = 65_535;

/// The options that choose the rate rule.
const RATE_OPTIONS: [&str; 5] = [
    "failure_rate",
    "window",
    "min_calls",
    "slow_call",
    "slow_call_rate",
];

pub(crate) struct Config {
    name: Option<String>,
    /// `name = EXPR` (not a string literal): one breaker per value, looked up at each call.
    name_expr: Option<Expr>,
    success_threshold: u32,
    cooldown: u64,
    when: Option<Expr>,
    rule: Rule,
    shared: bool,
    /// Values given as constants, checked when the `static` is evaluated.
    consts: Consts,
}

enum Rule {
    Consecutive {
        failure_threshold: u32,
    },
    Rate {
        failure_rate: f64,
        window: Window,
        min_calls: Option<u32>,
        slow_call: Option<u64>,
        slow_call_rate: Option<f64>,
    },
}

enum Window {
    Calls(u32),
    /// Nanoseconds.
    Time(u64),
    /// A constant: a number of calls (`u32`) or a `Duration`, in `Config::consts`.
    Const,
}

fn rate(key: &'static str, expr: &Expr, consts: &mut Consts, errors: &mut Errors) -> Option<f64> {
    let rule = format!(
        "`{key}` is a share of the window's calls: above 0 and at most 1 (e.g. `{key} = 0.5`)"
    );
    if !options::is_literal(expr) {
        consts.set(
            key,
            consts::float("circuit_breaker", key, expr, "share", &rule, errors),
        );
        return Some(DEFAULT_FAILURE_RATE);
    }
    let value = errors.value(options::number(key, expr))?;
    if !(value > 0.0 && value <= 1.0) {
        errors.push(at(expr, rule));
    }
    Some(value)
}

const WINDOW_CALLS_RULE: &str = "a window of calls holds 1 to 65535 calls (for a window of time, give a duration: `window = \"30s\"`)";
const WINDOW_TIME_RULE: &str = "a window of time must be at least 10 ns (it is kept in 10 buckets)";

fn window(expr: &Expr, consts: &mut Consts, errors: &mut Errors) -> Option<Window> {
    if !options::is_literal(expr) {
        // `u32` calls or a `Duration`: the constant's type picks.
        consts::check_scope("window", expr, errors);
        let max = Literal::u64_unsuffixed(MAX_WINDOW_CALLS);
        let calls = Literal::string(&format!("#[circuit_breaker]: {WINDOW_CALLS_RULE}"));
        let time = Literal::string(&format!("#[circuit_breaker]: {WINDOW_TIME_RULE}"));
        consts.set(
            "window",
            quote_spanned!(expr.span()=> ::reliability::__private::WindowValue::new(#expr).get(#max, #calls, #time)),
        );
        return Some(Window::Const);
    }
    let is_integer = matches!(expr, Expr::Lit(l) if matches!(l.lit, Lit::Int(_)));
    if is_integer {
        let calls = errors.value(options::integer("window", expr))?;
        if calls == 0 || calls > MAX_WINDOW_CALLS {
            errors.push(at(expr, WINDOW_CALLS_RULE));
            return None;
        }
        return u32::try_from(calls).ok().map(Window::Calls);
    }
    let nanos = errors.value(options::duration("window", expr))?;
    if nanos < 10 {
        errors.push(at(expr, WINDOW_TIME_RULE));
    }
    Some(Window::Time(nanos))
}

pub(crate) fn config(opts: &Options, errors: &mut Errors) -> Config {
    let mut config = Config {
        name: None,
        success_threshold: DEFAULT_SUCCESS_THRESHOLD,
        cooldown: DEFAULT_COOLDOWN,
        when: opts.get("when").cloned(),
        rule: Rule::Consecutive {
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
        },
        shared: opts.flag("shared"),
        name_expr: None,
        consts: Consts::default(),
    };
    if let Some(expr) = opts.get("name") {
        if options::is_literal(expr) {
            config.name = errors.value(options::name("name", expr));
        } else {
            // `name = self.region`, `name = format!("llm-{host}")`: evaluated at each call.
            config.name_expr = Some(expr.clone());
        }
    }
    if let Some(expr) = opts.get("success_threshold")
        && let Some(value) = consts::count(
            "circuit_breaker",
            "success_threshold",
            expr,
            (1, u32::MAX),
            "`success_threshold` must be at least 1",
            &mut config.consts,
            errors,
        )
    {
        config.success_threshold = value;
    }
    if let Some(expr) = consts::given(opts, "cooldown") {
        let rule = Some((1, "`cooldown` must be longer than zero"));
        let value = consts::duration("circuit_breaker", "cooldown", expr, rule, errors);
        config.consts.set("cooldown", value);
    } else if let Some(expr) = opts.get("cooldown")
        && let Some(cooldown) = errors.value(options::duration("cooldown", expr))
    {
        if cooldown == 0 {
            errors.push(at(expr, "`cooldown` must be longer than zero"));
        }
        config.cooldown = cooldown;
    }
    let rate_given: Vec<&str> = RATE_OPTIONS
        .iter()
        .copied()
        .filter(|key| opts.get(key).is_some())
        .collect();
    if let Some(expr) = opts.get("failure_threshold") {
        if let Some(first) = rate_given.first()
            && let Some(key) = opts.key("failure_threshold")
        {
            errors.push(at(key, format!(
                "`failure_threshold` (the consecutive rule) and `{first}` (the rate rule) pick two trip rules; keep one: `failure_threshold = N` for N failures in a row, or `failure_rate`/`window`/`min_calls` for a share of recent calls"
            )));
        }
        if let Some(value) = consts::count(
            "circuit_breaker",
            "failure_threshold",
            expr,
            (1, u32::MAX),
            "`failure_threshold` must be at least 1",
            &mut config.consts,
            errors,
        ) {
            config.rule = Rule::Consecutive {
                failure_threshold: value,
            };
        }
    }
    if rate_given.is_empty() || opts.get("failure_threshold").is_some() {
        return config;
    }
    let failure_rate = opts
        .get("failure_rate")
        .and_then(|e| rate("failure_rate", e, &mut config.consts, errors))
        .unwrap_or(DEFAULT_FAILURE_RATE);
    let window = opts
        .get("window")
        .and_then(|e| window(e, &mut config.consts, errors))
        .unwrap_or(Window::Calls(DEFAULT_WINDOW_CALLS));
    let mut min_calls = None;
    if let Some(expr) = consts::given(opts, "min_calls").or(opts
        .get("min_calls")
        .filter(|_| matches!(window, Window::Const)))
    {
        // A constant `min_calls`, or a literal one with a constant window: checked when the
        // `static` is evaluated.
        let rule = "`min_calls` must be at least 1";
        let value = if options::is_literal(expr) {
            // Read as usual: its own errors are the macro's.
            let value = errors.value(options::integer_u32("min_calls", expr));
            if value == Some(0) {
                errors.push(at(expr, rule));
            }
            let value = Literal::u32_unsuffixed(value.unwrap_or(1)).into_token_stream();
            consts::respan(value, expr)
        } else {
            consts::u32(
                "circuit_breaker",
                "min_calls",
                expr,
                (1, u32::MAX),
                rule,
                errors,
            )
        };
        let window = config
            .consts
            .get("window")
            .unwrap_or_else(|| consts::respan(window_tokens(&window), expr));
        let rule = "`min_calls` is above the window's size: the window could never hold enough calls to decide; make it at most the window's size";
        let value = consts::across(
            "circuit_breaker",
            expr,
            "min_calls_within",
            &[&value, &window],
            rule,
        );
        config.consts.set("min_calls", value);
        min_calls = Some(1);
    } else if let Some(expr) = opts.get("min_calls")
        && let Some(value) = errors.value(options::integer_u32("min_calls", expr))
    {
        if value == 0 {
            errors.push(at(expr, "`min_calls` must be at least 1"));
        }
        if let Window::Calls(size) = window
            && value > size
        {
            errors.push(at(expr, format!("`min_calls = {value}` is above the window's size ({size} calls): the window could never hold enough calls to decide; make it at most {size}")));
        }
        min_calls = Some(value);
    }
    let mut slow_call = None;
    if let Some(expr) = consts::given(opts, "slow_call") {
        let rule = Some((1, "`slow_call` must be longer than zero"));
        let value = consts::duration("circuit_breaker", "slow_call", expr, rule, errors);
        config.consts.set("slow_call", value);
        slow_call = Some(1);
    } else if let Some(expr) = opts.get("slow_call")
        && let Some(value) = errors.value(options::duration("slow_call", expr))
    {
        if value == 0 {
            errors.push(at(expr, "`slow_call` must be longer than zero"));
        }
        slow_call = Some(value);
    }
    let slow_call_rate = opts
        .get("slow_call_rate")
        .and_then(|e| rate("slow_call_rate", e, &mut config.consts, errors));
    if let (Some(expr), None) = (opts.get("slow_call_rate"), slow_call) {
        errors.push(at(
            expr,
            "`slow_call_rate` needs `slow_call = DUR`: the time above which a call is slow",
        ));
    }
    config.rule = Rule::Rate {
        failure_rate,
        window,
        min_calls,
        slow_call,
        slow_call_rate,
    };
    config
}

pub(crate) fn expand(config: &Config, cx: &mut Cx<'_>, below: TokenStream) -> TokenStream {
    let named = config.name.as_ref().map(|n| quote!(.named(#n)));
    let consts = &config.consts;
    let int = |key: &str, value: u32| {
        consts
            .get(key)
            .unwrap_or_else(|| Literal::u32_unsuffixed(value).into_token_stream())
    };
    let float = |key: &str, value: f64| {
        consts
            .get(key)
            .unwrap_or_else(|| Literal::f64_unsuffixed(value).into_token_stream())
    };
    let successes = int("success_threshold", config.success_threshold);
    let cooldown = consts
        .get("cooldown")
        .unwrap_or_else(|| duration(config.cooldown));
    let settings = match &config.rule {
        Rule::Consecutive { failure_threshold } => {
            let failures = int("failure_threshold", *failure_threshold);
            quote!(::reliability::__private::consecutive_breaker(#failures, #successes, #cooldown))
        }
        Rule::Rate {
            failure_rate,
            window,
            min_calls,
            slow_call,
            slow_call_rate,
        } => {
            let failure_rate = float("failure_rate", *failure_rate);
            let window = consts
                .get("window")
                .unwrap_or_else(|| window_tokens(window));
            let min_calls = option(min_calls.map(|n| int("min_calls", n)));
            let slow_call =
                option(slow_call.map(|d| consts.get("slow_call").unwrap_or_else(|| duration(d))));
            let slow_call_rate = option(slow_call_rate.map(|r| float("slow_call_rate", r)));
            quote!(::reliability::__private::rate_breaker(
                #failure_rate, #window, #min_calls, #slow_call, #slow_call_rate, #successes, #cooldown,
            ))
        }
    };
    cx.statics.push(quote! {
        static __RELIABILITY_BREAKER: ::reliability::__private::BreakerSlot =
            ::reliability::__private::BreakerSlot::new(#settings)#named;
    });
    let when = cx.predicate("__reliability_breaker_when", config.when.as_ref());
    let convert = cx.convert();
    let (ctx, site) = (&cx.names.ctx, &cx.names.site);
    let breaker = match &config.name_expr {
        None => quote!(__RELIABILITY_BREAKER.get(#site)),
        Some(expr) => {
            if let Some(error) = forgotten_quotes(expr, cx) {
                return error.to_compile_error();
            }
            let local = cx.local("__reliability_breaker");
            let name =
                quote_spanned!(expr.span()=> ::core::convert::AsRef::<str>::as_ref(&(#expr)));
            cx.lets
                .push(quote!(let #local = __RELIABILITY_BREAKER.named_by(&#site, #name);));
            quote!(&#local)
        }
    };
    let call = if config.shared {
        cx.lets
            .push(quote!(::reliability::__private::needs_redis::<()>();));
        quote!(circuit_breaker_shared)
    } else {
        quote!(circuit_breaker)
    };
    quote!(::reliability::__private::#call(#breaker, &#site, &#ctx, #when, #convert, #below))
}

/// A window written as a literal, as tokens.
fn window_tokens(window: &Window) -> TokenStream {
    match window {
        Window::Calls(n) => {
            let n = Literal::u32_unsuffixed(*n);
            quote!(::reliability::__private::SlidingWindow::Calls(#n))
        }
        Window::Time(nanos) => {
            let d = duration(*nanos);
            quote!(::reliability::__private::SlidingWindow::Duration(#d))
        }
        Window::Const => TokenStream::new(),
    }
}

/// `name = gpt4` where `gpt4` is no argument of the function, nor a constant's name (upper case):
/// most likely a name whose quotes were forgotten, not an expression.
fn forgotten_quotes(expr: &Expr, cx: &Cx<'_>) -> Option<syn::Error> {
    let Expr::Path(path) = expr else {
        return None;
    };
    let ident = path.path.get_ident()?;
    let text = ident.to_string();
    let argument = cx.function.args.iter().any(|arg| arg.binding == *ident);
    if argument || path.qself.is_some() || text.chars().all(|c| !c.is_lowercase()) {
        return None;
    }
    Some(syn::Error::new_spanned(
        expr,
        format!(
            "`name` takes a string literal, e.g. `name = \"{text}\"`, or an expression over the arguments evaluated at each call (`name = self.region`); `{text}` is not an argument of this function"
        ),
    ))
}
