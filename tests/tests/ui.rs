//! Compile-time behaviour of the attributes: every misuse is an error at the offending tokens
//! (`tests/ui/fail`), and every supported item shape compiles without warnings (`tests/ui/pass`).
//! Snapshots are refreshed with `TRYBUILD=overwrite cargo test -p tests --test ui`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("ui/pass/*.rs");
    cases.compile_fail("ui/fail/*.rs");
}
