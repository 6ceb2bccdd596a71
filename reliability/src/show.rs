//! How events show the user's error: with `Display` when its type has it, else `Debug`, else not
//! at all — chosen at the expansion site by the type system, with no bound asked of users.

use std::fmt;
use std::marker::PhantomData;

/// Writes an error for an event.
pub type ShowFn<E> = fn(&E, &mut fmt::Formatter<'_>) -> fmt::Result;

/// An error shown by its [`ShowFn`], for an event's `error` field.
pub(crate) struct Shown<'a, E>(pub(crate) &'a E, pub(crate) ShowFn<E>);

impl<E> fmt::Display for Shown<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.1)(self.0, f)
    }
}

/// The way to show `E`: `(&&&Show::<E>::new()).show()` picks [`ShowDisplay`], then
/// [`ShowDebug`], then [`ShowNothing`], whichever applies first.
pub struct Show<E>(PhantomData<fn(&E)>);

impl<E> Show<E> {
    /// The marker of the error type `E`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Show(PhantomData)
    }
}

/// Picked when `E: Display`.
pub trait ShowDisplay<E> {
    /// `Display::fmt`.
    fn show(&self) -> ShowFn<E>;
}

impl<E: fmt::Display> ShowDisplay<E> for &&Show<E> {
    fn show(&self) -> ShowFn<E> {
        |e, f| fmt::Display::fmt(e, f)
    }
}

/// Picked when `E: Debug` but not `Display`.
pub trait ShowDebug<E> {
    /// `Debug::fmt`.
    fn show(&self) -> ShowFn<E>;
}

impl<E: fmt::Debug> ShowDebug<E> for &Show<E> {
    fn show(&self) -> ShowFn<E> {
        |e, f| fmt::Debug::fmt(e, f)
    }
}

/// Picked otherwise.
pub trait ShowNothing<E> {
    /// Writes `-`.
    fn show(&self) -> ShowFn<E>;
}

impl<E> ShowNothing<E> for Show<E> {
    fn show(&self) -> ShowFn<E> {
        show_nothing
    }
}

/// For errors that cannot be shown: `-`.
pub(crate) fn show_nothing<E>(_: &E, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("-")
}
