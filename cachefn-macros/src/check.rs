//! Check: the options against the function's signature, producing a plan
//! for expansion. Every mistake is reported at its token with what to write.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, ToTokens};
use syn::visit::Visit;
use syn::{
    Expr, FnArg, GenericArgument, GenericParam, Ident, ItemFn, LitStr, Pat, PathArguments,
    ReturnType, Type,
};

use crate::attr::Options;
use crate::ctxt::Ctxt;

/// How the return value is cached.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Result,
    Option,
}

pub struct Param {
    pub ident: Ident,
    pub ty: Type,
}

/// What to generate, once every check passed.
pub struct Plan {
    pub receiver: bool,
    pub params: Vec<Param>,
    /// Indexes into `params` of the parameters the key reads, in declaration order.
    pub key_params: Vec<usize>,
    /// `vary_on` reads `self.something`.
    pub key_uses_self: bool,
    /// The expressions the key is built from, in `vary_on` order.
    pub key_exprs: Vec<TokenStream>,
    pub skip_arg: Option<Ident>,
    pub mode: Mode,
    pub ret: Type,
    /// The type kept in the cache (`get_cached` / `set_cached`).
    pub cached: TokenStream,
}

pub fn check(cx: &mut Ctxt, func: &ItemFn, o: &Options) -> Option<Plan> {
    let sig = &func.sig;
    let name = &sig.ident;
    if let Some(c) = &sig.constness {
        cx.error(
            c.span,
            "#[quickcache] cannot memoize a `const fn`: remove `const`",
        );
    }
    for g in &sig.generics.params {
        match g {
            GenericParam::Lifetime(_) => {}
            _ => cx.error_spanned(
                g,
                format!("#[quickcache] cannot memoize a generic function: `{name}` must take and return concrete types, so that its key and cached value have one type"),
            ),
        }
    }

    let mut receiver = false;
    let mut params = Vec::new();
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(r) => {
                receiver = true;
                let mut_ref = match (&r.reference, &r.mutability, &r.colon_token) {
                    (Some(_), Some(m), _) => Some(m.span),
                    (_, _, Some(_)) => mut_ref_in(&r.ty),
                    _ => None,
                };
                if let Some(span) = mut_ref {
                    cx.error(span, format!("#[quickcache] cannot memoize a method that takes `&mut self`: a cached call skips the body, so `{name}` would change `self` only on a miss; take `&self`, and make the change outside the memoized method"));
                }
            }
            FnArg::Typed(pt) => {
                if let Some(span) = mut_ref_in(&pt.ty) {
                    cx.error(span, format!("#[quickcache] cannot memoize a function that takes `&mut`: a cached call skips the body, so `{name}` would change this argument only on a miss; take `&T` or a value, and make the change outside the memoized function"));
                }
                let mut impls = ImplTraitFinder(None);
                impls.visit_type(&pt.ty);
                if let Some(span) = impls.0 {
                    cx.error(span, format!("#[quickcache] cannot memoize a generic function: `impl Trait` makes `{name}` generic; take a concrete type"));
                }
                match &*pt.pat {
                    Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => params.push(Param {
                        ident: pi.ident.clone(),
                        ty: (*pt.ty).clone(),
                    }),
                    other => cx.error_spanned(
                        other,
                        "#[quickcache] needs a name for every parameter (the key and the helpers refer to it): write `name: Type` instead of a pattern",
                    ),
                }
            }
        }
    }
    // "one of `a`, `b`" / "`a`" / None when there is nothing to name.
    let choices = |with_self: bool, skip: Option<&str>| -> Option<String> {
        let mut names: Vec<String> = params
            .iter()
            .filter(|p| skip != Some(p.ident.to_string().as_str()))
            .map(|p| format!("`{}`", p.ident))
            .collect();
        if with_self && receiver {
            names.insert(0, "`self`".into());
        }
        match names.len() {
            0 => None,
            1 => Some(names.remove(0)),
            _ => Some(format!("one of {}", names.join(", "))),
        }
    };
    // skip_arg
    let mut skip_arg = None;
    if let Some(lit) = &o.skip_arg {
        let bools: Vec<&Param> = params.iter().filter(|p| is_bool(&p.ty)).collect();
        let bool_choice = match bools.len() {
            0 => format!("`{name}` has no `bool` parameter: add one (e.g. `force: bool`) or remove `skip_arg`"),
            1 => format!("name `{}`", bools[0].ident),
            _ => format!(
                "name one of {}",
                bools.iter().map(|p| format!("`{}`", p.ident)).collect::<Vec<_>>().join(", ")
            ),
        };
        match params.iter().find(|p| p.ident == lit.value()) {
            None if lit.value() == "self" => cx.error(
                lit.span(),
                format!("`self` cannot be the `skip_arg`: it must be a `bool` parameter; {bool_choice}"),
            ),
            None => cx.error(
                lit.span(),
                format!(
                    "`skip_arg` names `{}`, which is not a parameter of `{name}`; {bool_choice}",
                    lit.value(),
                ),
            ),
            Some(p) if !is_bool(&p.ty) => cx.error(
                lit.span(),
                format!(
                    "`skip_arg` must name a `bool` parameter (true = refresh the cached value), but `{}` is `{}`; {bool_choice}",
                    p.ident,
                    p.ty.to_token_stream()
                ),
            ),
            Some(p) => skip_arg = Some(p.ident.clone()),
        }
    }
    let skip_name = skip_arg.as_ref().map(|s| s.to_string());
    let start_with = |what: String| -> String {
        match choices(true, skip_name.as_deref()) {
            Some(c) => format!("{what}: start it with {c}"),
            None => format!("{what}: `{name}` has no parameters to vary on, so remove `vary_on` (or write `vary_on = []`)"),
        }
    };

    // vary_on
    let mut key_exprs = Vec::new();
    let mut roots: Vec<String> = Vec::new();
    match &o.vary_on {
        None => {
            for p in &params {
                if skip_arg.as_ref() != Some(&p.ident) {
                    let id = &p.ident;
                    key_exprs.push(quote!(#id));
                    roots.push(id.to_string());
                }
            }
        }
        Some((_, paths)) => {
            for lit in paths {
                let Some((root, expr)) = parse_path(cx, lit) else {
                    continue;
                };
                let root_s = root.to_string();
                if root_s == "self" {
                    if !receiver {
                        let what = format!("`vary_on` path `{}` starts with `self`, but `{name}` has no `self` parameter", lit.value());
                        cx.error(lit.span(), start_with(what));
                        continue;
                    }
                } else if skip_arg.as_ref().is_some_and(|s| *s == root_s) {
                    cx.error(lit.span(), format!("`{root_s}` is the `skip_arg`, so it cannot also be in `vary_on`: remove it from `vary_on` (a refresh flag is never part of the key)"));
                    continue;
                } else if !params.iter().any(|p| p.ident == root_s) {
                    let what = if lit.value() == root_s {
                        format!("`{root_s}` is not a parameter of `{name}`")
                    } else {
                        format!("`vary_on` path `{}` starts with `{root_s}`, which is not a parameter of `{name}`", lit.value())
                    };
                    cx.error(lit.span(), start_with(what));
                    continue;
                }
                key_exprs.push(expr);
                roots.push(root_s);
            }
        }
    }
    let key_params: Vec<usize> = (0..params.len())
        .filter(|&i| roots.iter().any(|r| params[i].ident == r))
        .collect();
    let key_uses_self = roots.iter().any(|r| r == "self");

    // timeouts and names
    if let Some(t) = &o.timeout {
        if t.value == 0 {
            cx.error(
                t.span,
                "`timeout` must be at least 1 second, e.g. `timeout = 60`",
            );
        }
    }
    if let (Some(t), Some(l)) = (&o.timeout, &o.local_timeout) {
        if l.value > t.value {
            cx.error(
                l.span,
                format!(
                    "`local_timeout` ({}) is longer than `timeout` ({}): the local tier never keeps an entry longer than the shared one; use `local_timeout = {}` or less",
                    l.value, t.value, t.value
                ),
            );
        }
    }
    if let Some(n) = &o.name {
        check_name(cx, n);
    }
    if let Some(c) = &o.cache {
        if c.value().is_empty() {
            cx.error(
                c.span(),
                "`cache` names a registered cache and cannot be empty, e.g. `cache = \"sessions\"`",
            );
        }
    }

    // the return type
    let ret: Type = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let mode = mode_of(&ret);
    match &ret {
        Type::ImplTrait(_) => cx.error_spanned(&ret, "#[quickcache] cannot cache an `impl Trait` return value: return a concrete type"),
        Type::Reference(_) => cx.error_spanned(&ret, "#[quickcache] caches owned values: return an owned type (e.g. `String` for `&str`, or `Arc<T>`)"),
        _ => {}
    }
    if let Some(s) = &o.stale_if_error {
        if mode != Mode::Result {
            cx.error(
                s.span,
                "`stale_if_error` serves an old value when the function returns `Err`, so it only applies to functions that return `Result<T, E>`: remove it, or use `stale_while_revalidate`",
            );
        }
    }
    if let Some(b) = &o.cache_none {
        if mode != Mode::Option {
            cx.error(
                b.span,
                "`cache_none` only applies to functions that return `Option<T>`: remove it",
            );
        }
    }
    let cached = match mode {
        Mode::Plain | Mode::Option => ret.to_token_stream(),
        Mode::Result => match first_generic(&ret) {
            Some(t) => t.to_token_stream(),
            None => {
                quote!(<::cachefn::__private::ResultOf<#ret> as ::cachefn::__private::Memo>::Cached)
            }
        },
    };

    Some(Plan {
        receiver,
        params,
        key_params,
        key_uses_self,
        key_exprs,
        skip_arg,
        mode,
        ret,
        cached,
    })
}

struct ImplTraitFinder(Option<Span>);

impl<'ast> Visit<'ast> for ImplTraitFinder {
    fn visit_type_impl_trait(&mut self, i: &'ast syn::TypeImplTrait) {
        self.0.get_or_insert(i.impl_token.span);
    }
}

/// The `mut` of the first `&mut` inside a type (`&mut T`, `Option<&mut T>`, ...).
fn mut_ref_in(ty: &Type) -> Option<Span> {
    struct Finder(Option<Span>);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            match &r.mutability {
                Some(m) => {
                    self.0.get_or_insert(m.span);
                }
                None => syn::visit::visit_type_reference(self, r),
            }
        }
        fn visit_type_ptr(&mut self, p: &'ast syn::TypePtr) {
            match &p.mutability {
                Some(m) => {
                    self.0.get_or_insert(m.span);
                }
                None => syn::visit::visit_type_ptr(self, p),
            }
        }
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}

fn is_bool(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.is_ident("bool"))
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

fn check_name(cx: &mut Ctxt, n: &LitStr) {
    let v = n.value();
    if v.is_empty()
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        cx.error(
            n.span(),
            "`name` is used inside cache keys: write it with letters, digits, `_`, `.` and `-` only, e.g. `name = \"blog.sidebar\"`",
        );
    }
}

