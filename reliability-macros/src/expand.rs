//! Code generation: the stack becomes nested calls into `::reliability::__private`, around the
//! function's own body, which stays in place. Each attribute's part is in `attrs/<attribute>.rs`;
//! this file lays out what they share.
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
//!     fn __reliability_site() {}
//!     static __RELIABILITY_TIMEOUT: P::TimeoutSlot = P::TimeoutSlot::new(Duration::from_secs(30));
//!     static __RELIABILITY_RETRY: P::RetrySlot = P::RetrySlot::new(3, /* backoff, delays, jitter */);
//!     let site = P::Site::function(type_name_of_val(&__reliability_site), "");
//!     let show = /* how events show `E`: Display, Debug or nothing */;
//!     let convert = <E as P::FromReliabilityError>::from_reliability;
//!     let ctx = P::StackCtx::new();
//!     let mut attempts = P::RetryLoop::new(__RELIABILITY_RETRY.get(site), &ctx);
//!     loop {
//!         {   // `out` ends before the wait, so it is not kept in the function's future
//!             let out = P::timeout(__RELIABILITY_TIMEOUT.get(site), &ctx, convert,
//!                 P::layer::<Result<T, E>, _>(async { let q = P::clone_arg(&q); BODY })).await;
//!             if out.is_ok() { attempts.succeeded(); break out; }
//!             if let Break(out) = attempts.decide(out, &P::always, &P::never_asks, show) { break out; }
//!         }
//!         attempts.wait().await;
//!     }
//! }
//! ```
//!
//! A layer whose expansion is statements (retry, fallback) and that is not the outermost is wrapped
//! in `P::layer::<Result<T, E>, _>(async { ... })` so the layer above can hold it as a future.

use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Type};

use crate::attrs::{Config, Wrapped};
use crate::item::{Function, Passing, Receiver};
use crate::kind::Kind;

/// Names of the generated locals every layer may use, invisible to the user's code.
pub(crate) struct Names {
    /// The `Site`: which function, which instantiation.
    pub(crate) site: Ident,
    pub(crate) ctx: Ident,
    /// The conversion of `reliability::Error` into the function's error type.
    pub(crate) convert: Ident,
}

/// What the layers of one function build their expansion with.
pub(crate) struct Cx<'a> {
    pub(crate) function: &'a Function,
    pub(crate) names: Names,
    /// The declared return type, and where to report type errors about it.
    pub(crate) ret: &'a Type,
    pub(crate) ret_span: Span,
    /// `static` items: each layer's slot.
    pub(crate) statics: Vec<TokenStream>,
    /// `let` statements before the stack runs: predicates and names.
    pub(crate) lets: Vec<TokenStream>,
    /// A retry above the layer being expanded runs it more than once.
    pub(crate) in_loop: bool,
    /// A `#[cached]` is above the layer being expanded.
    pub(crate) cache_above: bool,
    /// The nearest `#[retry]` or `#[circuit_breaker]` above the layer being expanded: a layer that
    /// acts only on the failures of the layers below it.
    pub(crate) acts_on_failures_above: Option<Kind>,
    /// A layer returns `reliability::Error`s: the conversion is defined once.
    needs_convert: bool,
}

/// A generated local, invisible to the user's code.
fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

