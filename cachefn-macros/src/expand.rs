//! Expand: the wrapper function and its helpers.
//!
//! A free function's helpers go in a module named after it (`f::clear`); a
//! method's are associated functions next to it (`Type::m_clear`), as an
//! `impl` cannot hold a module. [`Helpers`] writes them once for both.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Ident, ItemFn, Visibility};

use crate::attr::{int_tokens, Options};
use crate::check::vary_on::KeyPart;
use crate::check::{Mode, Plan};

fn opt_u64(v: &Option<crate::attr::Seconds>) -> TokenStream {
    match v {
        Some(s) => {
            let lit = int_tokens(s.value, s.span);
            quote!(::core::option::Option::Some(#lit))
        }
        None => quote!(::core::option::Option::None),
    }
}

/// The `SiteOptions { .. }` literal shared by the attribute and the config macro.
pub fn site_options(o: &Options) -> TokenStream {
    let timeout = opt_u64(&o.timeout);
    let local_timeout = opt_u64(&o.local_timeout);
    let version = opt_u64(&o.version);
    let cache = match &o.cache {
        Some(c) => quote!(::core::option::Option::Some(#c)),
        None => quote!(::core::option::Option::None),
    };
    let cache_none = match &o.cache_none {
        Some(b) => quote!(::core::option::Option::Some(#b)),
        None => quote!(::core::option::Option::None),
    };
    let none_timeout = opt_u64(&o.none_timeout);
    let swr = opt_u64(&o.stale_while_revalidate);
    let sie = opt_u64(&o.stale_if_error);
    let beta = match &o.early_refresh {
        Some((b, span)) => {
            let lit = syn::LitFloat::new(&format!("{b:?}f64"), *span);
            quote!(::core::option::Option::Some(#lit))
        }
        None => quote!(::core::option::Option::None),
    };
    let single_flight = match &o.single_flight {
        Some((shared, _)) => quote!(::core::option::Option::Some(#shared)),
        None => quote!(::core::option::Option::None),
    };
    quote! {
        ::cachefn::__private::SiteOptions {
            timeout: #timeout,
            local_timeout: #local_timeout,
            version: #version,
            cache: #cache,
            cache_none: #cache_none,
            none_timeout: #none_timeout,
            stale_while_revalidate: #swr,
            stale_if_error: #sie,
            early_refresh: #beta,
            single_flight_shared: #single_flight,
        }
    }
}

/// Visibility of helpers one module below the function, matching the function's.
fn nested_vis(vis: &Visibility) -> TokenStream {
    match vis {
        Visibility::Public(_) => quote!(pub),
        Visibility::Inherited => quote!(pub(super)),
        Visibility::Restricted(r) => {
            let path = &r.path;
            let first = path.segments.first().map(|s| s.ident.to_string());
            match first.as_deref() {
                Some("crate") => quote!(pub(in #path)),
                Some("self") if path.segments.len() == 1 => quote!(pub(super)),
                _ if r.in_token.is_none() && path.is_ident("super") => quote!(pub(in super::super)),
                Some("self") => {
                    let rest = path.segments.iter().skip(1);
                    quote!(pub(in super #(::#rest)*))
                }
                _ => quote!(pub(in super::#path)),
            }
        }
    }
}

/// What differs between the sync and the async API.
struct Flavor {
    is_async: bool,
    /// `async` on helpers that touch a tier.
    helper_async: TokenStream,
    dot_await: TokenStream,
    /// How the key builder is passed: by value to a future, else `&mut`.
    kb_arg: TokenStream,
}

/// The helpers of one memoized function, written once for methods and
/// free functions.
struct Helpers<'a> {
    func: &'a ItemFn,
    plan: &'a Plan,
    flavor: &'a Flavor,
    /// The `Memo` type of the function's return type.
    mode: &'a TokenStream,
    /// A method's helpers: associated functions named `m_clear`, ...;
    /// else a module's functions named `clear`, ...
    method: bool,
    /// An expression for the `&'static Site`.
    site: TokenStream,
    vis: TokenStream,
    kb: &'a Ident,
}

impl Helpers<'_> {
    fn name(&self, helper: &str) -> Ident {
        if self.method {
            format_ident!("{}_{}", self.func.sig.ident, helper)
        } else {
            Ident::new(helper, Span::call_site())
        }
    }

    /// Every helper: `clear`, `clear_all`, `stats`, `key`, `get_cached`,
    /// `set_cached`, and the `_by` ones when the key reads paths.
    fn all(&self) -> TokenStream {
        let Flavor {
            is_async,
            helper_async,
            dot_await,
            kb_arg,
        } = self.flavor;
        let (site, vis, kb, mode) = (&self.site, &self.vis, self.kb, self.mode);
        let generics = &self.func.sig.generics;
        let where_clause = &generics.where_clause;
        let cached = &self.plan.ret.cached;
        let value = Ident::new("value", Span::call_site());
        let (clear_fn, clear_all_fn, get_fn, set_fn) = if *is_async {
            (
                quote!(clear_async),
                quote!(clear_all_async),
                quote!(get_cached_async),
                quote!(set_cached_async),
            )
        } else {
            (
                quote!(clear),
                quote!(clear_all),
                quote!(get_cached),
                quote!(set_cached),
            )
        };
        let docs = helper_docs(&self.func.sig.ident.to_string(), self.method, *is_async);
        let [d_clear, d_clear_all, d_key, d_get, d_set, d_stats] = &docs;
        let [clear, clear_all, key, get_cached, set_cached, stats] = [
            "clear",
            "clear_all",
            "key",
            "get_cached",
            "set_cached",
            "stats",
        ]
        .map(|h| self.name(h));

        // Spanned at the return type, as the wrapper's call is.
        let rs = self.plan.ret.ty.span();
        let get_call = quote_spanned!(rs=> ::cachefn::__private::#get_fn::<#mode>(__cachefn_site, #kb_arg) #dot_await);
        let set_call = quote_spanned!(rs=> ::cachefn::__private::#set_fn::<#mode>(__cachefn_site, #kb_arg, #value) #dot_await);
        // The keyed helpers, given their parameters and how they build the key.
        let keyed = |suffix: &str,
                     params: &[TokenStream],
                     parts: &[TokenStream],
                     doc_tail: &str| {
            let [clear, key, get_cached, set_cached] =
                [&clear, &key, &get_cached, &set_cached].map(|h| format_ident!("{}{}", h, suffix));
            let [d_clear, d_key, d_get, d_set] =
                [d_clear, d_key, d_get, d_set].map(|d| format!("{d}{doc_tail}"));
            let start = quote! {
                let __cachefn_site: &'static ::cachefn::__private::Site = #site;
                #[allow(unused_mut)]
                let mut #kb = __cachefn_site.key_builder();
                #(#parts)*
            };
            [
                quote! {
                    #[doc = #d_clear]
                    #vis #helper_async fn #clear #generics (#(#params),*) -> ::core::result::Result<(), ::cachefn::Error> #where_clause {
                        #start
                        ::cachefn::__private::#clear_fn(__cachefn_site, #kb_arg) #dot_await
                    }
                },
                quote! {
                    #[doc = #d_key]
                    #vis fn #key #generics (#(#params),*) -> ::cachefn::Key #where_clause {
                        #start
                        ::cachefn::__private::key(__cachefn_site, #kb)
                    }

                    #[doc = #d_get]
                    #vis #helper_async fn #get_cached #generics (#(#params),*) -> ::core::option::Option<#cached> #where_clause {
                        #start
                        #get_call
                    }

                    #[doc = #d_set]
                    #vis #helper_async fn #set_cached #generics (#(#params,)* #value: #cached) -> ::core::result::Result<(), ::cachefn::Error> #where_clause {
                        #start
                        #set_call
                    }
                },
            ]
        };

        // The helpers that take the arguments the key reads.
        let key = &self.plan.key;
        let mut params: Vec<TokenStream> = key
            .params
            .iter()
            .map(|&i| {
                let p = &self.plan.sig.params[i];
                let (id, ty) = (&p.ident, &p.ty);
                quote!(#id: #ty)
            })
            .collect();
        if key.uses_self {
            params.insert(0, quote!(&self));
        }
        let parts = key_parts(&key.parts, kb);
        // `clear` first, then the rest after `clear_all` and `stats`.
        let [clear_args, keyed_args] = keyed("", &params, &parts, "");
        // The helpers that take the values the key is built from.
        let by_values = key.has_paths().then(|| {
            let (params, parts) = self.value_params();
            let paths = key
                .parts
                .iter()
                .map(|p| format!("`{}`", p.path))
                .collect::<Vec<_>>()
                .join(", ");
            let tail = format!(
                "\n\nIt takes the values the key is built from ({paths}), not the arguments they are read from, e.g. to clear an entry from an id alone. A value is written in the key as the memoized call writes it: integer widths, references, `Box`, `Arc` and `Rc` make no difference, but a value of another kind (a string for a number) is a key error."
            );
            let [clear, rest] = keyed("_by", &params, &parts, &tail);
            quote!(#clear #rest)
        });
        quote! {
            #clear_args

            #[doc = #d_clear_all]
            #vis #helper_async fn #clear_all() -> ::core::result::Result<(), ::cachefn::Error> {
                ::cachefn::__private::#clear_all_fn(#site) #dot_await
            }

            #[doc = #d_stats]
            #vis fn #stats() -> ::cachefn::Stats {
                ::cachefn::__private::stats(#site)
            }

            #keyed_args

            #by_values
        }
    }

    /// The `_by` helpers' parameters (one per `vary_on` path, in its order)
    /// and the key parts they write.
    fn value_params(&self) -> (Vec<TokenStream>, Vec<TokenStream>) {
        let kb = self.kb;
        let mut params = Vec::new();
        let mut parts = Vec::new();
        for part in &self.plan.key.parts {
            let v = &part.value_name;
            // `self` as `&self`, the usual receiver, so that a misspelled
            // field of `self` reads the same here as in the method.
            let root_ty = match part.param {
                Some(i) => self.plan.sig.params[i].ty.to_token_stream(),
                None => quote!(&Self),
            };
            let span = first_span(&part.expr);
            match part.fields_only {
                // The parameter itself: its declared type.
                None => {
                    params.push(quote!(#v: #root_ty));
                    parts.push(quote_spanned!(span=> #kb.part(&(#v));));
                }
                // Fields: the value is checked against the field's type.
                // `(*arg).field` reads the field from a value of the
                // parameter's own type, as the memoized call does, so that
                // a misspelled field is the same error here as there, which
                // rustc reports once.
                Some(true) => {
                    params.push(quote!(#v: impl ::cachefn::__private::KeyPart));
                    let p = Ident::new("__cachefn_arg", Span::mixed_site());
                    let fields = after_root(&part.expr);
                    let path = &part.path;
                    parts.push(quote_spanned! {span=>
                        #kb.part_of(&(#v), #path, |#p: &#root_ty| &((*#p) #fields));
                    });
                }
                // A method call: its type cannot be projected without a value.
                Some(false) => {
                    params.push(quote!(#v: impl ::cachefn::__private::KeyPart));
                    parts.push(quote_spanned!(span=> #kb.part(&(#v));));
                }
            }
        }
        (params, parts)
    }
}

fn first_span(tokens: &TokenStream) -> Span {
    tokens
        .clone()
        .into_iter()
        .next()
        .map_or_else(Span::mixed_site, |t| t.span())
}

/// `kb.part(&(expr));` for each part of the key, spanned at its path.
fn key_parts(parts: &[KeyPart], kb: &Ident) -> Vec<TokenStream> {
    parts
        .iter()
        .map(|p| {
            let e = &p.expr;
            let span = first_span(e);
            quote_spanned!(span=> #kb.part(&(#e));)
        })
        .collect()
}

/// `expr` without its first token (the root parameter, or `self`): the
/// field accesses that follow it.
fn after_root(expr: &TokenStream) -> TokenStream {
    expr.clone().into_iter().skip(1).collect()
}

pub fn expand(func: &ItemFn, o: &Options, plan: &Plan) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
        ..
    } = func;
    let fn_name = &sig.ident;
    let ret = &plan.ret.ty;
    let ms = Span::mixed_site();
    let kb = Ident::new("__cachefn_key", ms);
    // Spanned at the return type, so that a type error about the value
    // points there (once) rather than at the attribute.
    let rs = ret.span();
    let mode = match plan.ret.mode {
        Mode::Plain => quote_spanned!(rs=> ::cachefn::__private::Plain<#ret>),
        Mode::Result => quote_spanned!(rs=> ::cachefn::__private::ResultOf<#ret>),
        Mode::Option => quote_spanned!(rs=> ::cachefn::__private::OptionOf<#ret>),
    };
    let refresh = match &plan.skip_arg {
        Some(s) => quote!(#s),
        None => quote!(false),
    };
    // An `async fn` keeps its body as a future and gets `async` helpers.
    let is_async = sig.asyncness.is_some();
    let flavor = if is_async {
        Flavor {
            is_async,
            helper_async: quote!(async),
            dot_await: quote!(.await),
            kb_arg: quote!(#kb),
        }
    } else {
        Flavor {
            is_async,
            helper_async: quote!(),
            dot_await: quote!(),
            kb_arg: quote!(&mut #kb),
        }
    };
    let (kb_arg, dot_await) = (&flavor.kb_arg, &flavor.dot_await);
    let (call, body) = if is_async {
        (quote!(call_async::<#mode, _>), quote!(async move #block))
    } else {
        (quote!(call::<#mode>), quote!(move || #block))
    };
    let parts = key_parts(&plan.key.parts, &kb);
    // The hit path (issue 13): the wrapper gives the key builder the
    // arguments' raw streams (`hashing()`, then the parts), checks the
    // local hit by them (`hit` / `hit_async`, before the body's future is
    // built), and writes the key text (the same parts again) only when
    // that misses.
    let hit_fn = if is_async {
        quote!(hit_async)
    } else {
        quote!(hit)
    };
    let call_site = |site: TokenStream| {
        if is_async {
            // An `async fn`'s own future stays small (a hit pays for
            // writing and dropping what its state holds): the key builder
            // lives in a block that ends before the one `.await`, and the
            // rest of a call that missed is boxed (`call_async_boxed`).
            // What only a miss runs is a closure called out of line
            // (`outlined`), which keeps the future's `poll` small; not a
            // `move` closure, so that an argument only the key reads stays
            // where it was, and is dropped when the call ends, as without it.
            quote_spanned! {rs=>
                let __cachefn_rest = {
                    #[allow(unused_mut)]
                    let mut #kb = #site.key_builder();
                    #kb.hashing();
                    #(#parts)*
                    match ::cachefn::__private::#hit_fn::<#mode>(#site, &mut #kb, #refresh) {
                        ::core::result::Result::Ok(hit) => return hit,
                        ::core::result::Result::Err(cold) => ::cachefn::__private::outlined(|| {
                            #(#parts)*
                            ::cachefn::__private::call_async_boxed::<#mode, _>(#site, #kb_arg, #refresh, cold, #body)
                        }),
                    }
                };
                __cachefn_rest.await
            }
        } else {
            quote_spanned! {rs=>
                #[allow(unused_mut)]
                let mut #kb = #site.key_builder();
                #kb.hashing();
                #(#parts)*
                match ::cachefn::__private::#hit_fn::<#mode>(#site, &mut #kb, #refresh) {
                    ::core::result::Result::Ok(hit) => hit,
                    ::core::result::Result::Err(cold) => {
                        #(#parts)*
                        ::cachefn::__private::#call(#site, #kb_arg, #refresh, cold, #body) #dot_await
                    }
                }
            }
        }
    };
    let call = call_site(quote!(__cachefn_site));
    let cached = &plan.ret.cached;
    let cached_span = cached.clone().into_iter().next().map_or(rs, |t| t.span());
    let assert_value = quote_spanned! {cached_span=>
        const _: () = ::cachefn::__private::assert_value::<<#mode as ::cachefn::__private::Memo>::Cached>();
    };
    let site_options = site_options(o);
    let site_name = match (&o.name, plan.sig.receiver) {
        (Some(n), _) => quote!(::cachefn::__private::SiteName::Custom(#n)),
        (None, false) => quote!(::cachefn::__private::SiteName::Path),
        (None, true) => {
            let m = fn_name.to_string();
            quote!(::cachefn::__private::SiteName::Method(#m))
        }
    };
    // How the wrapper reaches the site, and the helpers with it.
    let (wrapper_site, helpers_site, helpers_vis) = if plan.sig.receiver {
        let site_fn = format_ident!("__cachefn_site_{}", fn_name);
        (
            quote!(Self::#site_fn()),
            quote!(Self::#site_fn()),
            vis.to_token_stream(),
        )
    } else {
        (quote!(&#fn_name::__SITE), quote!(&__SITE), nested_vis(vis))
    };
    let helpers = Helpers {
        func,
        plan,
        flavor: &flavor,
        mode: &mode,
        method: plan.sig.receiver,
        site: helpers_site,
        vis: helpers_vis,
        kb: &kb,
    }
    .all();
    let wrapper = quote! {
        #(#attrs)*
        #vis #sig {
            #assert_value
            let __cachefn_site: &'static ::cachefn::__private::Site = #wrapper_site;
            #call
        }
    };
    if plan.sig.receiver {
        let site_fn = format_ident!("__cachefn_site_{}", fn_name);
        quote! {
            #wrapper

            #[doc(hidden)]
            #[allow(non_snake_case)]
            fn #site_fn() -> &'static ::cachefn::__private::Site {
                static SITE: ::cachefn::__private::Site =
                    ::cachefn::__private::Site::new(::core::module_path!(), #site_name, #site_options);
                SITE.with_self_type(::cachefn::__private::type_name_of::<Self>)
            }

            #helpers
        }
    } else {
        let mod_doc =
            format!("Cache helpers of [`{fn_name}()`]({fn_name}()), generated by `#[quickcache]`.");
        quote! {
            #wrapper

            #[doc = #mod_doc]
            #[allow(non_snake_case, unused_imports, clippy::module_name_repetitions)]
            #vis mod #fn_name {
                use super::*;

                #[doc(hidden)]
                pub(super) static __SITE: ::cachefn::__private::Site =
                    ::cachefn::__private::Site::new(::core::module_path!(), #site_name, #site_options);

                #helpers
            }
        }
    }
}

fn helper_docs(f: &str, method: bool, is_async: bool) -> [String; 6] {
    let target = if method {
        format!("`{f}`")
    } else {
        format!("[`{f}()`](super::{f}())")
    };
    let awaited = if is_async {
        " Await it: it reaches the shared tier without blocking."
    } else {
        ""
    };
    [
        format!("Remove the cached value of {target} for these arguments from every tier of its cache.{awaited}"),
        format!("Remove every cached value of {target} (every argument, every version) from every tier, leaving other functions' entries alone.{awaited}"),
        format!("The cache key of {target} for these arguments, e.g. for `Cache::get` or preloading."),
        format!("The cached value of {target} for these arguments, if any; never runs the function.{awaited}"),
        format!("Store `value` as the cached value of {target} for these arguments, as if the function had returned it.{awaited}"),
        format!("What {target} counted in this process (local and shared hits, misses, stale hits, early refreshes, shared-tier errors, undecodable values, invalidations): see `cachefn::Stats`. Never blocks."),
    ]
}

/// On error: the errors, then the function unchanged, so that no cascade of
/// "cannot find function" errors follows.
pub fn fallback(errors: TokenStream, func: &ItemFn) -> TokenStream {
    let mut out = errors;
    func.to_tokens(&mut out);
    out
}
