//! The `runner` workspace's root package: it holds the runnable examples
//! (`cargo run --example NAME`) and the integration tests that run real
//! processes. The library itself is [`runner_core`], re-exported here.

pub use runner_core::*;
