//! Procedural macros of [cachefn](https://docs.rs/cachefn). Depend on
//! `cachefn`, not on this crate: the generated code calls
//! `::cachefn::__private`.
//!
//! The attribute is written as three steps: `attr` parses options,
//! `check` validates them against the signature, `expand` generates.
//! Every mistake is reported at once, at its token; on error the function is
//! emitted unchanged so that no cascade of errors follows.

#![deny(rustdoc::broken_intra_doc_links)]

use proc_macro::TokenStream;
use syn::parse_macro_input;

mod attr;
mod check;
mod context;
mod ctxt;
mod expand;

// No doc comment: rustdoc appends it to the docs of `cachefn::quickcache`,
// the re-export users read, after their last sentence.
#[proc_macro_attribute]
pub fn quickcache(args: TokenStream, item: TokenStream) -> TokenStream {
    let func = parse_macro_input!(item as syn::ItemFn);
    let raw = match syn::parse::<attr::RawOptions>(args) {
        Ok(raw) => raw,
        Err(e) => return expand::fallback(e.to_compile_error(), &func).into(),
    };
    let mut cx = ctxt::Ctxt::default();
    let options = attr::parse_options(&mut cx, raw, attr::Place::Attribute);
    let plan = check::check(&mut cx, &func, &options);
    match cx.check() {
        Ok(()) => expand::expand(&func, &options, &plan).into(),
        Err(errors) => expand::fallback(errors, &func).into(),
    }
}

// Used as `cachefn::config::quickcache! { ... }`; no doc comment, for the
// same reason as `quickcache`.
#[proc_macro]
pub fn config_quickcache(input: TokenStream) -> TokenStream {
    let raw = parse_macro_input!(input as attr::RawOptions);
    let mut cx = ctxt::Ctxt::default();
    let options = attr::parse_options(&mut cx, raw, attr::Place::Config);
    check::options::check(&mut cx, &options);
    if let Err(errors) = cx.check() {
        return errors.into();
    }
    let opts = expand::site_options(&options);
    quote::quote! {
        // A second `config::quickcache!` in the same module is an error that
        // names this constant: write the macro once per crate.
        #[doc(hidden)]
        #[allow(non_upper_case_globals, dead_code)]
        const cachefn_config_quickcache_must_be_written_once_per_crate: () = ();
        ::cachefn::__private::inventory::submit! {
            ::cachefn::__private::CrateDefaults {
                module_path: ::core::module_path!(),
                options: #opts,
            }
        }
    }
    .into()
}
