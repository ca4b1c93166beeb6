//! Expand: the wrapper function and its helpers.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Ident, ItemFn, Visibility};

use crate::attr::{int_tokens, Options};
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

pub fn expand(func: &ItemFn, o: &Options, plan: &Plan) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let fn_name = &sig.ident;
    let ret = &plan.ret;
    let ms = Span::mixed_site();
    let kb = Ident::new("__cachefn_key", ms);
    // Spanned at the return type, so that a type error about the value
    // points there (once) rather than at the attribute.
    let rs = ret.span();
    let mode = match plan.mode {
        Mode::Plain => quote_spanned!(rs=> ::cachefn::__private::Plain<#ret>),
        Mode::Result => quote_spanned!(rs=> ::cachefn::__private::ResultOf<#ret>),
        Mode::Option => quote_spanned!(rs=> ::cachefn::__private::OptionOf<#ret>),
    };
    let refresh = match &plan.skip_arg {
        Some(s) => quote!(#s),
        None => quote!(false),
    };
    let generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;
    let value = Ident::new("value", Span::call_site());
    // An `async fn` keeps its body as a future and gets `async` helpers.
    let is_async = sig.asyncness.is_some();
    let (call, clear_fn, clear_all_fn, get_fn, set_fn) = if is_async {
        (
            quote!(call_async::<#mode, _>),
            quote!(clear_async),
            quote!(clear_all_async),
            quote!(get_cached_async),
            quote!(set_cached_async),
        )
    } else {
        (
            quote!(call::<#mode>),
            quote!(clear),
            quote!(clear_all),
            quote!(get_cached),
            quote!(set_cached),
        )
    };
    let (kb_arg, dot_await, helper_async, body) = if is_async {
        (
            quote!(#kb),
            quote!(.await),
            quote!(async),
            quote!(async move #block),
        )
    } else {
        (quote!(&mut #kb), quote!(), quote!(), quote!(move || #block))
    };
    let parts: Vec<TokenStream> = plan
        .key_exprs
        .iter()
        .map(|e| {
            let span = e.clone().into_iter().next().map(|t| t.span()).unwrap_or(ms);
            quote_spanned!(span=> #kb.part(&(#e));)
        })
        .collect();
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
        quote_spanned! {rs=>
            match ::cachefn::__private::#hit_fn::<#mode>(#site, &mut #kb, #refresh) {
                ::core::result::Result::Ok(hit) => hit,
                ::core::result::Result::Err(cold) => {
                    #(#parts)*
                    ::cachefn::__private::#call(#site, #kb_arg, #refresh, cold, #body) #dot_await
                }
            }
        }
    };
    let call_method = call_site(quote!(__cachefn_site));
    let call_free = call_site(quote!(&#fn_name::__SITE));
    let get_method = quote_spanned!(rs=> ::cachefn::__private::#get_fn::<#mode>(__cachefn_site, #kb_arg) #dot_await);
    let set_method = quote_spanned!(rs=> ::cachefn::__private::#set_fn::<#mode>(__cachefn_site, #kb_arg, #value) #dot_await);
    let get_free =
        quote_spanned!(rs=> ::cachefn::__private::#get_fn::<#mode>(&__SITE, #kb_arg) #dot_await);
    let set_free = quote_spanned!(rs=> ::cachefn::__private::#set_fn::<#mode>(&__SITE, #kb_arg, #value) #dot_await);
    let cached = &plan.cached;
    let cached_span = cached.clone().into_iter().next().map_or(rs, |t| t.span());
    let assert_value = quote_spanned! {cached_span=>
        const _: () = ::cachefn::__private::assert_value::<<#mode as ::cachefn::__private::Memo>::Cached>();
    };
    let site_options = site_options(o);
    let site_name = |method: bool| match (&o.name, method) {
        (Some(n), _) => quote!(::cachefn::__private::SiteName::Custom(#n)),
        (None, false) => quote!(::cachefn::__private::SiteName::Path),
        (None, true) => {
            let m = fn_name.to_string();
            quote!(::cachefn::__private::SiteName::Method(#m))
        }
    };

    // Helper parameters: the parameters the key reads, in declaration order.
    let helper_params: Vec<TokenStream> = plan
        .key_params
        .iter()
        .map(|&i| {
            let p = &plan.params[i];
            let (id, ty) = (&p.ident, &p.ty);
            quote!(#id: #ty)
        })
        .collect();
    if plan.receiver {
        let site_fn = format_ident!("__cachefn_site_{}", fn_name);
        let site_name = site_name(true);
        let self_param = plan.key_uses_self.then(|| quote!(&self,));
        let call_prefix = if plan.key_uses_self {
            quote!(self.)
        } else {
            quote!(Self::)
        };
        let _ = call_prefix;
        let [clear, clear_all, key, get_cached, set_cached, stats] = [
            "clear",
            "clear_all",
            "key",
            "get_cached",
            "set_cached",
            "stats",
        ]
        .map(|h| format_ident!("{}_{}", fn_name, h));
        let docs = helper_docs(&fn_name.to_string(), true, is_async);
        let [d_clear, d_clear_all, d_key, d_get, d_set, d_stats] = docs;
        quote! {
            #(#attrs)*
            #vis #sig {
                #assert_value
                let __cachefn_site = Self::#site_fn();
                #[allow(unused_mut)]
                let mut #kb = __cachefn_site.key_builder();
                #kb.hashing();
                #(#parts)*
                #call_method
            }

            #[doc(hidden)]
            #[allow(non_snake_case)]
            fn #site_fn() -> &'static ::cachefn::__private::Site {
                static SITE: ::cachefn::__private::Site =
                    ::cachefn::__private::Site::new(::core::module_path!(), #site_name, #site_options);
                SITE.with_self_type(::cachefn::__private::type_name_of::<Self>)
            }

            #[doc = #d_clear]
            #vis #helper_async fn #clear #generics (#self_param #(#helper_params),*) -> ::core::result::Result<(), ::cachefn::Error> #where_clause {
                let __cachefn_site = Self::#site_fn();
                #[allow(unused_mut)]
                let mut #kb = __cachefn_site.key_builder();
                #(#parts)*
                ::cachefn::__private::#clear_fn(__cachefn_site, #kb_arg) #dot_await
            }

            #[doc = #d_clear_all]
            #vis #helper_async fn #clear_all() -> ::core::result::Result<(), ::cachefn::Error> {
                ::cachefn::__private::#clear_all_fn(Self::#site_fn()) #dot_await
            }

            #[doc = #d_stats]
            #vis fn #stats() -> ::cachefn::Stats {
                ::cachefn::__private::stats(Self::#site_fn())
            }

            #[doc = #d_key]
            #vis fn #key #generics (#self_param #(#helper_params),*) -> ::cachefn::Key #where_clause {
                let __cachefn_site = Self::#site_fn();
                #[allow(unused_mut)]
                let mut #kb = __cachefn_site.key_builder();
                #(#parts)*
                ::cachefn::__private::key(__cachefn_site, #kb)
            }

            #[doc = #d_get]
            #vis #helper_async fn #get_cached #generics (#self_param #(#helper_params),*) -> ::core::option::Option<#cached> #where_clause {
                let __cachefn_site = Self::#site_fn();
                #[allow(unused_mut)]
                let mut #kb = __cachefn_site.key_builder();
                #(#parts)*
                #get_method
            }

            #[doc = #d_set]
            #vis #helper_async fn #set_cached #generics (#self_param #(#helper_params,)* #value: #cached) -> ::core::result::Result<(), ::cachefn::Error> #where_clause {
                let __cachefn_site = Self::#site_fn();
                #[allow(unused_mut)]
                let mut #kb = __cachefn_site.key_builder();
                #(#parts)*
                #set_method
            }
        }
    } else {
        let site_name = site_name(false);
        let hvis = nested_vis(vis);
        let [d_clear, d_clear_all, d_key, d_get, d_set, d_stats] =
            helper_docs(&fn_name.to_string(), false, is_async);
        let mod_doc =
            format!("Cache helpers of [`{fn_name}()`]({fn_name}()), generated by `#[quickcache]`.");
        quote! {
            #(#attrs)*
            #vis #sig {
                #assert_value
                #[allow(unused_mut)]
                let mut #kb = #fn_name::__SITE.key_builder();
                #kb.hashing();
                #(#parts)*
                #call_free
            }

            #[doc = #mod_doc]
            #[allow(non_snake_case, unused_imports, clippy::module_name_repetitions)]
            #vis mod #fn_name {
                use super::*;

                #[doc(hidden)]
                pub(super) static __SITE: ::cachefn::__private::Site =
                    ::cachefn::__private::Site::new(::core::module_path!(), #site_name, #site_options);

                #[doc = #d_clear]
                #hvis #helper_async fn clear #generics (#(#helper_params),*) -> ::core::result::Result<(), ::cachefn::Error> #where_clause {
                    #[allow(unused_mut)]
                    let mut #kb = __SITE.key_builder();
                    #(#parts)*
                    ::cachefn::__private::#clear_fn(&__SITE, #kb_arg) #dot_await
                }

                #[doc = #d_clear_all]
                #hvis #helper_async fn clear_all() -> ::core::result::Result<(), ::cachefn::Error> {
                    ::cachefn::__private::#clear_all_fn(&__SITE) #dot_await
                }

                #[doc = #d_stats]
                #hvis fn stats() -> ::cachefn::Stats {
                    ::cachefn::__private::stats(&__SITE)
                }

                #[doc = #d_key]
                #hvis fn key #generics (#(#helper_params),*) -> ::cachefn::Key #where_clause {
                    #[allow(unused_mut)]
                    let mut #kb = __SITE.key_builder();
                    #(#parts)*
                    ::cachefn::__private::key(&__SITE, #kb)
                }

                #[doc = #d_get]
                #hvis #helper_async fn get_cached #generics (#(#helper_params),*) -> ::core::option::Option<#cached> #where_clause {
                    #[allow(unused_mut)]
                    let mut #kb = __SITE.key_builder();
                    #(#parts)*
                    #get_free
                }

                #[doc = #d_set]
                #hvis #helper_async fn set_cached #generics (#(#helper_params,)* #value: #cached) -> ::core::result::Result<(), ::cachefn::Error> #where_clause {
                    #[allow(unused_mut)]
                    let mut #kb = __SITE.key_builder();
                    #(#parts)*
                    #set_free
                }
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
