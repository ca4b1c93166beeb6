//! Parse: `name = value` options into one struct, keeping every span.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprArray, ExprLit, Ident, Lit, LitBool, LitInt, LitStr, Token};

use crate::ctxt::Ctxt;

/// One `name = value` pair as written.
pub struct RawOption {
    pub name: Ident,
    pub value: Expr,
}

impl Parse for RawOption {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input.call(syn::ext::IdentExt::parse_any)?;
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(
                name.span(),
                format!("expected `{name} = ...`: options are written `name = value`, e.g. `timeout = 60`"),
            ));
        }
        input.parse::<Token![=]>()?;
        let value: Expr = input.parse()?;
        Ok(RawOption { name, value })
    }
}

/// The comma-separated options of the attribute or the config macro.
pub struct RawOptions(pub Vec<RawOption>);

impl Parse for RawOptions {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let list = Punctuated::<RawOption, Token![,]>::parse_terminated(input)?;
        Ok(RawOptions(list.into_iter().collect()))
    }
}

/// A `u64` option with the span of its literal.
#[derive(Clone)]
pub struct Seconds {
    pub value: u64,
    pub span: Span,
}

/// Everything `#[quickcache(...)]` or `config::quickcache!` can set.
#[derive(Default)]
pub struct Options {
    /// `None`: every parameter but `skip_arg`. The list keeps each path's literal.
    pub vary_on: Option<(Span, Vec<LitStr>)>,
    pub timeout: Option<Seconds>,
    pub local_timeout: Option<Seconds>,
    pub skip_arg: Option<LitStr>,
    pub cache: Option<LitStr>,
    pub name: Option<LitStr>,
    pub version: Option<Seconds>,
    pub cache_none: Option<LitBool>,
    pub stale_while_revalidate: Option<Seconds>,
    pub stale_if_error: Option<Seconds>,
    /// XFetch's `beta`, with its literal's span.
    pub early_refresh: Option<(f64, Span)>,
    /// `single_flight = "shared"` (`true`) or `"process"` (`false`).
    pub single_flight: Option<(bool, Span)>,
}

/// Where the options are written, which decides what is allowed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Attribute,
    Config,
}

const ATTRIBUTE_OPTIONS: &[&str] = &[
    "vary_on",
    "timeout",
    "local_timeout",
    "skip_arg",
    "cache",
    "name",
    "version",
    "cache_none",
    "stale_while_revalidate",
    "stale_if_error",
    "early_refresh",
    "single_flight",
];
const CONFIG_OPTIONS: &[&str] = &[
    "timeout",
    "local_timeout",
    "version",
    "cache",
    "cache_none",
    "stale_while_revalidate",
    "stale_if_error",
    "early_refresh",
    "single_flight",
];

/// A `-literal`: the span of the whole expression, for "cannot be negative".
fn negative(expr: &Expr) -> bool {
    match expr {
        Expr::Unary(u) => matches!(u.op, syn::UnOp::Neg(_)),
        Expr::Group(g) => negative(&g.expr),
        _ => false,
    }
}

fn lit(expr: &Expr) -> Option<&Lit> {
    match expr {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        Expr::Group(g) => lit(&g.expr),
        _ => None,
    }
}

fn expect_str(cx: &mut Ctxt, opt: &RawOption, example: &str) -> Option<LitStr> {
    match lit(&opt.value) {
        Some(Lit::Str(s)) => Some(s.clone()),
        _ => {
            cx.error_spanned(
                &opt.value,
                format!("`{}` takes a string literal, e.g. `{example}`", opt.name),
            );
            None
        }
    }
}

fn expect_int(cx: &mut Ctxt, opt: &RawOption, example: &str) -> Option<Seconds> {
    if negative(&opt.value) {
        cx.error_spanned(
            &opt.value,
            format!(
                "`{}` cannot be negative: write a whole number of seconds, e.g. `{example}`",
                opt.name
            ),
        );
        return None;
    }
    let parsed = match lit(&opt.value) {
        Some(Lit::Int(i)) => i.base10_parse::<u64>().map_err(|_| i.span()),
        _ => {
            cx.error_spanned(
                &opt.value,
                format!("`{}` takes a whole number, e.g. `{example}`", opt.name),
            );
            return None;
        }
    };
    match parsed {
        Ok(value) => Some(Seconds {
            value,
            span: lit_span(&opt.value),
        }),
        Err(span) => {
            cx.error(
                span,
                format!("`{}` must fit in a u64, e.g. `{example}`", opt.name),
            );
            None
        }
    }
}

fn lit_span(expr: &Expr) -> Span {
    match lit(expr) {
        Some(l) => l.span(),
        None => syn::spanned::Spanned::span(expr),
    }
}

