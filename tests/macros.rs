//! The entry-point attributes (SPEC section 6): every misuse is a compile
//! error with a precise span and a helpful message (the expected messages
//! are checked in under `tests/ui/fail`), and every argument form and return
//! type compiles and runs (`tests/ui/pass`: each program asserts that its
//! arguments reached the loop). This file holds a single test because it
//! changes the process environment.

#[test]
fn attribute_misuse_is_a_compile_error_and_argument_forms_work() {
    std::env::remove_var("RUNNER_DEBUG");
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
    drop(t); // trybuild builds and runs the cases here

    // Without `debug`, #[main] follows RUNNER_DEBUG: run that case again
    // with the variable set (the program asserts what it sees).
    std::env::set_var("RUNNER_DEBUG", "1");
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/no_arguments_follows_env.rs");
    drop(t);
    std::env::remove_var("RUNNER_DEBUG");
}
