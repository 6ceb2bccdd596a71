//! Reading `key = value` options: unknown and duplicated keys, and typed values with their spans.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, Meta, Path, Token, UnOp};

use crate::duration;
use crate::kind::Kind;
use crate::suggest::{did_you_mean, list};

/// Collects every error instead of stopping at the first.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// The value of `result`, or `None` with its error recorded.
    pub(crate) fn value<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    /// Whether any error was recorded.
    pub(crate) fn any(&self) -> bool {
        self.0.is_some()
    }

    /// How many errors were recorded.
    pub(crate) fn count(&self) -> usize {
        self.0.as_ref().map_or(0, |e| e.into_iter().count())
    }

    /// Every error recorded, as one.
    pub(crate) fn into_error(self) -> Option<syn::Error> {
        self.0
    }
}

/// The options of one attribute, in the order written.
pub(crate) struct Options {
    pub(crate) values: Vec<(Ident, Expr)>,
    /// Options written without a value: flags such as `shared`.
    pub(crate) flags: Vec<Ident>,
    /// Bare paths: the targets of `#[fallback(a, b)]`.
    pub(crate) paths: Vec<Path>,
    /// An option was written but rejected (unknown, misspelled, without its value): a "missing
    /// option" error would then only repeat it (`#[timeout(seconds = 30)]` misses `secs` because
    /// `seconds` is a misspelling of it).
    rejected: bool,
}

impl Options {
    /// The value of `key`, if given.
    pub(crate) fn get(&self, key: &str) -> Option<&Expr> {
        self.values.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The key token of `key`, if given (to point errors at).
    pub(crate) fn key(&self, key: &str) -> Option<&Ident> {
        self.values.iter().find(|(k, _)| k == key).map(|(k, _)| k)
    }

    /// Reports a required option as missing, unless an option of this attribute was rejected
    /// already (it was most likely meant to be this one, and its error says so).
    pub(crate) fn missing(&self, errors: &mut Errors, span: Span, message: String) {
        if !self.rejected {
            errors.push(syn::Error::new(span, message));
        }
    }

    /// Whether the flag `key` (an option written without a value, e.g. `shared`) is given.
    pub(crate) fn flag(&self, key: &str) -> bool {
        self.flags.iter().any(|k| k == key)
    }
}

/// Parses `tokens` (the inside of `#[kind(...)]`), reporting unknown keys with a suggestion and
/// duplicated keys at their second use.
pub(crate) fn parse(kind: Kind, tokens: TokenStream, errors: &mut Errors) -> Options {
    let mut options = Options {
        values: Vec::new(),
        flags: Vec::new(),
        paths: Vec::new(),
        rejected: false,
    };
    let tokens_for_hint = tokens.clone();
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens) {
        Ok(metas) => metas,
        Err(error) => {
            options.rejected = true;
            if kind == Kind::Fallback
                && let Some(method) = self_method(tokens_for_hint)
            {
                errors.push(method);
                return options;
            }
            errors.push(syn::Error::new(
                error.span(),
                format!("{error}; `#[{kind}]` takes options written `name = value`, separated by commas{}", kind.options_hint()),
            ));
            return options;
        }
    };
    for meta in metas {
        match meta {
            Meta::NameValue(nv) => {
                let Some(key) = nv.path.get_ident().cloned() else {
                    errors.push(syn::Error::new_spanned(
                        &nv.path,
                        format!("expected an option name{}", kind.options_hint()),
                    ));
                    continue;
                };
                let Some(option) = kind.option(&key.to_string()) else {
                    options.rejected = true;
                    errors.push(unknown_option(kind, &key));
                    continue;
                };
                if option.flag {
                    errors.push(syn::Error::new_spanned(
                        &nv,
                        format!("`{key}` is a flag: write `{key}` alone, without `= ...`"),
                    ));
                    continue;
                }
                if options.key(&key.to_string()).is_some() {
                    errors.push(syn::Error::new_spanned(
                        &key,
                        format!("`{key}` is given twice in `#[{kind}]`; remove this one"),
                    ));
                    continue;
                }
                if let Some(error) = by_value_closure(&key, &nv.value) {
                    errors.push(error);
                    continue;
                }
                options.values.push((key, nv.value));
            }
            Meta::Path(path)
                if path
                    .get_ident()
                    .and_then(|key| kind.option(&key.to_string()))
                    .is_some_and(|o| o.flag) =>
            {
                let key = path.get_ident().cloned();
                if let Some(key) = key {
                    if options.flag(&key.to_string()) {
                        errors.push(syn::Error::new_spanned(
                            &key,
                            format!("`{key}` is given twice in `#[{kind}]`; remove this one"),
                        ));
                    } else {
                        options.flags.push(key);
                    }
                }
            }
            Meta::Path(path) if kind == Kind::Fallback => options.paths.push(path),
            Meta::Path(path) => match path.get_ident() {
                Some(key) if kind.option(&key.to_string()).is_some() => {
                    options.rejected = true;
                    errors.push(syn::Error::new_spanned(
                        key,
                        format!(
                            "`{key}` needs a value: `{key} = ...`{}",
                            kind.value_hint(&key.to_string())
                        ),
                    ));
                }
                Some(key) => {
                    options.rejected = true;
                    errors.push(unknown_option(kind, key));
                }
                None => errors.push(syn::Error::new_spanned(
                    &path,
                    format!("expected `name = value`{}", kind.options_hint()),
                )),
            },
            Meta::List(list) => {
                options.rejected = true;
                let shown = list
                    .path
                    .get_ident()
                    .map_or_else(|| "option".to_owned(), ToString::to_string);
                errors.push(syn::Error::new_spanned(
                    &list,
                    format!(
                        "write `{shown} = value`, not `{shown}(...)`{}",
                        kind.options_hint()
                    ),
                ));
            }
        }
    }
    options
}

