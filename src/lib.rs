//! The `runner` workspace's root package: the runnable examples (`cargo
//! run --example NAME`) and the cross-crate integration tests. It exports
//! nothing: the crate to depend on is `runner-core`. The README below, and
//! the guide's pages, are compiled and run as doctests, so their examples
//! stay true.
#![doc = include_str!("../README.md")]

/// The guide's pages are compiled and run as doctests too.
#[cfg(doctest)]
mod guide {
    #[doc = include_str!("../docs/cancellation.md")]
    struct Cancellation;
    #[doc = include_str!("../docs/asyncio-mapping.md")]
    struct AsyncioMapping;
    #[doc = include_str!("../docs/closing.md")]
    struct Closing;
    #[doc = include_str!("../docs/macros.md")]
    struct Macros;
    #[doc = include_str!("../docs/ctrl-c.md")]
    struct CtrlC;
    #[doc = include_str!("../docs/debug.md")]
    struct Debug;
    #[doc = include_str!("../docs/testing.md")]
    struct Testing;
    #[doc = include_str!("../docs/networking.md")]
    struct Networking;
    #[doc = include_str!("../docs/interop.md")]
    struct Interop;
}
