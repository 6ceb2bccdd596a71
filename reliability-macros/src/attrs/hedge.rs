//! `#[hedge]`: start another attempt when the first is slow; the first `Ok` wins.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{ToTokens, quote};
use syn::{Expr, Lit};

use crate::consts::{self, Consts};
use crate::expand::{Cx, duration};
use crate::kind::{Opt, Spec};
use crate::options::{self, Errors, Options, at};

pub(crate) static SPEC: Spec = Spec {
    name: "hedge",
    options: &[
        Opt::new(
            "after",
            "after = \"p95\"",
            "required",
            &["delay", "hedging_delay", "threshold", "latency"],
        ),
        Opt::new(
            "max",
            "max = 2",
            "1",
            &["max_hedged_attempts", "attempts", "extra", "hedges"],
        ),
        Opt::new(
            "when",
            "when = |e| e.is_transient()",
            "every `Err`",
            &["on", "if", "predicate", "should_handle"],
        ),
    ],
    needs_result: true,
    reuses_args: true,
    docs: include_str!("../../docs/hedge.md"),
};

pub(crate) struct Config {
    after: After,
    max: u32,
    when: Option<Expr>,
    /// Values given as constants, checked when the `static` is evaluated.
    consts: Consts,
}

enum After {
    /// Nanoseconds.
    Fixed(u64),
    Percentile(f64),
}

/// `"p95"`, `"p99.9"`: the percentile, if the value is written as one.
fn percentile(expr: &Expr) -> Option<Result<f64, ()>> {
    let Expr::Lit(lit) = expr else { return None };
    let Lit::Str(text) = &lit.lit else {
        return None;
    };
    let value = text.value();
    let number = value
        .strip_prefix('p')
        .or_else(|| value.strip_prefix('P'))?;
    Some(number.parse::<f64>().map_err(|_| ()))
}

pub(crate) fn config(opts: &Options, span: Span, errors: &mut Errors) -> Config {
    let mut config = Config {
        after: After::Fixed(0),
        max: 1,
        when: opts.get("when").cloned(),
        consts: Consts::default(),
    };
    const MAX_RULE: &str = "`max` is the extra attempts a hedge may start: 1 to 5";
    match opts.get("after") {
        None => opts.missing(errors, span, "`#[hedge]` needs `after`: a delay (`after = \"200ms\"`) or a percentile of recent latencies (`after = \"p95\"`)".to_owned()),
        Some(expr) if !options::is_literal(expr) => {
            // A constant is a duration; a percentile is written as a literal.
            let after = consts::duration("hedge", "after", expr, None, errors);
            config.consts.set("after", after);
        }
        Some(expr) => match percentile(expr) {
            Some(Ok(p)) if (50.0..=99.9).contains(&p) => config.after = After::Percentile(p),
            Some(_) => errors.push(at(expr, "a percentile for `after` is written `\"pNN\"` with NN from 50 to 99.9, e.g. `after = \"p95\"`")),
            None => {
                if let Some(nanos) = errors.value(options::duration("after", expr)) {
                    config.after = After::Fixed(nanos);
                }
            }
        },
    }
    if let Some(expr) = opts.get("max")
        && let Some(max) = consts::count(
            "hedge",
            "max",
            expr,
            (1, 5),
            MAX_RULE,
            &mut config.consts,
            errors,
        )
    {
        config.max = max.clamp(1, 5);
    }
    config
}

pub(crate) fn expand(config: &Config, cx: &mut Cx<'_>, below: TokenStream) -> TokenStream {
    let after = match config.after {
        After::Fixed(nanos) => {
            let d = config
                .consts
                .get("after")
                .unwrap_or_else(|| duration(nanos));
            quote!(::reliability::__private::HedgeAfter::Fixed(#d))
        }
        After::Percentile(p) => {
            let p = Literal::f64_unsuffixed(p);
            quote!(::reliability::__private::HedgeAfter::Percentile(#p))
        }
    };
    let max = config
        .consts
        .get("max")
        .unwrap_or_else(|| Literal::u32_unsuffixed(config.max).into_token_stream());
    cx.statics.push(quote! {
        static __RELIABILITY_HEDGE: ::reliability::__private::HedgeSlot =
            ::reliability::__private::HedgeSlot::new(#after, #max);
    });
    let when = cx.predicate("__reliability_hedge_when", config.when.as_ref());
    let (ctx, site) = (&cx.names.ctx, &cx.names.site);
    quote!(::reliability::__private::hedge(__RELIABILITY_HEDGE.get(#site), &#ctx, #when, || #below))
}
