//! Entry-point attributes for `runner-core` (`#[main]`, `#[runner_test]`).
//!
//! The attributes are not built yet; this crate reserves its place in the
//! workspace so that `runner-core` can re-export it once they are.
