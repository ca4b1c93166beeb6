//! `skip_arg`: a `bool` parameter that refreshes the cached value.

use quote::ToTokens;
use syn::{Ident, LitStr, Type};

use super::signature::{Param, Params};
use crate::ctxt::Ctxt;

/// The `skip_arg` parameter, once it is known to be a `bool` parameter.
pub fn check(cx: &mut Ctxt, name: &Ident, sig: &Params, lit: &LitStr) -> Option<Ident> {
    let bools: Vec<&Param> = sig.params.iter().filter(|p| is_bool(&p.ty)).collect();
    let bool_choice = match bools.len() {
        0 => format!(
            "`{name}` has no `bool` parameter: add one (e.g. `force: bool`) or remove `skip_arg`"
        ),
        1 => format!("name `{}`", bools[0].ident),
        _ => format!(
            "name one of {}",
            bools
                .iter()
                .map(|p| format!("`{}`", p.ident))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    match sig.find(&lit.value()) {
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
        Some(p) => return Some(p.ident.clone()),
    }
    None
}

fn is_bool(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.is_ident("bool"))
}
