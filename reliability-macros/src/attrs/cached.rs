//! `#[cached]`: answer repeated calls from memory. What is stored is decided by the type system:
//! a `Result` (through any alias) stores its `Ok` values, any other type its values.

use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::Expr;
use syn::spanned::Spanned;

use crate::consts::{self, Consts};
use crate::expand::{Cx, duration};
use crate::item::{Function, Passing};
use crate::kind::{Opt, Spec};
use crate::options::{self, Errors, Options, at};

pub(crate) static SPEC: Spec = Spec {
    name: "cached",
    options: &[
        Opt::new(
            "ttl",
            "ttl = 3600",
            "none (until evicted)",
            &[
                "time_to_live",
                "ttl_secs",
                "ttl_seconds",
                "expire",
                "expiry",
                "lifespan",
                "time",
            ],
        ),
        Opt::new("tti", "tti = \"10m\"", "none", &["time_to_idle"]),
        Opt::new(
            "max_size",
            "max_size = 1000",
            "`10_000`",
            &["size", "capacity", "max_capacity", "max_entries"],
        ),
        Opt::new(
            "key",
            "key = query.to_lowercase()",
            "tuple of all arguments but `self`",
            &["convert", "key_fn"],
        ),
        Opt::new(
            "name",
            "name = \"answers\"",
            "module path + fn name",
            &["id"],
        ),
        Opt::new(
            "stale_if_error",
            "stale_if_error = \"1h\"",
            "off",
            &[
                "stale",
                "serve_stale",
                "stale_while_error",
                "max_stale",
                "grace",
            ],
        ),
        Opt::new(
            "unless",
            "unless = |answer| answer.is_empty()",
            "every value is stored",
            &["skip_if", "dont_cache_if", "except", "filter"],
        ),
        Opt::flag("shared", "off", &["distributed", "global", "redis"]),
    ],
    needs_result: false,
    reuses_args: false,
    docs: include_str!("../../docs/cached.md"),
};

pub(crate) const DEFAULT_MAX_SIZE: u64 = 10_000;

pub(crate) struct Config {
    ttl: Option<u64>,
    tti: Option<u64>,
    stale_if_error: Option<u64>,
    max_size: u64,
    key: Option<Expr>,
    name: Option<String>,
    unless: Option<Expr>,
    shared: bool,
    /// Values given as constants, checked when the `static` is evaluated.
    consts: Consts,
}

