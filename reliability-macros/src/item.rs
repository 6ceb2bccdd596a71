//! The annotated function: what the attributes need to know about its signature. Only the
//! attributes, visibility and signature are parsed; the body is kept as tokens, untouched (as
//! tokio's and tracing's macros do), so a body that does not parse yet (being typed in an editor)
//! gets the compiler's own errors, and the attributes still expand.

use proc_macro2::{Span, TokenStream};
use quote::format_ident;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Attribute, FnArg, Ident, Pat, PatIdent, ReturnType, Signature, Type, Visibility};

/// A function as written: parsed up to its body, which stays tokens.
pub(crate) struct ItemFn {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    /// The body's inner attributes (`#![allow(...)]`), which go at the top of the expanded body.
    pub(crate) inner_attrs: Vec<Attribute>,
    /// The body, inside its braces.
    pub(crate) body: TokenStream,
    /// The user's braces: the expanded body keeps them, so the item's span is the user's and lints
    /// (`dead_code`) report on the function as they would without the attributes.
    pub(crate) braces: Span,
}

/// Whether `input` starts a function signature (after attributes and visibility). Consumes the
/// input (call it on a copy of the tokens).
pub(crate) fn starts_fn(input: ParseStream<'_>) -> syn::Result<bool> {
    let _ = input.call(Attribute::parse_outer);
    let _ = input.parse::<Visibility>();
    let starts = input.peek(syn::Token![fn])
        || input.peek(syn::Token![async])
        || (input.peek(syn::Token![const]) && !input.peek2(syn::Ident))
        || input.peek(syn::Token![unsafe])
        || input.peek(syn::Token![extern]);
    let _: TokenStream = input.parse()?;
    Ok(starts)
}

impl Parse for ItemFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig: Signature = input.parse()?;
        let content;
        let braces = syn::braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let body: TokenStream = content.parse()?;
        Ok(ItemFn {
            attrs,
            vis,
            sig,
            inner_attrs,
            body,
            braces: braces.span.join(),
        })
    }
}

/// How an argument is passed, which decides how it is handed to a second call.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Passing {
    /// By value: cloned for each extra call.
    Owned,
    /// `&T`: copied.
    Shared,
    /// `&mut T`: reborrowed.
    Unique,
}

/// One argument other than the receiver.
pub(crate) struct Arg {
    /// The variable that holds it in the signature (the user's name, or a generated one when the
    /// argument is a pattern).
    pub(crate) binding: Ident,
    /// The user's pattern when it is more than a plain name; bound inside the body.
    pub(crate) pattern: Option<Pat>,
    /// Whether the user wrote `mut name`.
    pub(crate) mutable: bool,
    pub(crate) passing: Passing,
    pub(crate) ty: Type,
}

/// The function's receiver, if it is a method.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Receiver {
    None,
    /// `&self` or `&mut self` (or `self: &Self`, `self: &mut Self`).
    Borrowed,
    /// `self`, `mut self`, `self: Arc<Self>`, `self: Box<Self>`, …: cloned for each extra call.
    Owned,
}

pub(crate) struct Function {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    pub(crate) inner_attrs: Vec<Attribute>,
    pub(crate) body: TokenStream,
    pub(crate) braces: Span,
    pub(crate) args: Vec<Arg>,
    pub(crate) receiver: Receiver,
    /// The declared return type, `()` when there is none.
    pub(crate) ret: Type,
}

impl Function {
    pub(crate) fn ret_span(&self) -> Span {
        match &self.sig.output {
            ReturnType::Type(_, ty) => ty.span(),
            ReturnType::Default => self.sig.ident.span(),
        }
    }
}

/// Finds `impl Trait` in a type.
struct FindImpl(Option<Span>);

impl Visit<'_> for FindImpl {
    fn visit_type_impl_trait(&mut self, node: &syn::TypeImplTrait) {
        self.0.get_or_insert(node.span());
    }
}

fn passing(ty: &Type) -> Passing {
    match ty {
        Type::Reference(r) if r.mutability.is_some() => Passing::Unique,
        Type::Reference(_) => Passing::Shared,
        Type::Group(g) => passing(&g.elem),
        Type::Paren(p) => passing(&p.elem),
        _ => Passing::Owned,
    }
}

/// Reads the signature. With `reuses_args`, owned arguments drop their `mut` (it moves to the
/// per-call copy), and patterns are bound to generated names so they can be copied.
pub(crate) fn analyze(mut item: ItemFn, reuses_args: bool) -> syn::Result<Function> {
    let mut args = Vec::new();
    let mut receiver = Receiver::None;
    for (index, input) in item.sig.inputs.iter_mut().enumerate() {
        match input {
            FnArg::Receiver(r) => {
                receiver = if r.reference.is_some()
                    || matches!(passing(&r.ty), Passing::Shared | Passing::Unique)
                {
                    Receiver::Borrowed
                } else {
                    Receiver::Owned
                };
            }
            FnArg::Typed(pat_type) => {
                let ty = (*pat_type.ty).clone();
                let passing = passing(&ty);
                match &mut *pat_type.pat {
                    Pat::Ident(PatIdent {
                        by_ref: None,
                        subpat: None,
                        mutability,
                        ident,
                        ..
                    }) => {
                        let mutable = mutability.is_some();
                        if reuses_args && mutable {
                            *mutability = None;
                        }
                        args.push(Arg {
                            binding: ident.clone(),
                            pattern: None,
                            mutable,
                            passing,
                            ty,
                        });
                    }
                    pattern => {
                        let binding =
                            format_ident!("__reliability_arg{}", index, span = Span::mixed_site());
                        let user_pattern = pattern.clone();
                        *pattern = Pat::Ident(PatIdent {
                            attrs: Vec::new(),
                            by_ref: None,
                            mutability: None,
                            ident: binding.clone(),
                            subpat: None,
                        });
                        args.push(Arg {
                            binding,
                            pattern: Some(user_pattern),
                            mutable: false,
                            passing,
                            ty,
                        });
                    }
                }
            }
        }
    }
    let ret = match &item.sig.output {
        ReturnType::Type(_, ty) => (**ty).clone(),
        ReturnType::Default => syn::parse_quote!(()),
    };
    let mut find = FindImpl(None);
    find.visit_type(&ret);
    if let Some(span) = find.0 {
        return Err(syn::Error::new(
            span,
            "the attributes of `reliability` need a return type they can name; replace `impl Trait` with a concrete type or a `Box<dyn Trait>`",
        ));
    }
    Ok(Function {
        attrs: item.attrs,
        vis: item.vis,
        sig: item.sig,
        inner_attrs: item.inner_attrs,
        body: item.body,
        braces: item.braces,
        args,
        receiver,
        ret,
    })
}

/// Whether a return type is spelled as a `Result`: `Result<T, E>`, `io::Result<T>`,
/// `anyhow::Result<T>`, or an alias whose name ends in `Result`, looking through the invisible groups
/// a `macro_rules!` `$t:ty` adds and through parentheses. The only classifier of the macros: what
/// `#[cached]` stores is decided by the type system instead (a `Result`, through any alias, stores
/// only its `Ok` values).
pub(crate) fn spelled_as_result(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident.to_string().ends_with("Result")),
        Type::Group(g) => spelled_as_result(&g.elem),
        Type::Paren(p) => spelled_as_result(&p.elem),
        _ => false,
    }
}
