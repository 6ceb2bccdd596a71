//! `#[rate_limit]`: stay under a quota (GCRA); a call without a permit in time is rejected.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{ToTokens, quote};
use syn::Expr;

use crate::consts::{self, Consts};
use crate::expand::{Cx, duration};
use crate::kind::{Opt, Spec};
use crate::options::{self, Errors, Options, at};

pub(crate) static SPEC: Spec = Spec {
    name: "rate_limit",
    options: &[
        Opt::new(
            "rate",
            "rate = 500",
            "required",
            &[
                "limit",
                "limit_for_period",
                "permits",
                "permits_per_second",
                "rps",
                "requests",
            ],
        ),
        Opt::new(
            "per",
            "per = \"1m\"",
            "1 s",
            &["period", "interval", "limit_refresh_period", "window"],
        ),
        Opt::new(
            "burst",
            "burst = 10",
            "`rate`",
            &["max_burst", "burst_size"],
        ),
        Opt::new(
            "wait",
            "wait = \"500ms\"",
            "0",
            &["timeout", "timeout_duration", "max_wait", "queue_timeout"],
        ),
        Opt::new(
            "cost",
            "cost = prompt.len() as u32 / 4",
            "1",
            &["weight", "permits_per_call", "tokens"],
        ),
        Opt::new(
            "key",
            "key = api_key.clone()",
            "one limiter",
            &["partition", "per_key", "by"],
        ),
        Opt::new(
            "name",
            "name = \"openai\"",
            "module path + fn name",
            &["id"],
        ),
        Opt::flag("shared", "off", &["distributed", "global", "redis"]),
    ],
    needs_result: true,
    reuses_args: false,
    docs: include_str!("../../docs/rate_limit.md"),
};

const SECOND: u64 = 1_000_000_000;
/// `per / rate × burst` above this cannot be held by the limiter's clock.
const HUNDRED_YEARS: u128 = 100 * 365 * 86_400 * SECOND as u128;

pub(crate) struct Config {
    rate: u32,
    per: u64,
    burst: u32,
    /// With the option's value, for a message that blames it.
    pub(crate) wait: (u64, Option<Expr>),
    cost: Option<Expr>,
    key: Option<Expr>,
    name: Option<String>,
    shared: bool,
    /// Values given as constants, checked when the `static` is evaluated.
    consts: Consts,
}

