//! The entry-point attributes of runner-core: `#[main]` and
//! `#[runner_test]`. Use them through runner-core
//! (`#[runner_core::main]`, `#[runner_core::runner_test]`), which re-exports
//! them and documents them with examples.
//!
//! The design follows tokio-macros: the attribute's arguments are parsed
//! into a `config::Config` first, every misuse is a `syn::Error` spanned on
//! the offending tokens, and the function body is kept as raw tokens (never
//! parsed), so errors inside it point at the user's code and a half-written
//! body still expands.

mod config;
mod entry;

use proc_macro::TokenStream;

/// Runs `async fn main` as the main task of a fresh runner
/// (`asyncio.run(main())`).
///
/// ```
/// use std::time::Duration;
///
/// #[runner_core::main]
/// async fn main() {
///     runner_core::sleep(Duration::from_millis(1)).await;
///     println!("hello from the main task");
/// }
/// ```
///
/// Arguments, in any order, each at most once:
///
/// | argument | meaning |
/// |---|---|
/// | `debug` / `debug = true` | debug mode on |
/// | `debug = false` | debug mode off (without `debug`, `RUNNER_DEBUG` decides) |
/// | `loop_factory = f` | create the loop with `f: FnMut() -> std::io::Result<EventLoop>` |
/// | `crate = "path"` | where runner-core is, when it is re-exported under another name |
///
/// ```
/// use std::time::Duration;
/// use runner_core::EventLoop;
///
/// fn quick_warnings() -> std::io::Result<EventLoop> {
///     EventLoop::builder().slow_callback_duration(Duration::from_millis(10)).build()
/// }
///
/// #[runner_core::main(loop_factory = quick_warnings, debug)]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let lp = runner_core::get_running_loop()?;
///     assert!(lp.get_debug());
///     assert_eq!(lp.slow_callback_duration(), Duration::from_millis(10));
///     Ok(())
/// }
/// ```
///
/// The body's return value is `main`'s: `()`, `Result<(), E>`, or any
/// `Termination`. When the run ends without one, `main` exits: after a
/// Ctrl-C (`KeyboardInterrupt`) it prints `KeyboardInterrupt` and dies by
/// SIGINT, as Python does (status 130 in a shell); after any other runner
/// error it prints the error and exits with status 1. A panic of the main
/// task propagates as a panic of `main`.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(entry::Kind::Main, args.into(), item.into()).into()
}

/// Turns an `async fn` into a `#[test]` that runs on a fresh runner.
///
/// Takes the same arguments as [`main`](macro@main), and:
///
/// | argument | meaning |
/// |---|---|
/// | `timeout = "5s"` | fail the test after this long (real time; `ms`, `s`, `m`, `h`); default from `RUNNER_TEST_TIMEOUT` |
/// | `start_paused` | run on a virtual clock that jumps to the next timer when idle |
/// | `allow_task_panics` | do not fail the test when a task it spawned panics unobserved |
///
/// Works with `#[should_panic]`, `#[ignore]` and tests returning `Result`;
/// a run that ends without an output (the main task was cancelled) fails
/// the test with the reason.
///
/// ```no_run
/// use std::time::Duration;
///
/// #[runner_core::runner_test]
/// async fn sleeps_concurrently() {
///     let start = std::time::Instant::now();
///     let a = runner_core::spawn(runner_core::sleep(Duration::from_millis(20)));
///     runner_core::sleep(Duration::from_millis(20)).await;
///     a.await.unwrap();
///     assert!(start.elapsed() < Duration::from_millis(39));
/// }
///
/// #[runner_core::runner_test(debug)]
/// #[should_panic(expected = "boom")]
/// async fn panics_fail_the_test() {
///     panic!("boom");
/// }
///
/// #[runner_core::runner_test(start_paused, timeout = "2s")]
/// async fn an_hour_in_no_time() {
///     runner_core::sleep(Duration::from_secs(3600)).await;
/// }
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn runner_test(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(entry::Kind::Test, args.into(), item.into()).into()
}
