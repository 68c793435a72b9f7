//! The attribute's arguments, parsed and checked.
//!
//! Accepted, in any order, each at most once:
//! `debug`, `debug = true|false`, `loop_factory = <expression>`,
//! `close_timeout = "10s"`, `crate = "path::to::runner_core"`; for
//! `#[main]` only: `shutdown_signals = ["SIGTERM", "SIGHUP"]`; and for
//! `#[runner_test]` only: `timeout = "5s"`, `start_paused`,
//! `allow_task_panics`.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, Meta, Path, Token};

use crate::entry::Kind;

/// What every message about an unknown argument lists.
pub(crate) const VALID: &str = "the valid arguments are `debug`, `debug = true|false`, `loop_factory = <expression>`, \
                                `close_timeout = \"10s\"` and `crate = \"path\"`";

/// The arguments only `#[main]` takes.
const VALID_MAIN_ONLY: &str = ", and for main `shutdown_signals = [\"SIGTERM\"]`";

/// The signals `shutdown_signals` accepts (each acts as Ctrl-C).
const SHUTDOWN_SIGNALS: &[&str] = &["SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM"];

/// The arguments only `#[runner_test]` takes.
const VALID_TEST_ONLY: &str = ", and for tests `timeout = \"5s\"`, `start_paused` and `allow_task_panics`";

pub(crate) struct Config {
    pub(crate) debug: Option<bool>,
    pub(crate) loop_factory: Option<Expr>,
    pub(crate) crate_path: Path,
    /// The runner's close timeout, in milliseconds.
    pub(crate) close_timeout_ms: Option<u64>,
    /// Test timeout in milliseconds.
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) start_paused: bool,
    pub(crate) allow_task_panics: bool,
    /// Names of the signals that act as Ctrl-C besides SIGINT.
    pub(crate) shutdown_signals: Vec<syn::Ident>,
}

