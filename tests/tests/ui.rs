//! Compile-time behaviour of the attributes: every misuse is an error at the offending tokens, and
//! every supported item shape compiles without warnings. All cases run in one test, so that their
//! builds are shared.
//!
//! - `ui/pass`: each case compiles and runs (trybuild).
//! - `ui/fail`: misuses the macros reject themselves. The whole output is our text, so it is
//!   compared exactly with the `.stderr` snapshot beside the case (trybuild). A case belongs here
//!   only if its snapshot holds nothing of rustc's own wording: no `E0...` error, no rustc
//!   note such as "required by a bound" or "this error originates in the attribute macro".
//! - `ui/fail_annotated`: misuses that rustc reports, with our words where we have them (the
//!   `#[diagnostic::on_unimplemented]` messages, labels and notes of `reliability::__private`),
//!   and macro errors that rustc decorates with notes of its own. Their output mixes in rustc's
//!   wording, which changes between compiler releases, so they have no snapshot: `//~` comments in
//!   each case say which errors it must give, at which line, with which of our words, and
//!   anything else rustc says on those lines is not compared (see `annotated.rs` for the syntax).
//!   Each case must fail to compile, and must give no error at a line that no comment names.
//!
//! Refreshing: after changing one of the macros' messages, run
//! `TRYBUILD=overwrite cargo test -p tests --test ui`, which rewrites the `ui/fail` snapshots
//! (review the diff), and edit the `//~` comments of the `ui/fail_annotated` cases by hand; a
//! failing annotated case prints every diagnostic it got. A new compile-fail case goes to
//! `ui/fail` if its output is only ours, otherwise to `ui/fail_annotated`; annotated cases are
//! compiled against `reliability` alone.

#[path = "ui/annotated.rs"]
mod annotated;

#[test]
fn ui() {
    let annotated_failures = annotated::check("ui/fail_annotated");
    {
        let snapshots = trybuild::TestCases::new();
        snapshots.pass("ui/pass/*.rs");
        snapshots.compile_fail("ui/fail/*.rs");
        // Runs the cases when dropped, and panics if any fails.
    }
    assert_eq!(
        annotated_failures, 0,
        "ui/fail_annotated: cases failed (see above)"
    );
}
