//! Integration tests of `reliability`; see the `tests/` directory.
