//! The `runner` workspace's root package: it holds the runnable examples
//! (`cargo run --example NAME`), the cross-crate integration tests, and
//! [`hyper_rt`], the glue that runs hyper on runner-core. The library itself
//! is [`runner_core`], re-exported here. The README below is
//! compiled and run as a doctest, so its example stays true.
#![doc = include_str!("../README.md")]

pub use runner_core::*;

pub mod hyper_rt;

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
}