pub(crate) fn config(opts: &Options, span: Span, errors: &mut Errors) -> Config {
    let mut config = Config {
        rate: 1,
        per: SECOND,
        burst: 0,
        wait: (0, None),
        cost: opts.get("cost").cloned(),
        key: opts.get("key").cloned(),
        name: None,
        shared: opts.flag("shared"),
        consts: Consts::default(),
    };
    const RATE_RULE: &str = "`rate` must be at least 1 (permits per `per`)";
    const PER_RULE: &str =
        "`per` is too short for this `rate`: one permit must take at least a nanosecond";
    const BURST_RULE: &str = "`burst` must be at least 1 (permits that may be taken at once)";
    const REFILL_RULE: &str = "`per / rate × burst` is above 100 years; the limiter cannot hold it";
    match opts.get("rate") {
        None => opts.missing(errors, span, "`#[rate_limit]` needs a quota: `#[rate_limit(rate = 500, per = \"1m\")]` (permits per period)".to_owned()),
        Some(expr) => {
            let rate = consts::count(
                "rate_limit",
                "rate",
                expr,
                (1, u32::MAX),
                RATE_RULE,
                &mut config.consts,
                errors,
            );
            if let Some(rate) = rate {
                config.rate = rate.max(1);
            }
        }
    }
    if let Some(expr) = consts::given(opts, "per") {
        let per = consts::duration("rate_limit", "per", expr, None, errors);
        config.consts.set("per", per);
    } else if let Some(expr) = opts.get("per")
        && let Some(per) = errors.value(options::duration("per", expr))
    {
        if !config.consts.has("rate") && u128::from(per) < u128::from(config.rate) {
            errors.push(at(expr, PER_RULE));
        }
        config.per = per;
    }
    config.burst = config.rate;
    if let Some(expr) = opts.get("burst")
        && let Some(burst) = consts::count(
            "rate_limit",
            "burst",
            expr,
            (1, u32::MAX),
            BURST_RULE,
            &mut config.consts,
            errors,
        )
    {
        config.burst = burst.max(1);
    }
    let any_const = ["rate", "per", "burst"]
        .iter()
        .find_map(|key| consts::given(opts, key));
    if let Some(blame) = any_const {
        // `per` long enough for `rate`, and `per / rate × burst` within bounds, when the `static`
        // is evaluated.
        // Literal values, at the constant the check blames.
        let rate = |at: &Expr| match config.consts.get("rate") {
            Some(rate) => rate,
            None => consts::respan(Literal::u32_unsuffixed(config.rate).into_token_stream(), at),
        };
        let per = |at: &Expr| match config.consts.get("per") {
            Some(per) => per,
            None => consts::respan(duration(config.per), at),
        };
        let per_blame = consts::given(opts, "per").unwrap_or(blame);
        let per_checked = consts::across(
            "rate_limit",
            per_blame,
            "per_for_rate",
            &[&rate(per_blame), &per(per_blame)],
            PER_RULE,
        );
        let burst_blame = consts::given(opts, "burst").unwrap_or(blame);
        let burst = match (config.consts.get("burst"), opts.get("burst")) {
            (Some(burst), _) => burst,
            (None, Some(_)) => consts::respan(
                Literal::u32_unsuffixed(config.burst).into_token_stream(),
                burst_blame,
            ),
            (None, None) => rate(burst_blame),
        };
        let limit = consts::respan(
            Literal::u128_unsuffixed(HUNDRED_YEARS).into_token_stream(),
            burst_blame,
        );
        let checked = consts::across(
            "rate_limit",
            burst_blame,
            "refill_at_most",
            &[&rate(burst_blame), &per(burst_blame), &burst, &limit],
            REFILL_RULE,
        );
        config.consts.set("per", per_checked);
        config.consts.set("burst", checked);
    }
    let refill = u128::from(config.per) / u128::from(config.rate) * u128::from(config.burst);
    if any_const.is_none()
        && refill > HUNDRED_YEARS
        && let Some(blame) = opts.get("burst").or(opts.get("per"))
    {
        errors.push(at(blame, REFILL_RULE));
    }
    if let Some(expr) = consts::given(opts, "wait") {
        let wait = consts::duration("rate_limit", "wait", expr, None, errors);
        config.consts.set("wait", wait);
    } else if let Some(expr) = opts.get("wait")
        && let Some(wait) = errors.value(options::duration("wait", expr))
    {
        config.wait = (wait, Some(expr.clone()));
    }
    if let Some(expr) = opts.get("name") {
        config.name = errors.value(options::name("name", expr));
    }
    config
}

/// `rate`, as given.
fn rate_tokens(config: &Config) -> TokenStream {
    config
        .consts
        .get("rate")
        .unwrap_or_else(|| Literal::u32_unsuffixed(config.rate).into_token_stream())
}

pub(crate) fn expand(config: &Config, cx: &mut Cx<'_>, below: TokenStream) -> TokenStream {
    let named = config.name.as_ref().map(|n| quote!(.named(#n)));
    let consts = &config.consts;
    let rate = rate_tokens(config);
    let burst = consts
        .get("burst")
        .unwrap_or_else(|| Literal::u32_unsuffixed(config.burst).into_token_stream());
    let per = consts.get("per").unwrap_or_else(|| duration(config.per));
    let wait = consts
        .get("wait")
        .unwrap_or_else(|| duration(config.wait.0));
    cx.statics.push(quote! {
        static __RELIABILITY_RATE_LIMIT: ::reliability::__private::RateLimitSlot =
            ::reliability::__private::RateLimitSlot::new(#rate, #per, #burst, #wait)#named;
    });
    let key = match &config.key {
        Some(key) => quote!(::core::option::Option::Some(&(#key))),
        None => quote!(::core::option::Option::None::<&()>),
    };
    let cost = match &config.cost {
        Some(cost) => quote!(::reliability::__private::cost(#cost)),
        None => quote!(1),
    };
    let convert = cx.convert();
    let (ctx, site) = (&cx.names.ctx, &cx.names.site);
    let call = if config.shared {
        cx.lets
            .push(quote!(::reliability::__private::needs_redis::<()>();));
        quote!(rate_limit_shared)
    } else {
        quote!(rate_limit)
    };
    quote!(::reliability::__private::#call(__RELIABILITY_RATE_LIMIT.get(#site), &#ctx, #convert, #key, #cost, #below))
}
