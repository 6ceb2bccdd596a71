//! The entry point shared by the five attributes: take the stack off the function, validate it as
//! one unit, expand it.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{Item, ItemFn};

use crate::config::{self, Layer};
use crate::item;
use crate::kind::Kind;
use crate::options::{self, Errors};
use crate::stack::{self, Written};

/// Expands `#[kind(args)]` on `item`, together with every other attribute of ours below it.
pub(crate) fn attribute(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let mut parsed: Item = match syn::parse2(item.clone()) {
        Ok(parsed) => parsed,
        Err(_) => {
            let error = syn::Error::new(
                Span::call_site(),
                format!("`#[{kind}]` applies to an `async fn` with a body"),
            );
            let error = error.to_compile_error();
            return quote!(#error #item);
        }
    };
    let Item::Fn(function) = &mut parsed else {
        let what = describe(&parsed);
        let message = format!("`#[{kind}]` applies to an `async fn`, not to {what}");
        let error = syn::Error::new(item_span(&parsed), message).to_compile_error();
        strip(&mut parsed);
        return quote!(#error #parsed);
    };
    let mut written = vec![Written {
        kind,
        path: None,
        args,
        span: Span::call_site(),
    }];
    written.extend(stack::take_siblings(&mut function.attrs, &mut errors));
    let mut function: ItemFn = function.clone();
    // The attributes taken off the function are never expanded, so their imports would be reported
    // unused: name each once.
    let uses: TokenStream = written
        .iter()
        .filter_map(|w| w.path.as_ref())
        .map(|path| quote!(#[allow(unused_imports)] use #path as _;))
        .collect();
    match build(&written, function.clone(), uses.clone(), &mut errors) {
        Some(expanded) if errors.peek().is_none() => expanded,
        _ => {
            let error = errors.finish().err().map(|e| e.to_compile_error());
            // The function without our attributes, so the user sees these errors and no cascade.
            if let Ok(block) = syn::parse2::<syn::Block>(quote!({ #uses })) {
                function.block.stmts.splice(0..0, block.stmts);
            }
            quote!(#error #function)
        }
    }
}

fn build(
    written: &[Written],
    function: ItemFn,
    uses: TokenStream,
    errors: &mut Errors,
) -> Option<TokenStream> {
    let fn_name = function.sig.ident.to_string();
    let mut layers: Vec<Layer> = Vec::new();
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
        if let Some(layer) = config::layer(attribute.kind, &opts, attribute.span, errors) {
            layers.push(layer);
        }
    }
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
    let needs_result: Vec<Kind> = written
        .iter()
        .map(|w| w.kind)
        .filter(|k| *k != Kind::Cached)
        .collect();
    if let (Some(needs), syn::ReturnType::Default) = (needs_result.first(), &function.sig.output) {
        errors.push(syn::Error::new(
            function.sig.ident.span(),
            format!(
                "`#[{needs}]` needs a function returning `Result<T, E>`; `{fn_name}` returns `()`"
            ),
        ));
    }
    if let (Some(needs), syn::ReturnType::Type(_, ty)) =
        (needs_result.first(), &function.sig.output)
        && !item::spelled_as_result(ty)
    {
        let shown = quote!(#ty).to_string().replace(' ', "");
        errors.push(syn::Error::new_spanned(
            ty,
            format!(
                "`#[{needs}]` needs a function returning `Result<T, E>`, not `{shown}` \
                     (an alias of `Result` must have a name ending in `Result`)"
            ),
        ));
    }
    let reuses_args = written
        .iter()
        .any(|w| matches!(w.kind, Kind::Retry | Kind::Fallback));
    let function = errors.take(item::analyze(function, reuses_args))?;
    if errors.peek().is_some() {
        return None;
    }
    Some(crate::expand::expand(function, layers, uses))
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
    attrs.retain(|attr| stack::kind_of(attr).is_none());
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
