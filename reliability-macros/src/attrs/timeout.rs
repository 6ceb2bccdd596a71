//! `#[timeout]`: one bound on the layer below.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::consts::{self, Consts};
use crate::expand::{Cx, duration};
use crate::kind::{Opt, Spec};
use crate::options::{self, Errors, Options, at};

pub(crate) static SPEC: Spec = Spec {
    name: "timeout",
    options: &[
        Opt::new(
            "secs",
            "secs = 30",
            "required (or `ms`)",
            &["seconds", "sec", "s", "duration", "after", "timeout"],
        ),
        Opt::new(
            "ms",
            "ms = 250",
            "required (or `secs`)",
            &["millis", "milliseconds"],
        ),
    ],
    needs_result: true,
    reuses_args: false,
    docs: include_str!("../../docs/timeout.md"),
};

pub(crate) struct Config {
    /// The deadline, in nanoseconds (`u64::MAX` when given as a constant: the stack's checks
    /// against it are then skipped).
    pub(crate) nanos: u64,
    /// The deadline given as a constant, checked when the `static` is evaluated.
    consts: Consts,
}

pub(crate) fn config(opts: &Options, span: Span, errors: &mut Errors) -> Config {
    const RULE: &str = "the deadline must be longer than zero";
    let mut nanos = 0;
    let mut consts = Consts::default();
    match (opts.get("secs"), opts.get("ms")) {
        (Some(secs), None) if !options::is_literal(secs) => {
            nanos = u64::MAX;
            consts.set("secs", consts::duration("timeout", "secs", secs, Some((1, RULE)), errors));
        }
        (None, Some(ms)) if !options::is_literal(ms) => {
            nanos = u64::MAX;
            let checked = consts::u64("timeout", "ms", ms, (1, u64::MAX), RULE, errors);
            // At most about 584 years, as a literal.
            let deadline = quote_spanned!(ms.span()=> ::reliability::__private::DurationValue::new(
                ::reliability::__private::Duration::from_millis(#checked)).get());
            consts.set("secs", deadline);
        }
        (Some(_), Some(ms)) => errors.push(at(ms, "give the deadline once: `secs = ...` or `ms = ...`, not both")),
        (None, None) => opts.missing(errors, span,
            "`#[timeout]` needs a deadline: `#[timeout(secs = 30)]`, `#[timeout(secs = \"1m30s\")]` or `#[timeout(ms = 250)]`".to_owned()),
        (Some(secs), None) => {
            if let Some(value) = errors.value(options::duration("secs", secs)) {
                nanos = value;
                if value == 0 {
                    errors.push(at(secs, RULE));
                }
            }
        }
        (None, Some(ms)) => {
            if let Some(value) = errors.value(options::integer("ms", ms)) {
                nanos = value.saturating_mul(1_000_000);
                if value == 0 {
                    errors.push(at(ms, RULE));
                }
            }
        }
    }
    Config { nanos, consts }
}

pub(crate) fn expand(config: &Config, cx: &mut Cx<'_>, below: TokenStream) -> TokenStream {
    let after = config
        .consts
        .get("secs")
        .unwrap_or_else(|| duration(config.nanos));
    cx.statics.push(quote! {
        static __RELIABILITY_TIMEOUT: ::reliability::__private::TimeoutSlot = ::reliability::__private::TimeoutSlot::new(#after);
    });
    let convert = cx.convert();
    let (ctx, site) = (&cx.names.ctx, &cx.names.site);
    quote!(::reliability::__private::timeout(__RELIABILITY_TIMEOUT.get(#site), &#ctx, #convert, #below))
}
