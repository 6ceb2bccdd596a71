//! Code generation: the stack becomes nested calls into `::reliability::__private`, around the
//! function's own body, which stays in place.
//!
//! Input:
//!
//! ```text
//! #[retry(max = 3)]
//! #[timeout(secs = 30)]
//! async fn f(q: String) -> Result<T, E> { BODY }
//! ```
//!
//! Output (abridged; `P` is `::reliability::__private`):
//!
//! ```text
//! async fn f(q: String) -> Result<T, E> {
//!     static __RELIABILITY_RETRY: P::RetrySlot = P::RetrySlot::new(/* checked settings */);
//!     static __RELIABILITY_TIMEOUT: P::TimeoutSlot = P::TimeoutSlot::new(/* deadline */);
//!     let name = || P::fn_name(module_path!(), "f");
//!     let ctx = P::StackCtx::new();
//!     let retry_when = P::predicate::<<Result<T, E> as P::IsResult>::Err, _>(P::always);
//!     let mut attempts = P::RetryLoop::new(__RELIABILITY_RETRY.get(&name), &ctx);
//!     loop {
//!         let out = P::timeout(__RELIABILITY_TIMEOUT.get(&name), &ctx, /* E::from */,
//!             P::stack::<Result<T, E>, _>(async { let q = P::clone_arg(&q); BODY })).await;
//!         if let Break(out) = attempts.settle(out, &retry_when).await { break out; }
//!     }
//! }
//! ```
//!
//! A retry or fallback that is not the outermost layer is wrapped in
//! `P::stack::<Result<T, E>, _>(async { ... })` so the layer above can hold it as a future.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{AttrStyle, Ident, Path};

use crate::config::{Backoff, BreakerConfig, CacheConfig, FallbackConfig, Layer, RetryConfig};
use crate::item::{Function, Passing, Receiver};

/// Names of generated locals, invisible to the user's code.
struct Locals {
    name: Ident,
    instance: Ident,
    site: Ident,
    ctx: Ident,
    retry_when: Ident,
    breaker_when: Ident,
    fallback_when: Ident,
    out: Ident,
    attempts: Ident,
    fallback: Ident,
    error: Ident,
    value: Ident,
}

impl Locals {
    fn new() -> Self {
        let local = |name: &str| Ident::new(name, Span::mixed_site());
        Locals {
            name: local("__reliability_name"),
            instance: local("__reliability_instance"),
            site: local("__reliability_site"),
            ctx: local("__reliability_ctx"),
            retry_when: local("__reliability_retry_when"),
            breaker_when: local("__reliability_breaker_when"),
            fallback_when: local("__reliability_fallback_when"),
            out: local("__reliability_out"),
            attempts: local("__reliability_attempts"),
            fallback: local("__reliability_fallback"),
            error: local("__reliability_error"),
            value: local("__reliability_value"),
        }
    }
}

