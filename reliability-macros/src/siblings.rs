//! The siblings of the attribute being expanded: every `reliability` attribute on one function,
//! taken off it together by the first (outermost) one to expand, in written order.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{Attribute, Meta};

use crate::kind::Kind;

/// One attribute of the stack as written.
pub(crate) struct Sibling {
    pub(crate) kind: Kind,
    /// The attribute's path as written, `None` for the one being expanded.
    pub(crate) path: Option<syn::Path>,
    pub(crate) args: TokenStream,
    pub(crate) span: Span,
}

/// Which of our attributes `attr` is: `#[retry]`, `#[reliability::retry]` or `#[::reliability::retry]`.
pub(crate) fn kind_of(attr: &Attribute) -> Option<Kind> {
    let path = attr.path();
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    match segments.as_slice() {
        [name] if path.leading_colon.is_none() => Kind::from_name(name),
        [krate, name] if krate == "reliability" => Kind::from_name(name),
        _ => None,
    }
}

/// Takes our attributes off `attrs`; returns them in written order after `first`.
pub(crate) fn take(
    attrs: &mut Vec<Attribute>,
    errors: &mut crate::options::Errors,
) -> Vec<Sibling> {
    let mut taken = Vec::new();
    attrs.retain(|attr| {
        let Some(kind) = kind_of(attr) else {
            return true;
        };
        let args = match &attr.meta {
            Meta::Path(_) => TokenStream::new(),
            Meta::List(list) => list.tokens.clone(),
            Meta::NameValue(nv) => {
                errors.push(syn::Error::new_spanned(
                    nv,
                    format!("write `#[{kind}(...)]`, not `#[{kind} = ...]`"),
                ));
                TokenStream::new()
            }
        };
        taken.push(Sibling {
            kind,
            path: Some(attr.path().clone()),
            args,
            span: attr.path().span(),
        });
        false
    });
    taken
}
