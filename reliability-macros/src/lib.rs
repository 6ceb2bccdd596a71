//! The attribute macros of [`reliability`](https://docs.rs/reliability). Depend on `reliability`
//! and use them from there: `use reliability::{retry, timeout, circuit_breaker, cached, fallback};`.
//!
//! Each attribute is a one-line shim into `entry::attribute`, which works on `proc_macro2` tokens
//! so that it can be tested without a compiler.

mod attrs;
mod consts;
mod duration;
mod entry;
mod expand;
mod item;
mod kind;
mod options;
#[cfg(test)]
mod proptests;
mod siblings;
mod suggest;

use proc_macro::TokenStream;

use kind::Kind;

#[doc = include_str!("../docs/retry.md")]
#[proc_macro_attribute]
pub fn retry(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::attribute(Kind::Retry, args.into(), item.into()).into()
}

#[doc = include_str!("../docs/timeout.md")]
#[proc_macro_attribute]
pub fn timeout(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::attribute(Kind::Timeout, args.into(), item.into()).into()
}

#[doc = include_str!("../docs/circuit_breaker.md")]
#[proc_macro_attribute]
pub fn circuit_breaker(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::attribute(Kind::CircuitBreaker, args.into(), item.into()).into()
}

#[doc = include_str!("../docs/cached.md")]
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::attribute(Kind::Cache, args.into(), item.into()).into()
}

#[doc = include_str!("../docs/fallback.md")]
#[proc_macro_attribute]
pub fn fallback(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::attribute(Kind::Fallback, args.into(), item.into()).into()
}

#[doc = include_str!("../docs/rate_limit.md")]
#[proc_macro_attribute]
pub fn rate_limit(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::attribute(Kind::RateLimit, args.into(), item.into()).into()
}

#[doc = include_str!("../docs/bulkhead.md")]
#[proc_macro_attribute]
pub fn bulkhead(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::attribute(Kind::Bulkhead, args.into(), item.into()).into()
}

#[doc = include_str!("../docs/hedge.md")]
#[proc_macro_attribute]
pub fn hedge(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::attribute(Kind::Hedge, args.into(), item.into()).into()
}
