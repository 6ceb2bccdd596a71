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
//!     static __RELIABILITY_RETRY: P::RetrySlot = P::RetrySlot::new(P::RetrySettings { /* checked */ });
//!     static __RELIABILITY_TIMEOUT: P::TimeoutSlot = P::TimeoutSlot::new(/* deadline */);
//!     let name = || P::default_name(type_name_of_val(&__reliability_site), None, &[]);
//!     let instance: &'static str = "";
//!     let ctx = P::StackCtx::new();
//!     let retry_when = P::predicate::<<Result<T, E> as P::IsResult>::Err, _>(P::always);
//!     let retry_after = P::retry_after_fn::<<Result<T, E> as P::IsResult>::Err, _>(P::never_asks);
//!     let mut attempts = P::RetryLoop::new(__RELIABILITY_RETRY.get(instance, &name), &ctx);
//!     loop {
//!         let out = P::timeout(__RELIABILITY_TIMEOUT.get(instance, &name), &ctx, /* E::from */,
//!             P::stack::<Result<T, E>, _>(async { let q = P::clone_arg(&q); BODY })).await;
//!         if let Break(out) = attempts.decide(out, &retry_when, &retry_after).await { break out; }
//!     }
//! }
//! ```
//!
//! A layer whose expansion is statements (retry, fallback) and that is not the outermost is wrapped
//! in `P::stack::<Result<T, E>, _>(async { ... })` so the layer above can hold it as a future.

use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Type};

use crate::attrs::{Config, Wrapped};
use crate::item::{Function, Passing, Receiver};
use crate::kind::Kind;

/// Names of the generated locals every layer may use, invisible to the user's code.
pub(crate) struct Names {
    pub(crate) name: Ident,
    pub(crate) instance: Ident,
    pub(crate) site: Ident,
    pub(crate) ctx: Ident,
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
}

impl Cx<'_> {
    /// A generated local, invisible to the user's code.
    pub(crate) fn local(&self, name: &str) -> Ident {
        Ident::new(name, Span::mixed_site())
    }

    /// `let local = predicate::<E, _>(when or always);`
    pub(crate) fn predicate(&self, local: &Ident, when: Option<&Expr>) -> TokenStream {
        let ret = self.ret;
        let typed = quote_spanned!(self.ret_span=> ::reliability::__private::predicate::<<#ret as ::reliability::__private::IsResult>::Err, _>);
        match when {
            Some(expr) => quote!(let #local = #typed(#expr);),
            None => quote!(let #local = #typed(::reliability::__private::always);),
        }
    }

    /// `let local = retry_after_fn::<E, _>(function or never_asks);`
    pub(crate) fn retry_after(&self, local: &Ident, function: Option<&Expr>) -> TokenStream {
        let ret = self.ret;
        let typed = quote_spanned!(self.ret_span=> ::reliability::__private::retry_after_fn::<<#ret as ::reliability::__private::IsResult>::Err, _>);
        match function {
            Some(expr) => quote!(let #local = #typed(#expr);),
            None => quote!(let #local = #typed(::reliability::__private::never_asks);),
        }
    }

    /// `<E as FromReliabilityError>::from_reliability`, spanned at the return type so that a missing
    /// `From<reliability::Error>` is reported there.
    pub(crate) fn convert(&self) -> TokenStream {
        let ret = self.ret;
        quote_spanned!(self.ret_span=> <<#ret as ::reliability::__private::IsResult>::Err as ::reliability::__private::FromReliabilityError>::from_reliability)
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
    let local = |name: &str| Ident::new(name, Span::mixed_site());
    let names = Names {
        name: local("__reliability_name"),
        instance: local("__reliability_instance"),
        site: local("__reliability_site"),
        ctx: local("__reliability_ctx"),
    };
    let mut cx = Cx {
        function: &function,
        names,
        ret: &function.ret,
        ret_span: function.ret_span(),
        statics: Vec::new(),
        lets: Vec::new(),
        in_loop: false,
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
    let stack = quote!(::reliability::__private::stack::<#ret, _>);
    let mut fut = quote!(#stack(async { #(#rebind)* #body }));

    // Statements (a loop, early returns) are held until the next layer needs them as a future; the
    // outermost layer's statements go straight into the function, without an async block of their own.
    let mut statements: Option<TokenStream> = None;
    for (index, config) in configs.iter().enumerate().rev() {
        if let Some(held) = statements.take() {
            fut = quote!(#stack(async { #held }));
        }
        cx.in_loop = configs[..index].iter().any(|c| c.kind() == Kind::Retry);
        match config.expand(&mut cx, fut) {
            Wrapped::Future(wrapped) => fut = wrapped,
            Wrapped::Statements(held) => {
                statements = Some(held);
                fut = TokenStream::new();
            }
        }
    }

    let Cx {
        statics,
        lets,
        names,
        ..
    } = cx;
    let ctx = &names.ctx;
    let outer = statements.unwrap_or_else(|| quote!(#fut.await));
    let attrs = &function.attrs;
    let inner_attrs = &function.inner_attrs;
    let vis = &function.vis;
    let sig = &function.sig;
    quote! {
        #(#attrs)*
        #vis #sig {
            #(#inner_attrs)*
            #uses
            #(#statics)*
            #(#lets)*
            let #ctx = ::reliability::__private::StackCtx::new();
            #outer
        }
    }
}

/// The registry name of every layer of this function, and the key of its instantiation (each
/// instantiation of a generic function has its own policies).
fn naming(cx: &mut Cx<'_>) {
    let Names {
        name,
        instance,
        site,
        ..
    } = &cx.names;
    let type_params: Vec<&Ident> = cx
        .function
        .sig
        .generics
        .type_params()
        .map(|p| &p.ident)
        .collect();
    let is_method = cx.function.receiver != Receiver::None;
    let self_ty = if is_method {
        quote!(::core::option::Option::Some(
            ::core::any::type_name::<Self>()
        ))
    } else {
        quote!(::core::option::Option::None)
    };
    cx.statics.push(quote!(fn #site() {}));
    cx.lets.push(quote! {
        let #name = || ::reliability::__private::default_name(
            ::core::any::type_name_of_val(&#site),
            #self_ty,
            &[#(::core::any::type_name::<#type_params>()),*],
        );
    });
    let key = match (is_method, type_params.is_empty()) {
        (false, true) => quote!(""),
        (false, false) => quote!(::core::any::type_name::<fn(#(&#type_params),*)>()),
        (true, _) => quote!(::core::any::type_name::<fn(&Self, #(&#type_params),*)>()),
    };
    cx.lets.push(quote!(let #instance: &'static str = #key;));
}
