//! The entry point shared by the attributes: take the whole stack off the function, validate it as
//! one unit, expand it.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::Item;
use syn::parse::Parser;
use syn::spanned::Spanned;

use crate::attrs::{self, Config};
use crate::item::{self, ItemFn};
use crate::kind::Kind;
use crate::options::{self, Errors, at};
use crate::siblings::{self, Sibling};

/// Expands `#[kind(args)]` on `item`, together with every other attribute of ours below it.
pub(crate) fn attribute(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    if !item::starts_fn.parse2(item.clone()).unwrap_or(false) {
        return not_a_function(kind, item);
    }
    let mut function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        // The signature (or the braces of the body) does not parse: syn's own error, where it is,
        // and the item back as it was, so the compiler reports the rest.
        Err(error) => {
            let error = error.to_compile_error();
            return quote!(#error #item);
        }
    };
    let mut errors = Errors::default();
    let mut written = vec![Sibling {
        kind,
        path: None,
        args,
        span: Span::call_site(),
    }];
    written.extend(siblings::take(&mut function.attrs, &mut errors));
    // The attributes taken off the function are never expanded, so their imports would be reported
    // unused: name each once (the items of one `use { ... }`).
    let uses: TokenStream = written
        .iter()
        .filter_map(|w| w.path.as_ref())
        .map(|path| quote!(#path as _,))
        .collect();
    let unexpanded = quote_fn(&function, &uses);
    match build(&written, function, uses, &mut errors) {
        Some(expanded) if !errors.any() => expanded,
        _ => {
            let error = errors.into_error().map(|e| e.to_compile_error());
            // The function without our attributes, so the user sees these errors and no cascade.
            quote!(#error #unexpanded)
        }
    }
}

/// The function as written, without our attributes.
fn quote_fn(function: &ItemFn, uses: &TokenStream) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        inner_attrs,
        body,
        braces,
    } = function;
    let body = crate::expand::braced(
        *braces,
        quote! {
            #(#inner_attrs)*
            #[allow(unused_imports)]
            use { #uses };
            #body
        },
    );
    quote! {
        #(#attrs)*
        #vis #sig #body
    }
}

/// An attribute on an item that is not a function: one error, and the item without our attributes.
fn not_a_function(kind: Kind, item: TokenStream) -> TokenStream {
    match syn::parse2::<Item>(item.clone()) {
        Ok(mut parsed) => {
            let what = describe(&parsed);
            let message = format!("`#[{kind}]` applies to an `async fn`, not to {what}");
            let error = syn::Error::new(item_span(&parsed), message).to_compile_error();
            strip(&mut parsed);
            quote!(#error #parsed)
        }
        Err(_) => {
            let error = syn::Error::new(
                Span::call_site(),
                format!("`#[{kind}]` applies to an `async fn` with a body"),
            )
            .to_compile_error();
            quote!(#error #item)
        }
    }
}

fn build(
    written: &[Sibling],
    function: ItemFn,
    uses: TokenStream,
    errors: &mut Errors,
) -> Option<TokenStream> {
    let fn_name = function.sig.ident.to_string();
    let mut configs: Vec<Config> = Vec::new();
    for (index, attribute) in written.iter().enumerate() {
        if written[..index]
            .iter()
            .any(|earlier| earlier.kind == attribute.kind)
        {
            errors.push(syn::Error::new(
                attribute.span,
                format!(
                    "`#[{}]` is applied to `{fn_name}` twice; each attribute is one layer of the stack and may appear once, so remove this one",
                    attribute.kind
                ),
            ));
            continue;
        }
        let opts = options::parse(attribute.kind, attribute.args.clone(), errors);
        if let Some(config) = attrs::config(attribute.kind, &opts, attribute.span, errors) {
            configs.push(config);
        }
    }
    check_stack(&configs, errors);
    let first = written.first().map_or(Kind::Retry, |w| w.kind);
    if function.sig.asyncness.is_none() {
        let blame = function.sig.fn_token.span();
        errors.push(syn::Error::new(
            blame,
            format!("`#[{first}]` applies to an `async fn`; `{fn_name}` is not async (write `async fn {fn_name}`)"),
        ));
    }
    if let Some(constness) = &function.sig.constness {
        errors.push(syn::Error::new_spanned(
            constness,
            "a `const fn` cannot be async; remove `const`",
        ));
    }
    if let Some(variadic) = &function.sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "variadic functions are not supported",
        ));
    }
    let needs_result = written.iter().find(|w| w.kind.spec().needs_result);
    match (needs_result, &function.sig.output) {
        (Some(needs), syn::ReturnType::Default) => errors.push(syn::Error::new(
            function.sig.ident.span(),
            format!(
                "`#[{}]` needs a function returning `Result<T, E>`; `{fn_name}` returns `()`",
                needs.kind
            ),
        )),
        (Some(needs), syn::ReturnType::Type(_, ty)) if !item::spelled_as_result(ty) => {
            let shown = quote!(#ty).to_string().replace(' ', "");
            errors.push(syn::Error::new_spanned(
                ty,
                format!(
                    "`#[{}]` needs a function returning `Result<T, E>`, not `{shown}` \
                     (an alias of `Result` must have a name ending in `Result`)",
                    needs.kind
                ),
            ));
        }
        _ => {}
    }
    let reuses_args = written.iter().any(|w| w.kind.spec().reuses_args);
    if written.iter().any(|w| w.kind == Kind::Hedge) {
        for input in &function.sig.inputs {
            let unique = match input {
                syn::FnArg::Receiver(r) => r.mutability.is_some() && r.reference.is_some(),
                syn::FnArg::Typed(t) => {
                    matches!(&*t.ty, syn::Type::Reference(r) if r.mutability.is_some())
                }
            };
            if unique {
                errors.push(at(
                    input,
                    "`#[hedge]` runs attempts at the same time, and two attempts cannot share a `&mut`; take `&` (with interior mutability if needed) or an owned value",
                ));
            }
        }
    }
    let function = errors.value(item::analyze(function, reuses_args))?;
    for config in &configs {
        if let Config::Cached(cached) = config {
            attrs::cached::check_key(&function, cached, errors);
        }
    }
    if errors.any() {
        return None;
    }
    Some(crate::expand::expand(function, configs, uses))
}

/// Stacks that cannot work as written: a wait for a permit or a slot that a timeout above always
/// cuts short.
fn check_stack(configs: &[Config], errors: &mut Errors) {
    let mut timeout_above: Option<u64> = None;
    for config in configs {
        let wait = match config {
            Config::Timeout(t) => {
                timeout_above = Some(timeout_above.map_or(t.nanos, |d| d.min(t.nanos)));
                None
            }
            Config::RateLimit(r) => Some(&r.wait),
            Config::Bulkhead(b) => Some(&b.wait),
            _ => None,
        };
        if let (Some((wait, Some(expr))), Some(deadline)) = (wait, timeout_above)
            && *wait >= deadline
        {
            errors.push(at(
                expr,
                format!(
                    "this `wait` is not shorter than the `#[timeout]` above it ({}), which would always end the wait first; make the wait shorter, or put the timeout below this attribute (the recommended order: the timeout last, bounding each attempt)",
                    show(deadline)
                ),
            ));
        }
    }
}

/// A duration in nanoseconds, for messages.
fn show(nanos: u64) -> String {
    format!("{:?}", std::time::Duration::from_nanos(nanos))
}

/// Removes our attributes from an item they cannot apply to, so each reports only once.
fn strip(item: &mut Item) {
    let attrs = match item {
        Item::Const(i) => &mut i.attrs,
        Item::Enum(i) => &mut i.attrs,
        Item::Impl(i) => &mut i.attrs,
        Item::Mod(i) => &mut i.attrs,
        Item::Static(i) => &mut i.attrs,
        Item::Struct(i) => &mut i.attrs,
        Item::Trait(i) => &mut i.attrs,
        Item::Type(i) => &mut i.attrs,
        Item::Union(i) => &mut i.attrs,
        Item::Use(i) => &mut i.attrs,
        _ => return,
    };
    attrs.retain(|attr| siblings::kind_of(attr).is_none());
}

fn describe(item: &Item) -> &'static str {
    match item {
        Item::Const(_) => "a `const`",
        Item::Enum(_) => "an `enum`",
        Item::Impl(_) => "an `impl` block (put it on the methods inside)",
        Item::Mod(_) => "a module",
        Item::Static(_) => "a `static`",
        Item::Struct(_) => "a `struct`",
        Item::Trait(_) => "a trait (put it on the methods of an `impl`)",
        Item::Type(_) => "a type alias",
        Item::Use(_) => "a `use`",
        _ => "this item",
    }
}

fn item_span(item: &Item) -> Span {
    match item {
        Item::Struct(i) => i.ident.span(),
        Item::Enum(i) => i.ident.span(),
        Item::Trait(i) => i.ident.span(),
        Item::Const(i) => i.ident.span(),
        Item::Static(i) => i.ident.span(),
        Item::Type(i) => i.ident.span(),
        Item::Mod(i) => i.ident.span(),
        _ => Span::call_site(),
    }
}