/// `Duration` in the largest unit that holds it exactly, so expansions read well.
fn duration(nanos: u64) -> TokenStream {
    let (ctor, n) = if nanos.is_multiple_of(1_000_000_000) {
        (quote!(from_secs), nanos / 1_000_000_000)
    } else if nanos.is_multiple_of(1_000_000) {
        (quote!(from_millis), nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        (quote!(from_micros), nanos / 1_000)
    } else {
        (quote!(from_nanos), nanos)
    };
    let n = Literal::u64_unsuffixed(n);
    quote!(::reliability::__private::Duration::#ctor(#n))
}

fn path_name(path: &Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

pub(crate) fn expand(function: Function, layers: Vec<Layer>, uses: TokenStream) -> TokenStream {
    let l = Locals::new();
    let ret = &function.ret;
    let ret_span = function.ret_span();
    let reuses_args = layers
        .iter()
        .any(|layer| matches!(layer, Layer::Retry(_) | Layer::Fallback(_)));

    let mut statics = Vec::new();
    let mut lets = Vec::new();

    // The registry name of every layer of this function, and the key of its instantiation (each
    // instantiation of a generic function has its own policies).
    let (name, instance, site) = (&l.name, &l.instance, &l.site);
    let type_params: Vec<&Ident> = function
        .item
        .sig
        .generics
        .type_params()
        .map(|p| &p.ident)
        .collect();
    let is_method = function.receiver != Receiver::None;
    let self_ty = if is_method {
        quote!(::core::option::Option::Some(
            ::core::any::type_name::<Self>()
        ))
    } else {
        quote!(::core::option::Option::None)
    };
    statics.push(quote!(fn #site() {}));
    lets.push(quote! {
        let #name = || ::reliability::__private::default_name(
            ::core::any::type_name_of_val(&#site),
            #self_ty,
            &[#(::core::any::type_name::<#type_params>()),*],
        );
    });
    let instance_key = match (is_method, type_params.is_empty()) {
        (false, true) => quote!(""),
        (false, false) => quote!(::core::any::type_name::<fn(#(&#type_params),*)>()),
        (true, _) => quote!(::core::any::type_name::<fn(&Self, #(&#type_params),*)>()),
    };
    lets.push(quote!(let #instance: &'static str = #instance_key;));
    // Shared by the layers of one call: the attempt number, a breaker's rejection (not retried), a
    // fallback's answer (not cached).
    let ctx = &l.ctx;
    lets.push(quote!(let #ctx = ::reliability::__private::StackCtx::new();));
    let predicate = |local: &Ident, when: &Option<syn::Expr>| {
        let typed = quote_spanned!(ret_span=> ::reliability::__private::predicate::<<#ret as ::reliability::__private::IsResult>::Err, _>);
        match when {
            Some(expr) => quote!(let #local = #typed(#expr);),
            None => quote!(let #local = #typed(::reliability::__private::always);),
        }
    };

    // The body, with the arguments it needs bound afresh for each call when they are reused.
    let rebind = function.args.iter().map(|arg| {
        let binding = &arg.binding;
        let value = match (reuses_args, arg.passing) {
            (true, Passing::Owned) => {
                let clone = quote_spanned!(arg.ty.span()=> ::reliability::__private::clone_arg);
                quote!(#clone(&#binding))
            }
            (true, Passing::Unique) => quote!(&mut *#binding),
            _ => quote!(#binding),
        };
        match (&arg.pattern, reuses_args) {
            (Some(pattern), _) => quote!(let #pattern = #value;),
            (None, true) if arg.mutable => quote!(let mut #binding = #value;),
            (None, true) if arg.passing != Passing::Shared => quote!(let #binding = #value;),
            _ => TokenStream::new(),
        }
    });
    let inner_attrs = function
        .item
        .attrs
        .iter()
        .filter(|a| matches!(a.style, AttrStyle::Inner(_)));
    let stmts = &function.item.block.stmts;
    let stack = quote!(::reliability::__private::stack::<#ret, _>);
    let mut fut = quote!(#stack(async { #(#rebind)* #(#stmts)* }));

    // Retry and fallback are statements (a loop, early returns): `body` holds them until the next
    // layer needs them as a future. The outermost layer's statements go straight into the function,
    // without an async block of their own.
    let mut body: Option<TokenStream> = None;
    for (index, layer) in layers.iter().enumerate().rev() {
        if let Some(statements) = body.take() {
            fut = quote!(#stack(async { #statements }));
        }
        fut = match layer {
            Layer::Timeout(config) => {
                let slot = format_ident!("__RELIABILITY_TIMEOUT");
                let after = duration(config.nanos);
                statics.push(quote! {
                    static #slot: ::reliability::__private::TimeoutSlot = ::reliability::__private::TimeoutSlot::new(#after);
                });
                let ctx = &l.ctx;
                let convert = convert(ret, ret_span);
                quote!(::reliability::__private::timeout(#slot.get(#instance, &#name), &#ctx, #convert, #fut))
            }
            Layer::CircuitBreaker(config) => {
                statics.push(breaker_static(config));
                lets.push(predicate(&l.breaker_when, &config.when));
                let (ctx, when) = (&l.ctx, &l.breaker_when);
                let convert = convert(ret, ret_span);
                quote!(::reliability::__private::circuit_breaker(__RELIABILITY_BREAKER.get(#instance, &#name), &#name, &#ctx, &#when, #convert, #fut))
            }
            Layer::Retry(config) => {
                statics.push(retry_static(config));
                lets.push(predicate(&l.retry_when, &config.when));
                let Locals {
                    ctx,
                    attempts,
                    out,
                    retry_when,
                    ..
                } = &l;
                body = Some(quote! {
                    let mut #attempts = ::reliability::__private::RetryLoop::new(__RELIABILITY_RETRY.get(#instance, &#name), &#ctx);
                    loop {
                        let #out = #fut.await;
                        if let ::core::ops::ControlFlow::Break(#out) = #attempts.decide(#out, &#retry_when, &::reliability::__private::never_asks).await {
                            break #out;
                        }
                    }
                });
                TokenStream::new()
            }
            Layer::Fallback(config) => {
                let names = config.targets.iter().map(path_name);
                statics.push(quote! {
                    static __RELIABILITY_FALLBACK: ::reliability::__private::FallbackSlot =
                        ::reliability::__private::FallbackSlot::new(&[#(#names),*]);
                });
                lets.push(predicate(&l.fallback_when, &config.when));
                // Inside a retry's loop, the last target must not take the arguments by move.
                let in_loop = layers[..index]
                    .iter()
                    .any(|layer| matches!(layer, Layer::Retry(_)));
                body = Some(fallback(&function, config, &l, fut, in_loop));
                TokenStream::new()
            }
            Layer::Cached(config) => {
                statics.push(cache_static(config));
                let key = cache_key(&function, config);
                let ctx = &l.ctx;
                // `Result` or not is the type system's call (aliases and macro-made types included):
                // `StoresOk` applies to `Result<T, E>`, `StoresValue` to anything else.
                let how = quote!({
                    #[allow(unused_imports)]
                    use ::reliability::__private::{StoresOk as _, StoresValue as _};
                    (&::reliability::__private::Returns::<#ret>::new()).how()
                });
                quote!(#how.cached(&__RELIABILITY_CACHE, #instance, &#name, &#ctx, #key, #fut))
            }
        };
    }

    let attrs = function
        .item
        .attrs
        .iter()
        .filter(|a| matches!(a.style, AttrStyle::Outer));
    let vis = &function.item.vis;
    let sig = &function.item.sig;
    let outer = match body {
        Some(statements) => statements,
        None => quote!(#fut.await),
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            #(#inner_attrs)*
            #uses
            #(#statics)*
            #(#lets)*
            #outer
        }
    }
}

/// `<E as FromReliabilityError>::from_reliability`, spanned at the return type so that a missing
/// `From<reliability::Error>` is reported there.
fn convert(ret: &syn::Type, span: Span) -> TokenStream {
    quote_spanned!(span=> <<#ret as ::reliability::__private::IsResult>::Err as ::reliability::__private::FromReliabilityError>::from_reliability)
}

fn retry_static(config: &RetryConfig) -> TokenStream {
    let max = Literal::u32_unsuffixed(config.max);
    let backoff = match config.backoff {
        Backoff::Fixed => quote!(::reliability::__private::Backoff::Fixed),
        Backoff::Linear => quote!(::reliability::__private::Backoff::Linear),
        Backoff::Exponential => {
            let multiplier = Literal::f64_unsuffixed(config.multiplier);
            quote!(::reliability::__private::Backoff::Exponential { multiplier: #multiplier })
        }
    };
    let jitter = format_ident!("{}", config.jitter.variant());
    let delay = duration(config.delay);
    let max_delay = duration(config.max_delay);
    quote! {
        static __RELIABILITY_RETRY: ::reliability::__private::RetrySlot = ::reliability::__private::RetrySlot::new(
            ::reliability::__private::RetrySettings {
                name: ::core::option::Option::None,
                max_attempts: #max,
                backoff: #backoff,
                delay: #delay,
                max_delay: #max_delay,
                jitter: ::reliability::__private::Jitter::#jitter,
                deadline: ::core::option::Option::None,
                budget: ::core::option::Option::None,
            },
        );
    }
}

fn breaker_static(config: &BreakerConfig) -> TokenStream {
    let name = match &config.name {
        Some(name) => quote!(::core::option::Option::Some(#name)),
        None => quote!(::core::option::Option::None),
    };
    let failures = Literal::u32_unsuffixed(config.failure_threshold);
    let successes = Literal::u32_unsuffixed(config.success_threshold);
    let cooldown = duration(config.cooldown);
    quote! {
        static __RELIABILITY_BREAKER: ::reliability::__private::BreakerSlot = ::reliability::__private::BreakerSlot::new(
            #name,
            ::reliability::__private::consecutive_breaker(#failures, #successes, #cooldown),
        );
    }
}

fn cache_static(config: &CacheConfig) -> TokenStream {
    let option = |value: Option<u64>| match value {
        Some(nanos) => {
            let d = duration(nanos);
            quote!(::core::option::Option::Some(#d))
        }
        None => quote!(::core::option::Option::None),
    };
    let (ttl, tti) = (option(config.ttl), option(config.tti));
    let max_size = Literal::u64_unsuffixed(config.max_size);
    let name = match &config.name {
        Some(name) => quote!(::core::option::Option::Some(#name)),
        None => quote!(::core::option::Option::None),
    };
    quote! {
        static __RELIABILITY_CACHE: ::reliability::__private::CacheSlot = ::reliability::__private::CacheSlot::new(
            #name, #ttl, #tti, #max_size,
        );
    }
}

/// The key: the user's expression, or an owned copy of every argument but the receiver.
fn cache_key(function: &Function, config: &CacheConfig) -> TokenStream {
    if let Some(key) = &config.key {
        return quote!(#key);
    }
    let parts = function.args.iter().map(|arg| {
        let binding = &arg.binding;
        let owned = quote_spanned!(arg.ty.span()=> ::std::borrow::ToOwned::to_owned);
        match arg.passing {
            Passing::Owned => quote!(#owned(&#binding)),
            Passing::Shared => quote!(#owned(#binding)),
            Passing::Unique => quote!(#owned(&*#binding)),
        }
    });
    let inputs = function.item.sig.inputs.span();
    quote_spanned!(inputs=> (#(#parts,)*))
}

/// Runs the layer below, then each target in turn while they fail.
fn fallback(
    function: &Function,
    config: &FallbackConfig,
    l: &Locals,
    fut: TokenStream,
    in_loop: bool,
) -> TokenStream {
    let ret = &function.ret;
    let Locals {
        ctx,
        fallback,
        error,
        value,
        name,
        instance,
        fallback_when,
        ..
    } = l;
    let last = config.targets.len().saturating_sub(1);
    let ok = quote!(<#ret as ::reliability::__private::IsResult>::Ok);
    let err = quote!(<#ret as ::reliability::__private::IsResult>::Err);
    let steps = config.targets.iter().enumerate().map(|(index, target)| {
        let span = target.span();
        // The last target takes the arguments by move, unless a retry above runs this again.
        let is_last = index == last && !in_loop;
        let is_final = index == last;
        let mut call_args = Vec::new();
        let is_method = target.segments.first().is_some_and(|s| s.ident == "Self");
        // `self` takes the signature's hygiene (the target path's differs when a `macro_rules!`
        // passes the attribute in) and the target's location, for errors.
        let receiver = function.item.sig.receiver().map(|r| {
            let mut token = r.self_token;
            token.span = token.span.located_at(span);
            token
        });
        if let (true, Some(receiver)) = (is_method, receiver) {
            call_args.push(match (function.receiver, is_last) {
                (Receiver::Owned, false) => quote_spanned!(span=> ::reliability::__private::clone_arg(&#receiver)),
                _ => quote!(#receiver),
            });
        }
        for arg in &function.args {
            let binding = &arg.binding;
            call_args.push(match (arg.passing, is_last) {
                (Passing::Owned, false) => quote_spanned!(span=> ::reliability::__private::clone_arg(&#binding)),
                (Passing::Unique, _) => quote_spanned!(span=> &mut *#binding),
                _ => quote_spanned!(span=> #binding),
            });
        }
        let index = Literal::usize_unsuffixed(index);
        let call = quote_spanned!(span=> ::reliability::__private::fallback_call(#target(#(#call_args),*)).await);
        if is_final {
            let convert = quote_spanned!(span=> ::reliability::__private::last_fallback::<#ok, #err, _>);
            quote! {
                match #convert(#call) {
                    ::core::result::Result::Ok(#value) => ::core::result::Result::Ok(#fallback.served(&#ctx, #index, #value)),
                    ::core::result::Result::Err(#error) => ::core::result::Result::Err(#fallback.all_failed(#error)),
                }
            }
        } else {
            let convert = quote_spanned!(span=> ::reliability::__private::fallible::<#ok, #err, _>);
            quote! {
                match #convert(#call) {
                    ::core::result::Result::Ok(#value) => return ::core::result::Result::Ok(#fallback.served(&#ctx, #index, #value)),
                    ::core::result::Result::Err(_) => #fallback.target_failed(#index),
                }
            }
        }
    });
    quote! {
        let #fallback = __RELIABILITY_FALLBACK.get(#instance, &#name);
        #fallback.enter();
        let #error = match #fut.await {
            ::core::result::Result::Ok(#value) => return ::core::result::Result::Ok(#fallback.primary_ok(#value)),
            ::core::result::Result::Err(#error) => #error,
        };
        if !#fallback.primary_failed(#fallback_when(&#error)) {
            return ::core::result::Result::Err(#error);
        }
        #(#steps)*
    }
}
