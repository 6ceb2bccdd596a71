//! `#[timeout]`: one bound on the layer below.

use proc_macro2::{Span, TokenStream};
use quote::quote;

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
    /// The deadline, in nanoseconds.
    pub(crate) nanos: u64,
}

pub(crate) fn config(opts: &Options, span: Span, errors: &mut Errors) -> Config {
    let mut nanos = 0;
    match (opts.get("secs"), opts.get("ms")) {
        (Some(_), Some(ms)) => errors.push(at(ms, "give the deadline once: `secs = ...` or `ms = ...`, not both")),
        (None, None) => opts.missing(errors, span,
            "`#[timeout]` needs a deadline: `#[timeout(secs = 30)]`, `#[timeout(secs = \"1m30s\")]` or `#[timeout(ms = 250)]`".to_owned()),
        (Some(secs), None) => {
            if let Some(value) = errors.value(options::duration("secs", secs)) {
                nanos = value;
                if value == 0 {
                    errors.push(at(secs, "the deadline must be longer than zero"));
                }
            }
        }
        (None, Some(ms)) => {
            if let Some(value) = errors.value(options::integer("ms", ms)) {
                nanos = value.saturating_mul(1_000_000);
                if value == 0 {
                    errors.push(at(ms, "the deadline must be longer than zero"));
                }
            }
        }
    }
    Config { nanos }
}

pub(crate) fn expand(config: &Config, cx: &mut Cx<'_>, below: TokenStream) -> TokenStream {
    let after = duration(config.nanos);
    cx.statics.push(quote! {
        static __RELIABILITY_TIMEOUT: ::reliability::__private::TimeoutSlot = ::reliability::__private::TimeoutSlot::new(#after);
    });
    let convert = cx.convert();
    let (ctx, site) = (&cx.names.ctx, &cx.names.site);
    quote!(::reliability::__private::timeout(__RELIABILITY_TIMEOUT.get(&#site), &#ctx, #convert, #below))
}
