//! Expanding `#[main]` and `#[runner_test]`.
//!
//! The function is parsed only as far as its signature; its body stays a
//! token stream and is pasted, untouched, into an `async move` block that
//! runs through `runner_core::Builder`. The generated function returns what
//! the `async fn` returned, so `Result` and any `Termination` type work, and
//! `?` in the body infers its error type from the declared return type.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, Signature, Visibility};

use crate::config::Config;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Main,
    Test,
}

impl Kind {
    pub(crate) fn attr(self) -> &'static str {
        match self {
            Kind::Main => "runner_core::main",
            Kind::Test => "runner_core::runner_test",
        }
    }
}

/// A function whose body is kept as tokens.
struct ItemFn {
    attrs: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
    body: TokenStream,
}

impl Parse for ItemFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig: Signature = input.parse()?;
        let body = match input.parse::<TokenTree>()? {
            TokenTree::Group(g) if g.delimiter() == proc_macro2::Delimiter::Brace => g.to_token_stream(),
            other => return Err(syn::Error::new_spanned(other, "expected the function's body `{ ... }`")),
        };
        Ok(ItemFn { attrs, vis, sig, body })
    }
}

pub(crate) fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let attr = kind.attr();
    // Keep a `main` so the user sees the error, not also "main not found".
    let with_stand_in = |e: syn::Error| {
        let mut out = e.to_compile_error();
        if kind == Kind::Main {
            out.extend(quote!(
                fn main() {}
            ));
        }
        out
    };
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        // A function whose signature parsed: the parser's own message (say,
        // "expected the function's body") is the one to show.
        Err(e) if is_function(&item) => return with_stand_in(e),
        Err(_) => {
            let what = match kind {
                Kind::Main => "`async fn main() { ... }`",
                Kind::Test => "an `async fn` test: `async fn my_test() { ... }`",
            };
            let err = syn::Error::new(
                first_span(&item),
                format!("#[{attr}] can only be placed on a function; write {what}"),
            );
            return err.to_compile_error();
        }
    };
    if let Err(e) = check_function(kind, &func) {
        return with_stand_in(e);
    }
    match Config::parse(args, kind) {
        Ok(config) => generate(kind, &func, &config),
        Err(e) => {
            // Still expand with defaults, so the body keeps type-checking
            // (and rust-analyzer keeps working) while the argument is fixed.
            let mut out = e.to_compile_error();
            out.extend(generate(kind, &func, &Config::fallback()));
            out
        }
    }
}

/// Whether `item` is a function as far as its signature (attributes,
/// visibility, `fn` and the rest of the signature parse).
fn is_function(item: &TokenStream) -> bool {
    let parse = |input: ParseStream<'_>| {
        input.call(Attribute::parse_outer)?;
        input.parse::<Visibility>()?;
        input.parse::<Signature>()?;
        input.parse::<TokenStream>()?;
        Ok(())
    };
    syn::parse::Parser::parse2(parse, item.clone()).is_ok()
}

fn first_span(item: &TokenStream) -> Span {
    item.clone()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span())
}

fn check_function(kind: Kind, func: &ItemFn) -> syn::Result<()> {
    let attr = kind.attr();
    let sig = &func.sig;
    let name = &sig.ident;
    let mut errors: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    if sig.asyncness.is_none() {
        push(syn::Error::new_spanned(
            sig.fn_token,
            format!("the `async` keyword is missing from the function declaration: write `async fn {name}()`"),
        ));
    }
    if !sig.inputs.is_empty() {
        let msg = match kind {
            Kind::Main => "`main` takes no parameters under #[runner_core::main]: read command-line arguments with \
                 `std::env::args()` inside the body"
                .to_string(),
            Kind::Test => {
                format!("a #[{attr}] function takes no parameters: build what the test needs inside its body")
            }
        };
        push(syn::Error::new_spanned(&sig.inputs, msg));
    }
    if !sig.generics.params.is_empty() {
        push(syn::Error::new_spanned(
            &sig.generics,
            format!("a #[{attr}] function cannot be generic: remove the generic parameters of `{name}`"),
        ));
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        push(syn::Error::new_spanned(
            where_clause,
            format!("a #[{attr}] function cannot have a `where` clause: remove it from `{name}`"),
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        let what = match kind {
            Kind::Main => "`main` cannot be `unsafe`".to_string(),
            Kind::Test => format!("a #[{attr}] function cannot be `unsafe`"),
        };
        push(syn::Error::new_spanned(
            unsafety,
            format!("{what}: remove `unsafe` and put the unsafe operations in an `unsafe {{ }}` block in the body"),
        ));
    }
    if let Some(abi) = &sig.abi {
        push(syn::Error::new_spanned(
            abi,
            format!(
                "a #[{attr}] function cannot have an ABI: remove `{}`",
                abi.to_token_stream()
            ),
        ));
    }
    if let Some(constness) = &sig.constness {
        push(syn::Error::new_spanned(
            constness,
            format!("a #[{attr}] function cannot be `const`: remove it"),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        push(syn::Error::new_spanned(
            variadic,
            format!("a #[{attr}] function cannot be variadic"),
        ));
    }
    if kind == Kind::Test {
        if let Some(test) = func.attrs.iter().find(|a| a.path().is_ident("test")) {
            push(syn::Error::new_spanned(
                test,
                "#[runner_core::runner_test] already makes this a test: remove the `#[test]` attribute",
            ));
        }
    }
    match errors {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn generate(kind: Kind, func: &ItemFn, config: &Config) -> TokenStream {
    let ItemFn { attrs, vis, sig, body } = func;
    let krate = &config.crate_path;
    let mut sig = sig.clone();
    sig.asyncness = None;
    let debug = config.debug.map(|on| quote!(.debug(#on)));
    let close_timeout = config
        .close_timeout_ms
        .map(|ms| quote!(.close_timeout(::core::time::Duration::from_millis(#ms))));
    let factory = config
        .loop_factory
        .as_ref()
        .map(|f| quote_spanned!(f.span()=> .loop_factory(#f)));
    let test_attr = match kind {
        Kind::Main => quote!(),
        Kind::Test => quote!(#[::core::prelude::v1::test]),
    };
    let body_span = body.span();
    let shutdown = (!config.shutdown_signals.is_empty()).then(|| {
        let signals = &config.shutdown_signals;
        quote!(.shutdown_signals([#(#krate::signal::Signal::#signals),*]))
    });
    let builder = quote!(#krate::Builder::new() #debug #factory #close_timeout #shutdown);
    let run = match kind {
        Kind::Main => quote_spanned! {body_span=>
            #krate::__private::run_main(#builder, __runner_body)
        },
        Kind::Test => {
            let timeout = match config.timeout_ms {
                Some(ms) => quote!(::core::option::Option::Some(::core::time::Duration::from_millis(#ms))),
                None => quote!(::core::option::Option::None),
            };
            let start_paused = config.start_paused;
            let allow_task_panics = config.allow_task_panics;
            let name = &sig.ident;
            quote_spanned! {body_span=>
                #krate::__private::run_test(
                    #builder,
                    #krate::__private::TestOptions {
                        name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)),
                        timeout: #timeout,
                        start_paused: #start_paused,
                        allow_task_panics: #allow_task_panics,
                    },
                    __runner_body,
                )
            }
        }
    };
    quote! {
        #test_attr
        #(#attrs)*
        #vis #sig {
            let __runner_body = async move #body;
            #run
        }
    }
}
