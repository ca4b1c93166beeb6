//! Generations: how `clear_prefix` invalidates a scope without a key scan
//! (told in [`Memcached`](super::Memcached)'s documentation).

use super::protocol::{push_mg, push_ms, Mode, Reply, MAX_KEY_LEN};
use crate::clock;

/// Generation items live under this start, which no cache prefix has
/// (a cache escapes `#` in its prefix).
const GEN_START: &str = "#gen:";

/// The scopes of `key`: up to and including its first `:`, and its second.
fn scopes(key: &str) -> impl Iterator<Item = &str> {
    key.match_indices(':').take(2).map(move |(i, _)| &key[..=i])
}

/// The scope that `clear_prefix(prefix)` must invalidate: the smallest
/// scope that every key starting with `prefix` belongs to.
pub(super) fn clear_scope(prefix: &str) -> Option<&str> {
    let mut colons = prefix.match_indices(':').map(|(i, _)| i);
    let first = colons.next()?;
    Some(match colons.next() {
        Some(second) => &prefix[..=second],
        None => &prefix[..=first],
    })
}

/// The key of a scope's generation item, within memcached's 250 bytes.
pub(super) fn gen_key(scope: &str) -> String {
    if GEN_START.len() + scope.len() <= MAX_KEY_LEN {
        format!("{GEN_START}{scope}")
    } else {
        format!(
            "#gen#{:032x}",
            xxhash_rust::xxh3::xxh3_128(scope.as_bytes())
        )
    }
}

pub(super) fn gen_keys(key: &str) -> Vec<String> {
    scopes(key).map(gen_key).collect()
}

/// Create the generation items of `gens` if they are missing: an `add`,
/// which leaves an existing one (and so its CAS) alone.
pub(super) fn push_ensure_gens(buf: &mut Vec<u8>, gens: &[String]) {
    let stamp = clock::unix_ms().to_string();
    for g in gens {
        push_ms(buf, g, stamp.as_bytes(), 0, Mode::Add);
    }
}

pub(super) fn push_read_gens(buf: &mut Vec<u8>, gens: &[String]) {
    for g in gens {
        push_mg(buf, g, "c");
    }
}

/// A live entry: stored after the last clear of each of its scopes.
pub(super) fn live(cas: u64, gens: &[Reply]) -> bool {
    gens.iter().all(|g| g.found() && cas > g.cas)
}

#[cfg(test)]
mod tests {
    use super::super::protocol::check_key;
    use super::*;

    #[test]
    fn scopes_and_generation_keys() {
        assert_eq!(scopes("a").count(), 0);
        assert_eq!(scopes("blog:visits").collect::<Vec<_>>(), ["blog:"]);
        assert_eq!(
            scopes("blog:views.page:v1:7:x").collect::<Vec<_>>(),
            ["blog:", "blog:views.page:"]
        );
        assert_eq!(clear_scope("blog:"), Some("blog:"));
        assert_eq!(clear_scope("blog:us"), Some("blog:"));
        assert_eq!(clear_scope("blog:views.page:v"), Some("blog:views.page:"));
        assert_eq!(clear_scope("blog:views.page:"), Some("blog:views.page:"));
        assert_eq!(clear_scope("blog"), None);
        assert_eq!(clear_scope(""), None);
        assert_eq!(gen_key("blog:"), "#gen:blog:");
        let long = format!("p:{}:", "x".repeat(246));
        let g = gen_key(&long);
        assert!(g.starts_with("#gen#") && g.len() <= MAX_KEY_LEN, "{g}");
        assert_ne!(g, gen_key(&format!("p:{}:", "y".repeat(246))));
        check_key(&g).unwrap();
    }
}
