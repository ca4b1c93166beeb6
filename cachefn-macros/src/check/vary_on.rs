//! `vary_on`: the paths the key is built from.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote, ToTokens};
use syn::{Expr, Ident, LitStr};

use super::signature::Params;
use crate::attr::suggest;
use crate::ctxt::Ctxt;

/// One value the key is built from.
pub struct KeyPart {
    /// The expression, spanned at its `vary_on` literal (or the parameter).
    pub expr: TokenStream,
    /// As written: `q.user_id`.
    pub path: String,
    /// The parameter it starts from, or `self`.
    pub root: Ident,
    /// That parameter's index; `None` for `self`.
    pub param: Option<usize>,
    /// What follows the root: `Some(true)` only field accesses,
    /// `Some(false)` a method call too, `None` nothing (the parameter itself).
    pub fields_only: Option<bool>,
    /// Its parameter in the helpers that take the key's values (`f::clear_by`).
    pub value_name: Ident,
}

/// What the key reads.
pub struct Key {
    /// In `vary_on` order.
    pub parts: Vec<KeyPart>,
    /// Indexes into the parameters the key reads, in declaration order.
    pub params: Vec<usize>,
    /// A path starts with `self`.
    pub uses_self: bool,
}

impl Key {
    /// A part is more than a parameter (`q.user_id`, `self.tenant`): the
    /// function then gets the helpers that take the values themselves.
    pub fn has_paths(&self) -> bool {
        self.parts.iter().any(|p| p.fields_only.is_some())
    }
}

