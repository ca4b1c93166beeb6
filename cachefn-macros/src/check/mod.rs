//! Check: the options against the function's signature, producing a plan
//! for expansion. Every mistake is reported at its token with what to write.
//!
//! One section a file, run in this order (the order of the errors):
//! [`signature`], [`skip_arg`], [`vary_on`], [`options`] (shared with
//! `config::quickcache!`), [`ret`] (the return type).

use syn::{Ident, ItemFn};

use crate::attr::Options;
use crate::ctxt::Ctxt;

pub mod options;
pub mod ret;
pub mod signature;
pub mod skip_arg;
pub mod vary_on;

pub use ret::{Mode, Ret};
pub use signature::Params;
pub use vary_on::Key;

/// What to generate, once every check passed.
pub struct Plan {
    pub sig: Params,
    pub key: Key,
    pub skip_arg: Option<Ident>,
    pub ret: Ret,
}

pub fn check(cx: &mut Ctxt, func: &ItemFn, o: &Options) -> Plan {
    let name = &func.sig.ident;
    let sig = signature::check(cx, &func.sig);
    let skip_arg = o
        .skip_arg
        .as_ref()
        .and_then(|lit| skip_arg::check(cx, name, &sig, lit));
    let vary_on = o.vary_on.as_ref().map(|(_, paths)| paths.as_slice());
    let key = vary_on::check(cx, name, &sig, vary_on, skip_arg.as_ref());
    options::check(cx, o);
    let ret = ret::check(cx, &func.sig.output, o);
    Plan {
        sig,
        key,
        skip_arg,
        ret,
    }
}