/// Parse a `vary_on` path (`user`, `user.id`, `user.name()`, `self.id`) into
/// its root parameter and an expression spanned at the literal.
fn parse_path(cx: &mut Ctxt, lit: &LitStr) -> Option<(Ident, TokenStream)> {
    const HOW: &str = "a `vary_on` path is a parameter name followed by fields and zero-argument method calls, e.g. \"user.id\", \"post.slug()\" or \"self.tenant\"";
    let expr: Expr = match syn::parse_str(&lit.value()) {
        Ok(e) => e,
        Err(_) => {
            cx.error(
                lit.span(),
                format!("`{}` is not a path: {HOW}", lit.value()),
            );
            return None;
        }
    };
    fn root(e: &Expr) -> Option<Ident> {
        match e {
            Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => {
                p.path.get_ident().cloned().or_else(|| {
                    (p.path.segments.len() == 1 && p.path.segments[0].ident == "self")
                        .then(|| p.path.segments[0].ident.clone())
                })
            }
            Expr::Field(f) => root(&f.base),
            Expr::MethodCall(m) if m.args.is_empty() && m.turbofish.is_none() => root(&m.receiver),
            _ => None,
        }
    }
    let Some(r) = root(&expr) else {
        cx.error(
            lit.span(),
            format!("`{}` is not a path: {HOW}", lit.value()),
        );
        return None;
    };
    Some((r, respan(expr.to_token_stream(), lit.span())))
}

fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let TokenTree::Group(g) = &tt {
                let mut ng = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                ng.set_span(span);
                tt = TokenTree::Group(ng);
            } else {
                tt.set_span(span);
            }
            tt
        })
        .collect()
}