pub fn check(
    cx: &mut Ctxt,
    name: &Ident,
    sig: &Params,
    vary_on: Option<&[LitStr]>,
    skip_arg: Option<&Ident>,
) -> Key {
    let start_with = |what: String, suggestion: Option<String>| -> String {
        match (suggestion, sig.choices(true, skip_arg)) {
            (Some(s), Some(c)) => format!("{what}: did you mean `{s}`? (a `vary_on` path starts with {c})"),
            (None, Some(c)) => format!("{what}: start it with {c}"),
            (_, None) if !sig.in_patterns.is_empty() => what,
            (_, None) => format!("{what}: `{name}` has no parameters to vary on, so remove `vary_on` (or write `vary_on = []`)"),
        }
    };
    let mut parts = Vec::new();
    match vary_on {
        None => {
            for (i, p) in sig.params.iter().enumerate() {
                if skip_arg != Some(&p.ident) {
                    let id = &p.ident;
                    parts.push(KeyPart {
                        expr: quote!(#id),
                        path: id.to_string(),
                        root: id.clone(),
                        param: Some(i),
                        fields_only: None,
                        value_name: id.clone(),
                    });
                }
            }
        }
        Some(paths) => {
            for lit in paths {
                let Some(mut part) = parse_path(cx, lit) else {
                    continue;
                };
                let root_s = part.root.to_string();
                if root_s == "self" {
                    if !sig.receiver {
                        let what = format!("`vary_on` path `{}` starts with `self`, but `{name}` has no `self` parameter", lit.value());
                        let tail = part.path.strip_prefix("self.").filter(|t| {
                            let first = t.split(['.', '(']).next().unwrap_or_default();
                            sig.find(first).is_some() && skip_arg.is_none_or(|s| s != first)
                        });
                        cx.error(lit.span(), start_with(what, tail.map(|t| format!("{t:?}"))));
                        continue;
                    }
                } else if skip_arg.is_some_and(|s| *s == root_s) {
                    cx.error(lit.span(), format!("`{root_s}` is the `skip_arg`, so it cannot also be in `vary_on`: remove it from `vary_on` (a refresh flag is never part of the key)"));
                    continue;
                } else if sig.in_patterns.iter().any(|n| *n == root_s) {
                    // The parameter is a pattern, which is already an error
                    // saying what to write instead.
                    continue;
                } else if sig.find(&root_s).is_none() {
                    let what = if lit.value() == root_s {
                        format!("`{root_s}` is not a parameter of `{name}`")
                    } else {
                        format!("`vary_on` path `{}` starts with `{root_s}`, which is not a parameter of `{name}`", lit.value())
                    };
                    cx.error(
                        lit.span(),
                        start_with(what, typo_fix(&part.path, &root_s, sig, skip_arg)),
                    );
                    continue;
                }
                part.param = sig.params.iter().position(|p| p.ident == root_s);
                parts.push(part);
            }
        }
    }
    dedup_value_names(&mut parts);
    let params = (0..sig.params.len())
        .filter(|&i| parts.iter().any(|p| sig.params[i].ident == p.root))
        .collect();
    let uses_self = parts.iter().any(|p| p.root == "self");
    Key {
        parts,
        params,
        uses_self,
    }
}

/// A pasteable literal for a path whose root is not a parameter: the path
/// with `.` as `_` when that names a parameter (`user.id` for `user_id`),
/// else the path with its root replaced by the closest parameter name.
fn typo_fix(path: &str, root: &str, sig: &Params, skip_arg: Option<&Ident>) -> Option<String> {
    let names: Vec<String> = sig
        .params
        .iter()
        .filter(|p| skip_arg != Some(&p.ident))
        .map(|p| p.ident.to_string())
        .collect();
    let joined = path.replace('.', "_");
    if names.contains(&joined) {
        return Some(format!("{joined:?}"));
    }
    let closest = suggest(root, names.iter())?;
    Some(format!("{:?}", format!("{closest}{}", &path[root.len()..])))
}

/// Each value's helper parameter is named after the path's last segment;
/// a name that repeats, or is the `value` of `set_cached_by`, gets its place.
fn dedup_value_names(parts: &mut [KeyPart]) {
    let names: Vec<String> = parts.iter().map(|p| p.value_name.to_string()).collect();
    for (i, part) in parts.iter_mut().enumerate() {
        let n = &names[i];
        if n == "value" || names.iter().filter(|m| *m == n).count() > 1 {
            part.value_name = format_ident!("{}_{}", n, i + 1);
        }
    }
}

/// A parameter name for a value: the path's last segment, unless that is
/// a keyword (`self`, `type`).
fn value_ident(name: &str) -> Ident {
    match syn::parse_str::<Ident>(name) {
        Ok(id) => Ident::new(&id.to_string(), Span::call_site()),
        Err(_) => format_ident!("{}_value", name.trim_start_matches("r#")),
    }
}

/// Parse a `vary_on` path (`user`, `user.id`, `user.name()`, `self.id`) into
/// its root parameter and an expression spanned at the literal.
fn parse_path(cx: &mut Ctxt, lit: &LitStr) -> Option<KeyPart> {
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
    /// The root, whether only fields follow it, and the last segment's name.
    fn walk(e: &Expr) -> Option<(Ident, Option<bool>, String)> {
        match e {
            Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => {
                let root = p.path.get_ident().cloned().or_else(|| {
                    (p.path.segments.len() == 1 && p.path.segments[0].ident == "self")
                        .then(|| p.path.segments[0].ident.clone())
                })?;
                let last = root.to_string();
                Some((root, None, last))
            }
            Expr::Field(f) => {
                let (root, fields, base) = walk(&f.base)?;
                let last = match &f.member {
                    syn::Member::Named(n) => n.to_string(),
                    syn::Member::Unnamed(i) => format!("{base}_{}", i.index),
                };
                Some((root, Some(fields.unwrap_or(true)), last))
            }
            Expr::MethodCall(m) if m.args.is_empty() && m.turbofish.is_none() => {
                let (root, _, _) = walk(&m.receiver)?;
                Some((root, Some(false), m.method.to_string()))
            }
            _ => None,
        }
    }
    let Some((root, fields_only, last)) = walk(&expr) else {
        cx.error(
            lit.span(),
            format!("`{}` is not a path: {HOW}", lit.value()),
        );
        return None;
    };
    Some(KeyPart {
        expr: spanned_at(expr.to_token_stream(), lit.span()),
        path: lit.value(),
        root,
        param: None,
        fields_only,
        value_name: value_ident(last.trim_start_matches("r#")),
    })
}

/// A path's tokens, all at its literal: the root keeps the literal's own
/// span (it names the function's parameter, so it must resolve where the
/// user wrote it); what follows is resolved in the macro's context at the
/// same place. A misspelled field is then rustc's one "no field `idd` on
/// type `&User`" at the literal, without rustc's "similar name" fix, which
/// would replace the whole literal by a bare `id` (`vary_on = id`, which
/// does not parse): a proc macro cannot point inside a literal.
fn spanned_at(tokens: TokenStream, span: Span) -> TokenStream {
    let mut tokens = respan(tokens, span).into_iter();
    let root = tokens.next();
    let rest = respan(tokens.collect(), span.resolved_at(Span::mixed_site()));
    root.into_iter().chain(rest).collect()
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
