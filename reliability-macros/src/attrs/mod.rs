//! One module per attribute: its options table, the validation of its options into a `Config`, and
//! its expansion around the layer below. A new attribute is one module here, one row in
//! [`Kind`](crate::kind::Kind), and one module (`<policy>/expand.rs`) in the runtime.

use proc_macro2::{Span, TokenStream};

use crate::expand::Cx;
use crate::kind::Kind;
use crate::options::{Errors, Options};

pub(crate) mod bulkhead;
pub(crate) mod cached;
pub(crate) mod circuit_breaker;
pub(crate) mod fallback;
pub(crate) mod hedge;
pub(crate) mod rate_limit;
pub(crate) mod retry;
pub(crate) mod timeout;

/// One attribute of the stack, its options validated.
pub(crate) enum Config {
    Retry(retry::Config),
    Timeout(timeout::Config),
    CircuitBreaker(circuit_breaker::Config),
    Cached(cached::Config),
    Fallback(fallback::Config),
    RateLimit(rate_limit::Config),
    Bulkhead(bulkhead::Config),
    Hedge(hedge::Config),
}

/// What an attribute makes of the layer below: a future the layer above awaits, or statements
/// (a loop, early returns) that end with the call's output.
pub(crate) enum Wrapped {
    Future(TokenStream),
    Statements(TokenStream),
}

/// Validates the options of one attribute; `span` is the attribute, blamed for missing options.
pub(crate) fn config(
    kind: Kind,
    opts: &Options,
    span: Span,
    errors: &mut Errors,
) -> Option<Config> {
    let before = errors.count();
    let config = match kind {
        Kind::Retry => Config::Retry(retry::config(opts, errors)),
        Kind::Timeout => Config::Timeout(timeout::config(opts, span, errors)),
        Kind::CircuitBreaker => Config::CircuitBreaker(circuit_breaker::config(opts, errors)),
        Kind::Cache => Config::Cached(cached::config(opts, errors)),
        Kind::Fallback => Config::Fallback(fallback::config(opts, span, errors)),
        Kind::RateLimit => Config::RateLimit(rate_limit::config(opts, span, errors)),
        Kind::Bulkhead => Config::Bulkhead(bulkhead::config(opts, span, errors)),
        Kind::Hedge => Config::Hedge(hedge::config(opts, span, errors)),
    };
    (errors.count() == before).then_some(config)
}

impl Config {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Config::Retry(_) => Kind::Retry,
            Config::Timeout(_) => Kind::Timeout,
            Config::CircuitBreaker(_) => Kind::CircuitBreaker,
            Config::Cached(_) => Kind::Cache,
            Config::Fallback(_) => Kind::Fallback,
            Config::RateLimit(_) => Kind::RateLimit,
            Config::Bulkhead(_) => Kind::Bulkhead,
            Config::Hedge(_) => Kind::Hedge,
        }
    }

    /// Wraps `below` (a future) in this attribute's layer.
    pub(crate) fn expand(&self, cx: &mut Cx<'_>, below: TokenStream) -> Wrapped {
        match self {
            Config::Retry(c) => retry::expand(c, cx, below),
            Config::Timeout(c) => Wrapped::Future(timeout::expand(c, cx, below)),
            Config::CircuitBreaker(c) => Wrapped::Future(circuit_breaker::expand(c, cx, below)),
            Config::Cached(c) => Wrapped::Statements(cached::expand(c, cx, below)),
            Config::Fallback(c) => fallback::expand(c, cx, below),
            Config::RateLimit(c) => Wrapped::Future(rate_limit::expand(c, cx, below)),
            Config::Bulkhead(c) => Wrapped::Future(bulkhead::expand(c, cx, below)),
            Config::Hedge(c) => Wrapped::Future(hedge::expand(c, cx, below)),
        }
    }
}

/// `Some(value)` or `None`, as tokens.
pub(crate) fn option(value: Option<TokenStream>) -> TokenStream {
    match value {
        Some(value) => quote::quote!(::core::option::Option::Some(#value)),
        None => quote::quote!(::core::option::Option::None),
    }
}