/// Parse the options, reporting every mistake (unknown or repeated option,
/// wrong literal type) at its token.
pub fn parse_options(cx: &mut Ctxt, raw: RawOptions, place: Place) -> Options {
    let allowed = match place {
        Place::Attribute => ATTRIBUTE_OPTIONS,
        Place::Config => CONFIG_OPTIONS,
    };
    let mut o = Options::default();
    let mut seen: Vec<String> = Vec::new();
    for opt in raw.0 {
        let name = opt.name.to_string();
        if !allowed.contains(&name.as_str()) {
            let msg = if place == Place::Config && ATTRIBUTE_OPTIONS.contains(&name.as_str()) {
                format!(
                    "`{name}` is set per function, not crate-wide: write it in #[quickcache({name} = ...)]; crate-wide options are: {}",
                    CONFIG_OPTIONS.join(", ")
                )
            } else {
                let hint = suggest(&name, allowed)
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                format!(
                    "unknown option `{name}`: {hint}the options are: {}",
                    allowed.join(", ")
                )
            };
            cx.error(opt.name.span(), msg);
            continue;
        }
        if seen.contains(&name) {
            cx.error(opt.name.span(), format!("`{name}` is set twice: keep one"));
            continue;
        }
        seen.push(name.clone());
        match name.as_str() {
            "vary_on" => o.vary_on = parse_vary_on(cx, &opt),
            "timeout" => o.timeout = expect_int(cx, &opt, "timeout = 60"),
            "local_timeout" => o.local_timeout = expect_int(cx, &opt, "local_timeout = 10"),
            "version" => o.version = expect_int(cx, &opt, "version = 2"),
            "skip_arg" => o.skip_arg = expect_str(cx, &opt, "skip_arg = \"force\""),
            "cache" => o.cache = expect_str(cx, &opt, "cache = \"sessions\""),
            "name" => o.name = expect_str(cx, &opt, "name = \"profile_page\""),
            "cache_none" => match lit(&opt.value) {
                Some(Lit::Bool(b)) => o.cache_none = Some(b.clone()),
                _ => cx.error_spanned(
                    &opt.value,
                    "`cache_none` takes `true` or `false`, e.g. `cache_none = false`",
                ),
            },
            "stale_while_revalidate" => {
                o.stale_while_revalidate = expect_int(cx, &opt, "stale_while_revalidate = 30")
            }
            "stale_if_error" => o.stale_if_error = expect_int(cx, &opt, "stale_if_error = 600"),
            "early_refresh" => o.early_refresh = parse_beta(cx, &opt),
            "single_flight" => {
                if let Some(s) = expect_str(cx, &opt, "single_flight = \"process\"") {
                    match s.value().as_str() {
                        "shared" => o.single_flight = Some((true, s.span())),
                        "process" => o.single_flight = Some((false, s.span())),
                        other => cx.error(
                            s.span(),
                            format!("`single_flight` is \"process\" (one computation per key per process, the default) or \"shared\" (one per key across every process using the shared tier), not {other:?}"),
                        ),
                    }
                }
            }
            _ => unreachable!("checked against the option list"),
        }
    }
    o
}

/// `early_refresh = beta`: a non-negative number (`1.0`, `1`, `0.5`).
fn parse_beta(cx: &mut Ctxt, opt: &RawOption) -> Option<(f64, Span)> {
    const EXAMPLE: &str = "e.g. `early_refresh = 1.0` (0 turns it off)";
    if negative(&opt.value) {
        cx.error_spanned(
            &opt.value,
            format!("`early_refresh` cannot be negative: it is XFetch's beta, {EXAMPLE}"),
        );
        return None;
    }
    let parsed = match lit(&opt.value) {
        Some(Lit::Float(f)) => f.base10_parse::<f64>().ok(),
        Some(Lit::Int(i)) => i.base10_parse::<u32>().ok().map(f64::from),
        _ => {
            cx.error_spanned(
                &opt.value,
                format!("`early_refresh` takes a number, {EXAMPLE}"),
            );
            return None;
        }
    };
    match parsed {
        Some(b) if b.is_finite() && b <= 1_000.0 => Some((b, lit_span(&opt.value))),
        _ => {
            cx.error_spanned(
                &opt.value,
                format!("`early_refresh` must be a number from 0 to 1000, {EXAMPLE}"),
            );
            None
        }
    }
}

fn parse_vary_on(cx: &mut Ctxt, opt: &RawOption) -> Option<(Span, Vec<LitStr>)> {
    const EXAMPLE: &str =
        "takes a path or a list of paths, e.g. `vary_on = \"user.id\"` or `vary_on = [\"user.id\", \"page\"]`";
    let span = lit_span(&opt.value);
    match &opt.value {
        Expr::Array(ExprArray { elems, .. }) => {
            let mut paths = Vec::new();
            for e in elems {
                match lit(e) {
                    Some(Lit::Str(s)) => paths.push(s.clone()),
                    _ => cx.error_spanned(
                        e,
                        format!("each `vary_on` entry is a string: `vary_on` {EXAMPLE}"),
                    ),
                }
            }
            Some((span, paths))
        }
        other => match lit(other) {
            Some(Lit::Str(s)) => Some((span, vec![s.clone()])),
            _ => {
                cx.error_spanned(other, format!("`vary_on` {EXAMPLE}"));
                None
            }
        },
    }
}

fn suggest<'a>(name: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .copied()
        .map(|a| (distance(name, a), a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `LitInt` as used in generated code.
pub fn int_tokens(value: u64, span: Span) -> LitInt {
    LitInt::new(&format!("{value}u64"), span)
}