impl Cx<'_> {
    /// A generated local, invisible to the user's code.
    pub(crate) fn local(&self, name: &str) -> Ident {
        local(name)
    }

    /// A reference to the `when = ...` predicate, typed against the error type in a `let` named
    /// `local`; `&always` when none is given.
    pub(crate) fn predicate(&mut self, local: &str, when: Option<&Expr>) -> TokenStream {
        self.typed_fn(local, "predicate", "always", when)
    }

    /// A reference to the `retry_after = ...` function, typed like [`predicate`](Self::predicate);
    /// `&never_asks` when none is given.
    pub(crate) fn retry_after(&mut self, local: &str, function: Option<&Expr>) -> TokenStream {
        self.typed_fn(local, "retry_after_fn", "never_asks", function)
    }

    fn typed_fn(
        &mut self,
        local: &str,
        typer: &str,
        default: &str,
        given: Option<&Expr>,
    ) -> TokenStream {
        let Some(expr) = given else {
            let default = Ident::new(default, Span::call_site());
            return quote!(&::reliability::__private::#default);
        };
        let value = self.local(&format!("{local}_value"));
        let local = self.local(local);
        let ret = self.ret;
        let typer = Ident::new(typer, Span::call_site());
        let err = quote!(<#ret as ::reliability::__private::IsResult>::Err);
        let typed = quote_spanned!(expr.span()=> ::reliability::__private::#typer::<#err, _>);
        let error = self.local("__reliability_of");
        self.lets.push(quote!(
            let #value = #typed(#expr);
            let #local = |#error: &#err| #value.call(#error);
        ));
        quote!(&#local)
    }

    /// The conversion of `reliability::Error` into the function's error type, defined once, at the
    /// return type, so that a missing `From<reliability::Error>` is reported there.
    pub(crate) fn convert(&mut self) -> TokenStream {
        self.needs_convert = true;
        let convert = &self.names.convert;
        quote!(#convert)
    }
}

/// `Duration` in the largest unit that holds it exactly, so expansions read well.
pub(crate) fn duration(nanos: u64) -> TokenStream {
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

pub(crate) fn expand(function: Function, configs: Vec<Config>, uses: TokenStream) -> TokenStream {
    let reuses_args = configs.iter().any(|c| c.kind().spec().reuses_args);
    let names = Names {
        site: local("__reliability_site"),
        ctx: local("__reliability_ctx"),
        convert: local("__reliability_convert"),
    };
    let mut cx = Cx {
        function: &function,
        names,
        ret: &function.ret,
        ret_span: function.ret_span(),
        statics: Vec::new(),
        lets: Vec::new(),
        in_loop: false,
        cache_above: false,
        acts_on_failures_above: None,
        needs_convert: false,
    };
    naming(&mut cx);

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
    let ret = &function.ret;
    let body = &function.body;
    let layer = quote!(::reliability::__private::layer::<#ret, _>);
    let mut fut = quote!(#layer(async { #(#rebind)* #body }));

    // Statements (a loop, early returns) are held until the next layer needs them as a future; the
    // outermost layer's statements go straight into the function, without an async block of their own.
    let mut statements: Option<TokenStream> = None;
    for (index, config) in configs.iter().enumerate().rev() {
        if let Some(held) = statements.take() {
            fut = quote!(#layer(async { #held }));
        }
        cx.in_loop = configs[..index]
            .iter()
            .any(|c| matches!(c.kind(), Kind::Retry | Kind::Hedge));
        cx.cache_above = configs[..index].iter().any(|c| c.kind() == Kind::Cache);
        cx.acts_on_failures_above = configs[..index]
            .iter()
            .rev()
            .map(|c| c.kind())
            .find(|kind| matches!(kind, Kind::Retry | Kind::CircuitBreaker));
        match config.expand(&mut cx, fut) {
            Wrapped::Future(wrapped) => fut = wrapped,
            Wrapped::Statements(held) => {
                statements = Some(held);
                fut = TokenStream::new();
            }
        }
    }

    if cx.needs_convert {
        let convert = &cx.names.convert;
        cx.lets.push(quote_spanned!(cx.ret_span=> let #convert = <<#ret as ::reliability::__private::IsResult>::Err as ::reliability::__private::FromReliabilityError>::from_reliability;));
    }
    let Cx {
        statics,
        lets,
        names,
        ..
    } = cx;
    let ctx = &names.ctx;
    // The outermost layer's `Result` is rebuilt from its fields on its way out: the layer writes
    // it field by field, and returned whole it is read back 16 bytes at a time, which on x86 waits
    // for those writes to finish (`perf annotate`: half of such a call); moving the fields does
    // not (`#[timeout]` in the users' shape: 35 to 29 ns). Not for `#[cached]` outermost (a hit
    // gains nothing, and it may return any type). A helper function doing the same match is slower:
    // its argument is the whole `Result` again.
    let outer = statements.unwrap_or_else(|| match configs.first().map(Config::kind) {
        Some(Kind::Cache) | None => quote!(#fut.await),
        Some(_) => {
            let (value, error) = (local("__reliability_value"), local("__reliability_error"));
            quote!(match #fut.await {
                ::core::result::Result::Ok(#value) => ::core::result::Result::Ok(#value),
                ::core::result::Result::Err(#error) => ::core::result::Result::Err(#error),
            })
        }
    });
    // The context the layers share, made only if one of them uses it (a lone `#[fallback]` does
    // not: making it costs a fallback's call a fifth of its overhead).
    let make_ctx = mentions(&outer, ctx)
        .then(|| quote!(let #ctx = ::reliability::__private::StackCtx::new();));
    let attrs = &function.attrs;
    let inner_attrs = &function.inner_attrs;
    let vis = &function.vis;
    let sig = &function.sig;
    let body = braced(
        function.braces,
        quote! {
            #(#inner_attrs)*
            #[allow(unused_imports)]
            use { #uses ::reliability::__private::autoref::* };
            #(#statics)*
            #(#lets)*
            #make_ctx
            #outer
        },
    );
    quote! {
        #(#attrs)*
        #vis #sig #body
    }
}

/// Whether `tokens` name `ident`.
fn mentions(tokens: &TokenStream, ident: &Ident) -> bool {
    tokens.clone().into_iter().any(|tree| match tree {
        proc_macro2::TokenTree::Ident(i) => i == *ident,
        proc_macro2::TokenTree::Group(g) => mentions(&g.stream(), ident),
        _ => false,
    })
}

/// `{ tokens }` with the braces at `span` (the user's own, so the item keeps the user's span).
pub(crate) fn braced(span: Span, tokens: TokenStream) -> TokenStream {
    let mut group = proc_macro2::Group::new(proc_macro2::Delimiter::Brace, tokens);
    group.set_span(span);
    proc_macro2::TokenTree::Group(group).into()
}

/// Which function, and which instantiation (each instantiation of a generic function has its own
/// policies): a `Site` made from the path of an item declared in the body.
fn naming(cx: &mut Cx<'_>) {
    let site = &cx.names.site;
    let type_params: Vec<&Ident> = cx
        .function
        .sig
        .generics
        .type_params()
        .map(|p| &p.ident)
        .collect();
    cx.statics.push(quote!(fn #site() {}));
    let path = quote!(::core::any::type_name_of_val(&#site));
    let made = match (
        cx.function.receiver != Receiver::None,
        type_params.is_empty(),
    ) {
        (false, true) => quote!(function(#path, "")),
        (false, false) => {
            quote!(function(#path, ::core::any::type_name::<fn(#(&#type_params),*)>()))
        }
        (true, _) => {
            quote!(method(#path, ::core::any::type_name::<fn(&Self, #(&#type_params),*)>()))
        }
    };
    cx.lets
        .push(quote!(let #site = ::reliability::__private::Site::#made;));
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenTree;
    use quote::quote;

    fn count(tree: TokenTree) -> usize {
        match tree {
            TokenTree::Group(g) => 2 + g.stream().into_iter().map(count).sum::<usize>(),
            _ => 1,
        }
    }

    /// The expansion of the README's five-attribute stack stays no longer than before the
    /// per-attribute modules (1 399 tokens, without per-instantiation state, deadlines, budgets or
    /// `unless`, or the error shown in the retry's events): at most that.
    #[test]
    fn the_readme_stack_expands_to_no_more_than_before() {
        let item = quote! {
            #[fallback(gpt35, canned)]
            #[retry(max = 3, backoff = "exponential")]
            #[circuit_breaker(name = "gpt4")]
            #[timeout(secs = 30)]
            async fn gpt4(query: String) -> Result<String, LlmError> { Err(LlmError::Status(503)) }
        };
        let args = quote!(ttl = 3600, key = query.trim().to_lowercase());
        let out = crate::entry::attribute(crate::kind::Kind::Cache, args, item);
        let tokens: usize = out.into_iter().map(count).sum();
        assert!(tokens <= 1_399, "{tokens} tokens");
    }
}