pub(crate) fn config(opts: &Options, errors: &mut Errors) -> Config {
    let mut config = Config {
        ttl: None,
        tti: None,
        stale_if_error: None,
        max_size: DEFAULT_MAX_SIZE,
        key: opts.get("key").cloned(),
        name: None,
        unless: opts.get("unless").cloned(),
        shared: opts.flag("shared"),
        consts: Consts::default(),
    };
    for (key, slot) in [("ttl", &mut config.ttl), ("tti", &mut config.tti)] {
        if let Some(expr) = consts::given(opts, key) {
            let rule = format!(
                "`{key}` must be longer than zero (leave it out to keep entries until evicted)"
            );
            let value = consts::duration("cached", key, expr, Some((1, &rule)), errors);
            config.consts.set(key, value);
        } else if let Some(expr) = opts.get(key)
            && let Some(value) = errors.value(options::duration(key, expr))
        {
            if value == 0 {
                errors.push(at(expr, format!("`{key}` must be longer than zero (leave it out to keep entries until evicted)")));
            }
            *slot = Some(value);
        }
    }
    const STALE_RULE: &str =
        "`stale_if_error` must be longer than zero (leave it out to never serve an expired entry)";
    const STALE_NEEDS_TTL: &str = "`stale_if_error` needs a `ttl`: an entry turns stale when its `ttl` has passed, e.g. `#[cached(ttl = 3600, stale_if_error = \"1h\")]`";
    const TOGETHER: &str = "`ttl` and `stale_if_error` together must be at most 1000 years";
    // moka keeps an entry for `ttl + stale_if_error`, and refuses more than 1000 years.
    const THOUSAND_YEARS_NS: u128 = 1_000 * 365 * 86_400 * 1_000_000_000;
    let stale_const = consts::given(opts, "stale_if_error");
    if let Some(expr) = stale_const {
        if opts.get("ttl").is_none() {
            errors.push(at(expr, STALE_NEEDS_TTL));
        }
        let stale = consts::duration(
            "cached",
            "stale_if_error",
            expr,
            Some((1, STALE_RULE)),
            errors,
        );
        config.consts.set("stale_if_error", stale);
    }
    if let Some(blame) = stale_const.or(consts::given(opts, "ttl"))
        && opts.get("ttl").is_some()
        && let Some(stale) = opts.get("stale_if_error")
    {
        let ttl = config
            .consts
            .get("ttl")
            .unwrap_or_else(|| consts::respan(duration(config.ttl.unwrap_or(0)), blame));
        let stale = config.consts.get("stale_if_error").or_else(|| {
            options::duration("stale_if_error", stale)
                .ok()
                .map(|d| consts::respan(duration(d), blame))
        });
        if let Some(stale) = stale {
            let limit = proc_macro2::Literal::u128_unsuffixed(THOUSAND_YEARS_NS);
            let checked = consts::across(
                "cached",
                blame,
                "sum_at_most",
                &[&ttl, &stale, &consts::respan(quote!(#limit), blame)],
                TOGETHER,
            );
            config.consts.set("stale_if_error", checked);
        }
    }
    if let Some(expr) = opts.get("stale_if_error")
        && stale_const.is_none()
        && let Some(value) = errors.value(options::duration("stale_if_error", expr))
    {
        if value == 0 {
            errors.push(at(expr, STALE_RULE));
        } else if opts.get("ttl").is_none() {
            errors.push(at(expr, STALE_NEEDS_TTL));
        }
        if !config.consts.has("ttl")
            && u128::from(value) + u128::from(config.ttl.unwrap_or(0)) > THOUSAND_YEARS_NS
        {
            errors.push(at(expr, TOGETHER));
        }
        config.stale_if_error = Some(value);
    }
    if let Some(expr) = consts::given(opts, "max_size") {
        let max_size = consts::u64(
            "cached",
            "max_size",
            expr,
            (1, u64::MAX),
            "`max_size` must be at least 1",
            errors,
        );
        config.consts.set("max_size", max_size);
    } else if let Some(expr) = opts.get("max_size")
        && let Some(max_size) = errors.value(options::integer("max_size", expr))
    {
        if max_size == 0 {
            errors.push(at(expr, "`max_size` must be at least 1"));
        }
        config.max_size = max_size;
    }
    if let Some(expr) = opts.get("name") {
        config.name = errors.value(options::name("name", expr));
    }
    config
}

pub(crate) fn expand(config: &Config, cx: &mut Cx<'_>, below: TokenStream) -> TokenStream {
    let consts = &config.consts;
    let value = |key: &str, nanos: Option<u64>| consts.get(key).or_else(|| nanos.map(duration));
    let ttl = value("ttl", config.ttl).map(|d| quote!(.ttl(#d)));
    let tti = value("tti", config.tti).map(|d| quote!(.tti(#d)));
    let stale = value("stale_if_error", config.stale_if_error).map(|d| quote!(.stale_if_error(#d)));
    let max_size = consts
        .get("max_size")
        .unwrap_or_else(|| Literal::u64_unsuffixed(config.max_size).into_token_stream());
    let named = config.name.as_ref().map(|n| quote!(.named(#n)));
    cx.statics.push(quote! {
        static __RELIABILITY_CACHE: ::reliability::__private::CacheSlot =
            ::reliability::__private::CacheSlot::new(#max_size)#named #ttl #tti #stale;
    });
    let key = key(cx.function, config);
    let ret = cx.ret;
    let (ctx, site) = (&cx.names.ctx, &cx.names.site);
    // `Result` or not is the type system's call (aliases and macro-made types included):
    // `StoresOk` applies to `Result<T, E>`, `StoresValue` to anything else, and a value that
    // cannot be stored is one error of ours (see `Returns`).
    let how = quote!((&&&&::reliability::__private::Returns::<#ret>::new()).how());
    let unless = match &config.unless {
        Some(unless) => quote!(&#unless),
        None => quote!(&::reliability::__private::store_all),
    };
    let call = if config.shared {
        cx.lets
            .push(quote!(::reliability::__private::needs_redis::<()>();));
        quote!(cached_shared)
    } else {
        quote!(cached)
    };
    // A hit answers before the layers below are made: no future of theirs is built or moved.
    let (how_, key_, hit) = (
        cx.local("__reliability_how"),
        cx.local("__reliability_key"),
        cx.local("__reliability_hit"),
    );
    quote! {
        let #how_ = #how;
        let #key_ = #key;
        match #how_.hit(&__RELIABILITY_CACHE, #site, &#key_) {
            ::core::option::Option::Some(#hit) => #hit,
            ::core::option::Option::None => #how_.#call(&__RELIABILITY_CACHE, #site, &#ctx, #unless, #key_, #below).await,
        }
    }
}

/// The key: the user's expression, or an owned copy of every argument but the receiver. Each part
/// (an argument, or an element of a `key = (..)` tuple) is checked on its own, so a part that cannot
/// be a key is one error at it (see `KeyPart`).
fn key(function: &Function, config: &Config) -> TokenStream {
    if let Some(key) = &config.key {
        match key {
            Expr::Tuple(tuple) if !tuple.elems.is_empty() => {
                let parts = tuple.elems.iter().map(|e| part(quote!(#e), e.span()));
                quote!((#(#parts,)*))
            }
            other => part(quote!(#other), other.span()),
        }
    } else {
        let parts = function.args.iter().map(|arg| {
            let binding = &arg.binding;
            let owned = quote_spanned!(arg.ty.span()=> ::std::borrow::ToOwned::to_owned);
            let value = match arg.passing {
                Passing::Owned => quote!(#owned(&#binding)),
                Passing::Shared => quote!(#owned(#binding)),
                Passing::Unique => quote!(#owned(&*#binding)),
            };
            part(value, arg.ty.span())
        });
        let inputs = function.sig.inputs.span();
        quote_spanned!(inputs=> (#(#parts,)*))
    }
}

/// One part of the key, checked at `span`.
fn part(value: TokenStream, span: Span) -> TokenStream {
    let local = Ident::new(
        "__reliability_key_part",
        Span::mixed_site().located_at(span),
    );
    let check = quote_spanned!(span=> (&&&&&&::reliability::__private::KeyPart::of(&#local)).part()(#local));
    quote!({
        let #local = #value;
        #check
    })
}

/// A `key = ...` that names a borrowed argument as a whole (`key = (self.id, q)` with `q: &str`):
/// the key is stored in the cache, which outlives the call, so rustc would say only that borrowed
/// data escapes. One error at that argument instead, with the key to write.
///
/// Without `key = ...`, every argument is part of the key: an `impl Trait` argument, whose type is
/// not known to be a key, is one error at it, saying to give the key.
pub(crate) fn check_key(function: &Function, config: &Config, errors: &mut Errors) {
    let Some(key) = &config.key else {
        for arg in &function.args {
            if let syn::Type::ImplTrait(_) = strip_reference(&arg.ty) {
                let name = &arg.binding;
                errors.push(at(
                    &arg.ty,
                    format!(
                        "`#[cached]` keys on every argument, and `{name}`, an `impl Trait` argument, cannot be part of the key: its type is not known to be `Hash + Eq + Clone`; take a concrete type (e.g. `String`), or give the key, e.g. `#[cached(key = {name}.to_string())]` for `impl Display`"
                    ),
                ));
            }
        }
        return;
    };
    let mut inner = key;
    while let Expr::Paren(paren) = inner {
        inner = &paren.expr;
    }
    let parts: Vec<&Expr> = match inner {
        Expr::Tuple(tuple) => tuple.elems.iter().collect(),
        other => vec![other],
    };
    for part in parts {
        let Expr::Path(path) = part else { continue };
        let Some(name) = path.path.get_ident() else {
            continue;
        };
        if path.qself.is_some() {
            continue;
        }
        let Some(arg) = function
            .args
            .iter()
            .find(|a| a.pattern.is_none() && a.binding == *name && a.passing != Passing::Owned)
        else {
            continue;
        };
        let ty = &arg.ty;
        if let syn::Type::Reference(r) = ty
            && r.lifetime.as_ref().is_some_and(|l| l.ident == "static")
        {
            continue;
        }
        let shown = quote!(#ty).to_string().replace("& ", "&");
        let fixed = quote!(#key).to_string().replace(' ', "").replace(',', ", ");
        let fixed = replace_ident(&fixed, &name.to_string(), &format!("{name}.to_owned()"));
        errors.push(at(
            part,
            format!(
                "`{name}` is `{shown}`, and a borrowed argument cannot be part of the cache key (the cache keeps its keys after the call returns): write `key = {fixed}`"
            ),
        ));
    }
}

/// `ty` without the references around it.
fn strip_reference(ty: &syn::Type) -> &syn::Type {
    match ty {
        syn::Type::Reference(r) => strip_reference(&r.elem),
        syn::Type::Paren(p) => strip_reference(&p.elem),
        other => other,
    }
}

/// `text` with the whole word `word` replaced by `with` (not inside longer names, nor after a `.`).
fn replace_ident(text: &str, word: &str, with: &str) -> String {
    let is_name = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len() + with.len());
    let mut rest = text;
    while let Some(found) = rest.find(word) {
        let before = rest[..found]
            .chars()
            .next_back()
            .or(out.chars().next_back());
        let after = rest[found + word.len()..].chars().next();
        out.push_str(&rest[..found]);
        if before.is_some_and(|c| is_name(c) || c == '.') || after.is_some_and(is_name) {
            out.push_str(word);
        } else {
            out.push_str(with);
        }
        rest = &rest[found + word.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::replace_ident;

    #[test]
    fn replaces_the_argument_only_where_it_is_a_whole_name() {
        assert_eq!(
            replace_ident("(self.q, q, qq, q_1)", "q", "q.to_owned()"),
            "(self.q, q.to_owned(), qq, q_1)"
        );
        assert_eq!(replace_ident("q", "q", "q.to_owned()"), "q.to_owned()");
    }
}