impl Config {
    /// Parses the attribute's arguments; all errors found are combined.
    pub(crate) fn parse(args: TokenStream, kind: Kind) -> Result<Config, syn::Error> {
        let attr = kind.attr();
        let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
        let mut debug: Option<bool> = None;
        let mut loop_factory: Option<Expr> = None;
        let mut crate_path: Option<Path> = None;
        let mut close_timeout_ms: Option<u64> = None;
        let mut timeout_ms: Option<u64> = None;
        let mut start_paused: Option<bool> = None;
        let mut allow_task_panics: Option<bool> = None;
        let mut shutdown_signals: Option<Vec<syn::Ident>> = None;
        let mut errors: Option<syn::Error> = None;
        for meta in metas {
            // Keywords such as `crate` parse as a one-segment path too.
            let path = meta.path();
            let name = path
                .get_ident()
                .map(|i| i.to_string())
                .unwrap_or_else(|| quote::quote!(#path).to_string().replace(' ', ""));
            let result = match name.as_str() {
                "debug" => set_once(&mut debug, &meta, &name, || parse_flag(&meta, &name, attr)),
                "loop_factory" => set_once(&mut loop_factory, &meta, &name, || match &meta {
                    Meta::NameValue(nv) => Ok(nv.value.clone()),
                    other => Err(syn::Error::new_spanned(
                        other,
                        format!(
                            "`loop_factory` needs a value: write `#[{attr}(loop_factory = my_factory)]`, where \
                             `my_factory` is a function or closure returning `std::io::Result<runner_core::EventLoop>`"
                        ),
                    )),
                }),
                "crate" => set_once(&mut crate_path, &meta, &name, || parse_crate(&meta, attr)),
                "close_timeout" => set_once(&mut close_timeout_ms, &meta, &name, || {
                    parse_duration_arg(&meta, &name, "10s", attr)
                }),
                "shutdown_signals" if kind == Kind::Test => Err(syn::Error::new_spanned(
                    meta.path(),
                    "`shutdown_signals` is an argument of #[runner_core::main]; #[runner_core::runner_test] does not \
                     take it",
                )),
                "shutdown_signals" => set_once(&mut shutdown_signals, &meta, &name, || parse_signals(&meta, attr)),
                "timeout" | "start_paused" | "allow_task_panics" if kind == Kind::Main => Err(syn::Error::new_spanned(
                    meta.path(),
                    format!(
                        "`{name}` is an argument of #[runner_core::runner_test]; #[runner_core::main] does not take it"
                    ),
                )),
                "timeout" => set_once(&mut timeout_ms, &meta, &name, || {
                    parse_duration_arg(&meta, &name, "5s", attr)
                }),
                "start_paused" => set_once(&mut start_paused, &meta, &name, || parse_flag(&meta, &name, attr)),
                "allow_task_panics" => {
                    set_once(&mut allow_task_panics, &meta, &name, || parse_flag(&meta, &name, attr))
                }
                other => {
                    let also = if kind == Kind::Test {
                        VALID_TEST_ONLY
                    } else {
                        VALID_MAIN_ONLY
                    };
                    Err(syn::Error::new_spanned(
                        meta.path(),
                        format!("unknown argument `{other}` of #[{attr}]: {VALID}{also}"),
                    ))
                }
            };
            if let Err(e) = result {
                match &mut errors {
                    Some(all) => all.combine(e),
                    None => errors = Some(e),
                }
            }
        }
        if let Some(errors) = errors {
            return Err(errors);
        }
        Ok(Config {
            debug,
            loop_factory,
            crate_path: crate_path.unwrap_or_else(|| syn::parse_quote!(::runner_core)),
            close_timeout_ms,
            timeout_ms,
            start_paused: start_paused.unwrap_or(false),
            allow_task_panics: allow_task_panics.unwrap_or(false),
            shutdown_signals: shutdown_signals.unwrap_or_default(),
        })
    }

    /// The configuration used to still expand the function when the
    /// arguments were wrong (so the body keeps type-checking in the IDE).
    pub(crate) fn fallback() -> Config {
        Config {
            debug: None,
            loop_factory: None,
            crate_path: syn::parse_quote!(::runner_core),
            close_timeout_ms: None,
            timeout_ms: None,
            start_paused: false,
            allow_task_panics: false,
            shutdown_signals: Vec::new(),
        }
    }
}

/// Parses an argument into its slot, refusing a second occurrence.
fn set_once<T>(
    slot: &mut Option<T>,
    meta: &Meta,
    name: &str,
    parse: impl FnOnce() -> Result<T, syn::Error>,
) -> Result<(), syn::Error> {
    if slot.is_some() {
        return Err(syn::Error::new_spanned(
            meta,
            format!("`{name}` is given more than once; give each argument at most once"),
        ));
    }
    *slot = Some(parse()?);
    Ok(())
}

/// A flag argument: `name` (true) or `name = true|false`.
fn parse_flag(meta: &Meta, name: &str, attr: &str) -> Result<bool, syn::Error> {
    match meta {
        Meta::Path(_) => Ok(true),
        Meta::NameValue(nv) => match &nv.value {
            Expr::Lit(ExprLit { lit: Lit::Bool(b), .. }) => Ok(b.value),
            other => Err(syn::Error::new_spanned(
                other,
                format!(
                    "`{name}` takes `true` or `false`: write `#[{attr}({name} = true)]`, `#[{attr}({name} = false)]`, \
                     or `#[{attr}({name})]` for true"
                ),
            )),
        },
        Meta::List(list) => Err(syn::Error::new_spanned(
            list,
            format!("`{name}` is not called like a function: write `#[{attr}({name} = true)]` or `#[{attr}({name})]`"),
        )),
    }
}

/// A duration argument (`timeout = "5s"`, `close_timeout = "10s"`): a
/// whole number and a unit (`ms`, `s`, `m`, `h`), greater than zero; in
/// milliseconds. `example` is the value the help shows.
fn parse_duration_arg(meta: &Meta, name: &str, example: &str, attr: &str) -> Result<u64, syn::Error> {
    let help = format!(
        "`{name}` takes a duration string such as \"{example}\", \"250ms\", \"2m\" or \"1h\": write \
         `#[{attr}({name} = \"{example}\")]`"
    );
    let Meta::NameValue(nv) = meta else {
        return Err(syn::Error::new_spanned(meta, help));
    };
    let Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) = &nv.value else {
        return Err(syn::Error::new_spanned(&nv.value, help));
    };
    let text = s.value();
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let scale: Option<u64> = match unit.trim() {
        "ms" => Some(1),
        "s" => Some(1_000),
        "m" => Some(60_000),
        "h" => Some(3_600_000),
        _ => None,
    };
    let too_long = || {
        syn::Error::new_spanned(
            s,
            format!("`{name} = \"{text}\"` is too long to be a duration; use a shorter one, such as \"{example}\""),
        )
    };
    match (number.parse::<u64>(), scale) {
        (Ok(0), Some(_)) => Err(syn::Error::new_spanned(
            s,
            format!(
                "`{name}` must be longer than zero; leave it out for no {}",
                name.replace('_', " ")
            ),
        )),
        (Ok(n), Some(scale)) => n.checked_mul(scale).ok_or_else(too_long),
        // All digits, but more than a u64 holds.
        (Err(e), Some(_)) if *e.kind() == std::num::IntErrorKind::PosOverflow => Err(too_long()),
        _ => Err(syn::Error::new_spanned(
            s,
            format!("\"{text}\" is not a duration; {help}"),
        )),
    }
}

fn parse_crate(meta: &Meta, attr: &str) -> Result<Path, syn::Error> {
    let help = format!(
        "`crate` takes the path to runner-core as a string: write `#[{attr}(crate = \"my_reexport::runner_core\")]`"
    );
    match meta {
        Meta::NameValue(nv) => match &nv.value {
            Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => s
                .parse::<Path>()
                .map_err(|_| syn::Error::new_spanned(s, format!("`{}` is not a path; {help}", s.value()))),
            other => Err(syn::Error::new(other.span(), help)),
        },
        other => Err(syn::Error::new_spanned(other, help)),
    }
}

/// `shutdown_signals = ["SIGTERM", "SIGHUP"]` (or one string): the
/// signals' names, checked here so that a typo is a compile error.
fn parse_signals(meta: &Meta, attr: &str) -> Result<Vec<syn::Ident>, syn::Error> {
    let help = format!(
        "`shutdown_signals` takes a list of signal names: write `#[{attr}(shutdown_signals = [\"SIGTERM\"])]`; \
         the names it accepts are {}",
        SHUTDOWN_SIGNALS.join(", ")
    );
    let Meta::NameValue(nv) = meta else {
        return Err(syn::Error::new_spanned(meta, help));
    };
    let strings: Vec<&syn::LitStr> = match &nv.value {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => vec![s],
        Expr::Array(array) => {
            let mut v = Vec::new();
            for e in &array.elems {
                match e {
                    Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => v.push(s),
                    other => return Err(syn::Error::new_spanned(other, help)),
                }
            }
            v
        }
        other => return Err(syn::Error::new_spanned(other, help)),
    };
    if strings.is_empty() {
        return Err(syn::Error::new_spanned(&nv.value, format!("the list is empty; {help}")));
    }
    let mut out = Vec::new();
    for s in strings {
        let name = s.value();
        if name == "SIGINT" {
            return Err(syn::Error::new_spanned(
                s,
                "SIGINT (Ctrl-C) always shuts the program down gracefully; list only the other signals",
            ));
        }
        if !SHUTDOWN_SIGNALS.contains(&name.as_str()) {
            return Err(syn::Error::new_spanned(
                s,
                format!("\"{name}\" cannot act as Ctrl-C; {help}"),
            ));
        }
        out.push(syn::Ident::new(&name, s.span()));
    }
    Ok(out)
}
