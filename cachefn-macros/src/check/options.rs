//! The options that depend on each other or on the signature only through
//! their values: checked the same way for the attribute and for
//! `config::quickcache!`.

use crate::attr::{Options, OPTIONS};
use crate::ctxt::Ctxt;

/// Ranges from the option table (durations at most
/// [`MAX_SECONDS`](crate::attr::MAX_SECONDS)), `local_timeout` and
/// `none_timeout` against `timeout`, `none_timeout` against `cache_none`,
/// and the names that must be usable inside keys.
pub fn check(cx: &mut Ctxt, o: &Options) {
    for spec in OPTIONS {
        let (low, high) = spec.range;
        if let Some(s) = o.whole(spec.name).filter(|s| s.value < low) {
            cx.error(
                s.span,
                format!(
                    "`{}` must be at least {low} second, e.g. `{}`",
                    spec.name, spec.example
                ),
            );
        }
        if let Some(s) = o.whole(spec.name).filter(|s| s.value > high) {
            cx.error(
                s.span,
                format!(
                    "`{}` is longer than any tier keeps an entry: at most {high} seconds \
                     (100 years, `cachefn::MAX_TTL`), e.g. `{}`",
                    spec.name, spec.example
                ),
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
    if let (Some(t), Some(n)) = (&o.timeout, &o.none_timeout) {
        if n.value > t.value {
            cx.error(
                n.span,
                format!(
                    "`none_timeout` ({}) is longer than `timeout` ({}): a `None` never lives longer than any other value; use `none_timeout = {}` or less",
                    n.value, t.value, t.value
                ),
            );
        }
    }
    if let (Some(c), Some(n)) = (&o.cache_none, &o.none_timeout) {
        if !c.value {
            cx.error(
                n.span,
                "`none_timeout` is how long a cached `None` lives, but `cache_none = false` caches no `None`: remove one of them (`none_timeout = 0` is `cache_none = false`)",
            );
        } else if n.value == 0 {
            cx.error(
                n.span,
                "`none_timeout = 0` caches no `None`, but `cache_none = true` asks for them to be cached: remove one of them",
            );
        }
    }
    if let Some(n) = &o.name {
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
    if let Some(c) = &o.cache {
        if c.value().is_empty() {
            cx.error(
                c.span(),
                "`cache` names a registered cache and cannot be empty, e.g. `cache = \"sessions\"`",
            );
        }
    }
}
