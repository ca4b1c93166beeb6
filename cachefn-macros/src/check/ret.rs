//! The return type: how it is cached, and the options that apply to it.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{GenericArgument, PathArguments, ReturnType, Type};

use crate::attr::{Options, Returning, OPTIONS};
use crate::ctxt::Ctxt;

/// How the return value is cached.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Result,
    Option,
}

/// The return type and what is kept of it.
pub struct Ret {
    pub mode: Mode,
    pub ty: Type,
    /// The type kept in the cache (`get_cached` / `set_cached`).
    pub cached: TokenStream,
}

pub fn check(cx: &mut Ctxt, output: &ReturnType, o: &Options) -> Ret {
    let ty: Type = match output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let mode = mode_of(&ty);
    match &ty {
        Type::ImplTrait(_) => cx.error_spanned(&ty, "#[quickcache] cannot cache an `impl Trait` return value: return a concrete type"),
        Type::Reference(_) => cx.error_spanned(&ty, "#[quickcache] caches owned values: return an owned type (e.g. `String` for `&str`, or `Arc<T>`)"),
        _ => {}
    }
    for spec in OPTIONS {
        let (needs, why) = match spec.returning {
            Returning::Any => continue,
            Returning::Result(why) => (Mode::Result, why),
            Returning::Option(why) => (Mode::Option, why),
        };
        if let Some(span) = o.span_of(spec.name).filter(|_| mode != needs) {
            cx.error(span, why);
        }
    }
    let cached = match mode {
        Mode::Plain | Mode::Option => ty.to_token_stream(),
        Mode::Result => match first_generic(&ty) {
            Some(t) => t.to_token_stream(),
            None => {
                quote!(<::cachefn::__private::ResultOf<#ty> as ::cachefn::__private::Memo>::Cached)
            }
        },
    };
    Ret { mode, ty, cached }
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        Type::Group(g) => last_segment(&g.elem),
        Type::Paren(p) => last_segment(&p.elem),
        _ => None,
    }
}

fn mode_of(ty: &Type) -> Mode {
    match last_segment(ty).map(|s| s.ident.to_string()).as_deref() {
        Some("Result") => Mode::Result,
        Some("Option") => Mode::Option,
        _ => Mode::Plain,
    }
}

fn first_generic(ty: &Type) -> Option<&Type> {
    match &last_segment(ty)?.arguments {
        PathArguments::AngleBracketed(a) => a.args.iter().find_map(|g| match g {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        _ => None,
    }
}