/// `#[fallback(self.cheap)]` (as the compiler's help for a free function suggests): a method's
/// fallback is written `Self::cheap`, and is called with the same receiver.
fn self_method(tokens: TokenStream) -> Option<syn::Error> {
    use proc_macro2::TokenTree;
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    tokens.windows(3).find_map(|w| match w {
        [TokenTree::Ident(this), TokenTree::Punct(dot), TokenTree::Ident(method)]
            if this == "self" && dot.as_char() == '.' =>
        {
            let span = this.span().join(method.span()).unwrap_or_else(|| this.span());
            Some(syn::Error::new(
                span,
                format!("a method's fallback is written `Self::{method}`, not `self.{method}`: it is called with the same receiver and arguments"),
            ))
        }
        _ => None,
    })
}

/// `when = |e: MyError| ...`: the predicates (`when`, `retry_after`) take the error by reference.
/// Said once, here, instead of the compiler's mismatches at every use of the closure.
fn by_value_closure(key: &Ident, value: &Expr) -> Option<syn::Error> {
    if key != "when" && key != "retry_after" {
        return None;
    }
    let Expr::Closure(closure) = value else {
        return None;
    };
    let Some(syn::Pat::Type(arg)) = closure.inputs.first() else {
        return None;
    };
    if matches!(*arg.ty, syn::Type::Reference(_) | syn::Type::Infer(_)) {
        return None;
    }
    let ty = &arg.ty;
    let pat = &arg.pat;
    Some(syn::Error::new_spanned(
        arg,
        format!(
            "`{key}` takes the error by reference, `&E`: write `|{}: &{}| ...`",
            quote::quote!(#pat),
            quote::quote!(#ty)
        ),
    ))
}

fn unknown_option(kind: Kind, key: &Ident) -> syn::Error {
    let options = kind.options();
    let message = match did_you_mean(&key.to_string(), &options, &kind.aliases()) {
        Some(suggestion) => format!(
            "unknown option `{key}` for `#[{kind}]`; did you mean `{suggestion}`? (options: {})",
            list(&options)
        ),
        None => format!(
            "unknown option `{key}` for `#[{kind}]`; the options are {}",
            list(&options)
        ),
    };
    syn::Error::new_spanned(key, message)
}

/// A literal, looking through a leading `-` so it can be reported as negative.
fn literal(expr: &Expr) -> Option<(&Lit, bool)> {
    match expr {
        Expr::Lit(ExprLit { lit, .. }) => {
            let negative = match lit {
                Lit::Int(int) => int.base10_digits().starts_with('-'),
                Lit::Float(float) => float.base10_digits().starts_with('-'),
                _ => false,
            };
            Some((lit, negative))
        }
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => match &**expr {
            Expr::Lit(ExprLit { lit, .. }) => Some((lit, true)),
            _ => None,
        },
        Expr::Group(group) => literal(&group.expr),
        Expr::Paren(paren) => literal(&paren.expr),
        _ => None,
    }
}

/// A non-negative integer literal.
pub(crate) fn integer(key: &str, expr: &Expr) -> syn::Result<u64> {
    match literal(expr) {
        Some((Lit::Int(int), false)) => int
            .base10_parse::<u64>()
            .map_err(|_| syn::Error::new_spanned(expr, format!("`{key}` is too large"))),
        Some((Lit::Int(_) | Lit::Float(_), true)) => Err(syn::Error::new_spanned(
            expr,
            format!("`{key}` must not be negative"),
        )),
        _ => Err(syn::Error::new_spanned(
            expr,
            format!("`{key}` takes an integer literal, e.g. `{key} = 3`"),
        )),
    }
}

/// An integer literal that fits `u32`.
pub(crate) fn integer_u32(key: &str, expr: &Expr) -> syn::Result<u32> {
    let value = integer(key, expr)?;
    u32::try_from(value)
        .map_err(|_| syn::Error::new_spanned(expr, format!("`{key}` must be at most {}", u32::MAX)))
}

/// A number literal (integer or float).
pub(crate) fn number(key: &str, expr: &Expr) -> syn::Result<f64> {
    let parsed = match literal(expr) {
        Some((Lit::Float(float), negative)) => float
            .base10_parse::<f64>()
            .ok()
            .map(|v| if negative { -v } else { v }),
        Some((Lit::Int(int), negative)) => int
            .base10_parse::<f64>()
            .ok()
            .map(|v| if negative { -v } else { v }),
        _ => None,
    };
    parsed.ok_or_else(|| {
        syn::Error::new_spanned(expr, format!("`{key}` takes a number, e.g. `{key} = 2.0`"))
    })
}

/// A duration: seconds as a number, or a string with units. Returns nanoseconds.
pub(crate) fn duration(key: &str, expr: &Expr) -> syn::Result<u64> {
    let help = format!(
        "`{key}` takes a number of seconds (`{key} = 30`, `{key} = 0.25`) or a string with a unit (`{key} = \"250ms\"`, `{key} = \"1m30s\"`)"
    );
    let parsed = match literal(expr) {
        Some((_, true)) => {
            return Err(syn::Error::new_spanned(
                expr,
                format!("`{key}` must not be negative"),
            ));
        }
        Some((Lit::Int(int), false)) => duration::parse_seconds(int.base10_digits()),
        Some((Lit::Float(float), false)) => duration::parse_seconds(float.base10_digits()),
        Some((Lit::Str(text), false)) => duration::parse_duration_str(&text.value()),
        _ => return Err(syn::Error::new_spanned(expr, help)),
    };
    parsed.map_err(|reason| syn::Error::new_spanned(expr, format!("invalid `{key}`: {reason}")))
}

/// A string literal naming one of `choices`; `aliases` maps names used elsewhere to ours.
pub(crate) fn choice<T: Copy>(
    key: &str,
    expr: &Expr,
    choices: &[(&'static str, T)],
    aliases: &[(&str, &'static str)],
) -> syn::Result<T> {
    let names: Vec<&'static str> = choices.iter().map(|(name, _)| *name).collect();
    let options = names
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let given = match literal(expr) {
        Some((Lit::Str(text), false)) => text.value(),
        _ => {
            let hint = match expr {
                Expr::Path(p) if p.path.get_ident().is_some() => {
                    format!(
                        "; write it as a string: `{key} = \"{}\"`",
                        p.path
                            .get_ident()
                            .map(ToString::to_string)
                            .unwrap_or_default()
                    )
                }
                _ => String::new(),
            };
            return Err(syn::Error::new_spanned(
                expr,
                format!("`{key}` takes one of {options}{hint}"),
            ));
        }
    };
    if let Some((_, value)) = choices.iter().find(|(name, _)| *name == given) {
        return Ok(*value);
    }
    let message = match did_you_mean(&given, &names, aliases) {
        Some(suggestion) => {
            format!("unknown {key} \"{given}\"; did you mean \"{suggestion}\"? (one of {options})")
        }
        None => format!("unknown {key} \"{given}\"; expected one of {options}"),
    };
    Err(syn::Error::new_spanned(expr, message))
}

/// A non-empty string literal.
/// Whether `expr` is a literal (possibly negated).
pub(crate) fn is_literal(expr: &Expr) -> bool {
    literal(expr).is_some()
}

pub(crate) fn name(key: &str, expr: &Expr) -> syn::Result<String> {
    match literal(expr) {
        Some((Lit::Str(text), false)) if !text.value().trim().is_empty() => Ok(text.value()),
        Some((Lit::Str(_), false)) => Err(syn::Error::new_spanned(
            expr,
            format!("`{key}` must not be empty"),
        )),
        _ => Err(syn::Error::new_spanned(
            expr,
            format!("`{key}` takes a string literal, e.g. `{key} = \"gpt4\"`"),
        )),
    }
}

/// Points at an expression.
pub(crate) fn at(expr: &impl Spanned, message: impl std::fmt::Display) -> syn::Error {
    syn::Error::new(expr.span(), message)
}
