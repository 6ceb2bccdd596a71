//! Where an attribute keeps its policy: a `static` in the function, holding one policy per
//! instantiation of the function (a generic function, or a method of a generic type, has one per
//! set of type arguments), each made and registered on first use.
//!
//! A call finds its policy in the `static` itself: the first instantiation's policy is stored
//! inline, so the policy's fields are one load from a fixed address, not two. The site is passed
//! to the path that makes a policy field by field, in registers, so that the hot path writes
//! nothing to memory for it.

use std::sync::{Mutex, OnceLock};

use crate::site::Site;
use crate::stats::lock;

/// One policy per instantiation, keyed by the instantiation's type string (`""` for a function
/// that is not generic). Policies are made once and live as long as the program, as the `static`
/// that holds them.
pub(crate) struct Slot<T: 'static> {
    /// The first instantiation used, and its policy: every call of a non-generic function finds
    /// its policy here with one comparison.
    first: OnceLock<(&'static str, T)>,
    others: Mutex<Vec<(&'static str, &'static T)>>,
}

impl<T: 'static> std::fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field(
                "instances",
                &(usize::from(self.first.get().is_some()) + lock(&self.others).len()),
            )
            .finish()
    }
}

/// Whether two instantiation keys are equal: usually the same `&'static str`, so the pointers match.
#[inline]
fn same(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b
}

impl<T: Send + Sync + 'static> Slot<T> {
    pub(crate) const fn new() -> Self {
        Slot {
            first: OnceLock::new(),
            others: Mutex::new(Vec::new()),
        }
    }

    /// The first policy made, whichever instance it was made for.
    #[inline]
    pub(crate) fn first(&'static self) -> Option<&'static T> {
        self.first.get().map(|(_, policy)| policy)
    }

    /// The policy of `instance` for which `fits` holds, made by `make` from `site` on first use.
    /// `make` should capture no more than a reference: it is passed to the cold path as it is.
    #[inline]
    pub(crate) fn get(
        &'static self,
        instance: &'static str,
        site: Site,
        fits: impl Fn(&T) -> bool,
        make: impl FnOnce(Site) -> T,
    ) -> &'static T {
        if let Some((key, policy)) = self.first.get()
            && same(key, instance)
            && fits(policy)
        {
            return policy;
        }
        let (path, site_instance, method) = site.parts();
        self.get_slow(instance, path, site_instance, method, fits, make)
    }

    #[cold]
    #[inline(never)]
    fn get_slow(
        &'static self,
        instance: &'static str,
        path: &'static str,
        site_instance: &'static str,
        method: bool,
        fits: impl Fn(&T) -> bool,
        make: impl FnOnce(Site) -> T,
    ) -> &'static T {
        let site = Site::from_parts(path, site_instance, method);
        let mut make = Some(make);
        let (key, policy) = self.first.get_or_init(|| match make.take() {
            Some(make) => (instance, make(site)),
            None => unreachable_make(),
        });
        // Made just now by this call: it fits.
        let Some(make) = make else { return policy };
        if same(key, instance) && fits(policy) {
            return policy;
        }
        let mut others = lock(&self.others);
        if let Some((_, found)) = others
            .iter()
            .find(|(key, policy)| same(key, instance) && fits(policy))
        {
            return found;
        }
        // A slot is a `static`, and so is what it holds: one policy per instantiation, for the rest
        // of the program.
        let made: &'static T = Box::leak(Box::new(make(site)));
        others.push((instance, made));
        made
    }
}

/// `get_or_init` runs its closure at most once, while `make` is still there.
#[cold]
fn unreachable_make() -> ! {
    unreachable!("`make` is taken once, inside `get_or_init`")
}
