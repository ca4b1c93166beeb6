//! The signature: what can be memoized at all, and the named parameters.

use proc_macro2::Span;
use quote::ToTokens;
use syn::visit::Visit;
use syn::{FnArg, GenericParam, Ident, Pat, Signature, Type};

use crate::context::{self, Block};
use crate::ctxt::Ctxt;

/// A named parameter of the function.
pub struct Param {
    pub ident: Ident,
    pub ty: Type,
}

/// The function's receiver and named parameters.
pub struct Params {
    pub receiver: bool,
    pub params: Vec<Param>,
    /// Names bound inside parameters written as patterns (already an
    /// error): a `vary_on` path may start with one without a second error.
    pub in_patterns: Vec<Ident>,
}

/// Reject `const fn`, generics, `&mut` and patterns; collect the parameters.
pub fn check(cx: &mut Ctxt, sig: &Signature) -> Params {
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
    let mut in_patterns = Vec::new();
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(r) => {
                receiver = true;
                let mut_ref = match &r.kind {
                    syn::ReceiverKind::Reference(_, _, Some(m)) => Some(m.span),
                    syn::ReceiverKind::Typed(_, ty) => mut_ref_in(ty),
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
                    Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                        params.push(Param {
                            ident: pi.ident.clone(),
                            ty: (*pt.ty).clone(),
                        })
                    }
                    other => {
                        let mut names = PatNames(Vec::new());
                        names.visit_pat(other);
                        cx.error_spanned(other, pattern_error(other, &pt.ty, &names.0));
                        in_patterns.extend(names.0);
                    }
                }
            }
        }
    }
    if !receiver {
        if let Some(block) = context::enclosing(sig.fn_token.span) {
            let (place, hint) = match block {
                Block::Trait => ("a `trait`", "or memoize a free function that the trait's methods call"),
                _ => ("an `impl`", "or move it out of the `impl`: a free function's helpers are `{name}::clear(..)`"),
            };
            cx.error(
                name.span(),
                format!(
                    "#[quickcache] cannot memoize `{name}`, a function without `self` in {place}: the helpers of a function without `self` live in a module named after it, and {place} cannot hold a module; take `&self` (its helpers are then `Self::{name}_clear(..)` and so on), {}",
                    hint.replace("{name}", &name.to_string())
                ),
            );
        }
    }
    Params {
        receiver,
        params,
        in_patterns,
    }
}

/// "write a name instead": for an extractor-style pattern that binds one
/// name (`Path(id): Path<u64>`), the parameter to write and how to read it.
fn pattern_error(pat: &Pat, ty: &Type, names: &[Ident]) -> String {
    const WHY: &str =
        "#[quickcache] needs a name for every parameter (the key and the helpers refer to it)";
    match (pat, names) {
        (Pat::TupleStruct(ts), [name])
            if ts.elems.len() == 1 && matches!(ts.elems.first(), Some(Pat::Ident(_))) =>
        {
            format!(
                "{WHY}: write `{name}: {}` instead of the pattern, and read the value as `{name}.0` (in the body, and in `vary_on = \"{name}.0\"`)",
                type_text(ty)
            )
        }
        _ => format!("{WHY}: write `name: Type` instead of a pattern"),
    }
}

/// A type as it is usually written (`Path<u64>`, not `Path < u64 >`).
pub fn type_text(ty: &Type) -> String {
    let mut text = ty.to_token_stream().to_string();
    for (from, to) in [
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" :: ", "::"),
        (":: ", "::"),
        (" ,", ","),
        ("& ", "&"),
    ] {
        text = text.replace(from, to);
    }
    text
}

/// The names a pattern binds.
struct PatNames(Vec<Ident>);

impl<'ast> Visit<'ast> for PatNames {
    fn visit_pat_ident(&mut self, i: &'ast syn::PatIdent) {
        self.0.push(i.ident.clone());
        syn::visit::visit_pat_ident(self, i);
    }
}

impl Params {
    /// "one of `a`, `b`" / "`a`" / None when there is nothing to name:
    /// the parameters a key path can start with.
    pub fn choices(&self, with_self: bool, skip: Option<&Ident>) -> Option<String> {
        let mut names: Vec<String> = self
            .params
            .iter()
            .filter(|p| skip != Some(&p.ident))
            .map(|p| format!("`{}`", p.ident))
            .collect();
        if with_self && self.receiver {
            names.insert(0, "`self`".into());
        }
        match names.len() {
            0 => None,
            1 => Some(names.remove(0)),
            _ => Some(format!("one of {}", names.join(", "))),
        }
    }

    pub fn find(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.ident == name)
    }
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
                syn::PointerMutability::Mut(m) => {
                    self.0.get_or_insert(m.span);
                }
                _ => syn::visit::visit_type_ptr(self, p),
            }
        }
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}
