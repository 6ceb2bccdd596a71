//! Values the macro cannot read: a constant (`max = MAX_ATTEMPTS`, `ttl = config::TTL`) or a const
//! expression (`ttl = 2 * 60`). They go into the layer's `static` through a `const fn` of the
//! runtime that converts the value and checks the option's range, so a value out of range is a
//! compile error with the same rule as for a literal, at the value. A value that is not a constant
//! is the compiler's own error, at the value too.

use proc_macro2::{Literal, TokenStream, TokenTree};
use quote::{ToTokens, quote_spanned};
use syn::Expr;
use syn::spanned::Spanned;

use crate::options::{self, Errors};

/// The option values of one attribute given as constants, by option name, as the expression that
/// checks and converts them.
#[derive(Default)]
pub(crate) struct Consts(Vec<(&'static str, TokenStream)>);

impl Consts {
    /// Sets (or replaces) the value of `key`.
    pub(crate) fn set(&mut self, key: &'static str, tokens: TokenStream) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, old)) => *old = tokens,
            None => self.0.push((key, tokens)),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<TokenStream> {
        self.0
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, t)| t.clone())
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| *k == key)
    }
}

/// `opts.get(key)`, when it is given and is not a literal.
pub(crate) fn given<'a>(opts: &'a options::Options, key: &str) -> Option<&'a Expr> {
    opts.get(key).filter(|expr| !options::is_literal(expr))
}

/// The message of a failed check: the attribute, then the rule.
fn message(kind: &str, rule: &str) -> Literal {
    Literal::string(&format!("#[{kind}]: {rule}"))
}

/// The value is evaluated in a `static`, an item of its own, where `Self` and the function's
/// generic parameters are not in scope: say so at macro time for `Self`.
pub(crate) fn check_scope(key: &str, expr: &Expr, errors: &mut Errors) {
    fn find(tokens: TokenStream) -> Option<proc_macro2::Span> {
        tokens.into_iter().find_map(|tree| match tree {
            TokenTree::Ident(ident) if ident == "Self" => Some(ident.span()),
            TokenTree::Group(group) => find(group.stream()),
            _ => None,
        })
    }
    if let Some(span) = find(expr.to_token_stream()) {
        errors.push(syn::Error::new(
            span,
            format!("`{key}` is a constant evaluated once for the function, where `Self` is not in scope: name the type, e.g. `{key} = MyType::VALUE`"),
        ));
    }
}

/// An integer of type `u32` in `min..=max`.
pub(crate) fn u32(
    kind: &str,
    key: &str,
    expr: &Expr,
    (min, max): (u32, u32),
    rule: &str,
    errors: &mut Errors,
) -> TokenStream {
    check_scope(key, expr, errors);
    let (min, max, message) = (
        Literal::u32_unsuffixed(min),
        Literal::u32_unsuffixed(max),
        message(kind, rule),
    );
    quote_spanned!(expr.span()=> ::reliability::__private::count_u32(#expr, #min, #max, #message))
}

/// A `u32` option in `min..=max`, given as a literal or as a constant. A constant goes into
/// `consts` (checked when the crate compiles) and gives `None`; a literal is read here, reported
/// with `rule` at its value when out of range, and returned (the caller keeps or clamps it).
pub(crate) fn count(
    kind: &str,
    key: &'static str,
    expr: &Expr,
    range: (u32, u32),
    rule: &str,
    consts: &mut Consts,
    errors: &mut Errors,
) -> Option<u32> {
    if !options::is_literal(expr) {
        consts.set(key, u32(kind, key, expr, range, rule, errors));
        return None;
    }
    let value = errors.value(options::integer_u32(key, expr))?;
    if !(range.0..=range.1).contains(&value) {
        errors.push(options::at(expr, rule));
    }
    Some(value)
}

/// An integer of type `u64` in `min..=max`.
pub(crate) fn u64(
    kind: &str,
    key: &str,
    expr: &Expr,
    (min, max): (u64, u64),
    rule: &str,
    errors: &mut Errors,
) -> TokenStream {
    check_scope(key, expr, errors);
    let (min, max, message) = (
        Literal::u64_unsuffixed(min),
        Literal::u64_unsuffixed(max),
        message(kind, rule),
    );
    quote_spanned!(expr.span()=> ::reliability::__private::count_u64(#expr, #min, #max, #message))
}

/// A duration: a `Duration`, or seconds as `u64` or `f64`; with a rule, at least `min_nanos` long.
pub(crate) fn duration(
    kind: &str,
    key: &str,
    expr: &Expr,
    min: Option<(u64, &str)>,
    errors: &mut Errors,
) -> TokenStream {
    check_scope(key, expr, errors);
    // `get` is `DurationValue`'s for each type, else `autoref::NotADuration`'s.
    let value =
        quote_spanned!(expr.span()=> ::reliability::__private::DurationValue::new(#expr).get());
    match min {
        None => value,
        Some((min, rule)) => {
            let (min, message) = (Literal::u64_unsuffixed(min), message(kind, rule));
            quote_spanned!(expr.span()=> ::reliability::__private::at_least(#value, #min, #message))
        }
    }
}

/// An `f64` checked by the runtime's `check` (`share`: above 0 and at most 1; `above_one`).
pub(crate) fn float(
    kind: &str,
    key: &str,
    expr: &Expr,
    check: &str,
    rule: &str,
    errors: &mut Errors,
) -> TokenStream {
    check_scope(key, expr, errors);
    let check = proc_macro2::Ident::new(check, expr.span());
    let message = message(kind, rule);
    quote_spanned!(expr.span()=> ::reliability::__private::#check(#expr, #message))
}

/// `tokens` (made from a literal), at `expr`: a check across options that involves a constant
/// then points at the constant alone.
pub(crate) fn respan(tokens: TokenStream, expr: &Expr) -> TokenStream {
    fn set(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
        tokens
            .into_iter()
            .map(|mut tree| {
                if let TokenTree::Group(group) = &tree {
                    let mut inner =
                        proc_macro2::Group::new(group.delimiter(), set(group.stream(), span));
                    inner.set_span(span);
                    tree = TokenTree::Group(inner);
                } else {
                    tree.set_span(span);
                }
                tree
            })
            .collect()
    }
    set(tokens, expr.span())
}

/// A check across two options, at the span of `expr` (the constant): `call(args.., message)`.
pub(crate) fn across(
    kind: &str,
    expr: &Expr,
    call: &str,
    args: &[&TokenStream],
    rule: &str,
) -> TokenStream {
    let call = proc_macro2::Ident::new(call, expr.span());
    let message = message(kind, rule);
    quote_spanned!(expr.span()=> ::reliability::__private::#call(#(#args,)* #message))
}
