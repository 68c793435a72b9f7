//! The attribute's arguments, parsed and checked.
//!
//! Accepted, in any order, each at most once:
//! `debug`, `debug = true|false`, `loop_factory = <expression>`,
//! `crate = "path::to::runner_core"`.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, Meta, Path, Token};

/// What every message about an unknown argument lists.
pub(crate) const VALID: &str =
    "the valid arguments are `debug`, `debug = true|false`, `loop_factory = <expression>` and `crate = \"path\"`";

pub(crate) struct Config {
    pub(crate) debug: Option<bool>,
    pub(crate) loop_factory: Option<Expr>,
    pub(crate) crate_path: Path,
}

impl Config {
    /// Parses the attribute's arguments; all errors found are combined.
    pub(crate) fn parse(args: TokenStream, attr: &str) -> Result<Config, syn::Error> {
        let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
        let mut debug: Option<(bool, Span)> = None;
        let mut loop_factory: Option<Expr> = None;
        let mut crate_path: Option<Path> = None;
        let mut errors: Option<syn::Error> = None;
        let mut push = |e: syn::Error| match &mut errors {
            Some(all) => all.combine(e),
            None => errors = Some(e),
        };
        for meta in metas {
            // Keywords such as `crate` parse as a one-segment path too.
            let path = meta.path();
            let name = path
                .get_ident()
                .map(|i| i.to_string())
                .unwrap_or_else(|| quote::quote!(#path).to_string().replace(' ', ""));
            match name.as_str() {
                "debug" => {
                    if debug.is_some() {
                        push(duplicate(&meta, "debug"));
                        continue;
                    }
                    match parse_debug(&meta, attr) {
                        Ok(v) => debug = Some((v, meta.span())),
                        Err(e) => push(e),
                    }
                }
                "loop_factory" => {
                    if loop_factory.is_some() {
                        push(duplicate(&meta, "loop_factory"));
                        continue;
                    }
                    match meta {
                        Meta::NameValue(nv) => loop_factory = Some(nv.value),
                        other => push(syn::Error::new_spanned(
                            &other,
                            format!(
                                "`loop_factory` needs a value: write `#[{attr}(loop_factory = my_factory)]`, where \
                                 `my_factory` is a function or closure returning `std::io::Result<runner_core::EventLoop>`"
                            ),
                        )),
                    }
                }
                "crate" => {
                    if crate_path.is_some() {
                        push(duplicate(&meta, "crate"));
                        continue;
                    }
                    match parse_crate(&meta, attr) {
                        Ok(p) => crate_path = Some(p),
                        Err(e) => push(e),
                    }
                }
                other => push(syn::Error::new_spanned(
                    meta.path(),
                    format!("unknown argument `{other}` of #[{attr}]: {VALID}"),
                )),
            }
        }
        if let Some(errors) = errors {
            return Err(errors);
        }
        Ok(Config {
            debug: debug.map(|(v, _)| v),
            loop_factory,
            crate_path: crate_path.unwrap_or_else(|| syn::parse_quote!(::runner_core)),
        })
    }

    /// The configuration used to still expand the function when the
    /// arguments were wrong (so the body keeps type-checking in the IDE).
    pub(crate) fn fallback() -> Config {
        Config {
            debug: None,
            loop_factory: None,
            crate_path: syn::parse_quote!(::runner_core),
        }
    }
}

fn duplicate(meta: &Meta, name: &str) -> syn::Error {
    syn::Error::new_spanned(
        meta,
        format!("`{name}` is given more than once; give each argument at most once"),
    )
}

fn parse_debug(meta: &Meta, attr: &str) -> Result<bool, syn::Error> {
    match meta {
        Meta::Path(_) => Ok(true),
        Meta::NameValue(nv) => match &nv.value {
            Expr::Lit(ExprLit { lit: Lit::Bool(b), .. }) => Ok(b.value),
            other => Err(syn::Error::new_spanned(
                other,
                format!(
                    "`debug` takes `true` or `false`: write `#[{attr}(debug = true)]`, `#[{attr}(debug = false)]`, \
                     or `#[{attr}(debug)]` for true"
                ),
            )),
        },
        Meta::List(list) => Err(syn::Error::new_spanned(
            list,
            format!("`debug` is not called like a function: write `#[{attr}(debug = true)]` or `#[{attr}(debug)]`"),
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
