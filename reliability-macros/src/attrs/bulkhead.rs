//! `#[bulkhead]`: bound the calls running at once; more wait in a bounded queue, or are rejected.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{ToTokens, quote};
use syn::Expr;

use crate::consts::{self, Consts};
use crate::expand::{Cx, duration};
use crate::kind::{Opt, Spec};
use crate::options::{self, Errors, Options, at};

pub(crate) static SPEC: Spec = Spec {
    name: "bulkhead",
    options: &[
        Opt::new(
            "max",
            "max = 8",
            "required",
            &[
                "max_concurrent",
                "max_concurrent_calls",
                "permit_limit",
                "concurrency",
                "limit",
            ],
        ),
        Opt::new(
            "queue",
            "queue = 16",
            "0",
            &["queue_limit", "queue_size", "max_queue", "queue_capacity"],
        ),
        Opt::new(
            "wait",
            "wait = \"500ms\"",
            "1 s",
            &["max_wait_duration", "timeout", "queue_timeout"],
        ),
        Opt::new(
            "name",
            "name = \"embeddings\"",
            "module path + fn name",
            &["id"],
        ),
    ],
    needs_result: true,
    reuses_args: false,
    docs: include_str!("../../docs/bulkhead.md"),
};

const SECOND: u64 = 1_000_000_000;
/// The runtime's largest `max`.
const MAX: u64 = 1 << 28;

pub(crate) struct Config {
    max: u32,
    queue: u32,
    /// With the option's value, for a message that blames it.
    pub(crate) wait: (u64, Option<Expr>),
    name: Option<String>,
    /// Values given as constants, checked when the `static` is evaluated.
    consts: Consts,
}

pub(crate) fn config(opts: &Options, span: Span, errors: &mut Errors) -> Config {
    let mut config = Config {
        max: 1,
        queue: 0,
        wait: (SECOND, None),
        name: None,
        consts: Consts::default(),
    };
    let max_rule = format!("`max` is the calls running at once: at least 1 and at most {MAX}");
    match opts.get("max") {
        None => opts.missing(
            errors,
            span,
            "`#[bulkhead]` needs a bound: `#[bulkhead(max = 8)]` (calls running at once)"
                .to_owned(),
        ),
        Some(expr) if !options::is_literal(expr) => {
            let range = (1, u32::try_from(MAX).unwrap_or(u32::MAX));
            let max = consts::u32("bulkhead", "max", expr, range, &max_rule, errors);
            config.consts.set("max", max);
        }
        Some(expr) => {
            if let Some(max) = errors.value(options::integer("max", expr)) {
                if max == 0 || max > MAX {
                    errors.push(at(expr, &max_rule));
                }
                config.max = u32::try_from(max.clamp(1, MAX)).unwrap_or(1);
            }
        }
    }
    if let Some(expr) = opts.get("queue")
        && let Some(queue) = consts::count(
            "bulkhead",
            "queue",
            expr,
            (0, u32::MAX),
            "",
            &mut config.consts,
            errors,
        )
    {
        config.queue = queue;
    }
    if let Some(expr) = consts::given(opts, "wait") {
        if opts.get("queue").is_none() {
            errors.push(at(expr, "`wait` is how long a queued call waits, and this bulkhead has no queue: add `queue = N`, or remove `wait`"));
        }
        let wait = consts::duration("bulkhead", "wait", expr, None, errors);
        config.consts.set("wait", wait);
    } else if let Some(expr) = opts.get("wait")
        && let Some(wait) = errors.value(options::duration("wait", expr))
    {
        if opts.get("queue").is_none() {
            errors.push(at(expr, "`wait` is how long a queued call waits, and this bulkhead has no queue: add `queue = N`, or remove `wait`"));
        }
        config.wait = (wait, Some(expr.clone()));
    }
    if let Some(expr) = opts.get("name") {
        config.name = errors.value(options::name("name", expr));
    }
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
    let (max, queue) = (int("max", config.max), int("queue", config.queue));
    let wait = consts
        .get("wait")
        .unwrap_or_else(|| duration(config.wait.0));
    cx.statics.push(quote! {
        static __RELIABILITY_BULKHEAD: ::reliability::__private::BulkheadSlot =
            ::reliability::__private::BulkheadSlot::new(#max, #queue, #wait)#named;
    });
    let convert = cx.convert();
    let (ctx, site) = (&cx.names.ctx, &cx.names.site);
    quote!(::reliability::__private::bulkhead(__RELIABILITY_BULKHEAD.get(#site), &#ctx, #convert, #below))
}
