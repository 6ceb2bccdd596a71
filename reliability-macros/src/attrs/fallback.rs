//! `#[fallback]`: when the layer below fails, the targets are tried in order.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Path};

use super::Wrapped;
use crate::expand::Cx;
use crate::item::{Passing, Receiver};
use crate::kind::{Kind, Opt, Spec};
use crate::options::{Errors, Options, at};

pub(crate) static SPEC: Spec = Spec {
    name: "fallback",
    options: &[Opt::new(
        "when",
        "when = |e| e.is_transient()",
        "every `Err`",
        &[
            "on",
            "if",
            "retry_if",
            "predicate",
            "filter",
            "only_if",
            "should_handle",
        ],
    )],
    needs_result: true,
    reuses_args: true,
    docs: include_str!("../../docs/fallback.md"),
};

pub(crate) struct Config {
    targets: Vec<Path>,
    when: Option<Expr>,
}

/// A path as written, for comparing two targets.
fn written(path: &Path) -> String {
    quote!(#path).to_string()
}

pub(crate) fn config(opts: &Options, span: Span, errors: &mut Errors) -> Config {
    if opts.paths.is_empty() {
        opts.missing(errors, span,
            "`#[fallback]` needs at least one function to fall back to: `#[fallback(cheaper_model, canned_answer)]`".to_owned());
    }
    for (i, path) in opts.paths.iter().enumerate() {
        if opts.paths[..i]
            .iter()
            .any(|earlier| written(earlier) == written(path))
        {
            errors.push(at(path, "this fallback is listed twice; remove this one"));
        }
    }
    Config {
        targets: opts.paths.clone(),
        when: opts.get("when").cloned(),
    }
}

/// The name a target is counted under: its path as written.
fn path_name(path: &Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

/// Runs the layer below, then each target in turn while they fail.
pub(crate) fn expand(config: &Config, cx: &mut Cx<'_>, below: TokenStream) -> Wrapped {
    let names = config.targets.iter().map(path_name);
    cx.statics.push(quote! {
        static __RELIABILITY_FALLBACK: ::reliability::__private::FallbackSlot =
            ::reliability::__private::FallbackSlot::new(&[#(#names),*]);
    });
    let when = cx.predicate("__reliability_fallback_when", config.when.as_ref());
    let fallback = cx.local("__reliability_fallback");
    let error = cx.local("__reliability_error");
    let value = cx.local("__reliability_value");
    let entered = cx.local("__reliability_entered");
    let (ctx, site) = (&cx.names.ctx, &cx.names.site);
    let function = cx.function;
    let ret = cx.ret;
    // Inside a retry's loop, the last target must not take the arguments by move.
    let in_loop = cx.in_loop;
    let acts_on_failures_above = cx.acts_on_failures_above;
    let last = config.targets.len().saturating_sub(1);
    let cache_above = cx.cache_above;
    let steps = config.targets.iter().enumerate().map(|(index, target)| {
        let span = target.span();
        let is_final = index == last;
        // The last target takes the arguments by move, unless a retry above runs this again.
        let moves = is_final && !in_loop;
        let mut call_args = Vec::new();
        let is_method = target.segments.first().is_some_and(|s| s.ident == "Self");
        // `self` takes the signature's hygiene (the target path's differs when a `macro_rules!`
        // passes the attribute in) and the target's location, for errors.
        let receiver = function.sig.receiver().map(|r| {
            let mut token = r.self_token;
            token.span = token.span.located_at(span);
            token
        });
        if let (true, Some(receiver)) = (is_method, receiver) {
            call_args.push(match (function.receiver, moves) {
                (Receiver::Owned, false) => quote_spanned!(span=> ::reliability::__private::clone_arg(&#receiver)),
                _ => quote!(#receiver),
            });
        }
        for arg in &function.args {
            let binding = &arg.binding;
            call_args.push(match (arg.passing, moves) {
                (Passing::Owned, false) => quote_spanned!(span=> ::reliability::__private::clone_arg(&#binding)),
                (Passing::Unique, _) => quote_spanned!(span=> &mut *#binding),
                _ => quote_spanned!(span=> #binding),
            });
        }
        let index = Literal::usize_unsuffixed(index);
        // Only a cache above reads whether a fallback served the call (it stores no such answer).
        let served = match cache_above {
            true => quote!(served_below_cache(&#ctx, #index, #value)),
            false => quote!(served(#index, #value)),
        };
        // Called through `FallbackFn` with the argument types named, so that a target taking other
        // arguments is one error showing both signatures; directly when an argument's type cannot
        // be named (`impl Trait`).
        let mut types: Vec<TokenStream> = Vec::new();
        if let (true, Some(receiver)) = (is_method, function.sig.receiver()) {
            let ty = &receiver.ty;
            types.push(quote!(#ty));
        }
        types.extend(function.args.iter().map(|arg| {
            let ty = &arg.ty;
            quote!(#ty)
        }));
        let nameable = !types
            .iter()
            .any(|ty| ty.clone().into_iter().any(|t| t.to_string() == "impl"));
        // A method's target is first checked to take the receiver (see `Target`).
        let checked = match (is_method && function.sig.receiver().is_some(), types.split_first()) {
            (true, Some((_, rest))) => quote_spanned!(span=> (&&&::reliability::__private::Target::<_, (#(#types,)*), (#(#rest,)*)>::new(#target)).checked()),
            _ => quote!(#target),
        };
        // The call is checked to be a future (see `TargetCall`), then awaited.
        let call = if nameable {
            quote_spanned!(span=> ::reliability::__private::fallback_with::<(#(#types,)*), _>(#checked, (#(#call_args,)*)).future().await)
        } else {
            quote_spanned!(span=> ::reliability::__private::TargetCall::new(#target(#(#call_args),*)).future().await)
        };
        if is_final {
            // A retry or breaker above acts only on failures: without `when`, an infallible last
            // target would leave it nothing to act on, which is an error at that target.
            let last_fallback = match (acts_on_failures_above, config.when.is_some()) {
                (Some(Kind::Retry), false) => quote_spanned!(span=> last_fallback_below_retry),
                (Some(Kind::CircuitBreaker), false) => quote_spanned!(span=> last_fallback_below_breaker),
                _ => quote_spanned!(span=> last_fallback),
            };
            let convert = quote_spanned!(span=> ::reliability::__private::#last_fallback::<#ret, _>);
            quote! {
                match #convert(#call) {
                    ::core::result::Result::Ok(#value) => ::core::result::Result::Ok(#fallback.#served),
                    ::core::result::Result::Err(#error) => ::core::result::Result::Err(#fallback.all_failed(#error)),
                }
            }
        } else {
            let convert = quote_spanned!(span=> ::reliability::__private::fallible::<#ret, _>);
            quote! {
                match #convert(#call) {
                    ::core::result::Result::Ok(#value) => return ::core::result::Result::Ok(#fallback.#served),
                    ::core::result::Result::Err(_) => #fallback.target_failed(#index),
                }
            }
        }
    });
    Wrapped::Statements(quote! {
        let #fallback = __RELIABILITY_FALLBACK.get(#site);
        let #entered = #fallback.enter();
        let #error = match #below.await {
            ::core::result::Result::Ok(#value) => return ::core::result::Result::Ok(#fallback.primary_ok(#entered, #value)),
            ::core::result::Result::Err(#error) => #error,
        };
        if !#fallback.primary_failed((#when)(&#error)) {
            return ::core::result::Result::Err(#error);
        }
        #(#steps)*
    })
}
