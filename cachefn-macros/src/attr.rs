//! Parse: `name = value` options into one struct, keeping every span.
//!
//! [`OPTIONS`] is the one table of options: what each takes, its range,
//! whether `config::quickcache!` accepts it and which functions it applies
//! to. The attribute and the config macro both parse with it.

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
    pub none_timeout: Option<Seconds>,
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

/// What an option's value must be.
#[derive(Clone, Copy)]
enum Kind {
    /// A whole number (seconds, or a version) in `Spec::range`.
    Whole,
    Str,
    Bool,
    /// A number, integer or float, in `Spec::range`: XFetch's beta.
    Number,
    /// A path or a list of paths.
    Paths,
    /// `"process"` or `"shared"`.
    SingleFlight,
}

/// Which functions an option applies to, by their return type.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Returning {
    Any,
    /// `Result<T, E>`; the error says why.
    Result(&'static str),
    /// `Option<T>`; the error says why.
    Option(&'static str),
}

/// One option: the table below is the only list of them.
pub struct Spec {
    pub name: &'static str,
    kind: Kind,
    /// How it is written, for errors: `timeout = 60`.
    pub example: &'static str,
    /// Also accepted by `config::quickcache!`.
    crate_wide: bool,
    /// The values a `Whole` or `Number` option takes.
    pub range: (u64, u64),
    pub returning: Returning,
}

const fn spec(name: &'static str, kind: Kind, example: &'static str, crate_wide: bool) -> Spec {
    Spec {
        name,
        kind,
        example,
        crate_wide,
        range: (0, u64::MAX),
        returning: Returning::Any,
    }
}

/// The longest duration an option takes, in seconds: 100 years of 365.25
/// days, `cachefn::MAX_TTL` (the macro crate cannot name it; a test of
/// `cachefn` checks that they agree). A longer lifetime is more than some
/// tier can keep (Redis refuses an expiry past `i64` milliseconds), and an
/// entry that is never stored is recomputed on every call.
pub const MAX_SECONDS: u64 = 3_155_760_000;

/// A duration in whole seconds, at most [`MAX_SECONDS`].
const fn duration(name: &'static str, example: &'static str) -> Spec {
    Spec {
        range: (0, MAX_SECONDS),
        ..spec(name, Kind::Whole, example, true)
    }
}

/// Every option, in the order the errors list them.
pub const OPTIONS: &[Spec] = &[
    spec("vary_on", Kind::Paths, "vary_on = \"user.id\"", false),
    Spec {
        range: (1, MAX_SECONDS),
        ..duration("timeout", "timeout = 60")
    },
    duration("local_timeout", "local_timeout = 10"),
    spec("skip_arg", Kind::Str, "skip_arg = \"force\"", false),
    spec("cache", Kind::Str, "cache = \"sessions\"", true),
    spec("name", Kind::Str, "name = \"profile_page\"", false),
    spec("version", Kind::Whole, "version = 2", true),
    Spec {
        returning: Returning::Option(
            "`cache_none` only applies to functions that return `Option<T>`: remove it",
        ),
        ..spec("cache_none", Kind::Bool, "cache_none = false", true)
    },
    Spec {
        returning: Returning::Option(
            "`none_timeout` is how long a `None` result lives, so it only applies to functions that return `Option<T>`: remove it",
        ),
        ..duration("none_timeout", "none_timeout = 10")
    },
    duration("stale_while_revalidate", "stale_while_revalidate = 30"),
    Spec {
        returning: Returning::Result(
            "`stale_if_error` serves an old value when the function returns `Err`, so it only applies to functions that return `Result<T, E>`: remove it, or use `stale_while_revalidate`",
        ),
        ..duration("stale_if_error", "stale_if_error = 600")
    },
    Spec {
        range: (0, 1_000),
        ..spec("early_refresh", Kind::Number, "early_refresh = 1.0", true)
    },
    spec(
        "single_flight",
        Kind::SingleFlight,
        "single_flight = \"process\"",
        true,
    ),
];

/// A parsed value, before it is stored under its option's name.
enum Value {
    Whole(Seconds),
    Str(LitStr),
    Bool(LitBool),
    Number(f64, Span),
    Paths(Span, Vec<LitStr>),
    SingleFlight(bool, Span),
}

impl Options {
    fn set(&mut self, name: &str, value: Value) {
        match (name, value) {
            ("vary_on", Value::Paths(span, paths)) => self.vary_on = Some((span, paths)),
            ("timeout", Value::Whole(s)) => self.timeout = Some(s),
            ("local_timeout", Value::Whole(s)) => self.local_timeout = Some(s),
            ("version", Value::Whole(s)) => self.version = Some(s),
            ("none_timeout", Value::Whole(s)) => self.none_timeout = Some(s),
            ("stale_while_revalidate", Value::Whole(s)) => self.stale_while_revalidate = Some(s),
            ("stale_if_error", Value::Whole(s)) => self.stale_if_error = Some(s),
            ("skip_arg", Value::Str(s)) => self.skip_arg = Some(s),
            ("cache", Value::Str(s)) => self.cache = Some(s),
            ("name", Value::Str(s)) => self.name = Some(s),
            ("cache_none", Value::Bool(b)) => self.cache_none = Some(b),
            ("early_refresh", Value::Number(b, span)) => self.early_refresh = Some((b, span)),
            ("single_flight", Value::SingleFlight(shared, span)) => {
                self.single_flight = Some((shared, span))
            }
            _ => unreachable!("the table gives every option one kind"),
        }
    }

    /// The value of a whole-number option, by its name in the table.
    pub fn whole(&self, name: &str) -> Option<&Seconds> {
        match name {
            "timeout" => self.timeout.as_ref(),
            "local_timeout" => self.local_timeout.as_ref(),
            "version" => self.version.as_ref(),
            "none_timeout" => self.none_timeout.as_ref(),
            "stale_while_revalidate" => self.stale_while_revalidate.as_ref(),
            "stale_if_error" => self.stale_if_error.as_ref(),
            _ => None,
        }
    }

    /// Where the option `name` is written, if it is.
    pub fn span_of(&self, name: &str) -> Option<Span> {
        match name {
            "vary_on" => self.vary_on.as_ref().map(|v| v.0),
            "skip_arg" => self.skip_arg.as_ref().map(LitStr::span),
            "cache" => self.cache.as_ref().map(LitStr::span),
            "name" => self.name.as_ref().map(LitStr::span),
            "cache_none" => self.cache_none.as_ref().map(|b| b.span),
            "early_refresh" => self.early_refresh.map(|(_, s)| s),
            "single_flight" => self.single_flight.map(|(_, s)| s),
            other => self.whole(other).map(|s| s.span),
        }
    }
}

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

fn lit_span(expr: &Expr) -> Span {
    match lit(expr) {
        Some(l) => l.span(),
        None => syn::spanned::Spanned::span(expr),
    }
}

impl Spec {
    /// Parse `opt`'s value as this option takes it, reporting a wrong
    /// literal at its token.
    fn parse(&self, cx: &mut Ctxt, opt: &RawOption) -> Option<Value> {
        let (name, example) = (self.name, self.example);
        match self.kind {
            Kind::Whole => expect_int(cx, opt, example).map(Value::Whole),
            Kind::Str => expect_str(cx, opt, example).map(Value::Str),
            Kind::Bool => match lit(&opt.value) {
                Some(Lit::Bool(b)) => Some(Value::Bool(b.clone())),
                _ => {
                    cx.error_spanned(
                        &opt.value,
                        format!("`{name}` takes `true` or `false`, e.g. `{example}`"),
                    );
                    None
                }
            },
            Kind::Number => self.parse_number(cx, opt),
            Kind::Paths => parse_vary_on(cx, opt).map(|(span, paths)| Value::Paths(span, paths)),
            Kind::SingleFlight => {
                let s = expect_str(cx, opt, example)?;
                match s.value().as_str() {
                    "shared" => Some(Value::SingleFlight(true, s.span())),
                    "process" => Some(Value::SingleFlight(false, s.span())),
                    other => {
                        cx.error(
                            s.span(),
                            format!("`{name}` is \"process\" (one computation per key per process, the default) or \"shared\" (one per key across every process using the shared tier), not {other:?}"),
                        );
                        None
                    }
                }
            }
        }
    }

    /// `early_refresh = beta`: a number in range (`1.0`, `1`, `0.5`).
    fn parse_number(&self, cx: &mut Ctxt, opt: &RawOption) -> Option<Value> {
        let (name, (low, high)) = (self.name, self.range);
        let example = format!("e.g. `{}` (0 turns it off)", self.example);
        if negative(&opt.value) {
            cx.error_spanned(
                &opt.value,
                format!("`{name}` cannot be negative: it is XFetch's beta, {example}"),
            );
            return None;
        }
        let parsed = match lit(&opt.value) {
            Some(Lit::Float(f)) => f.base10_parse::<f64>().ok(),
            Some(Lit::Int(i)) => i.base10_parse::<u32>().ok().map(f64::from),
            _ => {
                cx.error_spanned(&opt.value, format!("`{name}` takes a number, {example}"));
                return None;
            }
        };
        match parsed {
            Some(b) if b.is_finite() && b >= low as f64 && b <= high as f64 => {
                Some(Value::Number(b, lit_span(&opt.value)))
            }
            _ => {
                cx.error_spanned(
                    &opt.value,
                    format!("`{name}` must be a number from {low} to {high}, {example}"),
                );
                None
            }
        }
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

/// The names of the options `place` accepts, for errors.
fn names(place: Place) -> String {
    OPTIONS
        .iter()
        .filter(|s| place == Place::Attribute || s.crate_wide)
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parse the options, reporting every mistake (unknown or repeated option,
/// wrong literal type) at its token.
pub fn parse_options(cx: &mut Ctxt, raw: RawOptions, place: Place) -> Options {
    let mut o = Options::default();
    let mut seen: Vec<&str> = Vec::new();
    for opt in raw.0 {
        let name = opt.name.to_string();
        let spec = OPTIONS.iter().find(|s| s.name == name);
        let Some(spec) = spec.filter(|s| place == Place::Attribute || s.crate_wide) else {
            let msg = if spec.is_some() {
                format!(
                    "`{name}` is set per function, not crate-wide: write it in #[quickcache({name} = ...)]; crate-wide options are: {}",
                    names(Place::Config)
                )
            } else {
                let allowed = OPTIONS
                    .iter()
                    .filter(|s| place == Place::Attribute || s.crate_wide)
                    .map(|s| s.name);
                let hint = suggest(&name, allowed)
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                format!(
                    "unknown option `{name}`: {hint}the options are: {}",
                    names(place)
                )
            };
            cx.error(opt.name.span(), msg);
            continue;
        };
        if seen.contains(&spec.name) {
            cx.error(opt.name.span(), format!("`{name}` is set twice: keep one"));
            continue;
        }
        seen.push(spec.name);
        if let Some(value) = spec.parse(cx, &opt) {
            o.set(spec.name, value);
        }
    }
    o
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

/// The closest of `candidates` to `name`, if it is close enough to be a typo.
pub fn suggest<'a, S: AsRef<str> + 'a>(
    name: &str,
    candidates: impl IntoIterator<Item = S>,
) -> Option<S> {
    candidates
        .into_iter()
        .map(|a| (distance(name, a.as_ref()), a))
        .filter(|(d, a)| *d <= 2.max(a.as_ref().len() / 3))
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
