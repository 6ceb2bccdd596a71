//! Where an attribute keeps its policy: a `static` in the function, holding one policy per
//! instantiation of the function (a generic function, or a method of a generic type, has one per
//! set of type arguments), each made and registered on first use.

use std::sync::{Mutex, OnceLock};

use crate::stats::lock;

/// One policy per instantiation, keyed by the instantiation's type string (`""` for a function
/// that is not generic). Policies are made once and live as long as the program, as the `static`
/// that holds them.
pub(crate) struct Slot<T: 'static> {
    /// The first instantiation used: every call of a non-generic function finds its policy here
    /// with one comparison.
    first: OnceLock<(&'static str, &'static T)>,
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

    /// The policy of `instance` for which `fits` holds, made by `make` on first use.
    /// The first policy made, whichever instance it was made for.
    #[inline]
    pub(crate) fn first(&self) -> Option<&'static T> {
        self.first.get().map(|(_, policy)| *policy)
    }

    #[inline]
    pub(crate) fn get(
        &self,
        instance: &'static str,
        fits: impl Fn(&T) -> bool,
        make: impl FnOnce() -> T,
    ) -> &'static T {
        if let Some((key, policy)) = self.first.get()
            && same(key, instance)
            && fits(policy)
        {
            return policy;
        }
        self.get_slow(instance, fits, make)
    }

    #[cold]
    #[inline(never)]
    fn get_slow(
        &self,
        instance: &'static str,
        fits: impl Fn(&T) -> bool,
        make: impl FnOnce() -> T,
    ) -> &'static T {
        let mut make = Some(make);
        let (key, policy) = *self.first.get_or_init(|| {
            let made: &'static T = match make.take() {
                Some(make) => Box::leak(Box::new(make())),
                None => unreachable_make(),
            };
            (instance, made)
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
        let made: &'static T = Box::leak(Box::new(make()));
        others.push((instance, made));
        made
    }
}

/// `get_or_init` runs its closure at most once, while `make` is still there.
#[cold]
fn unreachable_make() -> ! {
    unreachable!("`make` is taken once, inside `get_or_init`")
}
